import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundleConfig, writeBundleConfig } from '../../bundle/config.js';
import { BridgeTowerError } from '../../common/errors.js';
import { BridgeTower } from '../../library/index.js';
import { INT8_WEIGHTS_ENV } from '../../runtime/cpu-int8.js';
import { graphSet } from '../../runtime/graph-set.js';
import { tempDir } from '../helpers/temp-dir.js';
import { buildVariantBundle, BUILDABLE_PRECISIONS, VARIANT_DIRS } from '../helpers/variant-bundle.js';

const root = tempDir({ after });
const bundle = join(root, 'variants');
/** fp32 + fp16 only: what a bundle without int8 graphs does. */
const noInt8 = join(root, 'no-int8');
before(async () => {
  await buildVariantBundle(bundle);
  await buildVariantBundle(noInt8, ['fp32', 'fp16']);
});

describe('BridgeTower.load opens the precision variant asked for', () => {
  for (const precision of BUILDABLE_PRECISIONS) {
    it(`precision '${precision}' opens ${VARIANT_DIRS[precision]}/ and says so`, async () => {
      const said: string[] = [];
      const model = await BridgeTower.load(bundle, { threads: 1, precision, onInfo: (line) => said.push(line) });
      try {
        assert.equal(model.precision, precision);
        assert.equal(model.int8Weights !== undefined, (precision as string) === 'int8', `int8Weights ${model.int8Weights} at ${precision}`);
        assert.match(said.join('\n'), new RegExp(`precision ${precision}(, [su]8 weights \\(.+\\))?; ${precision} as asked`));
        const answers = await model.vqa({ data: new Uint8Array(32 * 32 * 3).fill(90), width: 32, height: 32 }, 'what is it?', { topK: 2 });
        assert.equal(answers.length, 2);
      } finally {
        await model.dispose();
      }
    });
  }

  it('auto on the CPU falls back from int8 to fp32 here, saying why and how to add int8', async () => {
    const said: string[] = [];
    const model = await BridgeTower.load(noInt8, { threads: 1, onInfo: (line) => said.push(line) });
    try {
      assert.equal(model.precision, 'fp32');
      assert.match(model.precisionSummary, /auto on cpu: fp32, because the bundle has no int8 graphs \(it has fp32, fp16; .*--variants fp32,fp16,int8\)/);
      assert.deepEqual(said, [`bundle '${model.name}': ${model.precisionSummary}`]);
    } finally {
      await model.dispose();
    }
  });

  it('int8 on this bundle is refused, naming fp32, fp16 and --variants', async () => {
    await assert.rejects(BridgeTower.load(noInt8, { precision: 'int8' }), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && /has fp32, fp16 graphs only, not int8.*--variants fp32,fp16,int8/.test(e.message));
  });
});

describe('graphSet: the files of an int8 variant follow the weight set', () => {
  /** A copy of the bundle whose config lists an int8 variant (s8 in onnx/int8/, u8 in onnx/int8-u8/; fp32 graphs stand in for both). */
  function withInt8(t: { after(fn: () => void): void }, u8: boolean): string {
    const dir = join(tempDir(t), 'b');
    cpSync(bundle, dir, { recursive: true });
    const config = readBundleConfig(dir);
    const fp32 = config.graphs!.variants!.fp32!;
    for (const sub of ['onnx/int8', ...(u8 ? ['onnx/int8-u8'] : [])]) {
      mkdirSync(join(dir, sub), { recursive: true });
      for (const file of [...fp32.files, fp32.weights]) cpSync(join(dir, 'onnx', file), join(dir, sub, file));
    }
    const set = { files: fp32.files, weights: fp32.weights, bytes: fp32.bytes };
    config.graphs!.variants!.int8 = { dir: 'onnx/int8', ...set, ...(u8 ? { u8: { dir: 'onnx/int8-u8', ...set } } : {}) };
    writeBundleConfig(dir, config);
    return dir;
  }

  it(`${INT8_WEIGHTS_ENV}=u8 opens onnx/int8-u8/, s8 opens onnx/int8/`, (t) => {
    const dir = withInt8(t, true);
    const u8 = graphSet(dir, 'int8', { [INT8_WEIGHTS_ENV]: 'u8' });
    assert.equal(u8.dir, join(dir, 'onnx/int8-u8'));
    assert.equal(u8.int8Weights, 'u8');
    const s8 = graphSet(dir, 'int8', { [INT8_WEIGHTS_ENV]: 's8' });
    assert.equal(s8.dir, join(dir, 'onnx/int8'));
    assert.equal(s8.weights, join(dir, 'onnx/int8', readBundleConfig(dir).graphs!.variants!.int8!.weights));
  });

  it('a runner opened on int8 reports the weight set it opened', async (t) => {
    const dir = withInt8(t, true);
    const previous = process.env[INT8_WEIGHTS_ENV];
    process.env[INT8_WEIGHTS_ENV] = 'u8';
    try {
      const model = await BridgeTower.load(dir, { threads: 1, precision: 'int8' });
      assert.equal(model.precision, 'int8');
      assert.equal(model.int8Weights, 'u8');
      assert.match(model.precisionSummary, new RegExp(`u8 weights \\(${INT8_WEIGHTS_ENV}=u8\\)`));
      await model.dispose();
    } finally {
      if (previous === undefined) delete process.env[INT8_WEIGHTS_ENV];
      else process.env[INT8_WEIGHTS_ENV] = previous;
    }
  });

  it('without a u8 set, u8 asked by the environment is refused', (t) => {
    const dir = withInt8(t, false);
    assert.throws(() => graphSet(dir, 'int8', { [INT8_WEIGHTS_ENV]: 'u8' }), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && /no u8 weight set/.test(e.message));
    assert.equal(graphSet(dir, 'int8', {}).dir.endsWith(join('onnx', 'int8')), true);
  });
});
