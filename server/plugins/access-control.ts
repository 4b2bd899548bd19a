import { createHash, timingSafeEqual } from 'node:crypto';
import { BridgeTowerError } from '../../common/errors.js';
import { HttpError } from '../schemas/errors.js';
import type { ServerOptions } from '../options.js';
import { sharedPlugin } from './shared-plugin.js';

/** Who may call a route: anyone (health probes), readers (the key with `--auth all`), writers (the key whenever one is set). */
export type Access = 'public' | 'read' | 'write';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (server/plugins/access-control.ts); routes that do not say are `read`. */
    access?: Access;
  }
}

/** Whether a route of `access` needs the key under the `--auth` mode. */
const NEEDS_KEY: Record<ServerOptions['auth'], Record<Access, boolean>> = {
  writes: { public: false, read: false, write: true },
  all: { public: false, read: true, write: true },
};

/** Whether a route of `access` needs the API key with these options. */
export function needsKey(options: Pick<ServerOptions, 'apiKey' | 'auth'>, access: Access): boolean {
  return options.apiKey !== undefined && NEEDS_KEY[options.auth][access];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * `Authorization: Bearer <key>` on the routes the `--auth` mode protects, when an API key is set.
 * Keys are compared as sha256 digests with `timingSafeEqual`: constant time, whatever the length.
 */
export const accessControl = sharedPlugin<Pick<ServerOptions, 'apiKey' | 'auth'>>('access-control', async (app, { apiKey, auth }) => {
  if (apiKey === undefined) return;
  // An empty key would match no header and look like protection; servers built without the CLI get the same refusal as `serve`.
  if (apiKey.trim() === '') throw new BridgeTowerError('E_USAGE', '--api-key is empty: give the key, or leave the option out to serve without one', { option: 'apiKey' });
  const expected = digest(apiKey);
  const needsKey = NEEDS_KEY[auth];
  app.addHook('onRequest', async (request) => {
    // CORS preflights carry no credentials by design; the request they announce will.
    if (request.method === 'OPTIONS') return;
    if (!needsKey[request.routeOptions.config?.access ?? 'read']) return;
    const header = request.headers.authorization;
    const given = header === undefined ? undefined : /^Bearer\s+(.+?)\s*$/i.exec(header)?.[1];
    if (given === undefined) {
      throw new HttpError('E_UNAUTHORIZED', 'this route needs the API key: send "Authorization: Bearer <key>"', { 'www-authenticate': 'Bearer' });
    }
    if (!timingSafeEqual(digest(given), expected)) {
      throw new HttpError('E_UNAUTHORIZED', 'wrong API key', { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
  });
});
