import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { DType } from '../bundle/tensors/dtype.js';
import { ELEMENT_TYPES, elemTypeFromBundle, elemTypeFromOrt } from '../models/ir/element-types.js';

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

/** A raw little-endian tensor (as read from safetensors) as an ONNX Runtime tensor. */
export function toOrtTensor(dtype: DType, shape: readonly number[], data: Uint8Array): ort.Tensor {
  const elem = elemTypeFromBundle(dtype);
  if (!elem) throw new BridgeTowerError('E_USAGE', `tensors of dtype ${dtype} cannot be fed to a graph`);
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
