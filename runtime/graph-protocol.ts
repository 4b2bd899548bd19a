import type { GraphSet } from './graph-set.js';
import type { Device, RuntimeOptions } from './session.js';

/**
 * The messages between `GraphRunner` (main thread) and `graph-worker.ts` (the thread that owns
 * the ONNX Runtime sessions). Tensors travel as plain typed arrays whose buffers are transferred,
 * not copied, in both directions.
 */

export type TensorType = 'float32' | 'int64';

export interface WireTensor {
  type: TensorType;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export type Tensors = Record<string, WireTensor>;

export interface WorkerConfig extends Pick<RuntimeOptions, 'threads'> {
  bundleDir: string;
  /** The precision variant's files, resolved on the main thread (runtime/graph-set.ts). */
  set: GraphSet;
  /** Graph names without `.onnx` (text_encoder, fusion, head_vqa, …). */
  graphs: string[];
  device: Device;
}

export interface ValueInfo {
  name: string;
  type: string;
  /** Fixed sizes, and the names of dynamic dims (`batch`, `seq`). */
  shape: Array<number | string>;
}

export interface GraphSignature {
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** What the worker could not do, rebuilt as a BridgeTowerError on the main side. */
export interface WireError {
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

export type ToWorker = { type: 'run'; id: number; graph: string; feeds: Tensors; fetches?: string[] } | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; provider: Device; fellBack: boolean; fallbackReason?: string; signatures: Record<string, GraphSignature> }
  | { type: 'open-failed'; error: WireError }
  | { type: 'result'; id: number; outputs: Tensors }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'closed' };

/**
 * The buffers to transfer with `tensors`. A view over part of a larger buffer would transfer (and
 * detach) the whole buffer, or be copied whole by structured clone, so such a view is first
 * replaced by a copy of just its bytes.
 */
export function transferables(tensors: Tensors): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const tensor of Object.values(tensors)) {
    const { data } = tensor;
    if (!(data.buffer instanceof ArrayBuffer)) continue; // SharedArrayBuffer: shared, not transferred
    if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength || buffers.has(data.buffer)) {
      tensor.data = data.slice() as Float32Array | BigInt64Array;
    }
    buffers.add(tensor.data.buffer as ArrayBuffer);
  }
  return [...buffers];
}
