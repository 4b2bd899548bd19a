import type { ServerMetrics } from '../metrics.js';
import { sharedPlugin } from './shared-plugin.js';

/** Counts every answer by route pattern, method and status, and times it. */
export const requestMetrics = sharedPlugin<{ metrics: ServerMetrics }>('request-metrics', async (app, { metrics }) => {
  app.addHook('onResponse', async (request, reply) => {
    metrics.request(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
  });
});
