import type { DType } from '../../bundle/tensors/dtype.js';

/**
 * The element types a graph value may have, with their code in each place a graph goes: ONNX
 * (`TensorProto.DataType`, onnx/onnx.proto), ONNX Runtime's JavaScript tensors (type name and the
 * typed array that holds the data) and the bundle's tensor dtype (bundle/tensors/dtype.ts, which
 * also describes checkpoint-only types such as bfloat16 that no graph computes in). One table,
 * looked up by the builder, the serializer, the weight source, autodiff and the runtime.
 */
export interface ElementTypeInfo {
  readonly bytes: number;
  /** `TensorProto.DataType` code (the `to` of a Cast, `elem_type` of a value_info). */
  readonly onnx: number;
  /** `ort.Tensor.Type`. */
  readonly ort: 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
  /** The typed array ONNX Runtime's JavaScript API holds such a tensor in (float16 as raw bits). */
  readonly array: Float32ArrayConstructor | Uint16ArrayConstructor | BigInt64ArrayConstructor | Int32ArrayConstructor | Int8ArrayConstructor | Uint8ArrayConstructor;
  /** The bundle / safetensors dtype of the same bytes. */
  readonly bundle: DType;
  /** Gradients flow through float values only (train/autodiff). */
  readonly isFloat: boolean;
}

export const ELEMENT_TYPES = {
  float32: { bytes: 4, onnx: 1, ort: 'float32', array: Float32Array, bundle: 'float32', isFloat: true },
  float16: { bytes: 2, onnx: 10, ort: 'float16', array: Uint16Array, bundle: 'float16', isFloat: true },
  int64: { bytes: 8, onnx: 7, ort: 'int64', array: BigInt64Array, bundle: 'int64', isFloat: false },
  int32: { bytes: 4, onnx: 6, ort: 'int32', array: Int32Array, bundle: 'int32', isFloat: false },
  // Quantized weights and activations (int8 graphs).
  int8: { bytes: 1, onnx: 3, ort: 'int8', array: Int8Array, bundle: 'int8', isFloat: false },
  uint8: { bytes: 1, onnx: 2, ort: 'uint8', array: Uint8Array, bundle: 'uint8', isFloat: false },
  bool: { bytes: 1, onnx: 9, ort: 'bool', array: Uint8Array, bundle: 'bool', isFloat: false },
} as const satisfies Record<string, ElementTypeInfo>;

export type ElemType = keyof typeof ELEMENT_TYPES;

const ELEM_TYPE_NAMES = Object.keys(ELEMENT_TYPES) as ElemType[];
const BY_ONNX = new Map<number, ElemType>(ELEM_TYPE_NAMES.map((t) => [ELEMENT_TYPES[t].onnx, t]));
const BY_BUNDLE = new Map<DType, ElemType>(ELEM_TYPE_NAMES.map((t) => [ELEMENT_TYPES[t].bundle as DType, t]));
const BY_ORT = new Map<string, ElemType>(ELEM_TYPE_NAMES.map((t) => [ELEMENT_TYPES[t].ort as string, t]));

/** The element type of an ONNX `TensorProto.DataType` code, or undefined if graphs never hold it. */
export function elemTypeFromOnnx(code: number): ElemType | undefined {
  return BY_ONNX.get(code);
}

/** The graph element type of a bundle tensor dtype, or undefined (float64, bfloat16, int16). */
export function elemTypeFromBundle(dtype: DType): ElemType | undefined {
  return BY_BUNDLE.get(dtype);
}

/** The graph element type of an ONNX Runtime tensor type, or undefined. */
export function elemTypeFromOrt(type: string): ElemType | undefined {
  return BY_ORT.get(type);
}

export function isFloatType(dtype: ElemType): boolean {
  return ELEMENT_TYPES[dtype].isFloat;
}
