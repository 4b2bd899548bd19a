import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { BridgeTowerError } from '../../common/errors.js';
import { ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS } from './adamw.js';

/**
 * The native AdamW engine: train/optimizer/native/adamw.c, built by node-gyp (binding.gyp) into
 * build/Release on `npm ci` or `npm run build:native`. It computes the graph of adamw.ts operation for
 * operation — its emulated fused multiply-adds included, no FMA instruction — so it is bit for bit the
 * `ort` and `wasm` engines (and the stored upstream steps), in place on the callers' buffers,
 * vectorized (AVX-512F or AVX2, chosen at run time) and over several threads.
 * A failed or skipped compile is not an error: the engine table then defaults to `wasm`.
 */

/** The addon's exports (adamw.c, `NAPI_MODULE_INIT`). */
interface NativeAddon {
  update(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, scalars: Float32Array, threads: number, kernel?: string): void;
  kernels(): string[];
}

const ADDON = 'bridgetower_adamw.node';
/** build/Release beside package.json: from train/optimizer/ when run from source, from dist/train/optimizer/ when built. */
const CANDIDATES = ['../../build/Release/', '../../../build/Release/'].map((dir) => fileURLToPath(new URL(dir + ADDON, import.meta.url)));

export const BUILD_NATIVE_HINT = 'build it with `npm run build:native` (needs python3, make and a C compiler; docs/fine-tune.md, "AdamW engines")';

export type NativeLoad = { addon: NativeAddon; path: string; kernels: string[] } | { reason: string };
let loaded: NativeLoad | undefined;

/** Loads the addon once; `reason` says why it is not there. */
export function loadNativeAdamW(): NativeLoad {
  if (loaded) return loaded;
  // BRIDGETOWER_ADAMW_ADDON names another build of the addon (or, in tests, none).
  const candidates = process.env.BRIDGETOWER_ADAMW_ADDON ? [process.env.BRIDGETOWER_ADAMW_ADDON] : CANDIDATES;
  const path = candidates.find((candidate) => existsSync(candidate));
  if (!path) {
    loaded = { reason: `the native AdamW addon is not built (no ${candidates[0]})` };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    loaded = { addon, path, kernels: addon.kernels() };
  } catch (error) {
    loaded = { reason: `the native AdamW addon ${path} does not load (${(error as Error).message.split('\n')[0]})` };
  }
  return loaded;
}

const f = Math.fround;

/** One AdamW pass over a range of four float32 buffers, in place, on `threads` threads. */
export class NativeAdamW {
  private constructor(
    private readonly addon: NativeAddon,
    readonly threads: number,
    /** The kernel used: one of `kernels` (the best this CPU runs unless asked). */
    readonly kernel: string,
    private readonly constants: readonly number[],
  ) {}

  static open(options: { threads?: number; kernel?: string; beta1?: number; beta2?: number; eps?: number } = {}): NativeAdamW {
    const load = loadNativeAdamW();
    if ('reason' in load) throw new BridgeTowerError('E_USAGE', `--adamw-engine native: ${load.reason}; ${BUILD_NATIVE_HINT}, or use --adamw-engine wasm`);
    const kernel = options.kernel ?? load.kernels[0]!;
    if (!load.kernels.includes(kernel)) throw new BridgeTowerError('E_USAGE', `native AdamW kernel '${kernel}' does not run on this CPU; it runs ${load.kernels.join(', ')}`);
    const threads = options.threads ?? availableParallelism();
    if (!(Number.isInteger(threads) && threads >= 1)) throw new BridgeTowerError('E_USAGE', `native AdamW threads must be a positive integer, got ${threads}`);
    const beta1 = options.beta1 ?? ADAMW_BETA1;
    const beta2 = options.beta2 ?? ADAMW_BETA2;
    // The graph's constants, rounded to float32 as its initializers are (b.scalar), in adamw.c's `Scalars` order.
    const constants = [f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(options.eps ?? ADAMW_EPS)];
    return new NativeAdamW(load.addon, threads, kernel, constants);
  }

  /** Updates `[offset, offset + size)` of param, m and v from grad. */
  update(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, stepSize: number, decayAlpha: number): void {
    // The graph negates the float32 step size (Neg), then multiplies.
    const scalars = Float32Array.of(...this.constants, -f(stepSize), f(decayAlpha));
    this.addon.update(param, grad, m, v, offset, size, scalars, this.threads, this.kernel);
  }
}
