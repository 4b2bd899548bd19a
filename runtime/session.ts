import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { GraphPrecision } from '../bundle/config.js';
import type { DType } from '../bundle/tensors/dtype.js';
import { ELEMENT_TYPES, elemTypeFromBundle, elemTypeFromOrt } from '../models/ir/element-types.js';
import { checkGraphSet, graphSet, type GraphSet } from './graph-set.js';

export type Device = 'cpu' | 'cuda';

/** ONNX Runtime's graph optimization levels. */
export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

/**
 * Where and how graphs run: the one options type of serving, evaluation, fine-tuning and
 * `run-graph` (their `--device` and `--threads` flags fill it).
 */
export interface RuntimeOptions {
  /** 'cuda' falls back to the CPU, reported once (default 'cpu'). */
  device?: Device;
  /** Intra-op threads per session (default: ONNX Runtime's choice, one per core). */
  threads?: number;
  /** Graph optimization level (default 'all'). */
  optimization?: GraphOptimization;
  /** Where a CUDA fallback is reported (default: a warning on stderr). */
  warn?: (message: string) => void;
  /**
   * Which precision variant of a bundle's graphs to open (its folder: runtime/graph-set.ts; int8
   * also picks its weight set by the CPU's flags). Undefined: the bundle's `onnx/` graphs, as
   * before variants existed. The library chooses it (library/precision.ts, 'auto' included).
   */
  precision?: GraphPrecision;
  /**
   * ONNX Runtime's memory-pattern planning (default on). Off for training sessions: with it on, the
   * second run allocates one block for the planned pattern beside the arena chunks of the first,
   * and a training step's peak grows by its activations (docs/fine-tune.md, "Memory").
   */
  memoryPattern?: boolean;
  /**
   * ONNX Runtime's CPU arena (default on). Off, every tensor is its own malloc: what a run frees
   * goes back to the allocator at once instead of staying in an arena grown by powers of two
   * (docs/fine-tune.md, "Memory").
   */
  cpuArena?: boolean;
  /**
   * ONNX Runtime graph transformers to leave out, by name (`optimization.disable_specified_optimizers`):
   * a recomputing training graph turns off CommonSubexpressionElimination, which would merge each
   * recomputed layer back into its forward and keep the intermediates recomputation drops.
   */
  disabledOptimizers?: readonly string[];
}

/** A session and the execution provider it ended up on. */
export interface OpenedSession {
  session: ort.InferenceSession;
  provider: Device;
  /** ONNX Runtime's reason for refusing CUDA, when CUDA was asked for and refused. */
  fallbackReason?: string;
}

/**
 * Opens an ONNX Runtime session on a model file or serialized bytes. The execution-provider policy
 * lives here and only here: CUDA when asked for, else (or when its libraries, driver or device are
 * missing) the CPU. A fallback is not an error — a server on a node without its GPU still serves —
 * but the caller learns it (`fallbackReason`) and should pass it to `reportCudaFallback`.
 */
export async function openSession(model: string | Uint8Array, options: RuntimeOptions = {}): Promise<OpenedSession> {
  const create = (device: Device) =>
    typeof model === 'string' ? ort.InferenceSession.create(model, sessionOptions(device, options)) : ort.InferenceSession.create(model, sessionOptions(device, options));
  if (options.device !== 'cuda') return { session: await create('cpu'), provider: 'cpu' };
  try {
    return { session: await create('cuda'), provider: 'cuda' };
  } catch (error) {
    return { session: await create('cpu'), provider: 'cpu', fallbackReason: error instanceof Error ? error.message : String(error) };
  }
}

function sessionOptions(device: Device, options: RuntimeOptions): ort.InferenceSession.SessionOptions {
  return {
    // ONNX Runtime places nodes the CUDA provider lacks on the CPU by itself.
    executionProviders: [device],
    graphOptimizationLevel: options.optimization ?? 'all',
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    ...(options.memoryPattern === false ? { enableMemPattern: false } : {}),
    ...(options.cpuArena === false ? { enableCpuMemArena: false } : {}),
    ...(options.disabledOptimizers?.length ? { extra: { optimization: { disable_specified_optimizers: options.disabledOptimizers.join(',') } } } : {}),
  };
}

