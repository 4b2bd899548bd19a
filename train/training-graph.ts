import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { BUNDLE_FILES, readBundleConfig } from '../bundle/config.js';
import { GraphBuilder, type DropoutFeature } from '../models/ir/builder.js';
import type { Graph, Initializer, Node, Value } from '../models/ir/graph.js';
import { serializeModel } from '../models/ir/serialize.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { safetensorsWeightSource } from '../models/ir/weights.js';
import { differentiate, reachingLoss } from './autodiff/backward.js';
import { TASKS } from '../bundle/tasks.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from './tasks.js';
import { isTrainable, type TrainSubset } from './train-subsets.js';

export type TrainingTask = FineTuneTask;

export interface TrainingGraphOptions {
  /** Which parameters get gradients (default all, like upstream). */
  train?: TrainSubset;
  /** Dropout probability of every site (upstream 0.1); 0 or absent builds no dropout (`grad`, parity). */
  dropout?: number;
}

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
  /** Whether the graph has the int64 `dropout_seed` input. */
  dropout: boolean;
  numLabels: number;
}

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
  const b0 = new GraphBuilder(`train_${task}`, weights);
  const dropoutFeature: DropoutFeature | undefined = rate > 0 ? { seed: b0.input('dropout_seed', 'int64', []), rate, sites: 0 } : undefined;
  const b = dropoutFeature ? withDropout(b0, dropoutFeature) : b0;
  const size = arch.vision.image_size;
  const numLabels = spec.labelCount(arch);
  const resolve = (d: string | number) => (d === 'labels' ? numLabels : d === 'size' ? size : d);
  const inputs: Record<string, Value> = {
    input_ids: b.input('input_ids', 'int64', ['batch', 'seq']),
    attention_mask: b.input('attention_mask', 'int64', ['batch', 'seq']),
    pixel_values: b.input('pixel_values', 'float32', ['batch', 3, size, size]),
  };
  for (const spec of objective.extraInputs) inputs[spec.name] = b.input(spec.name, spec.dtype, spec.shape.map(resolve));
  const { loss, logits } = objective.build(b.scope(''), arch, inputs);
  b.output(loss, 'loss', []);
  const logitsOut = b.output(logits, 'logits', ['rows', numLabels]);
  const forward = b.build(`${task} training graph: loss, logits and gradients of the trainable parameters`);

  const floats = forward.initializers.filter((i) => i.external && i.dtype === 'float32');
  const selected = floats.filter((i) => isTrainable(i.name, options.train ?? 'all'));
  const used = reachingLoss(forward, 'loss', selected.map((i) => i.name));
  const trainable = selected.filter((i) => used.has(i.name));
  const parameters = trainable.map((i) => ({ name: i.name, shape: [...i.dims], size: i.dims.reduce((a, d) => a * d, 1) }));
  const asInputs = parametersAsInputs(forward, new Set(parameters.map((p) => p.name)));

  const differentiated = differentiate(asInputs, 'loss', parameters.map((p) => p.name));
  const withLogits: Graph = {
    ...differentiated,
    outputs: [differentiated.outputs[0]!, { ...logitsOut, shape: ['rows', numLabels] }, ...differentiated.outputs.slice(1)],
  };
  const graph = zeroPaddingRows(withLogits, PADDED_EMBEDDINGS.filter((p) => used.has(p) && parameters.some((q) => q.name === p)), arch.text.pad_token_id);
  return {
    graph,
    task,
    graphDir,
    batchInputs: [
      { name: 'input_ids', dtype: 'int64' },
      { name: 'attention_mask', dtype: 'int64' },
      { name: 'pixel_values', dtype: 'float32' },
      ...objective.extraInputs.map((s) => ({ name: s.name, dtype: s.dtype, ...(s.noise ? { noise: true as const } : {}) })),
    ],
    parameters,
    unused: bundleFloatTensors(join(graphDir, BUNDLE_FILES.weights)).filter((name) => isTrainable(name, options.train ?? 'all') && !used.has(name)),
    dropout: dropoutFeature !== undefined,
    numLabels,
  };
}

