import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { BUNDLE_FILES, readBundleConfig } from '../bundle/config.js';
import { GraphBuilder } from '../models/ir/builder.js';
import type { Graph, Value } from '../models/ir/graph.js';
import { serializeModel } from '../models/ir/serialize.js';
import { openSession, reportCudaFallback, type RuntimeOptions } from '../runtime/session.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { safetensorsWeightSource } from '../models/ir/weights.js';
import { appendGradients, reachingLoss } from './autodiff/backward.js';
import { withoutDeadNodes } from '../models/ir/dead-nodes.js';
import { layerSegments } from './autodiff/recompute.js';
import { TASKS } from '../bundle/tasks.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from './tasks.js';
import { isTrainable, type TrainSubset } from './train-subsets.js';

export type TrainingTask = FineTuneTask;

export interface TrainingGraphOptions {
  /** Which parameters get gradients (default all, like upstream). */
  train?: TrainSubset;
  /** Dropout probability of every site (upstream 0.1); 0 or absent builds no dropout (`grad`, parity). */
  dropout?: number;
  /**
   * The objective's forward only (loss, logits, reports; no gradients): every weight stays a
   * bundle initializer. Pre-training's evaluation runs it, so dev batches score exactly what trains.
   */
  forwardOnly?: boolean;
  /**
   * 'layers': the backward pass recomputes each encoder / cross-modal layer's forward instead of
   * keeping its intermediates (train/autodiff/recompute.ts); gradients are the same.
   */
  recompute?: RecomputeMode;
}

export const RECOMPUTE_MODES = ['none', 'layers'] as const;
export type RecomputeMode = (typeof RECOMPUTE_MODES)[number];

export interface TrainableParameter {
  name: string;
  shape: number[];
  size: number;
}

export interface TrainingGraph {
  graph: Graph;
  task: TrainingTask;
  /** Folder the graph's external-data locations are relative to (where the .onnx must live). */
  graphDir: string;
  /** Graph inputs fed from the batch, in order (`input_ids`, …, `targets`/`labels`/noise); `noise`: drawn by the trainer unless the batch brings it. */
  batchInputs: Array<{ name: string; dtype: 'int64' | 'float32'; noise?: true }>;
  /** Parameters fed as graph inputs with a `grad.<name>` output, in bundle order. */
  parameters: TrainableParameter[];
  /** Parameters of the selected subset the loss does not use (upstream: `.grad` is None; never updated). */
  unused: string[];
  /** Names of the objective's extra outputs (`report.<name>`: loss terms, masked-position logits). */
  reports: string[];
  /** Whether the graph has the int64 `dropout_seed` input. */
  dropout: boolean;
  numLabels: number;
  /** Whether the backward pass recomputes the layers' forward (TrainingGraphOptions.recompute). */
  recompute?: RecomputeMode;
}

/** Graph outputs an objective reports beside the loss are named `report.<name>`. */
export const REPORT_PREFIX = 'report.';

/** Tables whose row `padding_idx` PyTorch's `nn.Embedding(padding_idx=…)` never updates. */
const PADDED_EMBEDDINGS = ['text_transformer.embeddings.word_embeddings.weight', 'text_transformer.embeddings.position_embeddings.weight'];

/**
 * The training graph of a bundle for one task: upstream's forward with the task objective
 * (train/objectives.ts), differentiated with respect to the trainable parameters. Trainable
 * parameters become graph inputs (the trainer feeds them from its flat buffers each step); frozen
 * ones stay external-data initializers read from the bundle. Outputs: `loss`, `logits`,
 * `grad.<name>` per trainable parameter.
 */
