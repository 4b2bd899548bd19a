import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, stepScalars } from '../../train/optimizer/adamw.js';
import { ADAMW_ENGINES, defaultAdamWEngine, type AdamWEngine } from '../../train/optimizer/adamw-engines.js';
import { NativeAdamW } from '../../train/optimizer/adamw-native.js';
import { fusedReferenceAdamW } from '../helpers/exact-fma.js';
import { nativeAdamWMissing, nativeKernels } from '../helpers/native-adamw.js';
import { gradientScaleState, wideState, type State } from '../helpers/adamw-states.js';

/**
 * The native engine (train/optimizer/native/adamw.c) computes the graph of train/optimizer/adamw.ts
 * with each emulated FMA replaced by a real one: bit for bit a reference that rounds every FMA once
 * by exact integer arithmetic (test/helpers/exact-fma.ts), on every kernel this CPU runs, whatever
 * the threads, offsets and sizes. On data at gradient and moment scales it is also bit for bit the
 * graph engines' result (`ort`, hence `wasm` and `js`); the emulation is off only near and below
 * the float32 subnormals (and, rarely, by a double rounding), where native is the exact one.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CONSTANTS = { beta1: ADAMW_BETA1, beta2: ADAMW_BETA2, eps: ADAMW_EPS };

const copy = (s: State): State => ({ param: s.param.slice(), grad: s.grad, m: s.m.slice(), v: s.v.slice() });

async function run(update: AdamWEngine['update'], s: State, offset: number, size: number, lr: number, wd: number, t: number): Promise<State> {
  const out = copy(s);
  const { stepSize, decayAlpha } = stepScalars(lr, wd, t);
  await update(out.param, out.grad, out.m, out.v, offset, size, stepSize, decayAlpha);
  return out;
}

function reference(s: State, offset: number, size: number, lr: number, wd: number, t: number): State {
  const out = copy(s);
  const { stepSize, decayAlpha } = stepScalars(lr, wd, t);
  fusedReferenceAdamW(out.param, out.grad, out.m, out.v, offset, size, stepSize, decayAlpha, CONSTANTS);
  return out;
}

/** A native engine's update, bound. */
function nativeUpdate(options: Parameters<typeof NativeAdamW.open>[0] = {}): AdamWEngine['update'] {
  const engine = NativeAdamW.open(options);
  return engine.update.bind(engine);
}

const differing = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);

function assertSame(got: State, expected: State, what: string): void {
  for (const buffer of ['param', 'm', 'v'] as const) assert.equal(differing(got[buffer], expected[buffer]), 0, `${what}: ${buffer} differs`);
}

const CASES = [[1e-3, 0.01, 1], [5e-2, 0, 7], [1e-5, 0.05, 1000], [1e-1, 0.01, 2]] as const;

