import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BundleConfig } from '../../bundle/config.js';
import { bundleCache, GOLDEN_CHECKS, loadFixture, uncheckedGoldens, type BundleOptions, type GoldenCheckName, type GoldenContext } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * Half precision, both ways: an fp32 checkpoint converted to an fp16 bundle stays within 1e-2
 * relative L2 error of upstream's float32 goldens on every output; an fp16 checkpoint converted
 * to the default fp32 bundle reproduces upstream's float32 run on those fp16 weights (1e-4).
 */

const TINY = ['fixtures', 'bridgetower-tiny'];
const FP16_RELATIVE_L2 = 1e-2;
const FP32_MAX_ABS = 1e-4;
const bundleFor = bundleCache();

interface Case {
  name: string;
  checkpoint: string;
  expected: string;
  options: BundleOptions;
  metric: GoldenContext['metric'];
  tolerance: number;
  checks: GoldenCheckName[];
}

const VQA_CHECKS: GoldenCheckName[] = ['text', 'image', 'fusion', 'headVqa', 'vqa', 'vqaLoss'];
const CASES: Case[] = [
  { name: 'vqa.ckpt → fp16 bundle', checkpoint: 'vqa.ckpt', expected: 'expected_vqa.safetensors', options: { dtype: 'fp16' }, metric: 'relative-l2', tolerance: FP16_RELATIVE_L2, checks: VQA_CHECKS },
  {
    name: 'nlvr2.ckpt → fp16 bundle',
    checkpoint: 'nlvr2.ckpt',
    expected: 'expected_nlvr2.safetensors',
    options: { dtype: 'fp16' },
    metric: 'relative-l2',
    tolerance: FP16_RELATIVE_L2,
    checks: ['text', 'image', 'fusion', 'image2', 'fusion2', 'headNlvr2', 'nlvr2', 'nlvr2Loss'],
  },
  { name: 'vqa_fp16.ckpt (fp16 weights) → fp32 bundle', checkpoint: 'vqa_fp16.ckpt', expected: 'expected_vqa_fp16.safetensors', options: {}, metric: 'max-abs', tolerance: FP32_MAX_ABS, checks: VQA_CHECKS },
];

for (const c of CASES) {
  describe(`${c.name}: graphs stay within ${c.tolerance} ${c.metric} error of ${c.expected}`, () => {
    async function context(t: TestContext): Promise<GoldenContext | undefined> {
      const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
      const inputs = sharedFixture(t, ...TINY, 'inputs.safetensors');
      const expected = sharedFixture(t, ...TINY, c.expected);
      if (!textConfig || !inputs || !expected) return undefined;
      const bundle = await bundleFor(t, [...TINY, c.checkpoint], { textConfig, ...c.options });
      if (!bundle) return undefined;
      return { t, bundle, inputs: loadFixture(inputs), expected: loadFixture(expected), metric: c.metric, tolerance: c.tolerance };
    }

    it(`the bundle stores its weights as ${c.options.dtype === 'fp16' ? 'float16' : 'float32'}`, async (t) => {
      const ctx = await context(t);
      if (!ctx) return;
      const config = JSON.parse(readFileSync(join(ctx.bundle, 'config.json'), 'utf8')) as BundleConfig;
      assert.equal(config.weights.dtype, c.options.dtype === 'fp16' ? 'float16' : 'float32');
    });

    for (const name of c.checks) {
      it(GOLDEN_CHECKS[name].title, async (t) => {
        const ctx = await context(t);
        if (ctx) await GOLDEN_CHECKS[name].run(ctx);
      });
    }

    it(`every golden of ${c.expected} that a graph can produce is compared`, (t) => {
      const expected = sharedFixture(t, ...TINY, c.expected);
      if (!expected) return;
      const unchecked = uncheckedGoldens(loadFixture(expected), c.checks);
      assert.deepEqual(unchecked, [], `${c.expected} has goldens no test compares: ${unchecked.join(', ')}`);
    });
  });
}