export function buildTrainingGraph(bundleDir: string, task: TrainingTask, options: TrainingGraphOptions = {}): TrainingGraph {
  const config = readBundleConfig(bundleDir);
  const arch: BridgeTowerArchitecture = config.architecture;
  const spec = FINE_TUNE_TASKS[task];
  if (!spec) throw new BridgeTowerError('E_USAGE', `unknown training task '${task}' (expected one of ${Object.keys(FINE_TUNE_TASKS).join(', ')})`);
  const objective = spec.objective;
  const heads = spec.heads.map((t) => TASKS[t].head);
  if (heads.some((head) => !arch.heads[head])) {
    const needs = heads.length === 1 ? `a ${heads[0]} head` : `${heads.join(' and ')} heads`;
    throw new BridgeTowerError('E_USAGE', `task ${task} needs ${needs}; bundle '${bundleDir}' has: ${Object.keys(arch.heads).join(', ') || 'no heads'}`);
  }
  if (config.weights.dtype !== 'float32') {
    throw new BridgeTowerError('E_USAGE', `training needs float32 weights; bundle '${bundleDir}' holds ${config.weights.dtype} (convert the checkpoint with --dtype fp32)`);
  }
  const onnxDir = join(bundleDir, BUNDLE_FILES.onnxDir);
  const graphDir = existsSync(join(onnxDir, BUNDLE_FILES.weights)) ? onnxDir : bundleDir;
  const weights = safetensorsWeightSource(join(graphDir, BUNDLE_FILES.weights), graphDir);

  const rate = options.dropout ?? 0;
  const b = new GraphBuilder(`train_${task}`, weights, { fusedAttention: false, fusedGelu: true });
  const dropoutFeature = rate > 0 ? b.enableDropout(rate) : undefined;
  const size = arch.vision.image_size;
  const numLabels = spec.labelCount(arch);
  const resolve = (d: string | number) => (d === 'labels' ? numLabels : d === 'size' ? size : d);
  const inputs: Record<string, Value> = {
    input_ids: b.input('input_ids', 'int64', ['batch', 'seq']),
    attention_mask: b.input('attention_mask', 'int64', ['batch', 'seq']),
    pixel_values: b.input('pixel_values', 'float32', ['batch', 3, size, size]),
  };
  for (const spec of objective.extraInputs) inputs[spec.name] = b.input(spec.name, spec.dtype, spec.shape.map(resolve));
  const { loss, logits, reports = {} } = objective.build(b.scope(''), arch, inputs);
  b.output(loss, 'loss', []);
  b.output(logits, 'logits', ['rows', numLabels]);
  for (const [name, value] of Object.entries(reports)) b.output(value, `${REPORT_PREFIX}${name}`);
  const forward = b.build(`${task} training graph: loss, logits and gradients of the trainable parameters`);

  if (options.forwardOnly) {
    return { graph: forward, task, graphDir, batchInputs: batchInputsOf(objective), parameters: [], unused: [], reports: Object.keys(reports), dropout: dropoutFeature !== undefined, numLabels };
  }
  const floats = forward.initializers.filter((i) => i.external && i.dtype === 'float32');
  const selected = floats.filter((i) => isTrainable(i.name, options.train ?? 'all'));
  const used = reachingLoss(forward, 'loss', selected.map((i) => i.name));
  const trainable = selected.filter((i) => used.has(i.name));
  const parameters = trainable.map((i) => ({ name: i.name, shape: [...i.dims], size: i.dims.reduce((a, d) => a * d, 1) }));
  const graph = withGradients(forward, parameters, arch.text.pad_token_id, options.recompute ?? 'none');
  return {
    graph,
    task,
    graphDir,
    batchInputs: batchInputsOf(objective),
    parameters,
    unused: bundleFloatTensors(join(graphDir, BUNDLE_FILES.weights)).filter((name) => isTrainable(name, options.train ?? 'all') && !used.has(name)),
    reports: Object.keys(reports),
    dropout: dropoutFeature !== undefined,
    numLabels,
    recompute: options.recompute ?? 'none',
  };
}

/** The graph inputs fed from the batch: the text and image every objective reads, then its own. */
function batchInputsOf(objective: (typeof FINE_TUNE_TASKS)[FineTuneTask]['objective']): TrainingGraph['batchInputs'] {
  return [
    { name: 'input_ids', dtype: 'int64' },
    { name: 'attention_mask', dtype: 'int64' },
    { name: 'pixel_values', dtype: 'float32' },
    ...objective.extraInputs.map((s) => ({ name: s.name, dtype: s.dtype, ...(s.noise ? { noise: true as const } : {}) })),
  ];
}

