import { BridgeTowerError } from '../../common/errors.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import { DeadlineError, OverloadError } from './errors.js';

export interface DynamicBatcherOptions<I, O> {
  /** The stage's name in metrics and errors (text_encoder, image_encoder, fusion_vqa, …). */
  stage: string;
  /** The bundle the stage belongs to: the `model` label of its metrics (several bundles share stage names). */
  model?: string;
  /** Largest batch handed to `run`. */
  maxBatch: number;
  /** How long the oldest queued item may wait for the batch to fill. */
  maxDelayMs: number;
  /** Runs one batch; returns one output per item, in the items' order. */
  run: (items: I[]) => Promise<O[]>;
  metrics?: RuntimeMetrics;
  /** The clock deadlines are read on (ms since epoch); tests may replace it. */
  now?: () => number;
}

interface Pending<I, O> {
  item: I;
  deadline: number;
  enqueuedAt: number;
  resolve: (output: O) => void;
  reject: (error: unknown) => void;
  /** Rejects the item when its deadline passes while it is still queued. */
  timer?: NodeJS.Timeout;
}

/** setTimeout's limit (2^31 − 1 ms); a later deadline needs no timer (the batch-start check suffices). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Collects items submitted one at a time into batches of at most `maxBatch`, waiting at most
 * `maxDelayMs` after the oldest item arrived, and runs one batch at a time: a session is not
 * faster when two batches run at once (each already uses every core), and a serialized stage
 * keeps its queue — where deadlines can still be honoured — in front of it. Results are scattered
 * back to the submitters in order. An item whose deadline passes while queued is rejected with a
 * DeadlineError at once and never runs; one inside a running batch gets its result (the run
 * cannot be interrupted).
 */
export class DynamicBatcher<I, O> {
  private readonly queue: Array<Pending<I, O>> = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly metrics: RuntimeMetrics;
  private readonly now: () => number;

  constructor(private readonly options: DynamicBatcherOptions<I, O>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new BridgeTowerError('E_USAGE', `maxBatch must be a positive integer, got ${options.maxBatch}`, { maxBatch: options.maxBatch });
    }
    if (!(options.maxDelayMs >= 0)) {
      throw new BridgeTowerError('E_USAGE', `maxDelayMs must be a non-negative number, got ${options.maxDelayMs}`, { maxDelayMs: options.maxDelayMs });
    }
    this.metrics = options.metrics ?? NO_METRICS;
    this.now = options.now ?? Date.now;
  }

  get stage(): string {
    return this.options.stage;
  }

  /** Items queued and not yet in a batch. */
  get queued(): number {
    return this.queue.length;
  }

  /** Queues `item`; resolves with its output, or rejects with the batch's error or a DeadlineError. */
  submit(item: I, deadline: number): Promise<O> {
    if (this.closed) {
      return Promise.reject(new OverloadError(`stage ${this.stage} is shutting down: retry on another instance or after the restart`, 1, { stage: this.stage }));
    }
    const now = this.now();
    if (now >= deadline) return Promise.reject(this.deadlineError(now, deadline));
    return new Promise<O>((resolve, reject) => {
      const pending: Pending<I, O> = { item, deadline, enqueuedAt: now, resolve, reject };
      const wait = deadline - now;
      if (wait < MAX_TIMER_MS) {
        pending.timer = setTimeout(() => this.expire(pending), wait);
      }
      this.queue.push(pending);
      this.schedule();
    });
  }

  /** Stops accepting items, runs every queued one without waiting for batches to fill, then resolves. */
  close(): Promise<void> {
    this.closed = true;
    this.schedule();
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Decides when the next batch starts: now when it is full (or closing), else when the oldest item has waited maxDelayMs. */
  private schedule(): void {
    if (this.running) return; // the running batch reschedules when it ends
    if (this.queue.length === 0) {
      this.clearFlushTimer();
      if (this.closed) this.notifyIdle();
      return;
    }
    if (this.queue.length >= this.options.maxBatch || this.closed) {
      this.clearFlushTimer();
      // Start on a fresh task, never inside submit(): the submitter's caller sees its promise first.
      this.flushTimer = setTimeout(() => this.startBatch(), 0);
      return;
    }
    if (this.flushTimer) return;
    const oldest = this.queue[0]!;
    const wait = Math.max(0, oldest.enqueuedAt + this.options.maxDelayMs - this.now());
    this.flushTimer = setTimeout(() => this.startBatch(), wait);
  }

  private startBatch(): void {
    this.flushTimer = undefined;
    if (this.running) return;
    const now = this.now();
    const batch: Array<Pending<I, O>> = [];
    while (batch.length < this.options.maxBatch && this.queue.length > 0) {
      const pending = this.queue.shift()!;
      clearTimeout(pending.timer);
      // Timers may lag the clock: an item already late is dropped here rather than run for nobody.
      if (now >= pending.deadline) {
        pending.reject(this.deadlineError(now, pending.deadline));
        continue;
      }
      batch.push(pending);
    }
    if (batch.length === 0) {
      this.schedule();
      return;
    }
    this.running = true;
    const model = this.options.model ?? '';
    this.metrics.batch(model, this.stage, batch.length);
    for (const pending of batch) this.metrics.queueTime(model, this.stage, now - pending.enqueuedAt);
    void this.runBatch(batch);
  }

  private async runBatch(batch: Array<Pending<I, O>>): Promise<void> {
    const started = performance.now();
    try {
      const outputs = await this.options.run(batch.map((p) => p.item));
      this.metrics.inferenceTime(this.options.model ?? '', this.stage, performance.now() - started);
      if (!Array.isArray(outputs) || outputs.length !== batch.length) {
        throw new BridgeTowerError('E_BUNDLE', `stage ${this.stage} returned ${Array.isArray(outputs) ? outputs.length : typeof outputs} outputs for a batch of ${batch.length}`, { stage: this.stage });
      }
      batch.forEach((pending, i) => pending.resolve(outputs[i]!));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  private expire(pending: Pending<I, O>): void {
    const index = this.queue.indexOf(pending);
    if (index < 0) return; // already in a batch
    this.queue.splice(index, 1);
    pending.reject(this.deadlineError(this.now(), pending.deadline));
    this.schedule();
  }

  private deadlineError(now: number, deadline: number): DeadlineError {
    return new DeadlineError(`the request's deadline passed ${Math.max(0, now - deadline)} ms before stage ${this.stage} could run it; raise --request-timeout-ms or retry when the server is less busy`, {
      stage: this.stage,
      lateMs: Math.max(0, now - deadline),
    });
  }

  private clearFlushTimer(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private notifyIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
