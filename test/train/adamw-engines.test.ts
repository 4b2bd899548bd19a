import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stepScalars } from '../../train/optimizer/adamw.js';
import { ADAMW_ENGINE_NAMES, ADAMW_ENGINES, type AdamWEngine } from '../../train/optimizer/adamw-engines.js';
import { wideState, type State } from '../helpers/adamw-states.js';
import { nativeAdamWAbsence } from '../helpers/native-adamw.js';
import { SeededRandom } from '../helpers/seeded-random.js';

/**
 * Every AdamW engine — `native` too — computes the graph of train/optimizer/adamw.ts bit for bit: the
 * same random parameters, gradients and moments give identical param, m and v (every bit, except
 * that NaNs are only NaN: see `differing`), at sizes that leave partial vectors and partial chunks, in a range that starts
 * mid-buffer. Two data sets: magnitudes from 1e-42 (float32 subnormals) to 1e3, where the FMA
 * emulation's error terms matter, and special values (past ~8e34, where 4097·x overflows and the
 * emulation gives NaN; infinities; NaN; signed zeros; the largest and smallest floats).
 */

/** Special values mixed into a wide-range state, a third of the elements of each buffer. */
function specialState(n: number, seed: number): State {
  const s = wideState(n, seed);
  const random = new SeededRandom(seed + 1000);
  const specials = [1e35, -3e36, 3.4e38, -Infinity, Infinity, NaN, 0, -0, 1.4e-45, -1e-40, 8e34, 1e-20];
  const pick = () => specials[Math.floor(random.next() * specials.length)]!;
  for (const buffer of [s.param, s.grad, s.m, s.v]) {
    for (let i = 0; i < n; i++) if (random.next() < 1 / 3) buffer[i] = buffer === s.v ? Math.abs(pick()) : pick();
  }
  return s;
}

const DATA = { 'wide range 1e-42 … 1e3': wideState, 'special values (overflow, inf, NaN, ±0)': specialState } as const;

async function run(engine: AdamWEngine, s: State, offset: number, size: number, lr: number, wd: number, t: number) {
  const out = { param: s.param.slice(), m: s.m.slice(), v: s.v.slice() };
  const { stepSize, decayAlpha } = stepScalars(lr, wd, t);
  await engine.update(out.param, s.grad, out.m, out.v, offset, size, stepSize, decayAlpha);
  return out;
}

/**
 * Elements that differ: every bit of a number (−0 is not 0), but any NaN equals any NaN. IEEE 754
 * leaves a NaN's sign and payload to the implementation, and they hang on which operand of a
 * commutative add or multiply the compiler puts first: `wasm` and `ort` already give NaNs of
 * opposite signs on the special values, so no engine can match both there.
 */
const differing = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);

describe('AdamW engines', () => {
  for (const [data, draw] of Object.entries(DATA)) {
    for (const [lr, wd, t] of [[1e-3, 0.01, 1], [5e-2, 0, 7], [1e-5, 0.05, 1000]] as const) {
      it(`agree bit for bit with the ONNX Runtime reference on ${data} (lr ${lr}, weight decay ${wd}, step ${t})`, async (test) => {
        const n = 300_007;
        const s = draw(n, t);
        const offset = 5;
        const size = n - 11;
        const absence = nativeAdamWAbsence();
        if (absence) test.diagnostic(`native not compared: ${absence}`);
        const reference = await ADAMW_ENGINES.ort.open({});
        try {
          const expected = await run(reference, s, offset, size, lr, wd, t);
          // Outside the range nothing moves.
          assert.equal(expected.param[offset - 1], s.param[offset - 1]);
          assert.equal(expected.m[offset + size], s.m[offset + size]);
          assert.ok(differing(expected.param, s.param) > size / 2, 'the update moves the parameters');
          for (const name of ADAMW_ENGINE_NAMES.filter((engine) => engine !== 'ort' && !(engine === 'native' && absence))) {
            for (const chunk of [undefined, 4099]) {
              const engine = await ADAMW_ENGINES[name].open(chunk ? { chunk } : {});
              const got = await run(engine, s, offset, size, lr, wd, t);
              await engine.release();
              for (const buffer of ['param', 'm', 'v'] as const) {
                assert.equal(differing(got[buffer], expected[buffer]), 0, `${name}${chunk ? ` (chunks of ${chunk})` : ''}: ${buffer} differs`);
              }
            }
          }
        } finally {
          await reference.release();
        }
      });
    }
  }

  it('the emulation gives NaN where 4097·x overflows (what the special values test)', async () => {
    // 4097·1e35 overflows: the emulation gives NaN where a correctly rounded FMA would not.
    const engine = await ADAMW_ENGINES.ort.open({});
    try {
      const s = { param: Float32Array.of(1e35, 0.5), grad: Float32Array.of(1e-3, 1e35), m: new Float32Array(2), v: new Float32Array(2) };
      const out = await run(engine, s, 0, 2, 1e-3, 0.01, 1);
      // fl(4097 · 1e35) = inf, and inf − inf in the split is NaN: the decay of p (index 0) and m, v of g (index 1).
      assert.ok(Number.isNaN(out.param[0]) && Number.isNaN(out.param[1]) && Number.isNaN(out.m[1]) && Number.isNaN(out.v[1]));
    } finally {
      await engine.release();
    }
  });
});
