import { ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS } from './adamw.js';
import { adamWStep, type FloatOps } from './adamw-step.js';
import { FunctionBuilder, moduleBytes, TYPE, type V } from './wasm-simd.js';

/**
 * The AdamW graph of train/optimizer/adamw.ts as one WebAssembly SIMD (f32x4) pass: the same
 * float32 operations in the same order (both are built from adamw-step.ts) — the Veltkamp/Dekker
 * FMA emulation included — so the
 * result is bit for bit the ONNX Runtime engine's (test/train/adamw-engines.test.ts, and the
 * stored upstream steps). WebAssembly's f32x4 add/sub/mul/div/sqrt are IEEE single precision,
 * correctly rounded, and the MVP SIMD set has no fused multiply-add a compiler could contract to.
 *
 * The buffers of BASE (4 × 340 M floats) do not fit a 32-bit memory, so the kernel works on a
 * small scratch memory that stays in the L2 cache: each chunk is copied in (param, grad, m, v),
 * updated, copied out (param, m, v). DRAM then sees the minimum traffic of the update (4 reads,
 * 3 writes per element); the copies hit cache.
 */

/** Elements per chunk: 4 buffers × 16 K floats = 256 KiB of scratch, inside a core's L2. */
export const WASM_CHUNK = 1 << 14;

/** The kernel's parameters, in WebAssembly's numbering. */
const P = { param: 0, grad: 1, m: 2, v: 3, count: 4, stepSize: 5, decayAlpha: 6 } as const;

function buildKernel(beta1: number, beta2: number, eps: number): Uint8Array {
  const f = new FunctionBuilder([TYPE.i32, TYPE.i32, TYPE.i32, TYPE.i32, TYPE.i32, TYPE.f32, TYPE.f32]);
  // The graph's constants, rounded to float32 as its initializers are (b.scalar).
  const constants = {
    beta1: f.splatConst(beta1),
    oneMinusBeta1: f.splatConst(1 - beta1),
    beta2: f.splatConst(beta2),
    oneMinusBeta2: f.splatConst(1 - beta2),
    eps: f.splatConst(eps),
    split: f.splatConst(4097),
  };
  const negStep = f.negSplat(P.stepSize);
  const decayAlpha = f.splat(P.decayAlpha);
  const ops: FloatOps<V> = { mul: (a, b) => f.op('mul', a, b), add: (a, b) => f.op('add', a, b), sub: (a, b) => f.op('sub', a, b), div: (a, b) => f.op('div', a, b), sqrt: (a) => f.sqrt(a) };

  f.loopOverVectors(P.count, (o) => {
    const inputs = { param: f.load(P.param, o), grad: f.load(P.grad, o), m: f.load(P.m, o), v: f.load(P.v, o), negStep, decayAlpha };
    const out = adamWStep(ops, constants, inputs);
    f.store(P.param, o, out.param).store(P.m, o, out.m).store(P.v, o, out.v);
  });
  return moduleBytes('adamw', f);
}

/**
 * The part of the WebAssembly JavaScript API used here: Node has it as a global, but the project's
 * TypeScript libs (ES2022, no DOM) do not declare it.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type Kernel = (param: number, grad: number, m: number, v: number, count: number, stepSize: number, decayAlpha: number) => void;

/** One chunked AdamW pass over a range of four float32 buffers, in place. */
export class WasmAdamW {
  private readonly scratch: Float32Array;

  private constructor(
    private readonly kernel: Kernel,
    memory: WasmMemory,
    private readonly chunk: number,
  ) {
    this.scratch = new Float32Array(memory.buffer, 0, 4 * chunk);
  }

  static open(options: { chunk?: number; beta1?: number; beta2?: number; eps?: number } = {}): WasmAdamW {
    // A multiple of 4 keeps every buffer's start 16-byte aligned.
    const chunk = Math.ceil((options.chunk ?? WASM_CHUNK) / 4) * 4;
    const memory = new wasm.Memory({ initial: Math.ceil((16 * chunk) / 65536) });
    const bytes = buildKernel(options.beta1 ?? ADAMW_BETA1, options.beta2 ?? ADAMW_BETA2, options.eps ?? ADAMW_EPS);
    const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
    return new WasmAdamW(instance.exports.adamw as Kernel, memory, chunk);
  }

  /** Updates `[offset, offset + size)` of param, m and v from grad. */
  update(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, stepSize: number, decayAlpha: number): void {
    const { chunk, scratch } = this;
    const bytes = 4 * chunk;
    const end = offset + size;
    for (let at = offset; at < end; at += chunk) {
      const n = Math.min(chunk, end - at);
      scratch.set(param.subarray(at, at + n), 0);
      scratch.set(grad.subarray(at, at + n), chunk);
      scratch.set(m.subarray(at, at + n), 2 * chunk);
      scratch.set(v.subarray(at, at + n), 3 * chunk);
      // Lanes past n (a partial last vector) compute on stale scratch and are not copied out.
      this.kernel(0, bytes, 2 * bytes, 3 * bytes, Math.ceil(n / 4) * 4, stepSize, decayAlpha);
      param.set(scratch.subarray(0, n), at);
      m.set(scratch.subarray(2 * chunk, 2 * chunk + n), at);
      v.set(scratch.subarray(3 * chunk, 3 * chunk + n), at);
    }
  }
}
