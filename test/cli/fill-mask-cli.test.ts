import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it, type TestContext } from 'node:test';
import type { FillMaskPrediction } from '../../runtime/fill-mask.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { bundleCache } from '../helpers/parity.js';
import { runCli } from '../helpers/run-cli.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * `bridgetower fill-mask` runs the end-to-end mlm.onnx; the server runs the split graphs batched.
 * On the Hugging Face BridgeTowerForMaskedLM fixture both give the same predictions.
 */

const HF = ['fixtures', 'bridgetower-hf'];
const TOLERANCE = 1e-5;
const FAR = { deadline: Date.now() + 10 * 60_000 };
const bundleFor = bundleCache();

async function mlmBundle(t: TestContext): Promise<string | undefined> {
  const tokenizer = sharedFixture(t, ...HF, 'mlm', 'tokenizer.json');
  if (!tokenizer) return undefined;
  return bundleFor(t, [...HF, 'mlm'], { tokenizer });
}

function describeExit(result: { code: number; stderr: string }): string {
  return result.code === -1 ? 'the CLI timed out (60 s)' : `exit ${result.code}: ${result.stderr}`;
}

describe('bridgetower fill-mask', () => {
  it('prints, with --json, the predictions POST /fill-mask answers for the same image and text', async (t) => {
    const bundle = await mlmBundle(t);
    const image = sharedFixture(t, 'fixtures', 'images', 'chelsea.png');
    if (!bundle || !image) return;
    const text = 'a tabby <mask> with green <mask> looking to the side';
    const result = runCli(['fill-mask', bundle, '--image', image, '--text', text, '--top-k', '4', '--json']);
    assert.equal(result.code, 0, describeExit(result));
    const printed = JSON.parse(result.stdout).masks as FillMaskPrediction[][];
    const service = await BundleService.open(bundle, { device: 'cpu', maxBatch: 4, maxDelayMs: 2, maxQueue: 8, cacheMb: 4 });
    after(() => service.close());
    const served = await service.fillMask({ image: readFileSync(image), text, topK: 4 }, FAR);
    assert.equal(printed.length, 2);
    for (const [m, list] of served.entries()) {
      assert.deepEqual(printed[m]!.map((p) => [p.token, p.token_str, p.sequence]), list.map((p) => [p.token, p.token_str, p.sequence]));
      for (const [i, p] of list.entries()) assert.ok(Math.abs(printed[m]![i]!.score - p.score) <= TOLERANCE, `mask ${m} rank ${i}: ${printed[m]![i]!.score} vs ${p.score}`);
    }
  });

  it('refuses a text without <mask> (exit 2) and says how to write one', async (t) => {
    const bundle = await mlmBundle(t);
    const image = sharedFixture(t, 'fixtures', 'images', 'chelsea.png');
    if (!bundle || !image) return;
    const result = runCli(['fill-mask', bundle, '--image', image, '--text', 'a tabby cat']);
    assert.equal(result.code, 2, describeExit(result));
    assert.match(result.stderr, /--text must contain <mask>.*e\.g\. --text "a <mask> on a sofa"/);
  });

  it('refuses a bundle without an MLM head and names its tasks', async (t) => {
    const tokenizer = sharedFixture(t, ...HF, 'mlm', 'tokenizer.json');
    const image = sharedFixture(t, 'fixtures', 'images', 'chelsea.png');
    const bundle = tokenizer && (await bundleFor(t, [...HF, 'itm'], { tokenizer }));
    if (!bundle || !image) return;
    const result = runCli(['fill-mask', bundle, '--image', image, '--text', 'a <mask>']);
    assert.equal(result.code, 2, describeExit(result));
    assert.match(result.stderr, /has no MLM head \(its tasks: itm\)/);
  });
});
