import { BridgeTowerError } from '../../common/errors.js';
import type { ElemType } from './element-types.js';

/**
 * Tensors the graphs read that are not in the bundle's canonical model.safetensors but derived
 * from one of its tensors at export, one row per kind. A derived tensor is named
 * `<canonical>#<step>#<step>…` (`…attn.in_proj_weight#q#kernel#s8`): each step applies to the
 * result of the previous one, so the name says exactly how the bytes were made and a graph file
 * can be traced back to the upstream parameter. The canonical file keeps upstream's layout.
 */

/** Values of a tensor on their way through the steps. */
export interface DerivedValues {
  readonly dtype: 'float' | 'int8' | 'uint8';
  readonly shape: readonly number[];
  readonly data: Float32Array | Int8Array | Uint8Array;
}

/**
 * `float`: float values stored in the graph set's float dtype (float32, or float16 for fp16
 * graphs). `float32`: always float32 (the int8 graphs' scales, which multiply float32 results).
 */
export type DerivedKind = 'float' | 'float32' | 'int8' | 'uint8';

interface Derivation {
  /** Output shape from the input shape; throws on an input the step cannot take. */
  shape(input: readonly number[]): number[];
  kind: DerivedKind;
  compute(input: DerivedValues): DerivedValues;
}

const SEP = '#';

/** The largest |weight| of each column maps to ±127 (symmetric: zero point 0, no −128). */
const INT8_RANGE = 127;
/** The unsigned weight set stores s8 + 128 and tells MatMulInteger its zero point is 128. */
export const U8_WEIGHT_ZERO_POINT = 128;

function matrix(shape: readonly number[], step: string): [number, number] {
  if (shape.length !== 2) throw new Error(`step '${step}' needs a matrix, got shape [${shape.join(', ')}]`);
  return [shape[0]!, shape[1]!];
}

function asFloat(v: DerivedValues, step: string): Float32Array {
  if (v.dtype !== 'float') throw new Error(`step '${step}' needs float values, got ${v.dtype}`);
  return v.data as Float32Array;
}

/** `nn.Linear` weight [out, in] → the [in, out] matrix MatMul(x, W) takes. */
function transpose(v: DerivedValues): DerivedValues {
  const [rows, cols] = matrix(v.shape, 'kernel');
  const from = asFloat(v, 'kernel');
  const out = new Float32Array(from.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = from[r * cols + c]!;
  return { dtype: 'float', shape: [cols, rows], data: out };
}

/** Part `index` of 3 along the first axis: `nn.MultiheadAttention`'s packed q; k; v rows. */
function third(index: number) {
  return (v: DerivedValues): DerivedValues => {
    const rows = v.shape[0]!;
    const inner = v.data.length / rows;
    const n = rows / 3;
    return { dtype: v.dtype, shape: [n, ...v.shape.slice(1)], data: v.data.slice(index * n * inner, (index + 1) * n * inner) };
  };
}

/** Per-output-column scale of a [in, out] kernel: max |w[:, n]| / 127 (1 for an all-zero column). */
function columnScales(v: DerivedValues): Float32Array {
  const [rows, cols] = matrix(v.shape, 'scale');
  const w = asFloat(v, 'scale');
  const scales = new Float32Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scales[c] = Math.max(scales[c]!, Math.abs(w[r * cols + c]!));
  for (let c = 0; c < cols; c++) scales[c] = scales[c]! > 0 ? scales[c]! / INT8_RANGE : 1;
  return scales;
}

function quantizeS8(v: DerivedValues): Int8Array {
  const [rows, cols] = matrix(v.shape, 's8');
  const w = asFloat(v, 's8');
  const scales = columnScales(v);
  const q = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.max(-INT8_RANGE, Math.min(INT8_RANGE, Math.round(w[r * cols + c]! / scales[c]!)));
  }
  return q;
}

