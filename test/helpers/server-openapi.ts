import { fakeServer } from '../server/http-fakes.js';

/** The server's OpenAPI document, as GET /openapi.json serves it (from a server on fakes). */
export async function serverOpenApiDocument(): Promise<Record<string, any>> {
  const cleanups: Array<() => unknown> = [];
  try {
    const { app } = await fakeServer({ after: (fn: () => unknown) => void cleanups.push(fn) } as never);
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    if (response.statusCode !== 200) throw new Error(`GET /openapi.json answered ${response.statusCode}: ${response.body}`);
    return response.json();
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}