/** Names of the float32 tensors of a bundle's weights, in file order. */
function bundleFloatTensors(path: string): string[] {
  return [...openSafetensors(path).tensors].filter(([, v]) => v.dtype === 'float32').map(([name]) => name);
}

/** GraphBuilder's features are fixed at construction; training graphs add the dropout feature. */
function withDropout(b: GraphBuilder, feature: DropoutFeature): GraphBuilder {
  Object.assign(b.features, { dropout: feature });
  return b;
}

/** Turns the named initializers into graph inputs of the same dtype and shape (after the batch inputs). */
function parametersAsInputs(graph: Graph, names: ReadonlySet<string>): Graph {
  const moved = graph.initializers.filter((i) => names.has(i.name));
  return {
    ...graph,
    inputs: [...graph.inputs, ...moved.map((i): Value => ({ name: i.name, dtype: i.dtype, shape: i.dims }))],
    initializers: graph.initializers.filter((i) => !names.has(i.name)),
  };
}

/** Sets row `padIndex` of each `grad.<table>` output to zero (ScatterND of a zero row). */
function zeroPaddingRows(graph: Graph, tables: readonly string[], padIndex: number): Graph {
  const nodes = [...graph.nodes];
  const initializers: Initializer[] = [...graph.initializers];
  const valueInfo: Value[] = [...graph.valueInfo];
  for (const table of tables) {
    const name = `grad.${table}`;
    const output = graph.outputs.find((o) => o.name === name)!;
    const width = Number(output.shape![1]);
    const at = nodes.findIndex((n) => n.outputs.includes(name));
    const raw = `${name}.unmasked`;
    nodes[at] = { ...nodes[at]!, outputs: nodes[at]!.outputs.map((o) => (o === name ? raw : o)) };
    const index: Initializer = { name: `${name}.pad_index`, dtype: 'int64', dims: [1, 1], data: new Uint8Array(BigInt64Array.from([BigInt(padIndex)]).buffer) };
    const zeros: Initializer = { name: `${name}.pad_row`, dtype: 'float32', dims: [1, width], data: new Uint8Array(new Float32Array(width).buffer) };
    initializers.push(index, zeros);
    const scatter: Node = { op: 'ScatterND', domain: '', name: `${name}.zero_padding_row`, inputs: [raw, index.name, zeros.name], outputs: [name], attributes: {} };
    nodes.push(scatter);
    valueInfo.push({ name: raw, dtype: 'float32', shape: output.shape });
  }
  return { ...graph, nodes, initializers, valueInfo };
}

export interface SessionChoice {
  device?: 'cpu' | 'cuda';
  threads?: number;
}

/**
 * Opens an ONNX Runtime session on a training graph. External data must sit beside the model
 * file, so the serialized graph is written into `graphDir` for the time the session loads.
 */
export async function openTrainingSession(training: { graph: Graph; graphDir: string }, options: SessionChoice = {}): Promise<ort.InferenceSession> {
  const file = join(training.graphDir, `.train-${training.graph.name}-${process.pid}-${Date.now()}.onnx`);
  writeFileSync(file, serializeModel(training.graph, { 'bridgetower.graph': `${training.graph.name}.onnx` }));
  try {
    return await ort.InferenceSession.create(file, {
      executionProviders: options.device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    });
  } catch (error) {
    const message = (error as Error).message;
    if (options.device === 'cuda') throw new BridgeTowerError('E_USAGE', `--device cuda: ONNX Runtime could not create a CUDA session (${message}); install onnxruntime-node's CUDA binaries (docs/deploy.md) or use --device cpu`);
    throw error;
  } finally {
    rmSync(file, { force: true });
  }
}
