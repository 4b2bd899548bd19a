import assert from 'node:assert/strict';
import { exactGallery } from '../helpers/exact-gallery.js';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { SNLI_CLASSES } from '../../runtime/task-results.js';
import { arrayDataset, bytesImage, type Nlvr2Example, type RetrievalExample, type SnliExample, type VqaExample } from '../../train/data/examples.js';
import { evaluateBundle, type EvaluationProgress } from '../../train/evaluate/evaluate.js';
import { predictToFile } from '../../train/evaluate/predict.js';

/**
 * evaluateBundle on the random-weight demo bundle, checked against the server's runtime run one
 * example at a time: the expected metrics are computed here, independently, from its answers.
 */

let dir: string;
let bundle: string;
let service: BundleService;
let labels: string[];
const images: Uint8Array[] = [];
const ctx = () => ({ deadline: Date.now() + 120_000 });
const ref = (index: number) => ({ file: 'memory.jsonl', index: index + 1, unit: 'line' as const });

/** Distinct images: a colour each, and a diagonal gradient so that patches differ. */
async function image(seed: number): Promise<Uint8Array> {
  const [w, h] = [40 + 8 * seed, 48];
  const pixels = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      pixels[o] = (seed * 70 + x * 3) % 256;
      pixels[o + 1] = (seed * 150 + y * 5) % 256;
      pixels[o + 2] = (seed * 30 + (x + y) * 2) % 256;
    }
  }
  return new Uint8Array(await sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bridgetower-evaluate-'));
  bundle = join(dir, 'demo');
  await buildDemoBundle(bundle);
  labels = (JSON.parse(readFileSync(join(bundle, 'labels.json'), 'utf8')) as { vqa: string[] }).vqa;
  for (let i = 0; i < 6; i++) images.push(await image(i));
  // fp32, the precision evaluateBundle runs without one: the two are compared.
  service = await BundleService.open(bundle, { device: 'cpu', precision: 'fp32', maxBatch: 4, maxDelayMs: 1, maxQueue: 256, cacheMb: 16, log: () => {} });
});

after(async () => {
  await service?.close();
  rmSync(dir, { recursive: true, force: true });
});

const QUESTIONS = ['what colour is it?', 'is there a cat?', 'how many squares?', 'what is on the table?', 'is it outside?', 'who is there?'];

