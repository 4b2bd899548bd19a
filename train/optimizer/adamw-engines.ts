import ort from 'onnxruntime-node';
import { openSession, reportCudaFallback, type RuntimeOptions } from '../../runtime/session.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { buildAdamWGraph } from './adamw.js';
import { jsAdamW } from './adamw-js.js';
import { WasmAdamW } from './adamw-wasm.js';
import { BUILD_NATIVE_HINT, loadNativeAdamW, NativeAdamW } from './adamw-native.js';

/**
 * The ways to run one AdamW update over a range of the flat buffers. `ort`, `wasm` and `js` compute
 * the graph of train/optimizer/adamw.ts operation for operation, so they agree bit for bit
 * (test/train/adamw-engines.test.ts); `ort` is the reference the graph defines. `native` computes
 * the same graph with real fused multiply-adds where the graph emulates them (upstream PyTorch's
 * arithmetic): equal to the others except where the emulation is not correctly rounded — products
 * below ~1e-34, values past ~8e34 or infinite, rare double roundings (none in 3 × 30 M gradient-scale
 * updates, bench/adamw-agreement.ts); test/train/adamw-native.test.ts, docs/fine-tune.md. It is
 * the default when its addon is built, else `wasm` (docs/PERFORMANCE.md, "AdamW update").
 */
export interface AdamWEngine {
  /** Updates `[offset, offset + size)` of param, m and v in place from grad. */
  update(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, stepSize: number, decayAlpha: number): Promise<void> | void;
  release(): Promise<void>;
}

export type EngineOptions = Pick<RuntimeOptions, 'device' | 'threads' | 'warn'> & {
  /** Elements per kernel call or graph run (each engine has its own default; `native` has no chunks). */
  chunk?: number;
  /** The native engine's kernel (default: the best this CPU runs; tests compare them). */
  nativeKernel?: string;
};

/**
 * Elements per run of the AdamW graph. ONNX Runtime keeps a few dozen intermediates of the run's
 * size alive (the exact-FMA emulation), so one run over BASE's ~210 M-element backbone group would
 * need tens of GB; 4 M elements bound it to a few hundred MB. The update is elementwise, so
 * chunking changes nothing in the result.
 */
export const ADAMW_CHUNK = 1 << 22;

/**
 * How an engine computes the graph's three fl(a·c + x): `emulated` as the graph writes it
 * (Veltkamp/Dekker + two-sum, all engines of this kind agree bit for bit), `fused` with a real FMA
 * rounded once (upstream PyTorch's arithmetic; differs from `emulated` where that is inexact).
 */
export type FmaKind = 'emulated' | 'fused';

export const ADAMW_ENGINES = {
  native: {
    fma: 'fused',
    description: 'the C addon (npm run build:native): AVX-512F / AVX2 + FMA in place on every core, real FMAs (default when built)',
    open: async (options: EngineOptions): Promise<AdamWEngine> => {
      const kernel = NativeAdamW.open({ ...(options.threads ? { threads: options.threads } : {}), ...(options.nativeKernel ? { kernel: options.nativeKernel } : {}) });
      return { update: (...a) => kernel.update(...a), release: async () => {} };
    },
  },
  wasm: {
    fma: 'emulated',
    description: 'WebAssembly SIMD kernel over an L2-sized scratch memory, one pass per element, one core (default without the addon)',
    open: async (options: EngineOptions): Promise<AdamWEngine> => {
      const kernel = WasmAdamW.open(options.chunk ? { chunk: options.chunk } : {});
      return { update: (...a) => kernel.update(...a), release: async () => {} };
    },
  },
  js: {
    fma: 'emulated',
    description: 'a plain typed-array loop, one element at a time (Math.fround after every operation)',
    open: async (): Promise<AdamWEngine> => ({ update: jsAdamW, release: async () => {} }),
  },
  ort: {
    fma: 'emulated',
    description: 'the AdamW ONNX graph run by ONNX Runtime in chunks (the reference; follows --device)',
    open: async (options: EngineOptions): Promise<AdamWEngine> => {
      const opened = await openSession(serializeModel(buildAdamWGraph()), options);
      if (opened.fallbackReason) reportCudaFallback('the AdamW graph', opened.fallbackReason, options.warn);
      const session = opened.session;
      const chunk = options.chunk ?? ADAMW_CHUNK;
      return {
        async update(param, grad, m, v, offset, size, stepSize, decayAlpha) {
          const scalars = {
            step_size: new ort.Tensor('float32', Float32Array.of(stepSize), [1]),
            decay_alpha: new ort.Tensor('float32', Float32Array.of(decayAlpha), [1]),
          };
          const end = offset + size;
          for (let at = offset; at < end; at += chunk) {
            const n = Math.min(chunk, end - at);
            const slice = (buffer: Float32Array) => new ort.Tensor('float32', buffer.subarray(at, at + n), [n]);
            const out = await session.run({ param: slice(param), grad: slice(grad), m: slice(m), v: slice(v), ...scalars });
            param.set(out.param_out!.data as Float32Array, at);
            m.set(out.m_out!.data as Float32Array, at);
            v.set(out.v_out!.data as Float32Array, at);
          }
        },
        release: () => session.release(),
      };
    },
  },
} as const satisfies Record<string, { fma: FmaKind; description: string; open: (options: EngineOptions) => Promise<AdamWEngine> }>;

export type AdamWEngineName = keyof typeof ADAMW_ENGINES;

/**
 * The engine used when none is asked for: `native` when its addon loads, else `wasm` with the
 * reason and what to do (the trainer shows it once as a warning).
 */
export function defaultAdamWEngine(): { name: AdamWEngineName; fallback?: string } {
  const load = loadNativeAdamW();
  if (!('reason' in load)) return { name: 'native' };
  return { name: 'wasm', fallback: `AdamW runs on the wasm engine, about 3× slower than the native one over BASE (docs/PERFORMANCE.md): ${load.reason}; ${BUILD_NATIVE_HINT}` };
}
export const ADAMW_ENGINE_NAMES = Object.keys(ADAMW_ENGINES) as AdamWEngineName[];