describe('native AdamW engine', () => {
  for (const kernel of nativeKernels().length ? nativeKernels() : ['(not built)']) {
    it(`rounds each FMA once, bit for bit the exact reference, from 1e-42 (subnormals) to 1e3 (${kernel} kernel)`, (t) => {
      if (nativeAdamWMissing(t)) return;
      const n = 40_009;
      const offset = 3;
      const size = n - 10;
      for (const [lr, wd, step] of CASES) {
        const s = wideState(n, step);
        const engine = NativeAdamW.open({ kernel, threads: 1 });
        const got = copy(s);
        const { stepSize, decayAlpha } = stepScalars(lr, wd, step);
        engine.update(got.param, got.grad, got.m, got.v, offset, size, stepSize, decayAlpha);
        assertSame(got, reference(s, offset, size, lr, wd, step), `${kernel}, lr ${lr}, wd ${wd}, step ${step}`);
      }
    });
  }

  for (const [lr, wd, step] of CASES) {
    it(`agrees bit for bit with the ONNX Runtime graph engine at gradient scale, zeros included (lr ${lr}, weight decay ${wd}, step ${step})`, async (t) => {
      if (nativeAdamWMissing(t)) return;
      const n = 300_007;
      const s = gradientScaleState(n, 100 + step);
      const offset = 5;
      const size = n - 11;
      const ort = await ADAMW_ENGINES.ort.open({});
      const native = await ADAMW_ENGINES.native.open({});
      try {
        const expected = await run(ort.update, s, offset, size, lr, wd, step);
        assert.ok(differing(expected.param, s.param) > size / 2, 'the update moves the parameters');
        assertSame(await run(native.update, s, offset, size, lr, wd, step), expected, 'native vs ort');
      } finally {
        await Promise.all([ort.release(), native.release()]);
      }
    });
  }

  it('on the wide range differs from the graph engines only where the emulated FMA is not correctly rounded', async (t) => {
    if (nativeAdamWMissing(t)) return;
    const n = 40_009;
    const s = wideState(n, 1);
    const ort = await ADAMW_ENGINES.ort.open({});
    try {
      const graph = await run(ort.update, s, 0, n, 1e-3, 0.01, 1);
      const native = await run(nativeUpdate(), s, 0, n, 1e-3, 0.01, 1);
      const exact = reference(s, 0, n, 1e-3, 0.01, 1);
      assertSame(native, exact, 'native vs exact');
      // Where native and the graph part, the graph is the one that is not the exact result.
      let parted = 0;
      for (let i = 0; i < n; i++) {
        if (Object.is(graph.m[i], native.m[i])) continue;
        parted++;
        assert.notEqual(graph.m[i], exact.m[i]);
      }
      t.diagnostic(`m differs in ${parted}/${n} elements of the wide range (all where the emulation is inexact)`);
      assert.ok(parted > 0, 'the wide range reaches the subnormals, where the emulation is inexact');
    } finally {
      await ort.release();
    }
  });

  it('stays finite where the emulation overflows (4097·x past ~8e34), and an infinite gradient makes m infinite, not NaN', async (t) => {
    if (nativeAdamWMissing(t)) return;
    // A parameter of 1e35 (its decay FMA overflows 4097·p), a gradient of 1e35 (4097·g overflows; g² overflows v to inf).
    const s = { param: Float32Array.of(1e35, 0.5), grad: Float32Array.of(1e-3, 1e35), m: new Float32Array(2), v: new Float32Array(2) };
    const native = await run(nativeUpdate(), s, 0, 2, 1e-3, 0.01, 1);
    assertSame(native, reference(s, 0, 2, 1e-3, 0.01, 1), 'native vs exact');
    assert.ok(Number.isFinite(native.param[0]) && Number.isFinite(native.param[1]) && native.v[1] === Infinity);
    const ort = await ADAMW_ENGINES.ort.open({});
    try {
      const graph = await run(ort.update, s, 0, 2, 1e-3, 0.01, 1);
      assert.ok(Number.isNaN(graph.param[0]) && Number.isNaN(graph.param[1]), 'the emulation gives NaN there (docs/fine-tune.md, "AdamW engines")');
    } finally {
      await ort.release();
    }
    // fl(inf · (1 − β1) + 0) = inf: m keeps the infinity; v and then the parameter are what IEEE makes of it.
    const infinite = await run(nativeUpdate(), { param: Float32Array.of(0.5), grad: Float32Array.of(Infinity), m: new Float32Array(1), v: new Float32Array(1) }, 0, 1, 1e-3, 0.01, 1);
    assert.equal(infinite.m[0], Infinity);
    assert.equal(infinite.v[0], Infinity);
  });

  it('splitting the range over threads changes nothing, and every kernel gives the same bits', async (t) => {
    if (nativeAdamWMissing(t)) return;
    // Large enough that 7 threads each get more than the addon's 65,536-element minimum.
    const n = (1 << 19) * 2 + 13;
    const s = gradientScaleState(n, 7);
    const single = await run(nativeUpdate({ threads: 1 }), s, 1, n - 2, 1e-3, 0.01, 3);
    for (const kernel of nativeKernels()) {
      for (const threads of [1, 2, 3, 7]) {
        assertSame(await run(nativeUpdate({ threads, kernel }), s, 1, n - 2, 1e-3, 0.01, 3), single, `${kernel} on ${threads} threads`);
      }
    }
  });

  it('updates exactly [offset, offset + size) for every small size and offset (partial vectors, misaligned starts)', (t) => {
    if (nativeAdamWMissing(t)) return;
    const n = 64;
    const s = wideState(n, 11);
    for (const kernel of nativeKernels()) {
      const engine = NativeAdamW.open({ kernel });
      for (let offset = 0; offset <= 17; offset++) {
        for (let size = 0; offset + size <= Math.min(n, offset + 40); size++) {
          const got = copy(s);
          const { stepSize, decayAlpha } = stepScalars(1e-3, 0.01, 1);
          engine.update(got.param, got.grad, got.m, got.v, offset, size, stepSize, decayAlpha);
          assertSame(got, reference(s, offset, size, 1e-3, 0.01, 1), `${kernel}, offset ${offset}, size ${size}`);
        }
      }
    }
  });

  it('refuses buffers that are not Float32Arrays or too short for the range, and kernels this CPU lacks', (t) => {
    if (nativeAdamWMissing(t)) return;
    const engine = NativeAdamW.open();
    const b = () => new Float32Array(8);
    assert.throws(() => engine.update(b(), b(), b(), b(), 4, 5, 0.1, 0), /has 8 elements; the range needs 9/);
    assert.throws(() => engine.update(b(), new Float64Array(8) as unknown as Float32Array, b(), b(), 0, 8, 0.1, 0), /grad must be a Float32Array/);
    assert.throws(() => engine.update(b(), b(), b(), b(), -1, 2, 0.1, 0), /offset must be a non-negative integer/);
    // An offset near 2^53 with a size that would wrap a sum around is refused, not wrapped.
    assert.throws(() => engine.update(b(), b(), b(), b(), 2 ** 53 - 2, 4, 0.1, 0), /the range needs/);
    assert.throws(() => engine.update(b(), b(), b(), b(), 1.5, 2, 0.1, 0), /offset must be a non-negative integer/);
    assert.throws(() => NativeAdamW.open({ kernel: 'sse9' }), (error: Error & { code?: string }) => error.code === 'E_USAGE' && /does not run on this CPU/.test(error.message));
  });

  it('without the addon the default is wasm, with a warning that says how to build it', () => {
    const script = "import { defaultAdamWEngine } from './train/optimizer/adamw-engines.ts'; console.log(JSON.stringify(defaultAdamWEngine()));";
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, BRIDGETOWER_ADAMW_ADDON: join(ROOT, 'no-such-addon.node') } });
    const chosen = JSON.parse(out) as { name: string; fallback?: string };
    assert.equal(chosen.name, 'wasm');
    assert.match(chosen.fallback ?? '', /not built \(no .*no-such-addon\.node\).*npm run build:native/);
  });

  it('is the default engine once built', (t) => {
    if (nativeAdamWMissing(t)) return;
    assert.deepEqual(defaultAdamWEngine(), { name: 'native' });
  });
});
