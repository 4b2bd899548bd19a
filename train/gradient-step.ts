import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BUNDLE_FILES } from '../bundle/config.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { BridgeTowerError } from '../common/errors.js';
import { collectGarbage } from '../common/collect-garbage.js';
import type { DType } from '../bundle/tensors/dtype.js';
import { toOrtTensor } from '../runtime/session.js';
import { FlatLayout } from './flat-parameters.js';
import { Rng } from './rng.js';
import { openTrainingSession, REPORT_PREFIX, type SessionChoice, type TrainingGraph } from './training-graph.js';

/** A batch tensor as collation produces it (train/data/collate.ts). */
export interface BatchTensor {
  dtype: 'int64' | 'float32';
  dims: number[];
  data: BigInt64Array | Float32Array;
}

export type BatchTensors = Readonly<Record<string, BatchTensor>>;

/** Raw little-endian tensors by name, as read from safetensors (`bridgetower grad`). */
export type RawTensors = ReadonlyMap<string, { dtype: DType; shape: readonly number[]; data: Uint8Array }>;

export interface StepOutputs {
  loss: number;
  logits: ort.Tensor;
  /** `grad.<name>` per trainable parameter (ONNX Runtime's output buffers). */
  gradients: Map<string, Float32Array>;
  /** The objective's reported values (`mlm_loss`, `itm_loss`, …) by name. */
  reports: Map<string, ort.Tensor>;
}

/**
 * Alternative names the upstream goldens use (../shared/fixtures/bridgetower-tiny): `vqa_targets`,
 * `snli_labels`, `nlvr2_labels`, `pixel_values_2` (NLVR2's right image) in inputs.safetensors, and
 * the collated batch of train_pt.safetensors (`batch.text_ids_mlm`, …), so `bridgetower grad
 * --batch` takes those files as they are.
 */
const FIXTURE_NAMES: Readonly<Record<string, readonly string[]>> = {
  pixel_values_right: ['pixel_values_2'],
  input_ids: ['batch.text_ids'],
  attention_mask: ['batch.text_masks'],
  pixel_values: ['batch.image'],
  mlm_input_ids: ['batch.text_ids_mlm'],
  mlm_labels: ['batch.text_labels_mlm'],
  false_pixel_values: ['batch.false_image_0'],
  itm_labels: ['batch.itm_labels'],
};
const batchAliases = (task: string, name: string): readonly string[] => (name === 'targets' || name === 'labels' ? [`${task}_${name}`] : FIXTURE_NAMES[name] ?? []);

/**
 * One forward + backward of a training graph: feeds the batch, the dropout seed and the
 * trainable parameters (views into the flat buffer, read in place), returns loss, logits and
 * gradients. Given a flat gradient buffer (`into`), ONNX Runtime writes every `grad.<name>` into
 * its slot there (preallocated outputs): no output buffer per run, nothing for the garbage
 * collector to free before the next step, no copy (docs/fine-tune.md, "Memory"). The copy of
 * parameters in and gradients out on a GPU is the price of Node's binding having no
 * CUDA-resident tensors (docs/fine-tune.md, "Devices"; `--optimizer-in-graph` folds the
 * update in instead, train/in-graph-step.ts).
 */
export class GradientStep {
  private constructor(
    readonly training: TrainingGraph,
    private readonly session: ort.InferenceSession,
  ) {}

  static async open(training: TrainingGraph, options: SessionChoice = {}): Promise<GradientStep> {
    return new GradientStep(training, await openTrainingSession(training, options));
  }

  async run(batch: BatchTensors, params: Float32Array, layout: FlatLayout, dropoutSeed = 0, into?: Float32Array): Promise<StepOutputs> {
    const feeds = trainingFeeds(this.training, batch, params, layout, dropoutSeed);
    let fetches: Record<string, ort.Tensor | null> | undefined;
    if (into) {
      fetches = Object.fromEntries(this.session.outputNames.map((name) => [name, null]));
      for (const p of this.training.parameters) fetches[`grad.${p.name}`] = new ort.Tensor('float32', layout.view(into, p.name), p.shape);
    }
    const kept = await this.runKeeping(feeds, fetches, into ? undefined : layout);
    // The binding returned a copy of every gradient written into `into`: free it before the next forward.
    if (into) collectGarbage();
    const gradients = kept.gradients ?? new Map(this.training.parameters.map((p) => [p.name, layout.view(into!, p.name)]));
    return { ...kept, gradients };
  }