describe('classification tasks', () => {
  it("VQA score is the mean soft score of the service's top answers", async () => {
    const top = await Promise.all(QUESTIONS.map(async (q, i) => (await service.vqa({ image: images[i]!, question: q, topK: 1 }, ctx()))[0]!));
    const predicted = top.map((a) => labels.indexOf(a.answer));
    // Every other question's annotators gave the predicted answer (0.6); the rest gave other answers only.
    const examples: VqaExample[] = QUESTIONS.map((question, i) => ({
      task: 'vqa',
      ref: ref(i),
      image: bytesImage(images[i]!),
      question,
      questionId: 1000 + i,
      labels: i % 2 === 0 ? [(predicted[i]! + 1) % labels.length, predicted[i]!] : [(predicted[i]! + 1) % labels.length],
      scores: i % 2 === 0 ? [0.3, 0.6] : [1.0],
    }));
    const expected = (100 * examples.reduce((sum, e, i) => sum + (e.labels.includes(predicted[i]!) ? 0.6 : 0), 0)) / examples.length;

    const progress: EvaluationProgress[] = [];
    const result = await evaluateBundle(bundle, arrayDataset('vqa', examples), { batchSize: 4, onProgress: (p) => progress.push(p) });
    assert.equal(result.task, 'vqa');
    assert.equal(result.count, examples.length);
    assert.ok(Math.abs(result.metrics.vqa_score! - expected) < 1e-9, `${result.metrics.vqa_score} vs ${expected}`);
    assert.equal(result.predictions.task, 'vqa');
    if (result.predictions.task !== 'vqa') return;
    result.predictions.examples.forEach((p, i) => {
      assert.equal(p.label, predicted[i]);
      assert.ok(Math.abs(p.score - top[i]!.score) < 1e-5, `σ(logit) ${p.score} vs the service's ${top[i]!.score}`);
    });
    assert.deepEqual(progress.map((p) => [p.stage, p.done, p.total]), [['vqa', 4, 6], ['vqa', 6, 6]]);
  });

  it("SNLI-VE accuracy counts the labelled hypotheses whose label is the service's argmax", async () => {
    const hypotheses = ['a red square', 'two dogs play', 'nothing here', 'the sky is green', 'a table'];
    const answers = await Promise.all(hypotheses.map((hypothesis, i) => service.entailment({ image: images[i]!, hypothesis }, ctx())));
    const predicted = answers.map((a) => SNLI_CLASSES.indexOf(a.label));
    // Labels agree with the model on examples 0 and 3, disagree on 1 and 2; example 4 is unlabelled.
    const label = (i: number) => ((predicted[i]! + (i === 0 || i === 3 ? 0 : 1)) % 3) as 0 | 1 | 2;
    const examples: SnliExample[] = hypotheses.map((hypothesis, i) => ({
      task: 'snli',
      ref: ref(i),
      image: bytesImage(images[i]!),
      hypothesis,
      ...(i < 4 ? { label: label(i) } : {}),
    }));
    const labelled = examples.filter((e) => e.label !== undefined);
    const expected = (100 * labelled.filter((e, i) => e.label === predicted[i]).length) / labelled.length;

    const result = await evaluateBundle(bundle, arrayDataset('snli', examples), { batchSize: 2 });
    assert.equal(result.count, 4);
    assert.equal(result.metrics.accuracy, expected);
    if (result.predictions.task !== 'snli') return assert.fail('snli predictions');
    assert.deepEqual(result.predictions.examples.map((p) => p.label), predicted);
  });

  it("NLVR2 accuracy compares the service's True/False with label 1/0", async () => {
    const sentences = ['the left image is brighter', 'both images show one animal', 'there are two images', 'nothing is true'];
    const pairs = sentences.map((_, i) => ({ left: images[i]!, right: images[(i + 2) % images.length]! }));
    const answers = await Promise.all(sentences.map((statement, i) => service.nlvr2({ ...pairs[i]!, statement }, ctx())));
    const predicted = answers.map((a) => (a.answer ? 1 : 0));
    const examples: Nlvr2Example[] = sentences.map((sentence, i) => ({
      task: 'nlvr2',
      ref: ref(i),
      left: bytesImage(pairs[i]!.left),
      right: bytesImage(pairs[i]!.right),
      sentence,
      identifier: `dev-${i}-0-0`,
      label: (i % 2 === 0 ? predicted[i]! : 1 - predicted[i]!) as 0 | 1,
    }));
    const expected = (100 * examples.filter((e, i) => e.label === predicted[i]).length) / examples.length;

    const result = await evaluateBundle(bundle, arrayDataset('nlvr2', examples), { batchSize: 3 });
    assert.equal(result.metrics.accuracy, expected);
    assert.equal(result.count, examples.length);
  });
});

