/**
 * Element types a checkpoint may hold, with their names in each format. One table, looked up by
 * every reader and writer.
 */
export type DType = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface DTypeInfo {
  readonly bytes: number;
  /** Name in a safetensors header. */
  readonly safetensors: string;
  /** PyTorch storage class names (`torch.FloatStorage`, and the TypedStorage dtype name of torch ≥ 2). */
  readonly torchStorage: readonly string[];
  readonly isFloat: boolean;
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  float64: { bytes: 8, safetensors: 'F64', torchStorage: ['DoubleStorage', 'float64'], isFloat: true },
  float32: { bytes: 4, safetensors: 'F32', torchStorage: ['FloatStorage', 'float32'], isFloat: true },
  float16: { bytes: 2, safetensors: 'F16', torchStorage: ['HalfStorage', 'float16'], isFloat: true },
  bfloat16: { bytes: 2, safetensors: 'BF16', torchStorage: ['BFloat16Storage', 'bfloat16'], isFloat: true },
  int64: { bytes: 8, safetensors: 'I64', torchStorage: ['LongStorage', 'int64'], isFloat: false },
  int32: { bytes: 4, safetensors: 'I32', torchStorage: ['IntStorage', 'int32'], isFloat: false },
  int16: { bytes: 2, safetensors: 'I16', torchStorage: ['ShortStorage', 'int16'], isFloat: false },
  int8: { bytes: 1, safetensors: 'I8', torchStorage: ['CharStorage', 'int8'], isFloat: false },
  uint8: { bytes: 1, safetensors: 'U8', torchStorage: ['ByteStorage', 'uint8'], isFloat: false },
  bool: { bytes: 1, safetensors: 'BOOL', torchStorage: ['BoolStorage', 'bool'], isFloat: false },
};

const BY_SAFETENSORS = new Map(Object.entries(DTYPES).map(([name, info]) => [info.safetensors, name as DType]));
const BY_TORCH_STORAGE = new Map(
  Object.entries(DTYPES).flatMap(([name, info]) => info.torchStorage.map((s) => [s, name as DType] as const)),
);

export function dtypeFromSafetensors(name: string): DType | undefined {
  return BY_SAFETENSORS.get(name);
}

/** `torch.FloatStorage` → float32. Accepts the class name with or without the `torch.` module. */
export function dtypeFromTorchStorage(className: string): DType | undefined {
  return BY_TORCH_STORAGE.get(className.replace(/^torch\./, ''));
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
