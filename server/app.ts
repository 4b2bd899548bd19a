import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { DEFAULT_BUNDLE_ROOT } from '../bundle/bundle-folders.js';
import { readBundleFingerprint } from './gallery/bundle-fingerprint.js';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { Gallery, type GalleryOptions } from './gallery/gallery.js';
import { openGalleryStore } from './gallery/gallery-store.js';
import { MemoryGalleryStore } from './gallery/memory-gallery-store.js';
import { GALLERY_FILE } from './gallery/sqlite-gallery-store.js';
import { ServerMetrics } from './metrics.js';
import { ModelRegistry, ROUTE_TASKS } from './model-registry.js';
import type { ModelService } from './model-service.js';
import type { ServerOptions } from './options.js';
import { accessControl, needsKey } from './plugins/access-control.js';
import { answerError, errorHandling, MAX_PARAM_LENGTH } from './plugins/error-handling.js';
import { gracefulClose } from './plugins/graceful-close.js';
import { answerClientError, httpProtocol } from './plugins/http-protocol.js';
import { jsonBodies } from './plugins/json-body.js';
import { multipartBodies } from './plugins/multipart-body.js';
import { openApi } from './plugins/openapi.js';
import { requestMetrics } from './plugins/request-metrics.js';
import { galleryRoutes, type GalleryLike } from './routes/gallery.js';
import { operationRoutes } from './routes/operations.js';
import type { RouteContext } from './routes/route-context.js';
import { taskRoutes } from './routes/tasks.js';
import { embedRoutes } from './routes/embeddings.js';
import { openAiRoutes } from './routes/openai.js';
import { HttpError } from './schemas/errors.js';

export type { GalleryLike } from './routes/gallery.js';

export interface ServerDeps {
  /** The models to serve; without them, a BundleService is opened per `options.bundles` folder (and closed with the server). */
  services?: ModelService[];
  /** The gallery of every served model; without it, a Gallery per retrieval bundle in `options.gallery` (in memory for injected services). */
  gallery?: GalleryLike;
  /** The metrics `GET /metrics` exposes, for services built by the caller to report into (default: a fresh registry). */
  metrics?: ServerMetrics;
  /** Opens one bundle folder (default: `BundleService.open`, which waits for its sessions to load and warm up). */
  openBundle?: (dir: string, options: ServerOptions, metrics: ServerMetrics) => Promise<ModelService>;
  /** Where the log lines go when `options.logger` is on (default: stdout). */
  logStream?: { write(line: string): void };
}

/**
 * The HTTP server: cross-cutting plugins (errors, metrics, CORS, rate limit, API key, multipart,
 * OpenAPI) on the root, then the routes in encapsulated plugins. Resolves once every plugin has
 * loaded; models may still be warming up (`GET /readyz`).
 */
export async function buildServer(options: ServerOptions, deps: ServerDeps = {}): Promise<FastifyInstance> {
  const limits = { bodyLimitBytes: options.bodyLimitBytes, maxImageBytes: options.maxImageBytes };
  const app = Fastify({
    logger: options.logger ? { level: 'info', ...(deps.logStream ? { stream: deps.logStream } : {}) } : false,
    // Models load before the first plugin (openBundles), and no plugin waits on them: no timer may
    // turn a slow start (a small CPU limit, many bundles) into avvio's "Plugin did not start in time".
    pluginTimeout: 0,
    bodyLimit: options.bodyLimitBytes,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Every answer Fastify or Node would write in their own shape goes through ours instead (server/plugins/http-protocol.ts).
    frameworkErrors: answerError(limits),
    clientErrorHandler: answerClientError,
    http: { requireHostHeader: false },
    // The 503 for requests that arrive during shutdown is graceful-close's, in our shape.
    return503OnClosing: false,
  });
  const metrics = deps.metrics ?? new ServerMetrics();
  const owned: Array<{ close(): unknown }> = [];
  try {
    const opened = deps.services ? undefined : await openBundles(options, metrics, owned, app, deps.openBundle);
    const services = deps.services ?? opened!.map((bundle) => bundle.service);
    const registry = new ModelRegistry(services);
    const galleryOf = deps.gallery ? () => deps.gallery! : await openGalleries(options, opened ?? services.map((service) => ({ service })), owned, app, metrics);

    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    // Bodies are JSON or multipart; anything else (text/plain included) answers 415.
    app.removeContentTypeParser('text/plain');
    await app.register(errorHandling, limits);
    await app.register(httpProtocol);
    await app.register(jsonBodies);
    await app.register(requestMetrics, { metrics });
    await app.register(gracefulClose);
    if (options.cors) await app.register(cors, corsOptions(options.cors));
    if (options.rateLimit) {
      const { max, timeWindowMs } = options.rateLimit;
      await app.register(rateLimit, {
        max,
        timeWindow: timeWindowMs,
        errorResponseBuilder: (_request, context) =>
          new HttpError('E_RATE_LIMITED', `too many requests: at most ${context.max} per ${timeWindowMs} ms per client; retry in ${context.after}`, {
            'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))),
          }),
      });
    }
    await app.register(accessControl, { apiKey: options.apiKey, auth: options.auth });
    await app.register(multipartBodies, limits);
    await app.register(openApi, { apiKey: Boolean(options.apiKey) });

    const context: RouteContext = {
      registry,
      maxImageBytes: options.maxImageBytes,
      requestTimeoutMs: options.requestTimeoutMs,
      security: (access) => (needsKey(options, access) ? [{ apiKey: [] }] : undefined),
    };
    const serving = { maxBatch: options.maxBatch, maxDelayMs: options.maxDelayMs, maxQueue: options.maxQueue, requestTimeoutMs: options.requestTimeoutMs };
    await app.register(operationRoutes, { ...context, metrics, serving });
    await app.register(taskRoutes, context);
    await app.register(embedRoutes, context);
    await app.register(openAiRoutes, { ...context, limits });
    await app.register(galleryRoutes, { ...context, galleryOf });

    app.addHook('onClose', async () => closeAll(owned));
    for (const service of services) {
      const precision = `${service.precision}${service.int8Weights ? `, ${service.int8Weights} weights` : ''}`;
      app.log.info(`bundle '${service.name}' (${precision}) serves ${registry.routesOf(service).map((route) => (route === 'retrieval' ? '/gallery/{id}, /search' : `/${route}`)).join(', ')}`);
      if (service.isDemo) warnDemo(app, registry.label(service));
    }
    await app.ready();
    return app;
  } catch (error) {
    await closeAll(owned);
    await app.close().catch(() => {});
    throw error;
  }
}

