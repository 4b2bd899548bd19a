import ort from 'onnxruntime-node';
import { openSession, reportCudaFallback, type RuntimeOptions } from '../../runtime/session.js';
import { serializeModel } from '../../models/ir/serialize.js';
import type { FlatLayout } from '../flat-parameters.js';
import { buildAdamWGraph, stepScalars } from './adamw.js';

/**
 * Elements per run of the AdamW graph. ONNX Runtime keeps a few dozen intermediates of the run's
 * size alive (the exact-FMA emulation), so one run over BASE's ~210 M-element backbone group would
 * need tens of GB; 4 M elements bound it to a few hundred MB. The update is elementwise, so
 * chunking changes nothing in the result.
 */
export const ADAMW_CHUNK = 1 << 22;

/**
 * Applies transformers-4.17 AdamW to the flat parameter buffer: the AdamW graph runs over each
 * optimizer group (a contiguous range, in chunks), with the group's scheduled learning rate. Moments live in
 * two buffers of the same layout; `steps` counts the updates done (upstream's `state['step']`,
 * the same for every parameter since every trainable one has a gradient each step).
 */
export class AdamWRunner {
  steps = 0;

  private constructor(
    private readonly layout: FlatLayout,
    private readonly session: ort.InferenceSession,
    readonly m: Float32Array,
    readonly v: Float32Array,
    private readonly chunk: number,
  ) {}

  static async open(layout: FlatLayout, options: Pick<RuntimeOptions, 'device' | 'threads' | 'warn'> & { chunk?: number } = {}): Promise<AdamWRunner> {
    const opened = await openSession(serializeModel(buildAdamWGraph()), options);
    if (opened.fallbackReason) reportCudaFallback('the AdamW graph', opened.fallbackReason, options.warn);
    const session = opened.session;
    return new AdamWRunner(layout, session, new Float32Array(layout.total), new Float32Array(layout.total), options.chunk ?? ADAMW_CHUNK);
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
      const scalars = {
        step_size: new ort.Tensor('float32', Float32Array.of(stepSize), [1]),
        decay_alpha: new ort.Tensor('float32', Float32Array.of(decayAlpha), [1]),
      };
      const end = range.offset + range.size;
      for (let at = range.offset; at < end; at += this.chunk) {
        const size = Math.min(this.chunk, end - at);
        const slice = (buffer: Float32Array) => new ort.Tensor('float32', buffer.subarray(at, at + size), [size]);
        const out = await this.session.run({ param: slice(params), grad: slice(grads), m: slice(this.m), v: slice(this.v), ...scalars });
        params.set(out.param_out!.data as Float32Array, at);
        this.m.set(out.m_out!.data as Float32Array, at);
        this.v.set(out.v_out!.data as Float32Array, at);
      }
    }
    this.steps = t;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
