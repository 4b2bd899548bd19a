import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeImage, fakeServer, memoryGallery, multipart } from './http-fakes.js';

const IMAGE = fakeImage(12);
const B64 = IMAGE.toString('base64');

describe('task routes answer JSON requests', () => {
  it('POST /vqa answers top_k answers, best first, and names the model', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'what is it?', top_k: 3 } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      answers: [
        { answer: 'answer 0 to 11 chars', score: 0.5 },
        { answer: 'answer 1 to 11 chars', score: 1 / 3 },
        { answer: 'answer 2 to 11 chars', score: 0.25 },
      ],
      model: 'fake',
      precision: 'fp32',
    });
    const call = service.calls[0]!;
    assert.equal(call.method, 'vqa');
    assert.deepEqual(call.input, { image: IMAGE, question: 'what is it?', topK: 3 });
  });

  it('POST /vqa asks for 5 answers when top_k is left out', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    assert.equal(response.json().answers.length, 5);
    assert.equal((service.calls[0]!.input as { topK: number }).topK, 5);
  });

  it('a data URL image is decoded like plain base64', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: `data:image/png;base64,${B64}`, question: 'q' } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual((service.calls[0]!.input as { image: Uint8Array }).image, IMAGE);
  });

  it('the question reaches the model trimmed', async (t) => {
    const { app, service } = await fakeServer(t);
    await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: '  what colour?\n' } });
    assert.equal((service.calls[0]!.input as { question: string }).question, 'what colour?');
  });

  it('every request carries a deadline of now + the request timeout', async (t) => {
    const { app, service } = await fakeServer(t, { server: { requestTimeoutMs: 5000 } });
    const before = Date.now();
    await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    const deadline = service.calls[0]!.ctx.deadline;
    assert.ok(deadline >= before + 5000 && deadline <= Date.now() + 5000, `deadline ${deadline - before} ms after the request`);
  });

  it('POST /entailment answers the label and the three scores', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/entailment', payload: { image: B64, hypothesis: 'a cat sleeps' } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { label: 'neutral', scores: { entailment: 0.25, neutral: 0.5, contradiction: 0.25 }, model: 'fake', precision: 'fp32' });
    assert.deepEqual(service.calls[0]!.input, { image: IMAGE, hypothesis: 'a cat sleeps' });
  });

  it('POST /nlvr2 passes images [left, right] in order and answers a boolean', async (t) => {
    const { app, service } = await fakeServer(t);
    const left = fakeImage(20, 2);
    const right = fakeImage(10, 3);
    const response = await app.inject({ method: 'POST', url: '/nlvr2', payload: { images: [left.toString('base64'), right.toString('base64')], statement: 'two dogs' } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { answer: true, score: 0.75, model: 'fake', precision: 'fp32' });
    assert.deepEqual(service.calls[0]!.input, { left, right, statement: 'two dogs' });
  });

  it('POST /itm with one image and several texts scores each pair in request order', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/itm', payload: { image: B64, texts: ['a', 'abc', 'ab'] } });
    assert.equal(response.statusCode, 200);
    const { scores, model } = response.json();
    assert.equal(model, 'fake');
    assert.deepEqual(scores.map((s: number) => Math.round((s - 0.012) * 100)), [1, 3, 2]);
  });

  it('POST /itm with several images and one text scores each pair in request order', async (t) => {
    const { app, service } = await fakeServer(t);
    const images = [fakeImage(30), fakeImage(10), fakeImage(20)];
    const response = await app.inject({ method: 'POST', url: '/itm', payload: { images: images.map((i) => i.toString('base64')), text: 'x' } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json().scores.map((s: number) => Math.round((s - 0.01) * 1000)), [30, 10, 20]);
    assert.equal((service.calls[0]!.input as { pairs: unknown[] }).pairs.length, 3);
  });

  it('POST /embed embeds a text or an image as a plain array of numbers', async (t) => {
    const { app, service } = await fakeServer(t);
    const text = await app.inject({ method: 'POST', url: '/embed', payload: { text: 'four' } });
    assert.deepEqual(text.json(), { embedding: [4, 0.5, -0.25], model: 'fake', precision: 'fp32' });
    const image = await app.inject({ method: 'POST', url: '/embed', payload: { image: B64 } });
    assert.deepEqual(image.json(), { embedding: [12, -0.5, 0.25], model: 'fake', precision: 'fp32' });
    assert.deepEqual(service.calls.map((c) => c.method), ['embedText', 'embedImage']);
  });
});

