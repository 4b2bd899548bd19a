/**
 * What the runtime reports while it works. `server/metrics.ts` implements it with prom-client for
 * `GET /metrics`; tests and benches pass `NO_METRICS` or a recorder.
 */
export interface RuntimeMetrics {
  /** A stage (text_encoder, image_encoder, fusion_vqa, …) of the bundle named `model` ran a batch of `size` items. */
  batch(model: string, stage: string, size: number): void;
  /** An item waited `ms` in a stage's queue before its batch started. */
  queueTime(model: string, stage: string, ms: number): void;
  /** A stage's batch took `ms` to run (the sessions' time, beside the queue time before it). */
  inferenceTime(model: string, stage: string, ms: number): void;
  /** Requests admitted and not yet answered. */
  queueDepth(depth: number): void;
  /** Image-encoding cache lookups. */
  cache(hit: boolean): void;
  /** The execution provider a bundle's sessions run on (`cuda` or `cpu`), and whether CUDA was asked for but unavailable. */
  executionProvider(bundle: string, provider: string, fellBack: boolean): void;
  /** The precision variant a bundle's graphs were opened in, and for int8 the weight set (s8, or u8 without VNNI). */
  graphPrecision(bundle: string, precision: string, int8Weights: string | undefined): void;
}

export const NO_METRICS: RuntimeMetrics = {
  batch() {},
  queueTime() {},
  inferenceTime() {},
  queueDepth() {},
  cache() {},
  executionProvider() {},
  graphPrecision() {},
};
