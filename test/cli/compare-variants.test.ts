import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { readBundleConfig } from '../../bundle/config.js';
import { DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BridgeTower } from '../../library/index.js';
import { syntheticExamples } from '../../library/synthetic-examples.js';
import { maskMiddleWord } from '../../library/variant-comparison.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { buildVariantBundle, BUILDABLE_PRECISIONS, type BuildablePrecision } from '../helpers/variant-bundle.js';

type Lower = Exclude<BuildablePrecision, 'fp32'>;
const LOWER = BUILDABLE_PRECISIONS.filter((p): p is Lower => p !== 'fp32');
/** The relative L2 each variant's outputs must stay under: fp16's parity bound; int8's fidelity target. */
const RELATIVE_L2_BOUND: Readonly<Record<Lower, number>> = { int8: 5e-2, fp16: 1e-2 };

const root = tempDir({ after });
const bundle = join(root, 'variants');
const fp32Only = join(root, 'fp32-only');
before(async () => {
  await buildVariantBundle(bundle);
  await buildVariantBundle(fp32Only, ['fp32']);
});

interface Report {
  examples: number;
  source: string;
  variants: Array<{ precision: string; bytes: number; tasks: Array<{ task: string; rows: number; width: number; maxAbsDiff: number; relativeL2: number; top1: number; top5?: number }> }>;
}

/** VQA logits, recovered from the library's answers (score = σ(logit)), in label order: computed apart from compare-variants. */
async function vqaLogits(precision: BuildablePrecision, count: number): Promise<number[][]> {
  const model = await BridgeTower.load(bundle, { threads: 1, precision });
  try {
    const examples = syntheticExamples(count, 1);
    const answers = await model.vqa(examples.map((e) => e.image), examples.map((e) => e.text), { topK: DEMO_VQA_LABELS.length });
    return answers.map((row) => {
      const score = new Map(row.map((a) => [a.answer, a.score]));
      return DEMO_VQA_LABELS.map((label) => Math.log(score.get(label)! / (1 - score.get(label)!)));
    });
  } finally {
    await model.dispose();
  }
}

