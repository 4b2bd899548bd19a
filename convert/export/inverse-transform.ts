import { BridgeTowerError } from '../../common/errors.js';
import { INVERSE_VALUE_TRANSFORMS, type ValueTransform } from '../../bundle/tensors/canonical-tensor.js';
import type { DType } from '../../bundle/tensors/dtype.js';
import { encodeFloat16, encodeFloat32, toFloat32 } from '../../bundle/tensors/dtype-convert.js';

/**
 * Writes a value-transformed tensor back in its source form (temperature → logit_scale = −log T),
 * in the tensor's own dtype. For every temperature a stored logit_scale converts to, the rounded
 * inverse converts back to that same temperature (test/convert/export-hf-parts.test.ts checks it over
 * the range a logit_scale takes), so HF → bundle → HF → bundle keeps the bundle's bytes.
 */

const ENCODERS: Partial<Record<DType, (values: ArrayLike<number>) => Buffer>> = { float32: encodeFloat32, float16: encodeFloat16 };

export function invertTransform(transform: ValueTransform, dtype: DType, bytes: Uint8Array): Buffer {
  const encode = ENCODERS[dtype];
  if (!encode) throw new BridgeTowerError('E_BUNDLE', `cannot invert ${transform} on ${dtype} values: export supports float32 and float16 bundles`, { dtype });
  const inverse = INVERSE_VALUE_TRANSFORMS[transform];
  return encode(Array.from(toFloat32(dtype, bytes), inverse));
}
