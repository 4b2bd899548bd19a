import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { readSafetensors, toFloat32 } from '../../bundle/safetensors/read-safetensors.js';
import type { TaskName } from '../../bundle/tasks.js';
import { openGraph } from '../../runtime/session.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { exactGallery } from '../helpers/exact-gallery.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Every BundleService method on the demo bundle equals running the bundle's graphs directly
 * (ONNX Runtime sessions on this thread, one request at a time, nothing batched or cached) on the
 * same preprocessed inputs, decoded as upstream does: σ for VQA, softmax for the classifiers,
 * cosine / temperature then the ITM logit for retrieval.
 */

const TOLERANCE = 1e-5;
const FAR = { deadline: Date.now() + 10 * 60_000 };
const root = tempDir({ after });
const bundle = join(root, 'demo');

let service: BundleService;
let pre: BundlePreprocessor;
const sessions = new Map<string, ort.InferenceSession>();

before(async () => {
  await buildDemoBundle(bundle);
  pre = BundlePreprocessor.open(bundle);
  for (const graph of ['text_encoder', 'image_encoder', 'fusion', 'head_vqa', 'head_snli', 'head_itm', 'head_nlvr2', 'vqa']) {
    sessions.set(graph, (await openGraph(bundle, graph)).session);
  }
  // fp32: the answers are checked against the fp32 graphs (onnx/) run directly.
  service = await BundleService.open(bundle, { device: 'cpu', precision: 'fp32', maxBatch: 4, maxDelayMs: 2, maxQueue: 64, cacheMb: 16 });
});
after(async () => {
  await service?.close();
  for (const session of sessions.values()) await session.release();
});

/** A deterministic test image: a gradient pattern that differs per seed, encoded as PNG. */
async function png(seed: number, width = 80, height = 60): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (7 + seed) + seed * 97) % 251;
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

// ---- the reference: graphs run directly ----------------------------------------------------

async function run(graph: string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  return sessions.get(graph)!.run(feeds);
}

async function refText(text: string, task: TaskName) {
  const { inputIds, attentionMask, dims } = pre.encodeTexts([text], task);
  const out = await run('text_encoder', { input_ids: new ort.Tensor('int64', inputIds, dims), attention_mask: new ort.Tensor('int64', attentionMask, dims) });
  return { embeds: out.text_embeds!, mask: new ort.Tensor('int64', attentionMask, dims), itc: out.text_itc!.data as Float32Array };
}

async function refImage(bytes: Uint8Array) {
  const S = pre.config.preprocessing.image_size;
  const out = await run('image_encoder', { pixel_values: new ort.Tensor('float32', await pre.pixelValues(bytes), [1, 3, S, S]) });
  return { embeds: out.image_embeds!, itc: out.image_itc!.data as Float32Array };
}

async function refCls(text: Awaited<ReturnType<typeof refText>>, image: Awaited<ReturnType<typeof refImage>>, tokenType: bigint): Promise<ort.Tensor> {
  const out = await run('fusion', { text_embeds: text.embeds, attention_mask: text.mask, image_embeds: image.embeds, image_token_type: new ort.Tensor('int64', BigInt64Array.of(tokenType), [1]) });
  return out.cls_feats!;
}

async function refLogits(task: 'vqa' | 'snli' | 'itm', text: string, image: Uint8Array): Promise<Float32Array> {
  const cls = await refCls(await refText(text, task), await refImage(image), 1n);
  return (await run(`head_${task}`, { cls_feats: cls })).logits!.data as Float32Array;
}

const softmax = (logits: Float32Array): number[] => {
  const exps = [...logits].map((x) => Math.exp(x - Math.max(...logits)));
  return exps.map((e) => e / exps.reduce((a, b) => a + b, 0));
};
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const vqaLabels = (): string[] => (JSON.parse(readFileSync(join(bundle, 'labels.json'), 'utf8')) as { vqa: string[] }).vqa;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= TOLERANCE, `${what}: max abs error ${worst} > ${TOLERANCE}`);
}

// ---- the service against the reference -------------------------------------------------------

