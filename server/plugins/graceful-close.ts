import { HttpError } from '../schemas/errors.js';
import { sharedPlugin } from './shared-plugin.js';

/**
 * Once `app.close()` starts, answers still in flight go out with `Connection: close`, so that
 * their keep-alive sockets end with them and the close completes when the last request is
 * answered, instead of when the idle sockets time out (Fastify keeps them 72 s). A request that
 * still arrives (on a connection that was busy, so not closed at once) is answered 503
 * E_NOT_READY in the usual shape: Fastify's own 503 (`return503OnClosing`, off in app.ts) has another.
 */
export const gracefulClose = sharedPlugin('graceful-close', async (app) => {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async () => {
    if (closing) throw new HttpError('E_NOT_READY', 'the server is shutting down: retry (on another replica, if there is one)', { 'retry-after': '1' });
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
});
