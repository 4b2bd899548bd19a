import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RuntimeMetrics } from './runtime-metrics.js';

const PREFIX = 'bridgetower_';

/** Metric names, for `GET /metrics` readers and tests. */
export const METRIC_NAMES = {
  requests: `${PREFIX}http_requests_total`,
  latency: `${PREFIX}http_request_duration_seconds`,
  queueTime: `${PREFIX}queue_time_seconds`,
  inferenceTime: `${PREFIX}inference_time_seconds`,
  gallerySize: `${PREFIX}gallery_size`,
  batchSize: `${PREFIX}batch_size`,
  queueDepth: `${PREFIX}queue_depth`,
  cacheHits: `${PREFIX}image_cache_hits_total`,
  cacheMisses: `${PREFIX}image_cache_misses_total`,
  executionProvider: `${PREFIX}execution_provider`,
  graphPrecision: `${PREFIX}graph_precision`,
} as const;

/**
 * The server's Prometheus metrics, in a registry of its own (two servers in one process do not
 * share counters). It is the runtime's `RuntimeMetrics` and records every HTTP answer.
 */
export class ServerMetrics implements RuntimeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route' | 'method'>;
  private readonly queueTimes: Histogram<'model' | 'stage'>;
  private readonly inferenceTimes: Histogram<'model' | 'stage'>;
  private readonly batchSizes: Histogram<'model' | 'stage'>;
  /** Each gallery's size, read when /metrics is scraped (by model). */
  private readonly gallerySizes = new Map<string, () => number>();
  private readonly depth: Gauge;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly provider: Gauge<'model' | 'provider' | 'fell_back'>;
  private readonly precision: Gauge<'model' | 'precision' | 'int8_weights'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: METRIC_NAMES.requests, help: 'HTTP requests answered, by route, method and status', labelNames: ['route', 'method', 'status'], registers });
    this.latency = new Histogram({
      name: METRIC_NAMES.latency,
      help: 'Time from request to answer, by route and method',
      labelNames: ['route', 'method'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.queueTimes = new Histogram({
      name: METRIC_NAMES.queueTime,
      help: "Time an item waited in a stage's queue before its batch started, by model and stage",
      labelNames: ['model', 'stage'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.inferenceTimes = new Histogram({
      name: METRIC_NAMES.inferenceTime,
      help: 'Time a stage took to run one batch, by model and stage',
      labelNames: ['model', 'stage'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batchSizes = new Histogram({ name: METRIC_NAMES.batchSize, help: 'Items per batch a stage ran, by model and stage', labelNames: ['model', 'stage'], buckets: [1, 2, 4, 8, 16, 32, 64], registers });
    const sizes = this.gallerySizes;
    new Gauge({
      name: METRIC_NAMES.gallerySize,
      help: "Images in each model's gallery",
      labelNames: ['model'],
      registers,
      collect() {
        for (const [model, size] of sizes) this.set({ model }, size());
      },
    });
    this.depth = new Gauge({ name: METRIC_NAMES.queueDepth, help: 'Requests admitted and not yet answered', registers });
    this.cacheHits = new Counter({ name: METRIC_NAMES.cacheHits, help: 'Image-encoding cache hits', registers });
    this.cacheMisses = new Counter({ name: METRIC_NAMES.cacheMisses, help: 'Image-encoding cache misses', registers });
    this.provider = new Gauge({
      name: METRIC_NAMES.executionProvider,
      help: "1 for the execution provider each model's sessions run on; fell_back=\"true\" when CUDA was asked for and unavailable",
      labelNames: ['model', 'provider', 'fell_back'],
      registers,
    });
    this.precision = new Gauge({
      name: METRIC_NAMES.graphPrecision,
      help: '1 for the precision variant each model\'s graphs run in (fp32, int8, fp16); int8_weights is s8, or u8 on CPUs without VNNI ("" for other precisions)',
      labelNames: ['model', 'precision', 'int8_weights'],
      registers,
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  /** An HTTP answer: `route` is the route pattern (`/gallery/:id`), never the raw URL, to bound cardinality. */
  request(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.latency.observe({ route, method }, seconds);
  }

  batch(model: string, stage: string, size: number): void {
    this.batchSizes.observe({ model, stage }, size);
  }

  queueTime(model: string, stage: string, ms: number): void {
    this.queueTimes.observe({ model, stage }, ms / 1000);
  }

  inferenceTime(model: string, stage: string, ms: number): void {
    this.inferenceTimes.observe({ model, stage }, ms / 1000);
  }

  /** Reports the size of `model`'s gallery, as `size()` says when /metrics is scraped. */
  trackGallery(model: string, size: () => number): void {
    this.gallerySizes.set(model, size);
  }

  queueDepth(depth: number): void {
    this.depth.set(depth);
  }

  cache(hit: boolean): void {
    (hit ? this.cacheHits : this.cacheMisses).inc();
  }

  executionProvider(bundle: string, provider: string, fellBack: boolean): void {
    this.provider.set({ model: bundle, provider, fell_back: String(fellBack) }, 1);
  }

  graphPrecision(bundle: string, precision: string, int8Weights: string | undefined): void {
    this.precision.set({ model: bundle, precision, int8_weights: int8Weights ?? '' }, 1);
  }

  /** The text exposition for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
