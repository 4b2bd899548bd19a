import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { BridgeTowerError } from '../../common/errors.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BridgeTower } from '../../library/index.js';
import { buildServer } from '../../server/app.js';
import { testOptions } from '../server/http-fakes.js';

async function png(red: number, green: number, blue: number): Promise<Buffer> {
  // Not one flat colour: a gradient, so that resizing and the raw path have something to disagree on.
  const width = 70;
  const height = 50;
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(red + x * 3) % 256, (green + y * 5) % 256, (blue + x + y) % 256], (y * width + x) * 3);
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

async function waitUntilReady(app: FastifyInstance, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
    if (Date.now() > until) throw new Error(`the server was not ready after ${timeoutMs} ms (timeout)`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('BridgeTower, the library model object, on the demo bundle', () => {
  let dir: string;
  let bundle: string;
  let model: BridgeTower;
  let app: FastifyInstance;
  let red: Buffer;
  let blue: Buffer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-library-'));
    bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    red = await png(220, 20, 20);
    blue = await png(20, 20, 220);
    model = await BridgeTower.load(bundle, { threads: 1 });
    app = await buildServer(testOptions({ bundles: [bundle], dataDir: join(dir, 'data'), maxBatch: 4, cacheMb: 16 }));
    await waitUntilReady(app);
  });

  after(async () => {
    await model?.dispose();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (url: string, payload: object) => {
    const response = await app.inject({ method: 'POST', url, payload });
    assert.equal(response.statusCode, 200, response.body);
    return response.json();
  };

  it('names the bundle, its tasks and sizes as GET /info does', async () => {
    const info = (await app.inject({ method: 'GET', url: '/info' })).json().models[0];
    assert.equal(model.name, info.name);
    assert.deepEqual([...model.tasks], info.tasks);
    assert.equal(model.info.hiddenSize, info.hidden_size);
    assert.equal(model.info.embeddingDim, info.embedding_dim);
    assert.equal(model.precision, info.precision);
    assert.equal(model.device, 'cpu');
  });

  it('vqa answers what POST /vqa answers for the same image and question', async () => {
    const answers = await model.vqa(red, 'what colour is it?', { topK: 3 });
    const http = await post('/vqa', { image: red.toString('base64'), question: 'what colour is it?', top_k: 3 });
    assert.deepEqual(answers, http.answers);
  });

  it('a file path, the Buffer and the decoded RGB pixels are the same image', async () => {
    const path = join(dir, 'red.png');
    writeFileSync(path, red);
    const { data, info } = await sharp(red).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const fromBuffer = await model.vqa(red, 'is it red?');
    assert.deepEqual(await model.vqa(path, 'is it red?'), fromBuffer);
    assert.deepEqual(await model.vqa({ data: new Uint8Array(data), width: info.width, height: info.height }, 'is it red?'), fromBuffer);
  });

  it('arrays in, arrays out: a batch answers what single calls answer, in order', async () => {
    const batch = await model.itm([red, blue, red], ['a red square', 'a blue square', 'a blue square']);
    assert.equal(batch.length, 3);
    const single = [await model.itm(red, 'a red square'), await model.itm(blue, 'a blue square'), await model.itm(red, 'a blue square')];
    // One graph run pads texts to the longest; masked pads change nothing beyond float rounding.
    batch.forEach((p, i) => assert.ok(Math.abs(p - single[i]!) < 1e-5, `pair ${i}: batch ${p} vs single ${single[i]}`));
    const http = await post('/itm', { images: [red.toString('base64'), blue.toString('base64')], text: 'a red square' });
    const ours = await model.itm([red, blue], 'a red square');
    ours.forEach((p, i) => assert.ok(Math.abs(p - http.scores[i]) < 1e-5, `image ${i}: library ${p} vs HTTP ${http.scores[i]}`));
  });

  it('entailment and nlvr2 answer what their routes answer', async () => {
    assert.deepEqual(await model.entailment(red, 'the image is red'), (({ model: _, precision: __, ...rest }) => rest)(await post('/entailment', { image: red.toString('base64'), hypothesis: 'the image is red' })));
    const nlvr2 = await post('/nlvr2', { images: [red.toString('base64'), blue.toString('base64')], statement: 'the left one is red' });
    assert.deepEqual(await model.nlvr2(red, blue, 'the left one is red'), { answer: nlvr2.answer, score: nlvr2.score });
  });

  it('embed answers POST /embed embeddings for texts and images, batched', async () => {
    const http = await post('/embed', { inputs: [{ text: 'a red square' }, { image: red.toString('base64') }] });
    const [text, image] = await model.embed([{ text: 'a red square' }, { image: red }]);
    assert.ok(text instanceof Float32Array && image instanceof Float32Array);
    assert.equal(text.length, model.info.embeddingDim);
    for (const [ours, theirs] of [[text, http.embeddings[0]], [image, http.embeddings[1]]] as const) {
      ours.forEach((v, i) => assert.ok(Math.abs(v - theirs[i]) < 1e-6, `component ${i}: ${v} vs ${theirs[i]}`));
    }
    await assert.rejects(model.embed({ text: 'a', image: red }), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && /itc_cross_modal_head/.test(e.message));
  });

  it('search over an in-memory gallery ranks as POST /search over the server gallery', async () => {
    const gallery = model.createGallery();
    await gallery.add([
      { id: 'red', image: red },
      { id: 'blue', image: blue },
    ]);
    assert.equal(gallery.size, 2);
    for (const [id, image] of [['red', red], ['blue', blue]] as const) {
      const put = await app.inject({ method: 'PUT', url: `/gallery/${id}`, payload: { image: image.toString('base64') } });
      assert.equal(put.statusCode, 200, put.body);
    }
    const hits = await model.search('a red square', { gallery, k: 2 });
    const http = await post('/search', { text: 'a red square', k: 2 });
    assert.deepEqual(hits.map((h) => h.id), http.results.map((r: { id: string }) => r.id));
    hits.forEach((hit, i) => assert.ok(Math.abs(hit.score - http.results[i].score) < 1e-4, `hit ${i}: ${hit.score} vs ${http.results[i].score}`));
  });

  it('refuses what it cannot do with a typed error that says what to do', async () => {
    const usage = (pattern: RegExp) => (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && pattern.test(e.message);
    await assert.rejects(model.fillMask(red, 'a <mask> square'), usage(/no mlm head/));
    await assert.rejects(model.itm([red, blue], ['only one text']), usage(/2 images but 1 texts/));
    await assert.rejects(model.vqa(join(dir, 'missing.png'), 'q'), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_IO' && /no image file/.test(e.message));
    await assert.rejects(model.vqa({ data: new Uint8Array(5), width: 2, height: 2 }, 'q'), usage(/width × height × 3/));
    await assert.rejects(BridgeTower.load(bundle, { precision: 'fp16' }), usage(/graphs only, not fp16/));
    await assert.rejects(BridgeTower.load(bundle, { precision: 'fp8' as never }), usage(/precision must be one of/));
  });

  it('a disposed model refuses calls', async () => {
    const other = await BridgeTower.load(bundle, { threads: 1, precision: 'auto' });
    await other.dispose();
    await assert.rejects(other.vqa(red, 'q'), (e: unknown) => e instanceof BridgeTowerError && /was disposed/.test(e.message));
  });
});
