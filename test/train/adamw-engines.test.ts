import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stepScalars } from '../../train/optimizer/adamw.js';
import { ADAMW_ENGINE_NAMES, ADAMW_ENGINES, type AdamWEngine } from '../../train/optimizer/adamw-engines.js';
import { SeededRandom } from '../helpers/seeded-random.js';

/**
 * Every AdamW engine that emulates the graph's FMAs computes the graph of train/optimizer/adamw.ts bit for bit: the same random
 * parameters, gradients and moments — magnitudes from 1e-42 (float32 subnormals) to 1e3, where the FMA emulation's
 * error terms matter — give identical param, m and v, at sizes that leave partial vectors and
 * partial chunks, in a range that starts mid-buffer. The `native` engine rounds its FMAs once instead,
 * which differs in the subnormals: test/train/adamw-native.test.ts holds it to its own reference.
 */

function state(n: number, seed: number) {
  const random = new SeededRandom(seed);
  const next = () => random.next();
  // Down to float32 subnormals (below 1.2e-38): neither engine may flush them to zero.
  const value = () => (next() - 0.5) * 10 ** (next() * 45 - 42);
  const param = Float32Array.from({ length: n }, value);
  const grad = Float32Array.from({ length: n }, value);
  const m = Float32Array.from({ length: n }, value);
  const v = Float32Array.from({ length: n }, () => value() ** 2);
  return { param, grad, m, v };
}

async function run(engine: AdamWEngine, s: ReturnType<typeof state>, offset: number, size: number, lr: number, wd: number, t: number) {
  const out = { param: s.param.slice(), m: s.m.slice(), v: s.v.slice() };
  const { stepSize, decayAlpha } = stepScalars(lr, wd, t);
  await engine.update(out.param, s.grad, out.m, out.v, offset, size, stepSize, decayAlpha);
  return out;
}

const differing = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);

describe('AdamW engines', () => {
  for (const [lr, wd, t] of [[1e-3, 0.01, 1], [5e-2, 0, 7], [1e-5, 0.05, 1000]] as const) {
    it(`agree bit for bit with the ONNX Runtime reference (lr ${lr}, weight decay ${wd}, step ${t})`, async () => {
      const n = 300_007;
      const s = state(n, t);
      const offset = 5;
      const size = n - 11;
      const reference = await ADAMW_ENGINES.ort.open({});
      try {
        const expected = await run(reference, s, offset, size, lr, wd, t);
        // Outside the range nothing moves.
        assert.equal(expected.param[offset - 1], s.param[offset - 1]);
        assert.equal(expected.m[offset + size], s.m[offset + size]);
        assert.ok(differing(expected.param, s.param) > size / 2, 'the update moves the parameters');
        for (const name of ADAMW_ENGINE_NAMES.filter((engine) => ADAMW_ENGINES[engine].fma === 'emulated')) {
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
});
