import { residentBuffer, type FlatLayout } from '../flat-parameters.js';
import { stepScalars } from './adamw.js';
import { ADAMW_ENGINES, defaultAdamWEngine, type AdamWEngine, type AdamWEngineName, type EngineOptions } from './adamw-engines.js';

export { ADAMW_CHUNK } from './adamw-engines.js';

/**
 * Applies transformers-4.17 AdamW to the flat parameter buffer: one engine update per optimizer
 * group (a contiguous range), with the group's scheduled learning rate. Moments live in two
 * buffers of the same layout; `steps` counts the updates done (upstream's `state['step']`, the
 * same for every parameter since every trainable one has a gradient each step).
 */
export class AdamWRunner {
  steps = 0;

  private constructor(
    private readonly layout: FlatLayout,
    private readonly engine: AdamWEngine,
    /** The engine running the updates, and why it is not the native one when that was the default's choice but is not built. */
    readonly engineName: AdamWEngineName,
    readonly fallback: string | undefined,
    readonly m: Float32Array,
    readonly v: Float32Array,
  ) {}

  static async open(layout: FlatLayout, options: EngineOptions & { engine?: AdamWEngineName } = {}): Promise<AdamWRunner> {
    const chosen = options.engine ? { name: options.engine } : defaultAdamWEngine();
    const engine = await ADAMW_ENGINES[chosen.name].open(options);
    return new AdamWRunner(layout, engine, chosen.name, chosen.fallback, residentBuffer(layout.total), residentBuffer(layout.total));
  }

  /** Continues from a checkpoint's moments and step count. */
  restore(m: Float32Array, v: Float32Array, steps: number): void {
    this.m.set(m);
    this.v.set(v);
    this.steps = steps;
  }

  /** One update of `params` in place; `lrFactor` is the scheduler's multiplier for this step. */
  async step(params: Float32Array, grads: Float32Array, lrFactor: number): Promise<void> {
    const t = this.steps + 1;
    for (const range of this.layout.groups) {
      const { stepSize, decayAlpha } = stepScalars(range.group.lr * lrFactor, range.group.weightDecay, t);
      await this.engine.update(params, grads, this.m, this.v, range.offset, range.size, stepSize, decayAlpha);
    }
    this.steps = t;
  }

  async release(): Promise<void> {
    await this.engine.release();
  }
}
