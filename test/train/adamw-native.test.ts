import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { stepScalars } from '../../train/optimizer/adamw.js';
import { jsAdamW } from '../../train/optimizer/adamw-js.js';
import { defaultAdamWEngine, type AdamWEngine } from '../../train/optimizer/adamw-engines.js';
import { NativeAdamW } from '../../train/optimizer/adamw-native.js';
import { nativeAdamWMissing, nativeKernels } from '../helpers/native-adamw.js';
import { gradientScaleState, wideState, type State } from '../helpers/adamw-states.js';

/**
 * The native engine (train/optimizer/native/adamw.c) computes the graph of train/optimizer/adamw.ts
 * operation for operation, its FMA emulation included: on every kernel this CPU runs it equals the
 * `js` engine (a float32 statement of the graph, itself bit for bit `ort`:
 * test/train/adamw-engines.test.ts) on wide-range and special values, whatever the threads, offsets
 * and sizes.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

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
  jsAdamW(out.param, out.grad, out.m, out.v, offset, size, stepSize, decayAlpha);
  return out;
}

/** A native engine's update, bound. */
function nativeUpdate(options: Parameters<typeof NativeAdamW.open>[0] = {}): AdamWEngine['update'] {
  const engine = NativeAdamW.open(options);
  return engine.update.bind(engine);
}

/** Every eighth element of each buffer a value where the emulation overflows, an infinity, a NaN or a signed zero. */
function withSpecials(s: State): State {
  const specials = [1e35, -3e36, Infinity, -Infinity, NaN, -0, 0, 3.4e38];
  for (const buffer of [s.param, s.grad, s.m, s.v]) for (let i = 0; i < buffer.length; i += 8) buffer[i] = specials[(i / 8 + buffer.length) % specials.length]!;
  s.v.forEach((x, i) => (s.v[i] = Math.abs(x)));
  return s;
}

/** Any NaN equals any NaN (its sign and payload are the compiler's operand order: adamw-engines.test.ts); every other bit counts. */
const differing = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);

function assertSame(got: State, expected: State, what: string): void {
  for (const buffer of ['param', 'm', 'v'] as const) assert.equal(differing(got[buffer], expected[buffer]), 0, `${what}: ${buffer} differs`);
}

const CASES = [[1e-3, 0.01, 1], [5e-2, 0, 7], [1e-5, 0.05, 1000], [1e-1, 0.01, 2]] as const;

describe('native AdamW engine', () => {
  for (const kernel of nativeKernels().length ? nativeKernels() : ['(not built)']) {
    it(`is bit for bit the graph from 1e-42 (subnormals) to 1e3 and on special values (${kernel} kernel)`, (t) => {
      if (nativeAdamWMissing(t)) return;
      const n = 40_009;
      const offset = 3;
      const size = n - 10;
      for (const [lr, wd, step] of CASES) {
        const s = withSpecials(wideState(n, step));
        const engine = NativeAdamW.open({ kernel, threads: 1 });
        const got = copy(s);
        const { stepSize, decayAlpha } = stepScalars(lr, wd, step);
        engine.update(got.param, got.grad, got.m, got.v, offset, size, stepSize, decayAlpha);
        assertSame(got, reference(s, offset, size, lr, wd, step), `${kernel}, lr ${lr}, wd ${wd}, step ${step}`);
      }
    });
  }

  it('splitting the range over threads changes nothing, and every kernel gives the same bits', async (t) => {
    if (nativeAdamWMissing(t)) return;
    // Large enough that 7 threads each get more than the addon's 65,536-element minimum.
    const n = (1 << 19) * 2 + 13;
    const s = gradientScaleState(n, 7);
    const single = await run(nativeUpdate({ threads: 1 }), s, 1, n - 2, 1e-3, 0.01, 3);
    assertSame(single, reference(s, 1, n - 2, 1e-3, 0.01, 3), 'one thread vs the graph');
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