describe('retrieval', () => {
  const CAPTIONS = [
    ['a colourful gradient', 'stripes of red'],
    ['a green picture', 'an image with blue'],
    ['a dark square', 'a bright rectangle'],
  ];
  const gallery = () => CAPTIONS.map((captions, i): RetrievalExample => ({ task: 'irtr', ref: ref(i), image: bytesImage(images[i]!), imageId: `img${i}.jpg`, captions }));

  /** ITC and ITM match logits of every (image, caption) pair, from the service's search over the whole gallery. */
  async function allPairs(): Promise<{ itc: number[][]; itm: number[][]; imageOfText: number[] }> {
    const encoded = await Promise.all(CAPTIONS.map(async (_, i) => ({ id: String(i), encoding: await service.encodeImage(images[i]!, ctx()) })));
    const texts = CAPTIONS.flatMap((captions, i) => captions.map((text) => ({ text, image: i })));
    const itc = CAPTIONS.map(() => texts.map(() => NaN));
    const itm = CAPTIONS.map(() => texts.map(() => NaN));
    for (const [j, { text }] of texts.entries()) {
      for (const hit of await service.search({ text, k: encoded.length, candidates: encoded.length, rerank: true, gallery: exactGallery(encoded) }, ctx())) {
        itc[Number(hit.id)]![j] = hit.itc;
        itm[Number(hit.id)]![j] = hit.score;
      }
    }
    return { itc, itm, imageOfText: texts.map((t) => t.image) };
  }

  /** The definition, brute force: sort everything, keep the top-k by ITC, −100 elsewhere, max of both passes. */
  function bruteForce(pairs: { itc: number[][]; itm: number[][]; imageOfText: number[] }, k: number) {
    const { itc, itm, imageOfText } = pairs;
    const rows = itc.length;
    const cols = imageOfText.length;
    const order = (values: number[]) => values.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i);
    const column = (m: number[][], j: number) => m.map((row) => row[j]!);
    const textTop = itc.map((row) => new Set(order(row).slice(0, k)));
    const imageTop = Array.from({ length: cols }, (_, j) => new Set(order(column(itc, j)).slice(0, k)));
    const score = itm.map((row, i) => row.map((logit, j) => Math.max(textTop[i]!.has(j) ? logit : -100, imageTop[j]!.has(i) ? logit : -100)));
    const metrics: Record<string, number> = {};
    for (const K of [1, 5, 10]) {
      metrics[`tr_r${K}`] = (100 * score.filter((row, i) => order(row).slice(0, K).some((j) => imageOfText[j] === i)).length) / rows;
      metrics[`ir_r${K}`] = (100 * imageOfText.filter((owner, j) => order(column(score, j)).slice(0, K).includes(owner)).length) / cols;
    }
    return { metrics, score };
  }

  for (const topK of [2, 100]) {
    it(`recall with top-k ${topK} equals the brute-force definition over every pair`, async () => {
      const pairs = await allPairs();
      const expected = bruteForce(pairs, topK);
      const result = await evaluateBundle(bundle, arrayDataset('irtr', gallery()), { batchSize: 4, topK });
      assert.equal(result.count, CAPTIONS.length);
      for (const [name, value] of Object.entries(expected.metrics)) assert.ok(Math.abs(result.metrics[name]! - value) < 1e-9, `${name}: ${result.metrics[name]} vs ${value}`);
      const mean = (names: string[]) => names.reduce((s, n) => s + expected.metrics[n]!, 0) / names.length;
      assert.ok(Math.abs(result.metrics.r_mean! - (mean(['ir_r1', 'ir_r5', 'ir_r10']) + mean(['tr_r1', 'tr_r5', 'tr_r10'])) / 2) < 1e-9);
      if (result.predictions.task !== 'irtr') return assert.fail('irtr predictions');
      // The kept image→text rankings carry the same final scores as the brute force.
      result.predictions.imageToText.forEach((ranked, i) => {
        for (const { index, score } of ranked) assert.ok(Math.abs(score - expected.score[i]![index]!) < 1e-4, `image ${i} text ${index}: ${score} vs ${expected.score[i]![index]}`);
      });
    });
  }
});

