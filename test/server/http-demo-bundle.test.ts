import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { readBundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { DEFAULT_MAX_INPUT_CHARS } from '../../preprocess/text.js';
import { buildServer } from '../../server/app.js';
import { multipart, testOptions } from './http-fakes.js';

async function png(red: number, green: number, blue: number): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: { r: red, g: green, b: blue } } }).png().toBuffer();
}

async function waitUntilReady(app: FastifyInstance, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    if (response.statusCode === 200) return;
    if (Date.now() > until) throw new Error(`not ready after ${timeoutMs} ms: ${response.body}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('end to end on the demo bundle', () => {
  let app: FastifyInstance;
  let labels: string[];
  let name: string;

  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-http-demo-'));
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    name = readBundleConfig(bundle).name;
    labels = (JSON.parse(readFileSync(join(bundle, 'labels.json'), 'utf8')) as { vqa: string[] }).vqa;
    app = await buildServer(testOptions({ bundles: [bundle], dataDir: join(dir, 'data'), maxBatch: 4, cacheMb: 16 }));
    await waitUntilReady(app);
  });

  after(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a question over the length limit is refused naming the field, question', async () => {
    const image = await png(10, 20, 30);
    const question = 'why '.repeat(DEFAULT_MAX_INPUT_CHARS / 4 + 1);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: image.toString('base64'), question } });
    assert.equal(response.statusCode, 400, response.body);
    const body = response.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'E_USAGE');
    assert.match(body.error.message, new RegExp(`^question: text is ${question.trimEnd().length} characters long, over the limit of ${DEFAULT_MAX_INPUT_CHARS}`));
  });

  it("POST /vqa answers the bundle's labels, best first, and names the demo", async () => {
    const image = await png(200, 30, 30);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: image.toString('base64'), question: 'what colour is it?', top_k: 3 } });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json() as { answers: Array<{ answer: string; score: number }>; model: string };
    assert.equal(body.model, name);
    assert.match(body.model, /meaningless/);
    assert.equal(body.answers.length, 3);
    for (const { answer, score } of body.answers) {
      assert.ok(labels.includes(answer), `'${answer}' is one of the bundle's labels`);
      assert.ok(score > 0 && score < 1, `score ${score} is a sigmoid`);
    }
    const scores = body.answers.map((a) => a.score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  });

  it('the same question in multipart gets the same answers', async () => {
    const image = await png(10, 200, 10);
    const json = await app.inject({ method: 'POST', url: '/vqa', payload: { image: image.toString('base64'), question: 'is it green?' } });
    const form = await multipart([['image', { bytes: image }], ['question', 'is it green?']]);
    const viaForm = await app.inject({ method: 'POST', url: '/vqa', ...form });
    assert.equal(viaForm.statusCode, 200, viaForm.body);
    assert.deepEqual(viaForm.json(), json.json());
  });

  it('a truncated PNG is a 400 and a text file a 415, from the runtime', async () => {
    const image = await png(1, 2, 3);
    const truncated = await app.inject({ method: 'POST', url: '/vqa', payload: { image: image.subarray(0, 40).toString('base64'), question: 'q' } });
    assert.equal(truncated.statusCode, 400, truncated.body);
    assert.equal(truncated.json().error.code, 'E_IMAGE_DECODE');
    const text = await app.inject({ method: 'POST', url: '/vqa', payload: { image: Buffer.from('just some text, not an image').toString('base64'), question: 'q' } });
    assert.equal(text.statusCode, 415, text.body);
    assert.equal(text.json().error.code, 'E_IMAGE_UNSUPPORTED');
  });

  it('gallery images are found by search', async () => {
    for (const [id, image] of [['red', await png(220, 20, 20)], ['blue', await png(20, 20, 220)]] as const) {
      const put = await app.inject({ method: 'PUT', url: `/gallery/${id}`, payload: { image: image.toString('base64') } });
      assert.equal(put.statusCode, 200, put.body);
    }
    const search = await app.inject({ method: 'POST', url: '/search', payload: { text: 'a red square', k: 5 } });
    assert.equal(search.statusCode, 200, search.body);
    assert.deepEqual(search.json().results.map((r: { id: string }) => r.id).sort(), ['blue', 'red']);
  });
});