/** Names of the float32 tensors of a bundle's weights, in file order. */
function bundleFloatTensors(path: string): string[] {
  return [...openSafetensors(path).tensors].filter(([, v]) => v.dtype === 'float32').map(([name]) => name);
}

/**
 * The forward graph with the trainable parameters as inputs (after the batch inputs, in bundle
 * order) and `grad.<name>` outputs after `loss` and `logits`. The padding row of the embedding
 * tables gets a zero gradient, as `nn.Embedding(padding_idx=…)` in PyTorch.
 */
function withGradients(forward: Graph, parameters: readonly TrainableParameter[], padIndex: number, recompute: RecomputeMode): Graph {
  const b = GraphBuilder.extend(forward, { prefix: 'grad_' });
  const inputs = new Set(parameters.map((p) => p.name));
  b.initializersAsInputs(inputs);
  const initializers = new Set(forward.initializers.map((i) => i.name).filter((name) => !inputs.has(name)));
  const layers = recompute === 'layers' ? { segments: layerSegments(forward.nodes), isInitializer: (name: string) => initializers.has(name) } : undefined;
  const gradients = appendGradients(b, 'loss', parameters.map((p) => p.name), undefined, layers);
  for (const p of parameters) {
    const g = gradients.get(p.name)!;
    b.output(PADDED_EMBEDDINGS.includes(p.name) ? zeroRow(b, g, p, padIndex) : g, `grad.${p.name}`, p.shape);
  }
  return withoutDeadNodes(b.build());
}

/** g with row `index` set to zero (ScatterND of a zero row). */
function zeroRow(b: GraphBuilder, g: Value, table: TrainableParameter, index: number): Value {
  const width = table.shape[1]!;
  const at = b.constant([index], 'int64', [1, 1], `grad.${table.name}.pad_index`);
  const zeros = b.constant(new Array<number>(width).fill(0), 'float32', [1, width], `grad.${table.name}.pad_row`);
  return b.op('ScatterND', [g, at, zeros]);
}

/** Device and threads of a training session (`runtime/session.ts` holds the device policy). */
export type SessionChoice = Pick<RuntimeOptions, 'device' | 'threads' | 'warn' | 'memoryPattern' | 'cpuArena'>;

/**
 * Opens an ONNX Runtime session on a training graph. External data must sit beside the model
 * file, so the serialized graph is written into `graphDir` for the time the session loads.
 */
export async function openTrainingSession(training: { graph: Graph; graphDir: string; recompute?: RecomputeMode }, options: SessionChoice = {}): Promise<ort.InferenceSession> {
  const file = join(training.graphDir, `.train-${training.graph.name}-${process.pid}-${Date.now()}.onnx`);
  writeFileSync(file, serializeModel(training.graph, { 'bridgetower.graph': `${training.graph.name}.onnx` }));
  try {
    // Training graphs keep ONNX Runtime's default optimization level; memory-pattern planning is
    // off unless asked for (RuntimeOptions.memoryPattern: it makes step 2 need more than step 1),
    // and so is the CPU arena (RuntimeOptions.cpuArena: on, BASE's step peaks 15–19 % higher, and
    // step 2 above step 1; docs/PERFORMANCE.md, "The CPU arena at micro-batch 2 and 8").
    // A recomputing graph runs without common-subexpression elimination: the recomputed layer is
    // the same computation as its forward on the same inputs, and CSE would merge the two back,
    // keeping every forward intermediate alive (docs/fine-tune.md, "Memory").
    const recomputing = training.recompute === 'layers' ? { disabledOptimizers: ['CommonSubexpressionElimination'] } : {};
    const opened = await openSession(file, { ...options, ...recomputing, memoryPattern: options.memoryPattern ?? false, cpuArena: options.cpuArena ?? false });
    if (opened.fallbackReason) reportCudaFallback(`training graph '${training.graph.name}'`, opened.fallbackReason, options.warn);
    return opened.session;
  } finally {
    rmSync(file, { force: true });
  }
}
