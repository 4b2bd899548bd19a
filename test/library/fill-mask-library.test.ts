import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fillMaskWithGraph } from '../../cli/commands/fill-mask.js';
import { BridgeTower } from '../../library/index.js';
import { bundleCache } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

const HF = ['fixtures', 'bridgetower-hf'];
const TOLERANCE = 1e-4;
const bundleFor = bundleCache();

describe("BridgeTower#fillMask on Hugging Face's BridgeTowerForMaskedLM fixture", () => {
  it("answers what `bridgetower fill-mask` (the end-to-end mlm.onnx) answers: the same tokens, scores within 1e-4", async (t) => {
    const cases = sharedFixture(t, ...HF, 'processor_cases.json');
    const tokenizer = sharedFixture(t, ...HF, 'mlm', 'tokenizer.json');
    if (!cases || !tokenizer) return;
    const bundle = await bundleFor(t, [...HF, 'mlm'], { tokenizer });
    if (!bundle) return;
    const { file, caption_mlm: caption } = (JSON.parse(readFileSync(cases, 'utf8')) as { cases: Record<string, { file: string; caption_mlm: string }> }).cases['chelsea.png']!;
    const image = sharedFixture(t, ...HF, file);
    if (!image) return;
    const bytes = readFileSync(image);
    const model = await BridgeTower.load(bundle, { threads: 1, precision: 'fp32' });
    try {
      assert.ok(model.tasks.includes('mlm'));
      const ours = await model.fillMask(image, caption, { topK: 5 });
      const cli = await fillMaskWithGraph(bundle, { image: bytes, text: caption, topK: 5 }, { precision: 'fp32' });
      assert.deepEqual(ours.map((mask) => mask.map((p) => p.token)), cli.map((mask) => mask.map((p) => p.token)));
      assert.deepEqual(ours.map((mask) => mask.map((p) => p.sequence)), cli.map((mask) => mask.map((p) => p.sequence)));
      ours.flat().forEach((p, i) => assert.ok(Math.abs(p.score - cli.flat()[i]!.score) <= TOLERANCE, `prediction ${i}: ${p.score} vs ${cli.flat()[i]!.score}`));
      // Arrays in: one list of masks per (image, text), row 0 as the single call.
      const batch = await model.fillMask([bytes, bytes], [caption, caption], { topK: 5 });
      assert.equal(batch.length, 2);
      assert.deepEqual(batch[0]!.map((mask) => mask.map((p) => p.token)), ours.map((mask) => mask.map((p) => p.token)));
    } finally {
      await model.dispose();
    }
  });
});