const reportedFallbacks = new Set<string>();

/**
 * Says once per process (per reason) that CUDA was asked for and the CPU is used instead: a server
 * opening 13 bundles, or a trainer opening a session per step, warns once, not 13 or 10,000 times.
 */
export function reportCudaFallback(what: string, reason: string, warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`)): void {
  if (reportedFallbacks.has(reason)) return;
  reportedFallbacks.add(reason);
  warn(`${what}: CUDA was asked for but is unavailable (${reason}); running on the CPU. Install onnxruntime-node's CUDA binaries (docs/deploy.md) or use --device cpu`);
}

/** Opens one graph of a bundle (`<variant dir>/<graph>.onnx`, `onnx/` without a precision), with `openSession`'s device policy. */
export async function openGraph(bundleDir: string, graph: string, options: RuntimeOptions = {}): Promise<OpenedSession> {
  return openGraphIn(graphSet(bundleDir, options.precision), bundleDir, graph, options);
}

/** Opens one graph of an already resolved graph set (a runner resolves it once for all its graphs). */
export async function openGraphIn(set: GraphSet, bundleDir: string, graph: string, options: RuntimeOptions = {}): Promise<OpenedSession> {
  const file = join(set.dir, graph.endsWith('.onnx') ? graph : `${graph}.onnx`);
  if (!existsSync(file)) {
    const graphs = graphNamesIn(set.dir);
    const has = graphs.length ? `its ${set.precision ?? ''}${set.precision ? ' ' : ''}graphs are ${graphs.join(', ')}` : `${set.dir} holds no graphs at all`;
    throw new BridgeTowerError('E_BUNDLE', `bundle '${bundleDir}' has no graph '${graph}' (${file}): ${has}; convert-ckpt writes one per head the checkpoint has`, { file, graphs });
  }
  checkGraphSet(set, bundleDir);
  return openSession(file, options);
}

/** The graphs a bundle holds, by the name `openGraph` takes (file names without `.onnx`). */
export function graphNames(bundleDir: string, precision?: GraphPrecision): string[] {
  return graphNamesIn(graphSet(bundleDir, precision).dir);
}

function graphNamesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((name) => name.endsWith('.onnx')).map((name) => name.slice(0, -'.onnx'.length)).sort();
}

/** Whether toOrtTensor takes tensors of `dtype` (callers holding user data check this first). */
export function canFeedDtype(dtype: DType): boolean {
  return elemTypeFromBundle(dtype) !== undefined;
}

/** A raw little-endian tensor (as read from safetensors) as an ONNX Runtime tensor. */
export function toOrtTensor(dtype: DType, shape: readonly number[], data: Uint8Array): ort.Tensor {
  const elem = elemTypeFromBundle(dtype);
  // Graph inputs are built by this code (or checked with canFeedDtype): another dtype is a bug.
  if (!elem) throw new BridgeTowerError('E_INTERNAL', `tensors of dtype ${dtype} cannot be fed to a graph`, { dtype });
  const { ort: type, array } = ELEMENT_TYPES[elem];
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return new ort.Tensor(type, new array(buffer as ArrayBuffer) as never, [...shape]);
}

/** An ONNX Runtime output tensor as raw bytes + dtype, for writing to safetensors. */
export function fromOrtTensor(tensor: ort.Tensor): { dtype: DType; shape: number[]; data: Uint8Array } {
  const data = tensor.data as ArrayBufferView;
  const elem = elemTypeFromOrt(tensor.type);
  const dtype: DType = elem ? ELEMENT_TYPES[elem].bundle : 'float32';
  return { dtype, shape: [...tensor.dims], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
