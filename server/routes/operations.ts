import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { VERSION } from '../../common/version.js';
import { readDemoPage } from '../demo/demo-page.js';
import type { ServerMetrics } from '../metrics.js';
import type { ModelRegistry } from '../model-registry.js';
import type { ModelService } from '../model-service.js';
import type { ServerOptions } from '../options.js';
import { ErrorBody, HttpError } from '../schemas/errors.js';
import { HealthResponse, InfoResponse, ReadyResponse } from '../schemas/operations.js';
import type { RouteContext } from './route-context.js';

/** Whether every model has loaded and warmed up, and why not; false again once shutdown starts. */
class Readiness {
  private readonly loading: Set<string>;
  private readonly failed = new Map<string, string>();
  closing = false;

  constructor(registry: ModelRegistry, onFailure: (name: string, error: unknown) => void) {
    this.loading = new Set(registry.services.map((s) => s.name));
    for (const service of registry.services) {
      service.ready().then(
        () => this.loading.delete(service.name),
        (error: unknown) => {
          this.loading.delete(service.name);
          this.failed.set(service.name, error instanceof Error ? error.message : String(error));
          onFailure(service.name, error);
        },
      );
    }
  }

  /** Throws the 503 that says what is not ready. */
  check(): void {
    if (this.closing) throw new HttpError('E_NOT_READY', 'the server is shutting down');
    if (this.failed.size > 0) {
      throw new HttpError('E_NOT_READY', `models failed to load: ${[...this.failed].map(([name, why]) => `'${name}': ${why}`).join('; ')}`);
    }
    if (this.loading.size > 0) throw new HttpError('E_NOT_READY', `still loading: ${[...this.loading].map((n) => `'${n}'`).join(', ')}`);
  }
}

/** A model's precision fields in /info and /readyz: the variant, and for int8 its weight set. */
function precisionOf(service: ModelService): { precision: ModelService['precision']; int8_weights?: 's8' | 'u8' } {
  return { precision: service.precision, ...(service.int8Weights ? { int8_weights: service.int8Weights } : {}) };
}

/** Probes, metrics and the demo page. */
export interface OperationRouteContext extends RouteContext {
  metrics: ServerMetrics;
  /** The serving limits `GET /info` reports. */
  serving: Pick<ServerOptions, 'maxBatch' | 'maxDelayMs' | 'maxQueue' | 'requestTimeoutMs'>;
}

export const operationRoutes: FastifyPluginAsyncZod<OperationRouteContext> = async (app, context) => {
  const { registry, metrics, serving } = context;
  const readiness = new Readiness(registry, (name, error) => app.log.error({ err: error }, `model '${name}' failed to load; /readyz answers 503`));
  app.addHook('preClose', async () => {
    readiness.closing = true;
  });
  // Probes are never rate-limited nor behind the key: a load balancer must always reach them.
  const probe = { access: 'public' as const, rateLimit: false as const };

  // `/health` too: what users of other inference servers (TEI, vLLM) try first.
  for (const url of ['/healthz', '/health']) {
    app.get(
      url,
      {
        config: probe,
        schema: {
          tags: ['operations'],
          summary: url === '/healthz' ? 'Liveness' : 'Liveness (alias of /healthz)',
          description: 'Answers while the process is alive, even while a batch computes (sessions run in worker threads).',
          response: { 200: HealthResponse },
        },
      },
      async () => ({ status: 'ok' as const }),
    );
  }

  app.get(
    '/info',
    {
      schema: {
        tags: ['operations'],
        summary: 'What is served',
        description: "Each model's tasks, hidden and embedding sizes, text length, image size and precision, and the server's batching limits. Answers while models still load.",
        security: context.security('read'),
        response: { 200: InfoResponse },
      },
    },
    async () => ({
      version: VERSION,
      models: registry.services.map((service) => ({
        name: registry.label(service),
        demo: service.isDemo,
        tasks: [...service.tasks],
        hidden_size: service.info.hiddenSize,
        ...(service.info.embeddingDim !== undefined ? { embedding_dim: service.info.embeddingDim } : {}),
        max_text_tokens: service.info.maxTextTokens,
        image_size: service.info.imageSize,
        ...precisionOf(service),
        weights_dtype: service.info.weightsDtype,
      })),
      max_batch: serving.maxBatch,
      max_delay_ms: serving.maxDelayMs,
      max_queue: serving.maxQueue,
      request_timeout_ms: serving.requestTimeoutMs,
    }),
  );

  app.get(
    '/readyz',
    {
      config: probe,
      schema: {
        tags: ['operations'],
        summary: 'Readiness',
        description: 'Answers 200 once every model has loaded and warmed up, 503 before then and during shutdown.',
        response: { 200: ReadyResponse, 503: ErrorBody },
      },
    },
    async () => {
      readiness.check();
      return { status: 'ready' as const, models: registry.services.map((s) => ({ name: registry.label(s), tasks: [...s.tasks], demo: s.isDemo, ...precisionOf(s) })) };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        description: 'Requests by route and status, latency, queue-time, inference-time and batch-size histograms by model and stage, gallery sizes, queue depth, image-cache hits and misses, execution provider.',
        security: context.security('read'),
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );

  // Public even with --auth all: static HTML with no data, whose form takes the key for its API calls.
  app.get('/', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    let page: string;
    try {
      page = readDemoPage();
    } catch (error) {
      throw new HttpError('E_NOT_FOUND', `the demo page is not installed: ${(error as Error).message}`);
    }
    return reply.type('text/html; charset=utf-8').send(page);
  });
};