interface OpenedBundle {
  service: ModelService;
  dir: string;
}

/**
 * Opens a BundleService per bundle folder, in order (each is closed with the server, or when a
 * later one fails), saying which one loads and how long each took: loading many bundles takes a
 * while and should not look like a hang.
 */
async function openBundles(
  options: ServerOptions,
  metrics: ServerMetrics,
  owned: Array<{ close(): unknown }>,
  app: FastifyInstance,
  openBundle: ServerDeps['openBundle'],
): Promise<OpenedBundle[]> {
  // Imported here so that servers of injected services never load ONNX Runtime.
  const open = openBundle ?? (await import('./scheduling/bundle-service.js')).BundleService.open;
  const opened: OpenedBundle[] = [];
  const total = options.bundles.length;
  for (const [i, dir] of options.bundles.entries()) {
    const started = Date.now();
    app.log.info(`loading bundle ${i + 1}/${total}: ${dir}`);
    // The runtime's lines (execution provider, precision and why) go to the server's log.
    const withLog = { ...options, log: (level: 'info' | 'warn', message: string) => app.log[level](message) };
    const service = await open(dir, withLog, metrics);
    owned.unshift(service);
    opened.push({ service, dir });
    app.log.info(`loaded bundle ${i + 1}/${total} '${service.name}' (${service.tasks.join(', ') || 'no heads'}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  return opened;
}

/**
 * One Gallery per bundle that can do retrieval, all in the backend `--gallery` names; injected
 * services (tests, embedding; no bundle folder to fingerprint) get galleries in memory.
 */
async function openGalleries(options: ServerOptions, bundles: ReadonlyArray<{ service: ModelService; dir?: string }>, owned: Array<{ close(): unknown }>, app: FastifyInstance, metrics: ServerMetrics): Promise<(service: ModelService) => GalleryLike> {
  const location = options.gallery ?? `sqlite:${join(options.dataDir, GALLERY_FILE)}`;
  const galleries = new Map<ModelService, Gallery>();
  for (const { service, dir } of bundles) {
    if (!ROUTE_TASKS.retrieval.every((task) => service.tasks.includes(task))) continue;
    const store =
      dir === undefined
        ? new MemoryGalleryStore(service.name)
        : await openGalleryStore(location, { bundle: service.name, fingerprint: readBundleFingerprint(dir), itcFormat: options.galleryItc, logger: app.log });
    const gallery = await Gallery.open(store, galleryOptions(options, app));
    galleries.set(service, gallery);
    metrics.trackGallery(service.name, () => gallery.count);
    // After the services: they close first and may still finish queued work.
    owned.push(gallery);
  }
  return galleryLookup(galleries);
}

function galleryOptions(options: ServerOptions, app: FastifyInstance): GalleryOptions {
  return { cacheMb: options.galleryCacheMb, cacheStorage: options.galleryCacheDtype, index: { annThreshold: options.galleryAnnThreshold }, warn: (message) => app.log.warn(message) };
}

function galleryLookup(galleries: Map<ModelService, Gallery>): (service: ModelService) => GalleryLike {
  return (service) => {
    const gallery = galleries.get(service);
    if (!gallery) throw new BridgeTowerError('E_INTERNAL', `no gallery was opened for '${service.name}'`);
    return gallery;
  };
}

function corsOptions(origins: string[]) {
  return {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
    allowedHeaders: ['content-type', 'authorization'],
    exposedHeaders: ['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    maxAge: 600,
  };
}

async function closeAll(owned: Array<{ close(): unknown }>): Promise<void> {
  while (owned.length > 0) await owned.shift()!.close();
}

/** Says loudly, line by line (each its own log entry, readable in JSON logs too), that a demo model's answers are meaningless. */
function warnDemo(app: FastifyInstance, name: string): void {
  const lines = [
    `SERVING THE DEMO MODEL '${name}'`,
    'ITS WEIGHTS ARE RANDOM: EVERY ANSWER IT GIVES IS MEANINGLESS.',
    `Serve a real model: bridgetower convert <checkpoint> --out ${DEFAULT_BUNDLE_ROOT}/<name>; serve then serves it instead of the demo`,
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const bar = '!'.repeat(width + 6);
  for (const line of [bar, ...lines.map((l) => `!! ${l.padEnd(width)} !!`), bar]) app.log.warn(line);
}
