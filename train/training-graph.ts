import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import { BUNDLE_FILES, readBundleConfig } from '../convert/bundle/bundle-config.js';
import type { BridgeTowerArchitecture } from '../convert/architecture/architecture.js';
import { crossModalFusion } from '../models/bridgetower/cross-modal.js';
import { classifier } from '../models/bridgetower/heads.js';
import { inferImage, inferText } from '../models/bridgetower/model.js';
import { GraphBuilder } from '../models/ir/builder.js';
import type { Graph, Initializer, Node, Value } from '../models/ir/graph.js';
import { serializeModel } from '../models/ir/serialize.js';
import { toOrtTensor } from '../models/runtime/session.js';
import type { DType } from '../convert/tensors/dtype.js';
import { safetensorsWeightSource } from '../models/ir/weights.js';
import { differentiate } from './autodiff/backward.js';
import { crossEntropyLoss, vqaLoss } from './losses.js';

export type TrainingTask = 'vqa' | 'snli';

export interface TrainingGraph {
  graph: Graph;
  /** Folder the graph's external-data locations are relative to (where the .onnx must live). */
  graphDir: string;
  /** Canonical names of the parameters with a `grad.<name>` output. */
  parameters: string[];
  /** Name of the label input: `targets` (vqa, float [batch, labels]) or `labels` (snli, int64 [batch]). */
  labelInput: 'targets' | 'labels';
  numLabels: number;
}

/** Tables whose row `padding_idx` PyTorch's `nn.Embedding(padding_idx=…)` never updates. */
const PADDED_EMBEDDINGS = ['text_transformer.embeddings.word_embeddings.weight', 'text_transformer.embeddings.position_embeddings.weight'];

/**
 * The training graph of a bundle for one task: upstream's end-to-end forward (the inference graph,
 * which has no dropout: upstream trained with dropout, the goldens disable it) + the task loss,
 * differentiated with respect to every float parameter. Inputs: input_ids, attention_mask,
 * pixel_values and `targets` / `labels`; outputs: loss, logits and `grad.<canonical name>`.
 */
export function buildTrainingGraph(bundleDir: string, task: TrainingTask): TrainingGraph {
  const config = readBundleConfig(bundleDir);
  const arch: BridgeTowerArchitecture = config.architecture;
  const head = arch.heads[task];
  if (!head) throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has no ${task} head (it has: ${Object.keys(arch.heads).join(', ') || 'none'})`);
  if (config.weights.dtype !== 'float32') {
    throw new BridgeTowerError('E_USAGE', `training graphs need float32 weights; bundle '${bundleDir}' holds ${config.weights.dtype} (convert with --dtype fp32)`);
  }
  const onnxDir = join(bundleDir, BUNDLE_FILES.onnxDir);
  const linked = join(onnxDir, BUNDLE_FILES.weights);
  const graphDir = existsSync(linked) ? onnxDir : bundleDir;
  const weights = safetensorsWeightSource(join(graphDir, BUNDLE_FILES.weights), graphDir);

  const b = new GraphBuilder(`train_${task}`, weights);
  const root = b.scope('');
  const inputIds = b.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = b.input('attention_mask', 'int64', ['batch', 'seq']);
  const size = arch.vision.image_size;
  const pixels = b.input('pixel_values', 'float32', ['batch', 3, size, size]);
  const labelInput = task === 'vqa' ? 'targets' : 'labels';
  const labels = task === 'vqa' ? b.input('targets', 'float32', ['batch', head.num_labels]) : b.input('labels', 'int64', ['batch']);

  const text = inferText(root, arch, inputIds, attentionMask, 'float32', { itc: false });
  const image = inferImage(root, arch, pixels, 'float32', { itc: false });
  const fused = crossModalFusion(root, text.layers, image.layers, text.mask, b.constant([1], 'int64', [], 'image_token_type'), arch.cross_modal);
  const logits = classifier(root.scope(`${task}_classifier`), fused.clsFeats, head);
  const loss = task === 'vqa' ? vqaLoss(b, logits, labels, head.num_labels) : crossEntropyLoss(b, logits, labels, head.num_labels);
  b.output(loss, 'loss', []);
  const logitsOut = b.output(logits, 'logits', ['batch', head.num_labels]);

  const forward = b.build(`${task} training graph: loss, logits and gradients of every float parameter`);
  const parameters = forward.initializers.filter((i) => i.external && i.dtype === 'float32').map((i) => i.name);
  const differentiated = differentiate(forward, 'loss', parameters);
  const withLogits: Graph = {
    ...differentiated,
    outputs: [differentiated.outputs[0]!, { ...logitsOut, shape: ['batch', head.num_labels] }, ...differentiated.outputs.slice(1)],
  };
  const graph = zeroPaddingRows(withLogits, PADDED_EMBEDDINGS.filter((p) => parameters.includes(p)), arch.text.pad_token_id);
  return { graph, graphDir, parameters, labelInput, numLabels: head.num_labels };
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

/**
 * Opens an ONNX Runtime session on the training graph. External data must sit beside the model
 * file, so the serialized graph is written into `graphDir` for the time the session loads.
 */
export async function openTrainingSession(training: TrainingGraph, options: { threads?: number } = {}): Promise<ort.InferenceSession> {
  const file = join(training.graphDir, `.train-${training.graph.name}-${process.pid}-${Date.now()}.onnx`);
  writeFileSync(file, serializeModel(training.graph, { 'bridgetower.graph': `${training.graph.name}.onnx` }));
  try {
    return await ort.InferenceSession.create(file, { executionProviders: ['cpu'], ...(options.threads ? { intraOpNumThreads: options.threads } : {}) });
  } finally {
    rmSync(file, { force: true });
  }
}

/** Raw little-endian tensors by name, as read from safetensors. */
export type RawTensors = ReadonlyMap<string, { dtype: DType; shape: readonly number[]; data: Uint8Array }>;

/** Runs the training graph once on a batch; returns `loss`, `logits` and `grad.<name>`. */
export async function computeGradients(training: TrainingGraph, batch: RawTensors, session?: ort.InferenceSession): Promise<Record<string, ort.Tensor>> {
  const s = session ?? (await openTrainingSession(training));
  const aliases: Record<string, string[]> = { targets: ['targets', 'vqa_targets'], labels: ['labels', 'snli_labels'] };
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of ['input_ids', 'attention_mask', 'pixel_values', training.labelInput]) {
    const found = (aliases[name] ?? [name]).map((n) => batch.get(n)).find((t) => t !== undefined);
    if (!found) throw new BridgeTowerError('E_USAGE', `the batch lacks '${name}'${aliases[name] ? ` (or '${aliases[name]![1]}')` : ''}`);
    feeds[name] = toOrtTensor(found.dtype, found.shape, found.data);
  }
  try {
    return await s.run(feeds);
  } catch (error) {
    throw new BridgeTowerError('E_USAGE', `the training graph rejected the batch: ${(error as Error).message}`);
  }
}
