import { sharedPlugin } from './shared-plugin.js';

/**
 * Once `app.close()` starts, answers still in flight go out with `Connection: close`, so that
 * their keep-alive sockets end with them and the close completes when the last request is
 * answered, instead of when the idle sockets time out (Fastify keeps them 72 s).
 */
export const gracefulClose = sharedPlugin('graceful-close', async (app) => {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
});
