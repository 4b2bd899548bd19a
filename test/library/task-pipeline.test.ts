import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BundleModel } from '../../library/bundle-model.js';
import type { FusionItem } from '../../library/stage-runs.js';
import { TaskPipeline, type ModelStages } from '../../library/task-pipeline.js';

/**
 * The task flows over recording stages (no ONNX Runtime): which stage each call reaches, with
 * how many rows at once. The library's "arrays in, arrays out" is one stage call per stage;
 * the server's single requests are one row each, which its batchers then join.
 */
describe('TaskPipeline', () => {
  let dir: string;
  let model: BundleModel;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-pipeline-'));
    await buildDemoBundle(join(dir, 'demo'));
    model = BundleModel.open(join(dir, 'demo'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Stages answering fixed-size zeros (a head's logits favour class `favour`), recording each call's row count. */
  function recording(favour = 1) {
    const calls: Array<{ stage: string; rows: number; task?: string }> = [];
    /** Per head call, each row's images by the name they were encoded from. */
    const headImages: string[][] = [];
    const { layers: L, imageTokens: N, hidden: H } = model.dims;
    const dim = model.info.embeddingDim!;
    const stages: ModelStages<string> = {
      texts: async (rows) => (calls.push({ stage: 'texts', rows: rows.length }), rows.map((r) => ({ length: r.length, embeds: new Float32Array(L * r.length * H), itc: new Float32Array(dim).fill(r.length) }))),
      // Each encoding carries its image's name in its first value, so the head can tell which it got.
      images: async (images) => (calls.push({ stage: 'images', rows: images.length }), images.map((name) => ({ embeds: new Float32Array(L * N * H).fill(name.charCodeAt(0), 0, 1), itc: new Float32Array(dim) }))),
      head: async (task, items: readonly FusionItem[]) => {
        calls.push({ stage: 'head', task, rows: items.length });
        headImages.push(items.map((item) => item.images.map((e) => String.fromCharCode(e[0]!)).join('')));
        const width = task === 'vqa' ? model.labels.vqa!.length : task === 'snli' ? 3 : 2;
        return items.map(() => Float32Array.from({ length: width }, (_, i) => (i === favour ? 5 : 0)));
      },
      pair: async (items) => (calls.push({ stage: 'pair', rows: items.length }), items.map(() => new Float32Array(dim))),
      tokenHead: async (task, items) => (calls.push({ stage: 'tokenHead', task, rows: items.length }), items.map(() => new Float32Array(1))),
    };
    return { calls, headImages, pipeline: new TaskPipeline(model, stages) };
  }

  it('an array call reaches each stage once, with all its rows', async () => {
    const { calls, pipeline } = recording();
    const answers = await pipeline.vqa(['a', 'b', 'c'].map((image) => ({ image, question: `question ${image}` })), 2, {});
    assert.equal(answers.length, 3);
    assert.deepEqual(calls.sort((a, b) => a.stage.localeCompare(b.stage)), [
      { stage: 'head', task: 'vqa', rows: 3 },
      { stage: 'images', rows: 3 },
      { stage: 'texts', rows: 3 },
    ]);
    // The head's favoured class is the best answer, with its sigmoid: the decoding is upstream's.
    assert.equal(answers[0]![0]!.answer, model.labels.vqa![1]);
    assert.ok(Math.abs(answers[0]![0]!.score - 1 / (1 + Math.exp(-5))) < 1e-12);
  });

  it('NLVR2 sends two images per row to the head, in left, right order', async () => {
    const { calls, headImages, pipeline } = recording();
    const [first, second] = await pipeline.nlvr2([{ left: 'a', right: 'b', statement: 's' }, { left: 'c', right: 'd', statement: 't' }], {});
    assert.deepEqual(headImages, [['ab', 'cd']]);
    assert.deepEqual(calls.find((c) => c.stage === 'images'), { stage: 'images', rows: 4 });
    // Class 1 (True) favoured: answer true with its softmax probability.
    assert.equal(first!.answer, true);
    assert.ok(Math.abs(first!.score - Math.exp(5) / (Math.exp(5) + 1)) < 1e-12, `score ${first!.score}`);
    assert.deepEqual(second, first);
  });

  it('embed keeps the input order across texts and images, one stage call each', async () => {
    const { calls, pipeline } = recording();
    const out = await pipeline.embed([{ text: 'abc' }, { image: 'x' }, { text: 'a much longer text here' }], {});
    assert.equal(out.length, 3);
    assert.ok(out[0]![0]! > 0 && out[1]![0] === 0 && out[2]![0]! > out[0]![0]!, 'text, image, text in input order (the fake itc is the token count)');
    assert.deepEqual(calls.map((c) => `${c.stage}:${c.rows}`).sort(), ['images:1', 'texts:2']);
  });

  it('a task the bundle lacks is refused before any stage runs', async () => {
    const { calls, pipeline } = recording();
    await assert.rejects(pipeline.fillMask([{ image: 'x', text: 'a <mask>' }], 5, {}), (e: any) => e.code === 'E_USAGE' && /no mlm head/.test(e.message));
    assert.deepEqual(calls, []);
  });

  it('tokenizer errors name the row by the field function', async () => {
    const { pipeline } = recording();
    await assert.rejects(pipeline.itm([{ image: 'x', text: 'fine' }, { image: 'y', text: 'x'.repeat(1_000_000) }], {}, (i) => `texts[${i}]`), (e: any) => /^texts\[1\]: /.test(e.message));
  });
});
