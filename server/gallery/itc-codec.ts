import { BridgeTowerError } from '../../common/errors.js';

export type ItcFormat = 'float32' | 'int8';

/** A feature as stored: its bytes, and the scale of int8 codes (null for float32). */
export interface EncodedItc {
  bytes: Uint8Array;
  scale: number | null;
}

/**
 * How ITC features are stored, one row per format. int8 is symmetric per vector: code =
 * round(x / scale), scale = max|x| / 127; for a unit 256-d feature the cosine error is ≈ 1e-4,
 * far below the gaps between candidates' scores, at a quarter of the bytes. The stored scale says
 * which format a row has, so a gallery may hold both (after a change of --gallery-itc).
 */
const CODECS: Record<ItcFormat, { encode(values: Float32Array): EncodedItc }> = {
  float32: {
    encode: (values) => ({ bytes: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)), scale: null }),
  },
  int8: {
    encode(values) {
      let max = 0;
      for (const v of values) max = Math.max(max, Math.abs(v));
      const scale = max === 0 ? 1 : max / 127;
      const codes = Int8Array.from(values, (v) => Math.max(-127, Math.min(127, Math.round(v / scale))));
      return { bytes: new Uint8Array(codes.buffer), scale };
    },
  },
};

export const ITC_FORMATS = Object.keys(CODECS) as ItcFormat[];

export function encodeItc(values: Float32Array, format: ItcFormat): EncodedItc {
  return CODECS[format].encode(values);
}

/** Stored bytes back to floats, after checking their length against `dim`. */
export function decodeItc(bytes: Uint8Array, scale: number | null, dim: number, where: string): Float32Array {
  const expected = scale === null ? dim * 4 : dim;
  if (bytes.byteLength !== expected) {
    throw new BridgeTowerError('E_IO', `${where} is damaged: its ITC feature holds ${bytes.byteLength} bytes for ${dim} ${scale === null ? 'float32' : 'int8'} values; delete the item and add it again`, {});
  }
  if (scale !== null) {
    const codes = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Float32Array.from(codes, (code) => code * scale);
  }
  // A copy: the driver's buffer may sit at an offset that is not a multiple of 4.
  const floats = new Float32Array(dim);
  new Uint8Array(floats.buffer).set(bytes);
  return floats;
}

/** The dimension a stored feature has, by its byte length (for a gallery whose dimension is not yet known here). */
export function storedDim(bytes: Uint8Array, scale: number | null): number {
  return scale === null ? Math.floor(bytes.byteLength / 4) : bytes.byteLength;
}
