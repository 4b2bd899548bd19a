import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { chooseInt8Weights, EXACT_INT8_FLAGS, INT8_WEIGHTS_ENV, readCpuFlags } from '../../runtime/cpu-int8.js';
import { tempDir } from '../helpers/temp-dir.js';

const flags = (...names: string[]) => new Set(['fpu', 'sse2', 'avx2', ...names]);

describe('the int8 weight set follows the CPU: s8 where u8×s8 products are exact, u8 elsewhere', () => {
  // [flags, the variant has a u8 set, expected weights, reason pattern]
  const CASES: Array<[string, Set<string>, boolean, 's8' | 'u8', RegExp]> = [
    ['AVX-512-VNNI', flags('avx512f', 'avx512_vnni'), true, 's8', /avx512_vnni/],
    ['AVX-VNNI', flags('avx_vnni'), true, 's8', /avx_vnni/],
    ['AVX2 only', flags(), true, 'u8', /neither avx512_vnni nor avx_vnni.*saturate/],
    ['AVX2 only, no u8 set in the bundle (a warning)', flags(), false, 's8', /no u8 set.*may saturate/],
  ];
  for (const [name, cpu, hasU8, expected, reason] of CASES) {
    it(`${name} → ${expected}`, () => {
      const choice = chooseInt8Weights(hasU8, {}, { flags: cpu, arch: 'x64' });
      assert.equal(choice.weights, expected);
      assert.match(choice.reason, reason);
      assert.equal(choice.maySaturate === true, expected === 's8' && !EXACT_INT8_FLAGS.some((f) => cpu.has(f)));
    });
  }

  it('an ARM CPU keeps s8 (the saturating kernel is x86 AVX2’s)', () => {
    assert.equal(chooseInt8Weights(true, {}, { flags: new Set(['neon', 'asimd']), arch: 'arm64' }).weights, 's8');
  });

  it('unknown flags on x86 take the safe u8 set when there is one', () => {
    assert.equal(chooseInt8Weights(true, {}, { flags: undefined, arch: 'x64' }).weights, 'u8');
    assert.equal(chooseInt8Weights(false, {}, { flags: undefined, arch: 'x64' }).weights, 's8');
  });

  it(`${INT8_WEIGHTS_ENV} overrides the flags, both ways, and says so`, () => {
    assert.deepEqual(chooseInt8Weights(true, { [INT8_WEIGHTS_ENV]: 'u8' }, { flags: flags('avx512_vnni'), arch: 'x64' }), { weights: 'u8', reason: `${INT8_WEIGHTS_ENV}=u8` });
    assert.deepEqual(chooseInt8Weights(true, { [INT8_WEIGHTS_ENV]: 's8' }, { flags: flags(), arch: 'x64' }), { weights: 's8', reason: `${INT8_WEIGHTS_ENV}=s8` });
  });

  it(`a bad ${INT8_WEIGHTS_ENV}, or u8 without a u8 set, is a usage error saying what to do`, () => {
    const usage = (pattern: RegExp) => (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && pattern.test(e.message);
    assert.throws(() => chooseInt8Weights(true, { [INT8_WEIGHTS_ENV]: 'int4' }, { flags: flags(), arch: 'x64' }), usage(/must be s8 or u8, got 'int4'/));
    assert.throws(() => chooseInt8Weights(false, { [INT8_WEIGHTS_ENV]: 'u8' }, { flags: flags(), arch: 'x64' }), usage(/no u8 weight set.*--variants/));
  });
});

describe('readCpuFlags', () => {
  it("reads the first processor's flags line (x86) or Features line (ARM)", (t) => {
    const dir = tempDir(t);
    const x86 = join(dir, 'x86');
    writeFileSync(x86, 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n');
    assert.deepEqual([...readCpuFlags(x86)!], ['fpu', 'avx2', 'avx512_vnni']);
    const arm = join(dir, 'arm');
    writeFileSync(arm, 'processor\t: 0\nFeatures\t: fp asimd\n');
    assert.deepEqual([...readCpuFlags(arm)!], ['fp', 'asimd']);
  });

  it('answers undefined where there is no /proc/cpuinfo', (t) => {
    assert.equal(readCpuFlags(join(tempDir(t), 'absent')), undefined);
  });
});