describe('the gallery routes', () => {
  it('PUT /gallery/:id stores the encoding the model computed and answers its hash', async (t) => {
    const gallery = await memoryGallery();
    const { app } = await fakeServer(t, { gallery });
    const response = await app.inject({ method: 'PUT', url: '/gallery/cat-1', payload: { image: B64 } });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.equal(body.id, 'cat-1');
    assert.equal(body.model, 'fake');
    assert.match(body.hash, /^[0-9a-f]{64}$/);
    assert.equal((await gallery.get('cat-1'))?.hash, body.hash);
  });

  it('POST /search ranks the gallery through the model and answers id, score and itc', async (t) => {
    const { app, service } = await fakeServer(t);
    for (const [id, size] of [['small', 5], ['large', 50], ['medium', 20]] as const) {
      const put = await app.inject({ method: 'PUT', url: `/gallery/${id}`, payload: { image: fakeImage(size).toString('base64') } });
      assert.equal(put.statusCode, 200);
    }
    const response = await app.inject({ method: 'POST', url: '/search', payload: { text: 'a big one', k: 2 } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { results: [{ id: 'large', score: 5, itc: 50 }, { id: 'medium', score: 2, itc: 20 }], query: 'text', reranked: true, reencoded: 0, model: 'fake', precision: 'fp32' });
    const search = service.calls.find((c) => c.method === 'search')!.input as { k: number; candidates: number; rerank: boolean };
    assert.equal(search.k, 2);
    assert.equal(search.candidates, 128);
    assert.equal(search.rerank, true);
  });

  it('POST /search over an empty gallery answers no results', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/search', payload: { text: 'anything' } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { results: [], query: 'text', reranked: true, reencoded: 0, model: 'fake', precision: 'fp32' });
  });

  it('DELETE /gallery/:id removes the image, and answers 404 when it is not there', async (t) => {
    const gallery = await memoryGallery();
    const { app } = await fakeServer(t, { gallery });
    await app.inject({ method: 'PUT', url: '/gallery/dog', payload: { image: B64 } });
    const removed = await app.inject({ method: 'DELETE', url: '/gallery/dog' });
    assert.equal(removed.statusCode, 200);
    assert.deepEqual(removed.json(), { id: 'dog', deleted: true, model: 'fake', precision: 'fp32' });
    assert.equal((await gallery.list({ limit: 10 })).total, 0);
    const again = await app.inject({ method: 'DELETE', url: '/gallery/dog' });
    assert.equal(again.statusCode, 404);
    assert.equal(again.json().error.code, 'E_NOT_IN_GALLERY');
  });

  it('a gallery id outside the allowed characters is a 422 that names the rule', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'PUT', url: '/gallery/a%20b', payload: { image: B64 } });
    assert.equal(response.statusCode, 422);
    assert.match(response.json().error.message, /id \(params\):.*1–128 characters/);
  });
});

describe('task routes answer multipart requests', () => {
  it('POST /vqa reads the image file part and types top_k as a number', async (t) => {
    const { app, service } = await fakeServer(t);
    const form = await multipart([['image', { bytes: IMAGE }], ['question', 'why?'], ['top_k', '2']]);
    const response = await app.inject({ method: 'POST', url: '/vqa', ...form });
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().answers.length, 2);
    assert.deepEqual(service.calls[0]!.input, { image: IMAGE, question: 'why?', topK: 2 });
  });

  it('POST /nlvr2 takes two file parts of the same name as [left, right]', async (t) => {
    const { app, service } = await fakeServer(t);
    const left = fakeImage(8, 4);
    const right = fakeImage(16, 5);
    const form = await multipart([['images', { bytes: left }], ['images', { bytes: right }], ['statement', 'left is smaller']]);
    const response = await app.inject({ method: 'POST', url: '/nlvr2', ...form });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(service.calls[0]!.input, { left, right, statement: 'left is smaller' });
  });

  it('POST /itm takes a single texts field as a list of one', async (t) => {
    const { app } = await fakeServer(t);
    const form = await multipart([['image', { bytes: IMAGE }], ['texts', 'only one']]);
    const response = await app.inject({ method: 'POST', url: '/itm', ...form });
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().scores.length, 1);
  });

  it('an image may also be a base64 text field', async (t) => {
    const { app, service } = await fakeServer(t);
    const form = await multipart([['image', `data:image/png;base64,${B64}`], ['hypothesis', 'h']]);
    const response = await app.inject({ method: 'POST', url: '/entailment', ...form });
    assert.equal(response.statusCode, 200);
    assert.deepEqual((service.calls[0]!.input as { image: Uint8Array }).image, IMAGE);
  });

  it('PUT /gallery/:id and POST /search take multipart too', async (t) => {
    const gallery = await memoryGallery();
    const { app } = await fakeServer(t, { gallery });
    const put = await app.inject({ method: 'PUT', url: '/gallery/x', ...(await multipart([['image', { bytes: IMAGE }]])) });
    assert.equal(put.statusCode, 200);
    const search = await app.inject({ method: 'POST', url: '/search', ...(await multipart([['text', 'q'], ['k', '1']])) });
    assert.equal(search.statusCode, 200);
    assert.deepEqual(search.json().results.map((r: { id: string }) => r.id), ['x']);
  });
});
