import { BridgeTowerError } from '../../common/errors.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import { OverloadError } from './errors.js';

/** Weight of the newest latency in the moving mean: about the last ten requests count. */
const LATENCY_SMOOTHING = 0.1;

/**
 * Bounds the requests admitted and not yet answered, preprocessing included (decoding a 50 MP
 * image costs as much memory as the model). Past `maxQueue` a request is refused at once with an
 * OverloadError instead of waiting: a queue that grows without bound answers everyone late.
 *
 * Retry-After: the latency of a request already includes its wait behind the others, so by
 * Little's law (depth = throughput × latency) the whole admitted set turns over in about one mean
 * latency; after that long the refused client finds the queue renewed. Rounded up to whole
 * seconds, at least 1. (`depth × latency` would count the queueing twice.)
 */
export class Admission {
  private inFlight = 0;
  private meanLatencyMs = 0;
  private closed = false;
  private readonly drainWaiters: Array<() => void> = [];

  constructor(
    readonly maxQueue: number,
    private readonly metrics: RuntimeMetrics = NO_METRICS,
  ) {
    if (!Number.isInteger(maxQueue) || maxQueue < 1) {
      throw new BridgeTowerError('E_USAGE', `maxQueue must be a positive integer, got ${maxQueue}`, { maxQueue });
    }
  }

  /** Requests admitted and not yet answered. */
  get depth(): number {
    return this.inFlight;
  }

  /** Smoothed latency of recent requests (ms), 0 before the first one ends. */
  get recentLatencyMs(): number {
    return this.meanLatencyMs;
  }

  /** Seconds a refused client should wait before retrying. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.meanLatencyMs / 1000));
  }

  /** Runs `work` as one admitted request, or throws an OverloadError when the queue is full or closed. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) {
      throw new OverloadError('the model service is shutting down: retry on another instance or after the restart', 1, { queue: this.inFlight });
    }
    if (this.inFlight >= this.maxQueue) {
      const retryAfter = this.retryAfterSeconds();
      throw new OverloadError(`${this.inFlight} requests are already queued (--max-queue ${this.maxQueue}): retry after ${retryAfter} s`, retryAfter, {
        queue: this.inFlight,
        maxQueue: this.maxQueue,
      });
    }
    this.inFlight++;
    this.metrics.queueDepth(this.inFlight);
    const started = performance.now();
    try {
      return await work();
    } finally {
      const latency = performance.now() - started;
      this.meanLatencyMs = this.meanLatencyMs === 0 ? latency : this.meanLatencyMs + LATENCY_SMOOTHING * (latency - this.meanLatencyMs);
      this.inFlight--;
      this.metrics.queueDepth(this.inFlight);
      if (this.inFlight === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** Refuses new requests from now on; resolves when every admitted one is answered. */
  close(): Promise<void> {
    this.closed = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}