  /** One run; keeps the loss, logits, reports and (only when nothing was preallocated) the gradients, dropping the rest of the results. */
  private async runKeeping(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null> | undefined, freshGradients: FlatLayout | undefined): Promise<Omit<StepOutputs, 'gradients'> & { gradients?: Map<string, Float32Array> }> {
    const results = await runTraining(this.training, this.session, feeds, fetches);
    const reports = new Map(this.training.reports.map((name) => [name, results[`${REPORT_PREFIX}${name}`]!]));
    const kept = { loss: (results.loss!.data as Float32Array)[0]!, logits: results.logits!, reports };
    if (!freshGradients) return kept;
    return { ...kept, gradients: new Map(this.training.parameters.map((p) => [p.name, results[`grad.${p.name}`]!.data as Float32Array])) };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The feeds of one run of a training graph (or of a graph extending it, train/optimizer-graph.ts):
 * the batch tensors the graph takes (by name or a fixture alias), the dropout seed, and each
 * trainable parameter as a view of the flat buffer (ONNX Runtime reads CPU inputs in place).
 */
export function trainingFeeds(training: TrainingGraph, batch: BatchTensors, params: Float32Array, layout: FlatLayout, dropoutSeed: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of training.batchInputs) {
    const tensor = batch[input.name] ?? batchAliases(training.task, input.name).map((n) => batch[n]).find((t) => t !== undefined);
    if (!tensor) throw new BridgeTowerError('E_USAGE', `the ${training.task} batch lacks '${input.name}'`);
    if (tensor.dtype !== input.dtype) throw new BridgeTowerError('E_USAGE', `batch tensor '${input.name}' is ${tensor.dtype}; the training graph takes ${input.dtype}`);
    feeds[input.name] = new ort.Tensor(tensor.dtype, tensor.data, tensor.dims);
  }
  if (training.dropout) feeds.dropout_seed = new ort.Tensor('int64', BigInt64Array.from([BigInt(dropoutSeed)]), []);
  for (const p of training.parameters) feeds[p.name] = new ort.Tensor('float32', layout.view(params, p.name), p.shape);
  return feeds;
}

/** One run of a training session; ONNX Runtime's refusal (a batch of the wrong shape) becomes a usage error. */
export async function runTraining(training: TrainingGraph, session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches?: Record<string, ort.Tensor | null>): Promise<ort.InferenceSession.OnnxValueMapType> {
  try {
    return await (fetches ? session.run(feeds, fetches as ort.InferenceSession.FetchesType) : session.run(feeds));
  } catch (error) {
    throw new BridgeTowerError('E_USAGE', `the ${training.task} training graph rejected the batch: ${(error as Error).message}`);
  }
}

/** A safetensors batch (`bridgetower grad --batch`) as BatchTensors. */
export function batchFromRaw(raw: RawTensors): Record<string, BatchTensor> {
  const out: Record<string, BatchTensor> = {};
  for (const [name, t] of raw) {
    if (t.dtype !== 'int64' && t.dtype !== 'float32') continue;
    const tensor = toOrtTensor(t.dtype, t.shape, t.data);
    out[name] = { dtype: t.dtype, dims: [...t.shape], data: tensor.data as BigInt64Array | Float32Array };
  }
  return out;
}

/**
 * `bridgetower grad`: loss, logits and the gradient of every float parameter of the bundle on one
 * batch, dropout off, at the bundle's weights (zeros for parameters the loss does not use).
 * Retrieval batches may carry `negative_noise_i2t` / `negative_noise_t2i`; without them the hard
 * negatives are drawn with `negativeNoise` from `noiseSeed`.
 */
export async function computeGradients(
  training: TrainingGraph,
  bundleDir: string,
  batch: BatchTensors,
  options: SessionChoice & { noiseSeed?: number } = {},
): Promise<StepOutputs> {
  const layout = new FlatLayout(training.parameters, GRAD_HP);
  const params = layout.readFromBundle(bundleDir);
  const step = await GradientStep.open(training, options);
  try {
    const feeds = { ...batch, ...negativeNoise(training, batch, options.noiseSeed ?? 0) };
    const out = await step.run(feeds, params, layout);
    const tensors = openSafetensors(join(bundleDir, BUNDLE_FILES.weights)).tensors;
    for (const name of training.unused) {
      const shape = tensors.get(name)?.shape ?? [];
      out.gradients.set(name, new Float32Array(shape.reduce((a, d) => a * d, 1)));
    }
    return out;
  } finally {
    await step.release();
  }
}

/** Only the layout's grouping uses these; `grad` applies no update. */
const GRAD_HP = { learningRate: 1, weightDecay: 0, lrMultHead: 1, lrMultCrossModal: 1 };

/** Uniform (0, 1) noise for the graph's noise inputs (in-graph hard-negative sampling), unless the batch brings its own. */
export function negativeNoise(training: TrainingGraph, batch: BatchTensors, seed: number, ...path: number[]): Record<string, BatchTensor> {
  const names = training.batchInputs.filter((input) => input.noise).map((input) => input.name);
  if (names.length === 0) return {};
  const size = batch.input_ids!.dims[0]!;
  const out: Record<string, BatchTensor> = {};
  for (const name of names) {
    if (batch[name]) continue;
    const rng = Rng.derive(seed, name, ...path);
    // (0, 1): log(−log u) needs u strictly inside the interval.
    const data = Float32Array.from({ length: size * size }, () => (rng.nextUint32() + 0.5) / 2 ** 32);
    out[name] = { dtype: 'float32', dims: [size, size], data };
  }
  return out;
}
