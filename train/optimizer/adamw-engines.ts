import ort from 'onnxruntime-node';
import { openSession, reportCudaFallback, type RuntimeOptions } from '../../runtime/session.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { buildAdamWGraph } from './adamw.js';
import { jsAdamW } from './adamw-js.js';
import { WasmAdamW } from './adamw-wasm.js';
import { BUILD_NATIVE_HINT, loadNativeAdamW, NativeAdamW } from './adamw-native.js';

/**
 * The ways to run one AdamW update over a range of the flat buffers. All compute the graph of
 * train/optimizer/adamw.ts operation for operation — the Veltkamp/Dekker FMA emulation included, in
 * the native C kernels too — so they agree bit for bit on all data (test/train/adamw-engines.test.ts);
 * `ort` is the reference the graph defines. `native` is the default when its addon is built, else
 * `wasm` (docs/PERFORMANCE.md, "AdamW update").
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

export const ADAMW_ENGINES = {
  native: {
    description: 'the C addon (npm run build:native): AVX-512F / AVX2 in place on every core (default when built)',
    open: async (options: EngineOptions): Promise<AdamWEngine> => {
      const kernel = NativeAdamW.open({ ...(options.threads ? { threads: options.threads } : {}), ...(options.nativeKernel ? { kernel: options.nativeKernel } : {}) });
      return { update: (...a) => kernel.update(...a), release: async () => {} };
    },
  },
  wasm: {
    description: 'WebAssembly SIMD kernel over an L2-sized scratch memory, one pass per element, one core (default without the addon)',
    open: async (options: EngineOptions): Promise<AdamWEngine> => {
      const kernel = WasmAdamW.open(options.chunk ? { chunk: options.chunk } : {});
      return { update: (...a) => kernel.update(...a), release: async () => {} };
    },
  },
  js: {
    description: 'a plain typed-array loop, one element at a time (Math.fround after every operation)',
    open: async (): Promise<AdamWEngine> => ({ update: jsAdamW, release: async () => {} }),
  },
  ort: {
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
} as const satisfies Record<string, { description: string; open: (options: EngineOptions) => Promise<AdamWEngine> }>;

export type AdamWEngineName = keyof typeof ADAMW_ENGINES;

/**
 * The engine used when none is asked for: `native` when its addon loads, else `wasm` with the
 * reason and what to do (the trainer shows it once as a warning).
 */
export function defaultAdamWEngine(): { name: AdamWEngineName; fallback?: string } {
  const load = loadNativeAdamW();
  if (!('reason' in load)) return { name: 'native' };
  return { name: 'wasm', fallback: `AdamW runs on the wasm engine, about 1.8× slower than the native one over BASE (docs/PERFORMANCE.md): ${load.reason}; ${BUILD_NATIVE_HINT}` };
}
export const ADAMW_ENGINE_NAMES = Object.keys(ADAMW_ENGINES) as AdamWEngineName[];
