import { BridgeTowerError } from '../../common/errors.js';
import type { ElemType } from './element-types.js';

/**
 * Tensors the graphs read that are not in the bundle's canonical model.safetensors but derived
 * from one of its tensors at export, one row per kind. A derived tensor is named
 * `<canonical>#<step>#<step>…` (`…attn.in_proj_weight#q#kernel#s8`, `…#kernel#s8#u8`): each step applies to the
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
  /** What the step reads: float values, or the int8 values of an `s8` step. */
  takes?: 'int8';
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

/** `nn.Linear` weight [out, in] → the [in, out] matrix MatMul(x, W) takes (in 32×32 tiles, for the cache). */
function transpose(v: DerivedValues): DerivedValues {
  const [rows, cols] = matrix(v.shape, 'kernel');
  const from = asFloat(v, 'kernel');
  const out = new Float32Array(from.length);
  const TILE = 32;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = from[r * cols + c]!;
    }
  }
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
  for (let r = 0; r < rows; r++) {
    for (let c = 0, i = r * cols; c < cols; c++, i++) {
      const a = w[i]! < 0 ? -w[i]! : w[i]!;
      if (a > scales[c]!) scales[c] = a;
    }
  }
  for (let c = 0; c < cols; c++) scales[c] = scales[c]! > 0 ? scales[c]! / INT8_RANGE : 1;
  return scales;
}

function quantizeS8(v: DerivedValues): Int8Array {
  const [rows, cols] = matrix(v.shape, 's8');
  const w = asFloat(v, 's8');
  const scales = columnScales(v);
  const q = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0, i = r * cols; c < cols; c++, i++) {
      const level = Math.round(w[i]! / scales[c]!);
      q[i] = level > INT8_RANGE ? INT8_RANGE : level < -INT8_RANGE ? -INT8_RANGE : level;
    }
  }
  return q;
}

function asInt8(v: DerivedValues, step: string): Int8Array {
  if (v.dtype !== 'int8') throw new Error(`step '${step}' needs int8 values (after 's8'), got ${v.dtype}`);
  return v.data as Int8Array;
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
  /** Symmetric per-output-column int8 weights of a kernel; `#scale` of the kernel dequantizes them. */
  s8: { kind: 'int8', shape: (s) => [...matrix(s, 's8')], compute: (v) => ({ dtype: 'int8', shape: v.shape, data: quantizeS8(v) }) },
  scale: { kind: 'float32', shape: (s) => [matrix(s, 'scale')[1]], compute: (v) => ({ dtype: 'float', shape: [v.shape[1]!], data: columnScales(v) }) },
  /** Of `#s8` values: the same + 128 as uint8 (zero point 128), for CPUs without VNNI (docs/onnx.md). */
  u8: {
    takes: 'int8',
    kind: 'uint8',
    shape: (s) => [...matrix(s, 'u8')],
    compute: (v) => {
      const q = asInt8(v, 'u8');
      const out = new Uint8Array(q.length);
      for (let i = 0; i < q.length; i++) out[i] = q[i]! + U8_WEIGHT_ZERO_POINT;
      return { dtype: 'uint8', shape: v.shape, data: out };
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
    const d = derivation(name, step);
    const takes = d.takes ?? 'float';
    if (kind !== takes) throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': step '${step}' needs ${takes} values, got ${kind}`, { weight: name, step });
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
