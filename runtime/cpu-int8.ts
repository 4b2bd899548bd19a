import { readFileSync } from 'node:fs';
import { BridgeTowerError } from '../common/errors.js';

/** The two weight sets an int8 variant can have: signed (the default) and unsigned (config `u8`). */
export type Int8Weights = 's8' | 'u8';

/** The environment variable that overrides the CPU-flag choice of the int8 weight set. */
export const INT8_WEIGHTS_ENV = 'BRIDGETOWER_INT8_WEIGHTS';

/**
 * The CPU flags (as /proc/cpuinfo names them) under which ONNX Runtime's integer MatMul kernels
 * compute u8×s8 products exactly: AVX-512-VNNI and AVX-VNNI accumulate each product in 32 bits.
 * Without them, x86 falls back to AVX2's `vpmaddubsw`, which adds pairs of u8×s8 products into a
 * saturating int16: two large products overflow it, silently. u8×u8 weights avoid that path.
 */
export const EXACT_INT8_FLAGS = ['avx512_vnni', 'avx_vnni'] as const;

export interface Int8WeightChoice {
  weights: Int8Weights;
  /** Why: which flag, the override, or why the flags could not be read; logged at session start. */
  reason: string;
  /** s8 weights on an x86 CPU without VNNI (no u8 set to take instead): products may saturate; said as a warning. */
  maySaturate?: true;
}

/** The flags of the first processor in /proc/cpuinfo; undefined where there is no such file (not Linux). */
export function readCpuFlags(path = '/proc/cpuinfo'): Set<string> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  // x86 says "flags", ARM "Features"; the first processor's line speaks for all of them.
  const line = text.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  return new Set(line ? line.slice(line.indexOf(':') + 1).trim().split(/\s+/) : []);
}

/** What the choice reads of the CPU: its flags (undefined: unreadable) and Node's `process.arch`. */
export interface CpuFacts {
  flags: Set<string> | undefined;
  arch: string;
}

export function thisCpu(): CpuFacts {
  return { flags: readCpuFlags(), arch: process.arch };
}

/**
 * Which int8 weight set to open: the override (`BRIDGETOWER_INT8_WEIGHTS=s8|u8`) when set, else
 * s8 where the CPU multiplies exactly (a VNNI flag, or not x86 at all: the saturating AVX2 path is
 * x86's), else u8. `hasU8` is whether the variant ships the u8 set: without it s8 is the only
 * choice, said in the reason, and an explicit `u8` is refused.
 */
export function chooseInt8Weights(hasU8: boolean, env: NodeJS.ProcessEnv = process.env, cpu: CpuFacts = thisCpu()): Int8WeightChoice {
  const { flags, arch } = cpu;
  const override = env[INT8_WEIGHTS_ENV];
  if (override !== undefined && override !== '') {
    if (override !== 's8' && override !== 'u8') {
      throw new BridgeTowerError('E_USAGE', `${INT8_WEIGHTS_ENV} must be s8 or u8, got '${override}'; unset it to choose by the CPU's flags`, { [INT8_WEIGHTS_ENV]: override });
    }
    if (override === 'u8' && !hasU8) {
      throw new BridgeTowerError(
        'E_USAGE',
        `${INT8_WEIGHTS_ENV}=u8, but this bundle's int8 variant has no u8 weight set: convert it again with --variants including int8 (it writes onnx/int8-u8/), or unset ${INT8_WEIGHTS_ENV}`,
        { [INT8_WEIGHTS_ENV]: override },
      );
    }
    return { weights: override, reason: `${INT8_WEIGHTS_ENV}=${override}` };
  }
  if (arch !== 'x64' && arch !== 'ia32') return { weights: 's8', reason: `${arch} CPU (the saturating u8×s8 kernel is x86 AVX2's)` };
  if (!flags) return { weights: hasU8 ? 'u8' : 's8', reason: `CPU flags unknown (no /proc/cpuinfo)${hasU8 ? ', u8 is the safe choice' : '; the bundle has no u8 set'}` };
  const exact = EXACT_INT8_FLAGS.find((flag) => flags.has(flag));
  if (exact) return { weights: 's8', reason: `the CPU has ${exact}` };
  if (!hasU8) return { weights: 's8', maySaturate: true, reason: `the CPU has neither ${EXACT_INT8_FLAGS.join(' nor ')}, and the bundle has no u8 set: u8×s8 products may saturate (convert again with --variants including int8 for the u8 set)` };
  return { weights: 'u8', reason: `the CPU has neither ${EXACT_INT8_FLAGS.join(' nor ')} (AVX2's u8×s8 kernel can saturate)` };
}
