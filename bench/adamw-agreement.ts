/**
 * How often the native engine (real FMAs) and the graph engines (emulated FMAs, `wasm` here)
 * disagree at gradient and moment scales: one AdamW update of `--millions` values drawn as
 * test/train/adamw-native.test.ts draws them (gradients ~N(0, σ), σ log-uniform in [1e-8, 1e-1],
 * zeros), per learning rate, counting differing elements of param, m and v. Each differing element
 * is checked against the exact-integer FMA reference: the native value must be it.
 *
 *   node --import tsx bench/adamw-agreement.ts                  # 30 M values, lr 1e-5, 1e-3, 1e-1
 *   node --import tsx bench/adamw-agreement.ts --millions 100
 */
import { parseArgs } from 'node:util';
import { BridgeTowerError } from '../common/errors.js';
import { ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, stepScalars } from '../train/optimizer/adamw.js';
import { ADAMW_ENGINES } from '../train/optimizer/adamw-engines.js';
import { fusedReferenceAdamW } from '../test/helpers/exact-fma.js';
import { gradientScaleState } from '../test/helpers/adamw-states.js';

const { values: args } = parseArgs({ options: { millions: { type: 'string', default: '30' }, seed: { type: 'string', default: '1' } } });
const total = Math.round(Number(args.millions) * 1e6);
if (!(total > 0)) throw new BridgeTowerError('E_USAGE', '--millions must be positive');
const state = gradientScaleState(total, Number(args.seed));
const native = await ADAMW_ENGINES.native.open({});
const wasm = await ADAMW_ENGINES.wasm.open({});
console.log(`native vs wasm, ${(total / 1e6).toFixed(0)} M gradient-scale values (seed ${args.seed})\n`);
console.log('| lr, weight decay, step | param differ | m differ | v differ | native = exact FMA there |\n| --- | --- | --- | --- | --- |');
for (const [lr, wd, t] of [[1e-5, 0.01, 1], [1e-3, 0.01, 10], [1e-1, 0.01, 1000]] as const) {
  const { stepSize, decayAlpha } = stepScalars(lr, wd, t);
  const outs = [0, 1].map(() => ({ param: state.param.slice(), m: state.m.slice(), v: state.v.slice() }));
  await native.update(outs[0]!.param, state.grad, outs[0]!.m, outs[0]!.v, 0, total, stepSize, decayAlpha);
  await wasm.update(outs[1]!.param, state.grad, outs[1]!.m, outs[1]!.v, 0, total, stepSize, decayAlpha);
  const counts = { param: 0, m: 0, v: 0 };
  let exact = true;
  for (let i = 0; i < total; i++) {
    let differs = false;
    for (const b of ['param', 'm', 'v'] as const) {
      if (Object.is(outs[0]![b][i], outs[1]![b][i])) continue;
      counts[b]++;
      differs = true;
    }
    if (!differs) continue;
    const one = { param: state.param.slice(i, i + 1), m: state.m.slice(i, i + 1), v: state.v.slice(i, i + 1) };
    fusedReferenceAdamW(one.param, state.grad.subarray(i, i + 1), one.m, one.v, 0, 1, stepSize, decayAlpha, { beta1: ADAMW_BETA1, beta2: ADAMW_BETA2, eps: ADAMW_EPS });
    exact &&= Object.is(one.param[0], outs[0]!.param[i]) && Object.is(one.m[0], outs[0]!.m[i]) && Object.is(one.v[0], outs[0]!.v[i]);
  }
  console.log(`| ${lr}, ${wd}, ${t} | ${counts.param} | ${counts.m} | ${counts.v} | ${exact ? 'yes' : 'NO'} |`);
}
