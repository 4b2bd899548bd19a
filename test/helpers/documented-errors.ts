import { readFileSync } from 'node:fs';

const SERVER_DOC = new URL('../../docs/server.md', import.meta.url);

/** The error table of docs/server.md ("## Errors"): each code with its status. */
export function documentedErrors(): Map<string, number> {
  const text = readFileSync(SERVER_DOC, 'utf8');
  const section = text.slice(text.indexOf('\n## Errors'), text.indexOf('\n## ', text.indexOf('\n## Errors') + 1));
  const table = new Map<string, number>();
  for (const match of section.matchAll(/^\| (\d{3}) \| `(E_[A-Z0-9_]+)` \|/gm)) table.set(match[2]!, Number(match[1]));
  if (table.size === 0) throw new Error(`no error table found under "## Errors" in ${SERVER_DOC.pathname}`);
  return table;
}

/** Why `response` is not a documented error in the `{error: {code, message}}` envelope, or undefined when it is one. */
export function envelopeViolation(status: number, contentType: string | undefined, body: string, documented: ReadonlyMap<string, number>): string | undefined {
  if (!/^application\/json\b/.test(contentType ?? '')) return `a ${status} with content-type ${contentType ?? '(none)'}: ${JSON.stringify(body.slice(0, 120))}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `a ${status} whose body is not JSON: ${JSON.stringify(body.slice(0, 120))}`;
  }
  const error = (parsed as { error?: unknown }).error as { code?: unknown; message?: unknown } | undefined;
  const keys = parsed && typeof parsed === 'object' ? Object.keys(parsed) : [];
  if (keys.length !== 1 || keys[0] !== 'error' || !error || typeof error !== 'object') return `a ${status} outside the envelope: ${body.slice(0, 160)}`;
  if (Object.keys(error).sort().join() !== 'code,message' || typeof error.code !== 'string' || typeof error.message !== 'string' || error.message === '') {
    return `a ${status} whose error is not exactly {code, message}: ${body.slice(0, 160)}`;
  }
  const expected = documented.get(error.code);
  if (expected === undefined) return `a ${status} with the undocumented code ${error.code}`;
  if (expected !== status) return `${error.code} answered ${status}; docs/server.md says ${expected}`;
  return undefined;
}
