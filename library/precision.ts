import { BridgeTowerError } from '../common/errors.js';
import type { BundleConfig } from '../bundle/config.js';

/** What `BridgeTower.load(dir, { precision })` takes: a graph precision, or the bundle's own ('auto'). */
export type Precision = 'fp32' | 'fp16' | 'int8' | 'auto';

export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8', 'auto'];

/** Weight dtype of config.json → the precision name its graphs run in. */
const PRECISION_OF_DTYPE: Readonly<Record<BundleConfig['weights']['dtype'], Exclude<Precision, 'auto' | 'int8'>>> = {
  float32: 'fp32',
  float16: 'fp16',
};

/**
 * The precision a bundle's graphs are opened in. Today a bundle holds one variant, that of its
 * weights (`convert --dtype`), so 'auto' means it and any other is refused, naming what exists;
 * the value then travels to runtime/ as `RuntimeOptions.precision`.
 */
export function resolvePrecision(config: Pick<BundleConfig, 'name' | 'weights'>, asked: Precision | undefined): Exclude<Precision, 'auto'> {
  if (asked !== undefined && !PRECISIONS.includes(asked)) {
    throw new BridgeTowerError('E_USAGE', `precision must be one of ${PRECISIONS.join(', ')}, got '${String(asked)}'`, { precision: asked });
  }
  const own = PRECISION_OF_DTYPE[config.weights.dtype];
  if (asked === undefined || asked === 'auto' || asked === own) return own;
  throw new BridgeTowerError(
    'E_USAGE',
    `bundle '${config.name}' has ${own} graphs only (its weights are ${config.weights.dtype}), not ${asked}: load it with precision '${own}' or 'auto', or convert the checkpoint again with --dtype ${asked === 'int8' ? 'fp32|fp16 (int8 needs a quantized bundle)' : asked}`,
    { precision: asked, available: [own] },
  );
}