const DERIVATIONS: Readonly<Record<string, Derivation>> = {
  kernel: { kind: 'float', shape: (s) => [...matrix(s, 'kernel')].reverse(), compute: transpose },
  ...Object.fromEntries(
    (['q', 'k', 'v'] as const).map((part, i) => [
      part,
      {
        kind: 'float' as const,
        shape: (s: readonly number[]) => {
          if (s.length < 1 || s[0]! % 3 !== 0) throw new Error(`step '${part}' needs a first axis divisible by 3, got shape [${s.join(', ')}]`);
          return [s[0]! / 3, ...s.slice(1)];
        },
        compute: third(i),
      },
    ]),
  ),
  /** Symmetric per-output-channel int8 weights of a kernel; `#scale` dequantizes them. */
  s8: { kind: 'int8', shape: (s) => [...matrix(s, 's8')], compute: (v) => ({ dtype: 'int8', shape: v.shape, data: quantizeS8(v) }) },
  /** The same weights + 128 as uint8 (zero point 128): CPUs without VNNI (docs/onnx.md). */
  u8: {
    kind: 'uint8',
    shape: (s) => [...matrix(s, 'u8')],
    compute: (v) => ({ dtype: 'uint8', shape: v.shape, data: Uint8Array.from(quantizeS8(v), (q) => q + U8_WEIGHT_ZERO_POINT) }),
  },
  scale: { kind: 'float32', shape: (s) => [matrix(s, 'scale')[1]], compute: (v) => ({ dtype: 'float', shape: [v.shape[1]!], data: columnScales(v) }) },
  /** Σₖ s8[k, n]: the zero-point correction of per-row activation quantization (`zp_row ⊗ colsum`). */
  colsum: {
    kind: 'float32',
    shape: (s) => [matrix(s, 'colsum')[1]],
    compute: (v) => {
      const [rows, cols] = matrix(v.shape, 'colsum');
      const q = quantizeS8(v);
      const sums = new Float32Array(cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sums[c] = sums[c]! + q[r * cols + c]!;
      return { dtype: 'float', shape: [cols], data: sums };
    },
  },
};

/** `base#a#b` → base and steps. */
export function parseDerivedName(name: string): { base: string; steps: string[] } {
  const [base, ...steps] = name.split(SEP);
  return { base: base!, steps };
}

/** The name of `base` after `steps`. */
export function derivedName(base: string, ...steps: string[]): string {
  return [base, ...steps].join(SEP);
}

function derivation(name: string, step: string): Derivation {
  const found = Object.hasOwn(DERIVATIONS, step) ? DERIVATIONS[step] : undefined;
  if (!found) throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': unknown step '${step}' (known: ${Object.keys(DERIVATIONS).join(', ')})`, { weight: name, step });
  return found;
}

/** Shape and kind of a derived tensor, from its base's shape and float-ness, without computing it. */
export function derivedShape(name: string, baseShape: readonly number[], baseIsFloat: boolean): { shape: number[]; kind: DerivedKind } {
  const { steps } = parseDerivedName(name);
  let shape = [...baseShape];
  if (!baseIsFloat) throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': only float weights are derived`, { weight: name });
  let kind: DerivedKind = 'float';
  for (const step of steps) {
    if (kind !== 'float') throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': step '${step}' needs float values, got ${kind}`, { weight: name, step });
    const d = derivation(name, step);
    try {
      shape = d.shape(shape);
    } catch (error) {
      throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': ${(error as Error).message}`, { weight: name, step });
    }
    kind = d.kind;
  }
  return { shape, kind };
}

/** Applies the steps of `name` to its base's values; `cached` returns already computed prefixes. */
export function computeDerived(name: string, base: DerivedValues, cached: (prefix: string) => DerivedValues | undefined, remember: (prefix: string, v: DerivedValues) => void): DerivedValues {
  const { base: baseName, steps } = parseDerivedName(name);
  let values = base;
  for (let i = 0; i < steps.length; i++) {
    const prefix = derivedName(baseName, ...steps.slice(0, i + 1));
    const hit = cached(prefix);
    values = hit ?? derivation(name, steps[i]!).compute(values);
    if (!hit) remember(prefix, values);
  }
  return values;
}

/** The element type a derived tensor is stored in, given the graph set's float dtype. */
export function storedType(kind: DerivedKind, floatType: ElemType): ElemType {
  return kind === 'float' ? floatType : kind === 'float32' ? 'float32' : kind;
}
