import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { bundleCache, GOLDEN_CHECKS, loadFixture, uncheckedGoldens, type BundleOptions, type GoldenCheckName, type GoldenContext } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * Every graph of a bundle converted from the tiny upstream checkpoints reproduces, in float32,
 * the goldens that upstream's own PyTorch code computed (fixtures/bridgetower-tiny/README.md)
 * within 1e-4 max abs error, on every output the fixture has a golden for.
 */

const TOLERANCE = 1e-4;
const TINY = ['fixtures', 'bridgetower-tiny'];
const bundleFor = bundleCache();

const ENCODERS_AND_FUSION: GoldenCheckName[] = ['text', 'image', 'fusion'];

const FIXTURES: Array<{ name: string; checkpoint: string; expected: string; options?: BundleOptions; checks: GoldenCheckName[] }> = [
  { name: 'vqa', checkpoint: 'vqa.ckpt', expected: 'expected_vqa.safetensors', checks: [...ENCODERS_AND_FUSION, 'headVqa', 'vqa', 'vqaLoss'] },
  { name: 'vqa_legacy', checkpoint: 'vqa_legacy.ckpt', expected: 'expected_vqa.safetensors', checks: [...ENCODERS_AND_FUSION, 'headVqa', 'vqa', 'vqaLoss'] },
  { name: 'snli', checkpoint: 'snli.ckpt', expected: 'expected_snli.safetensors', checks: [...ENCODERS_AND_FUSION, 'headSnli', 'snli', 'snliLoss'] },
  {
    name: 'nlvr2',
    checkpoint: 'nlvr2.ckpt',
    expected: 'expected_nlvr2.safetensors',
    checks: [...ENCODERS_AND_FUSION, 'image2', 'fusion2', 'headNlvr2', 'nlvr2', 'nlvr2Loss'],
  },
  { name: 'pt', checkpoint: 'pt.ckpt', expected: 'expected_pt.safetensors', checks: [...ENCODERS_AND_FUSION, 'headItm', 'headMlm', 'mlm', 'itm'] },
  {
    name: 'pt_res32 converted at image size 48',
    checkpoint: 'pt_res32.ckpt',
    expected: 'expected_pt_res32_at48.safetensors',
    options: { imageSize: 48 },
    checks: [...ENCODERS_AND_FUSION, 'headItm', 'headMlm', 'mlm', 'itm', 'positionAt48'],
  },
  { name: 'irtr', checkpoint: 'irtr.ckpt', expected: 'expected_irtr.safetensors', checks: [...ENCODERS_AND_FUSION, 'headItm', 'itm', 'rankScores'] },
  {
    name: 'irtr_itm_itc',
    checkpoint: 'irtr_itm_itc.ckpt',
    expected: 'expected_irtr_itm_itc.safetensors',
    checks: [...ENCODERS_AND_FUSION, 'textItc', 'imageItc', 'headItm', 'itm', 'itcLogits', 'rerank'],
  },
];

for (const fixture of FIXTURES) {
  describe(`tiny upstream checkpoint ${fixture.name} (fp32 bundle): graphs match upstream PyTorch within ${TOLERANCE}`, () => {
    async function context(t: TestContext): Promise<GoldenContext | undefined> {
      const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
      const inputs = sharedFixture(t, ...TINY, 'inputs.safetensors');
      const expected = sharedFixture(t, ...TINY, fixture.expected);
      if (!textConfig || !inputs || !expected) return undefined;
      const bundle = await bundleFor(t, [...TINY, fixture.checkpoint], { textConfig, ...fixture.options });
      if (!bundle) return undefined;
      return { t, bundle, inputs: loadFixture(inputs), expected: loadFixture(expected), metric: 'max-abs', tolerance: TOLERANCE };
    }

    for (const name of fixture.checks) {
      it(GOLDEN_CHECKS[name].title, async (t) => {
        const ctx = await context(t);
        if (ctx) await GOLDEN_CHECKS[name].run(ctx);
      });
    }

    it(`every golden of ${fixture.expected} that a graph can produce is compared`, (t) => {
      const expected = sharedFixture(t, ...TINY, fixture.expected);
      if (!expected) return;
      const unchecked = uncheckedGoldens(loadFixture(expected), fixture.checks);
      assert.deepEqual(unchecked, [], `${fixture.expected} has goldens no test compares: ${unchecked.join(', ')}`);
    });
  });
}