describe('bridgetower compare-variants', () => {
  it('masks the middle word of each text for the MLM comparison', () => {
    assert.equal(maskMiddleWord('a cat on a sofa'), 'a cat <mask> a sofa');
    assert.equal(maskMiddleWord('two dogs'), 'two <mask>');
    assert.equal(maskMiddleWord('  cats  '), '<mask>');
  });

  it("compares a pre-trained bundle's MLM head: one vocabulary row per example, int8 within its bound", async () => {
    const pretrained = join(root, 'pretrained');
    await buildDemoBundle(pretrained, { mlm: true });
    const run = runCli(['compare-variants', pretrained, '--synthetic', '3', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const int8 = (JSON.parse(run.stdout) as Report).variants.find((v) => v.precision === 'int8');
    const mlm = int8?.tasks.find((t) => t.task === 'mlm');
    assert.ok(mlm, `tasks compared: ${int8?.tasks.map((t) => t.task).join(', ')}`);
    assert.equal(mlm.rows, 3);
    assert.equal(mlm.width, readBundleConfig(pretrained).architecture.heads.mlm!.vocab_size);
    assert.ok(mlm.relativeL2 > 0 && mlm.relativeL2 < RELATIVE_L2_BOUND.int8, `int8 mlm relative L2 ${mlm.relativeL2}`);
  });

  it(`on the ${BUILDABLE_PRECISIONS.join(' + ')} bundle, reports each variant against fp32 per task; the VQA figures match an independent computation`, async () => {
    const run = runCli(['compare-variants', bundle, '--synthetic', '4', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as Report;
    assert.equal(report.examples, 4);
    assert.equal(report.source, 'synthetic, seed 1');
    assert.deepEqual(report.variants.map((v) => v.precision), LOWER);
    const fp32 = await vqaLogits('fp32', 4);
    for (const variant of report.variants) {
      const precision = variant.precision as Lower;
      const tasks = variant.tasks;
      assert.deepEqual(tasks.map((t) => t.task).sort(), ['itc', 'itm', 'nlvr2', 'snli', 'vqa']);
      for (const t of tasks) assert.ok(t.relativeL2 > 0 && t.relativeL2 < RELATIVE_L2_BOUND[precision], `${precision} ${t.task}: relative L2 ${t.relativeL2} within ${RELATIVE_L2_BOUND[precision]} (and not 0: its graphs ran)`);

      const lower = await vqaLogits(precision, 4);
      const flat = (rows: number[][]) => rows.flat();
      const diff = flat(fp32).map((x, i) => x - flat(lower)[i]!);
      const relativeL2 = Math.hypot(...diff) / Math.hypot(...flat(fp32));
      const maxAbsDiff = Math.max(...diff.map(Math.abs));
      const argmax = (row: number[]) => row.indexOf(Math.max(...row));
      const top1 = fp32.filter((row, i) => argmax(row) === argmax(lower[i]!)).length / fp32.length;
      const vqa = tasks.find((t) => t.task === 'vqa')!;
      assert.equal(vqa.rows, 4);
      assert.equal(vqa.width, DEMO_VQA_LABELS.length);
      // σ and its inverse in float64 cost ~1e-12; the rest is the same float32 logits.
      assert.ok(Math.abs(vqa.relativeL2 - relativeL2) <= 1e-6 * relativeL2 + 1e-9, `${precision}: relative L2 ${vqa.relativeL2} vs ${relativeL2}`);
      assert.ok(Math.abs(vqa.maxAbsDiff - maxAbsDiff) <= 1e-6, `${precision}: max abs diff ${vqa.maxAbsDiff} vs ${maxAbsDiff}`);
      assert.equal(vqa.top1, top1);
    }
  });

  it('prints a table per variant, with sizes and every task', () => {
    const run = runCli(['compare-variants', bundle, '--synthetic', '2']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /2 examples \(synthetic, seed 1\), each variant against fp32/);
    for (const precision of LOWER) assert.match(run.stdout, new RegExp(`^${precision}(?: \\([su]8 weights\\))?, .* \\(\\d\\.\\d\\d× fp32\\):$`, 'm'));
    assert.match(run.stdout, /task +output +rows×width +max abs diff +rel\. L2 +top-1 +top-5/);
    for (const task of ['vqa', 'snli', 'nlvr2', 'itm', 'itc']) assert.match(run.stdout, new RegExp(`^  ${task} `, 'm'));
  });

  it('reads images and texts from --data JSON Lines, paths relative to the file', async (t) => {
    const dir = tempDir(t);
    const lines = [];
    for (const [i, colour] of [[200, 30, 30], [30, 200, 30], [30, 30, 200]].entries()) {
      const raw = Buffer.alloc(40 * 30 * 3).map((_, j) => (colour[j % 3]! + j) % 256);
      writeFileSync(join(dir, `${i}.png`), await sharp(raw, { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer());
      lines.push(JSON.stringify({ image: `${i}.png`, text: `picture number ${i}` }));
    }
    writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
    const run = runCli(['compare-variants', bundle, '--data', join(dir, 'data.jsonl'), '--limit', '2', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as Report).examples, 2);

    writeFileSync(join(dir, 'bad.jsonl'), '{"image": "0.png", "text": "fine"}\n{"image": "0.png"}\n');
    const bad = runCli(['compare-variants', bundle, '--data', join(dir, 'bad.jsonl')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad\.jsonl:2: each line needs "image" \(a path\) and "text"/);
  });

  it('on a bundle with one variant, says there is nothing to compare and how to add variants', () => {
    const run = runCli(['compare-variants', fp32Only, '--synthetic', '2']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /has one graph variant \(fp32\): there is nothing to compare; .*--variants fp32,int8,fp16/);
  });
});