describe('BundleService on the demo bundle, against its graphs run directly', () => {
  it('answers VQA with the top-k labels of the head logits, scored by sigmoid', async () => {
    const image = await png(1);
    const question = 'What color is the cat?';
    const logits = await refLogits('vqa', question, image);
    const labels = vqaLabels();
    const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
    const answers = await service.vqa({ image, question, topK: 5 }, FAR);
    assert.deepEqual(answers.map((a) => a.answer), order.map((i) => labels[i]));
    assertClose(answers.map((a) => a.score), order.map((i) => sigmoid(logits[i]!)), 'vqa scores');
  });

  it('gives the same VQA logits as the end-to-end vqa graph', async () => {
    const image = await png(2);
    const question = 'Is it outside?';
    const { inputIds, attentionMask, dims } = pre.encodeTexts([question], 'vqa');
    const S = pre.config.preprocessing.image_size;
    const out = await run('vqa', {
      input_ids: new ort.Tensor('int64', inputIds, dims),
      attention_mask: new ort.Tensor('int64', attentionMask, dims),
      pixel_values: new ort.Tensor('float32', await pre.pixelValues(image), [1, 3, S, S]),
    });
    const logits = out.logits!.data as Float32Array;
    const answers = await service.vqa({ image, question, topK: logits.length }, FAR);
    const scoreOf = new Map(answers.map((a) => [a.answer, a.score]));
    const labels = vqaLabels();
    assertClose(labels.map((l) => scoreOf.get(l)!), [...logits].map(sigmoid), 'vqa scores vs vqa.onnx');
  });

  it('answers entailment with the softmax over contradiction, neutral, entailment', async () => {
    const image = await png(3);
    const p = softmax(await refLogits('snli', 'Two dogs run on the beach.', image));
    const result = await service.entailment({ image, hypothesis: 'Two dogs run on the beach.' }, FAR);
    assertClose([result.scores.contradiction, result.scores.neutral, result.scores.entailment], p, 'snli scores');
    assert.equal(result.label, ['contradiction', 'neutral', 'entailment'][p.indexOf(Math.max(...p))]);
  });

  it('answers NLVR2 from two fusions (token types 1 and 2) through the NLVR2 head', async () => {
    const [left, right] = [await png(4), await png(5, 64, 96)];
    const statement = 'The left image has more dogs than the right.';
    const text = await refText(statement, 'nlvr2');
    const clsLeft = await refCls(text, await refImage(left), 1n);
    const clsRight = await refCls(text, await refImage(right), 2n);
    const p = softmax((await run('head_nlvr2', { cls_feats_left: clsLeft, cls_feats_right: clsRight })).logits!.data as Float32Array);
    const result = await service.nlvr2({ left, right, statement }, FAR);
    assert.equal(result.answer, p[1]! > p[0]!);
    assertClose([result.score], [Math.max(p[0]!, p[1]!)], 'nlvr2 score');
  });

  it('gives ITM match probabilities per pair, in request order', async () => {
    const pairs = [
      { image: await png(6), text: 'a red bus' },
      { image: await png(7), text: 'a very long caption about a small boat floating on a lake at dawn, with mist' },
      { image: await png(6), text: 'a cat' },
    ];
    const expected = await Promise.all(pairs.map(async (pair) => softmax(await refLogits('itm', pair.text, pair.image))[1]!));
    assertClose(await service.itm({ pairs }, FAR), expected, 'itm probabilities');
  });

  it('embeds a text as the text encoder ITC feature', async () => {
    const text = 'a photo of a dog';
    assertClose(await service.embedText(text, FAR), (await refText(text, 'itc')).itc, 'text ITC');
  });

  it('embeds an image as the image encoder ITC feature', async () => {
    const image = await png(8);
    assertClose(await service.embedImage(image, FAR), (await refImage(image)).itc, 'image ITC');
  });

  it('encodes an image as its hash, ITC feature and [L, N, H] embeddings', async () => {
    const image = await png(9);
    const reference = await refImage(image);
    const encoding = await service.encodeImage(image, FAR);
    assert.match(encoding.hash, /^[0-9a-f]{64}$/);
    assertClose(encoding.itc!, reference.itc, 'encoding ITC');
    assertClose(encoding.embeds, reference.embeds.data as Float32Array, 'encoding embeds'); // [L, 1, N, H] = [L, N, H]
  });

  it('ranks a search like ITC candidates re-ranked by the ITM match logit, computed directly', async () => {
    const images = await Promise.all([10, 11, 12, 13, 14, 15].map((seed) => png(seed)));
    const gallery = await Promise.all(images.map(async (image, i) => ({ id: `img-${i}`, encoding: await service.encodeImage(image, FAR) })));
    const text = 'two people on a bench';
    const weights = readSafetensors(join(bundle, 'model.safetensors'));
    const temperature = toFloat32(weights.get('temperature')!.dtype, weights.get('temperature')!.data)[0]!;
    const query = await refText(text, 'itc');
    const refs = await Promise.all(images.map(refImage));
    const itc = refs.map((r) => r.itc.reduce((sum, v, j) => sum + v * query.itc[j]!, 0) / temperature);
    const candidates = [...itc.keys()].sort((a, b) => itc[b]! - itc[a]!).slice(0, 4);
    const match = await Promise.all(candidates.map(async (i) => (await run('head_itm', { cls_feats: await refCls(query, refs[i]!, 1n) })).logits!.data[1] as number));
    const expected = [...match.keys()].sort((a, b) => match[b]! - match[a]!).slice(0, 3).map((r) => ({ id: `img-${candidates[r]}`, score: match[r]!, itc: itc[candidates[r]!]! }));

    const hits = await service.search({ text, k: 3, candidates: 4, rerank: true, gallery: exactGallery(gallery) }, FAR);
    assert.deepEqual(hits.map((h) => h.id), expected.map((e) => e.id));
    assertClose(hits.map((h) => h.score), expected.map((e) => e.score), 'ITM logits');
    assertClose(hits.map((h) => h.itc), expected.map((e) => e.itc), 'ITC scores');
  });

  it('refuses a search gallery item encoded by another bundle, naming it', async () => {
    const encoding = await service.encodeImage(await png(16), FAR);
    const foreign = { ...encoding, embeds: encoding.embeds.subarray(1) };
    const gallery = exactGallery([{ id: 'ok', encoding }, { id: 'foreign', encoding: foreign }]);
    await assert.rejects(service.search({ text: 'a dog', k: 1, candidates: 2, rerank: true, gallery }, FAR), /gallery item 'foreign' has embeddings of/);
  });

  it('refuses to open a folder that is not a bundle, naming the folder', async () => {
    await assert.rejects(BundleService.open(root, { device: 'cpu', maxBatch: 1, maxDelayMs: 0, maxQueue: 1, cacheMb: 0 }), (error: Error) => error.message.includes(root) && /not a bundle/.test(error.message));
  });

  it('names the bundle, flags it as a demo and lists the tasks it serves', () => {
    assert.equal(service.name, pre.config.name);
    assert.equal(service.isDemo, true);
    assert.deepEqual(service.tasks, ['vqa', 'snli', 'nlvr2', 'itm', 'itc']);
  });
});
