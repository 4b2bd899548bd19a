import { BridgeTowerError } from '../common/errors.js';
import { readBundleConfig, type GraphPrecision } from '../bundle/config.js';
import { PRECISIONS, resolvePrecision, type Precision } from '../library/precision.js';
import type { Device } from '../runtime/session.js';

/**
 * `--precision`, one flag for every command that opens a bundle's graphs (serve, embed, evaluate,
 * predict, fill-mask, run-graph): which precision variant to run (library/precision.ts).
 */
export const PRECISION_OPTION = { precision: { type: 'string' } } as const;

/** The flag's usage line, aligned by the caller's `pad` (the column its descriptions start at). */
export function precisionUsage(pad: number): string {
  const flag = '  --precision fp32|int8|fp16|auto';
  return `${flag.padEnd(pad)} graph precision variant (default auto: int8 on cpu, fp16 on cuda, else what the bundle has; docs/precision.md)`;
}

/** The flag's value, checked (undefined: auto). */
export function precisionFlag(value: unknown): Precision {
  if (value === undefined) return 'auto';
  if (typeof value !== 'string' || !(PRECISIONS as readonly string[]).includes(value)) {
    throw new BridgeTowerError('E_USAGE', `--precision must be one of ${PRECISIONS.join(', ')}, got '${String(value)}'`, { flag: 'precision', value });
  }
  return value as Precision;
}

/**
 * The variant a command runs, 'auto' resolved for the device; a fallback from auto's first
 * preference is said on stderr (the commands print their results on stdout).
 */
export function commandPrecision(bundleDir: string, value: unknown, device: Device, say: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): GraphPrecision {
  const resolved = resolvePrecision(readBundleConfig(bundleDir), precisionFlag(value), device);
  if (resolved.fellBackFrom) say(`note: ${resolved.reason}`);
  return resolved.precision;
}
