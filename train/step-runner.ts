import type ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import { addScaled, l2Norm, residentBuffer, scaleInPlace, type FlatLayout } from './flat-parameters.js';
import { GradientStep, type BatchTensors } from './gradient-step.js';
import { InGraphStepRunner } from './in-graph-step.js';
import { AdamWRunner } from './optimizer/adamw-runner.js';
import type { AdamWEngineName } from './optimizer/adamw-engines.js';
import type { SessionChoice, TrainingGraph } from './training-graph.js';

/** A micro-batch's loss and reports; on an optimizer step's last micro-batch, the step's outcome. */
export interface MicroBatchResult {
  loss: number;
  reports: Map<string, ort.Tensor>;
  /** The updated parameters (the buffer to pass from now on) and the global norm of the step's gradient. */
  stepped?: { params: Float32Array; gradNorm: number };
}

/**
 * How fine-tune runs its micro-batches and optimizer steps. Both runners compute upstream's
 * accumulate-then-AdamW step; they differ in where the gradient and the update live.
 */
export interface StepRunner {
  /** AdamW's moments (flat layout) and step count, saved in checkpoints. */
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly steps: number;
  /** Why the host AdamW engine is not the default's first choice (the native addon is not built), if so. */
  readonly engineFallback?: string;
  restore(m: Float32Array, v: Float32Array, steps: number): void;
  /** One micro-batch; `lrFactor` (the scheduler's multiplier) on the optimizer step's last, which then updates. */
  microBatch(batch: BatchTensors, params: Float32Array, dropoutSeed: number, lrFactor?: number): Promise<MicroBatchResult>;
  release(): Promise<void>;
}

export const OPTIMIZER_IN_GRAPH_CHOICES = ['auto', 'on', 'off'] as const;
export type OptimizerInGraphChoice = (typeof OPTIMIZER_IN_GRAPH_CHOICES)[number];

/**
 * What `auto` picks per device: on CUDA the copies in and out of every run are the cost, and the
 * folded update moves fewest bytes per step; on the CPU the separate path is faster (the gradient
 * graph's outputs land in the flat buffer in place and the native (or wasm) AdamW engine runs near memory
 * bandwidth, docs/PERFORMANCE.md "AdamW update").
 */
const AUTO_BY_DEVICE: Readonly<Record<NonNullable<SessionChoice['device']>, boolean>> = { cpu: false, cuda: true };

/**
 * Whether the optimizer runs in the graph. Clipping needs the global norm of the whole gradient
 * before any parameter moves, which the folded update does not have: `on` with clipping is refused,
 * `auto` with clipping runs the separate path.
 */
export function optimizerInGraph(choice: OptimizerInGraphChoice, device: SessionChoice['device'], clipGradNorm: number | undefined): boolean {
  if (!OPTIMIZER_IN_GRAPH_CHOICES.includes(choice)) throw new BridgeTowerError('E_USAGE', `--optimizer-in-graph must be one of ${OPTIMIZER_IN_GRAPH_CHOICES.join(', ')}, got '${choice}'`);
  if (choice === 'on' && clipGradNorm !== undefined) {
    throw new BridgeTowerError('E_USAGE', `--clip-grad-norm needs the global gradient norm before the update, which --optimizer-in-graph on does not compute: drop one of them (--optimizer-in-graph off, or auto, clips on the host)`);
  }
  if (choice === 'auto') return clipGradNorm === undefined && AUTO_BY_DEVICE[device ?? 'cpu'];
  return choice === 'on';
}

export async function openStepRunner(training: TrainingGraph, layout: FlatLayout, options: { accumulation: number; inGraph: boolean; clipGradNorm?: number; engine?: AdamWEngineName; session?: SessionChoice }): Promise<StepRunner> {
  if (options.inGraph) return InGraphStepRunner.open(training, layout, options.accumulation, options.session);
  return SeparateStepRunner.open(training, layout, options);
}

/**
 * The gradient graph, then the update on the host: ONNX Runtime writes each micro-batch's
 * gradients into a flat buffer, added scaled into the step's sum (the step's only micro-batch
 * writes the sum directly: 0 + g·1 is g); the step's last clips the sum (`--clip-grad-norm`) and
 * runs an AdamW engine over it, in place.
 */
export class SeparateStepRunner implements StepRunner {
  private constructor(
    private readonly gradient: GradientStep,
    private readonly adamw: AdamWRunner,
    private readonly layout: FlatLayout,
    private readonly accumulation: number,
    private readonly clipGradNorm: number | undefined,
    private readonly grads: Float32Array,
    private readonly micro: Float32Array,
  ) {}

  static async open(training: TrainingGraph, layout: FlatLayout, options: { accumulation: number; clipGradNorm?: number; engine?: AdamWEngineName; session?: SessionChoice }): Promise<SeparateStepRunner> {
    const gradient = await GradientStep.open(training, options.session);
    // The arena and memory-pattern choices are the training graph's (openTrainingSession); the
    // AdamW engines open with their own defaults.
    const { cpuArena: _arena, memoryPattern: _pattern, ...engineSession } = options.session ?? {};
    const adamw = await AdamWRunner.open(layout, { ...engineSession, ...(options.engine ? { engine: options.engine } : {}) });
    const grads = residentBuffer(layout.total);
    const micro = options.accumulation === 1 ? grads : residentBuffer(layout.total);
    return new SeparateStepRunner(gradient, adamw, layout, options.accumulation, options.clipGradNorm, grads, micro);
  }

  get m(): Float32Array {
    return this.adamw.m;
  }

  get v(): Float32Array {
    return this.adamw.v;
  }

  get steps(): number {
    return this.adamw.steps;
  }

  get engineFallback(): string | undefined {
    return this.adamw.fallback;
  }

  restore(m: Float32Array, v: Float32Array, steps: number): void {
    this.adamw.restore(m, v, steps);
  }

  async microBatch(batch: BatchTensors, params: Float32Array, dropoutSeed: number, lrFactor?: number): Promise<MicroBatchResult> {
    const out = await this.gradient.run(batch, params, this.layout, dropoutSeed, this.micro);
    if (this.micro !== this.grads) addScaled(this.grads, this.micro, 0, 1 / this.accumulation);
    const result = { loss: out.loss, reports: out.reports };
    if (lrFactor === undefined) return result;
    const gradNorm = l2Norm(this.grads);
    // A non-finite gradient is never applied: the caller stops the run (E_DIVERGED).
    if (!Number.isFinite(gradNorm)) return { ...result, stepped: { params, gradNorm } };
    if (this.clipGradNorm && gradNorm > this.clipGradNorm) scaleInPlace(this.grads, this.clipGradNorm / (gradNorm + 1e-6));
    await this.adamw.step(params, this.grads, lrFactor);
    this.grads.fill(0);
    return { ...result, stepped: { params, gradNorm } };
  }

  async release(): Promise<void> {
    await Promise.all([this.gradient.release(), this.adamw.release()]);
  }
}