describe('errors', () => {
  const vqaExample = (image: Uint8Array, i = 0): VqaExample => ({ task: 'vqa', ref: ref(i), image: bytesImage(image, `q${i}.png`), question: 'what?', questionId: i, labels: [0], scores: [1] });

  it('a bundle without the task head is a usage error naming what it has', async () => {
    const headless = join(dir, 'no-vqa');
    mkdirSync(headless);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    delete config.tasks.vqa;
    writeFileSync(join(headless, 'config.json'), JSON.stringify(config));
    copyFileSync(join(bundle, 'tokenizer.json'), join(headless, 'tokenizer.json'));
    await assert.rejects(evaluateBundle(headless, arrayDataset('vqa', [vqaExample(images[0]!)])), (error: any) => error.code === 'E_USAGE' && /no vqa head/.test(error.message) && /snli/.test(error.message));
  });

  it("an example of another task is a data error naming its row", async () => {
    const snli: SnliExample = { task: 'snli', ref: ref(4), image: bytesImage(images[0]!), hypothesis: 'h', label: 0 };
    const mixed = arrayDataset('vqa', [vqaExample(images[0]!), snli as unknown as VqaExample], 'mixed.jsonl');
    await assert.rejects(evaluateBundle(bundle, mixed), (error: any) => error.code === 'E_DATA' && /memory\.jsonl line 5 is a snli example/.test(error.message) && /mixed\.jsonl/.test(error.message));
  });

  it('data without labels cannot be evaluated and points to predict', async () => {
    const test = arrayDataset('vqa', [{ ...vqaExample(images[0]!), labels: [], scores: [] }]);
    await assert.rejects(evaluateBundle(bundle, test), (error: any) => error.code === 'E_DATA' && /bridgetower predict/.test(error.message));
  });

  it('an undecodable image names the row and the image', async () => {
    const broken = arrayDataset('vqa', [vqaExample(images[0]!, 0), vqaExample(images[1]!.subarray(0, 60), 1)]);
    await assert.rejects(evaluateBundle(bundle, broken), (error: any) => error.code === 'E_IMAGE_DECODE' && /memory\.jsonl line 2 \(image q1\.png\)/.test(error.message));
  });
});

describe('predict', () => {
  it('writes an EvalAI submission with the question ids as given and the answers of labels.json', async () => {
    const out = join(dir, 'predict');
    mkdirSync(out);
    const questions = QUESTIONS.slice(0, 3);
    const examples: VqaExample[] = questions.map((question, i) => ({ task: 'vqa', ref: ref(i), image: bytesImage(images[i]!), question, questionId: 262148000 + i, labels: [], scores: [] }));
    const file = join(out, 'predictions.json');
    const written = await predictToFile(bundle, arrayDataset('vqa', examples), file, { batchSize: 2 });
    assert.equal(written.format, 'evalai');
    const submission = JSON.parse(readFileSync(file, 'utf8')) as Array<{ question_id: unknown; answer: unknown }>;
    assert.ok(Array.isArray(submission));
    assert.equal(submission.length, questions.length);
    for (const [i, entry] of submission.entries()) {
      assert.deepEqual(Object.keys(entry).sort(), ['answer', 'question_id']);
      assert.equal(entry.question_id, 262148000 + i);
      const top = (await service.vqa({ image: images[i]!, question: questions[i]!, topK: 1 }, ctx()))[0]!;
      assert.equal(entry.answer, top.answer);
    }
    assert.deepEqual(readdirSync(out), ['predictions.json'], 'no temporary file is left behind');
  });

  it('writes JSON Lines for SNLI-VE, one prediction per example', async () => {
    const examples: SnliExample[] = [0, 1].map((i) => ({ task: 'snli', ref: ref(i), image: bytesImage(images[i]!), hypothesis: `hypothesis ${i}` }));
    const file = join(dir, 'snli.jsonl');
    const written = await predictToFile(bundle, arrayDataset('snli', examples), file);
    assert.equal(written.format, 'jsonl');
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(lines.length, 2);
    for (const [i, line] of lines.entries()) {
      const answer = await service.entailment({ image: images[i]!, hypothesis: `hypothesis ${i}` }, ctx());
      assert.equal(line.label, answer.label);
      assert.equal(line.row, `memory.jsonl line ${i + 1}`);
    }
  });
});
