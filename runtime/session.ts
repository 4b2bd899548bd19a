import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { DType } from '../bundle/tensors/dtype.js';

export type Device = 'cpu' | 'cuda';

export interface SessionOptions {
  device?: Device;
  /** ONNX Runtime graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Intra-op threads (default: ONNX Runtime's choice, one per core). */
  threads?: number;
}

/** Opens one graph of a bundle (`<bundle>/onnx/<graph>`), on CUDA when asked, else the CPU. */
export async function openGraph(bundleDir: string, graph: string, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  const file = join(bundleDir, 'onnx', graph.endsWith('.onnx') ? graph : `${graph}.onnx`);
  if (!existsSync(file)) {
    throw new BridgeTowerError('E_BUNDLE', `bundle '${bundleDir}' has no graph ${file}; convert-ckpt writes one per head the checkpoint has`, { file });
  }
  return ort.InferenceSession.create(file, {
    executionProviders: options.device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: options.optimization ?? 'all',
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
  });
}

const ORT_TYPES: Partial<Record<DType, ort.Tensor.Type>> = { float32: 'float32', int64: 'int64', int32: 'int32', float16: 'float16', bool: 'bool', uint8: 'uint8' };

/** Whether toOrtTensor takes tensors of `dtype` (callers holding user data check this first). */
export function canFeedDtype(dtype: DType): boolean {
  return ORT_TYPES[dtype] !== undefined;
}

/** A raw little-endian tensor (as read from safetensors) as an ONNX Runtime tensor. */
export function toOrtTensor(dtype: DType, shape: readonly number[], data: Uint8Array): ort.Tensor {
  const type = ORT_TYPES[dtype];
  // Graph inputs are built by this code (or checked with canFeedDtype): another dtype is a bug.
  if (!type) throw new BridgeTowerError('E_INTERNAL', `tensors of dtype ${dtype} cannot be fed to a graph (feedable: ${Object.keys(ORT_TYPES).join(', ')})`, { dtype });
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const typed =
    type === 'float32' ? new Float32Array(buffer)
    : type === 'int64' ? new BigInt64Array(buffer)
    : type === 'int32' ? new Int32Array(buffer)
    : type === 'float16' ? new Uint16Array(buffer)
    : new Uint8Array(buffer);
  return new ort.Tensor(type, typed as never, [...shape]);
}

/** An ONNX Runtime output tensor as raw bytes + dtype, for writing to safetensors. */
export function fromOrtTensor(tensor: ort.Tensor): { dtype: DType; shape: number[]; data: Uint8Array } {
  const data = tensor.data as ArrayBufferView;
  const dtype = (Object.entries(ORT_TYPES).find(([, t]) => t === tensor.type)?.[0] ?? 'float32') as DType;
  return { dtype, shape: [...tensor.dims], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
