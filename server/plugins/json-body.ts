import { sharedPlugin } from './shared-plugin.js';

/** Methods whose routes take no body: a client may still send `Content-Type: application/json` with an empty one (fetch does). */
const BODYLESS_METHODS = new Set(['DELETE', 'OPTIONS']);

/**
 * JSON bodies through Fastify's own parser (prototype-poisoning keys refused), except that an empty
 * body on a bodyless method is no body rather than a 400: `DELETE /gallery/:id` with
 * `Content-Type: application/json` and `Content-Length: 0` deletes. An empty JSON body on a route
 * that takes one stays a 400 that says so.
 */
export const jsonBodies = sharedPlugin('json-bodies', async (app) => {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body.length === 0 && BODYLESS_METHODS.has(request.method)) return done(null, undefined);
    parseJson(request, body as string, done);
  });
});
