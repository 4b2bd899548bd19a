import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { ImageError } from '../../preprocess/image-errors.js';
import { DeadlineError, OverloadError } from '../../server/scheduling/errors.js';
import { fakeImage, fakeServer, multipart } from './http-fakes.js';

const B64 = fakeImage(12).toString('base64');

async function errorOf(response: { statusCode: number; json(): any }, status: number, code: string): Promise<string> {
  assert.equal(response.statusCode, status, JSON.stringify(response.json()));
  const body = response.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  return body.error.message;
}

describe('malformed requests answer a 4xx that says what was wrong', () => {
  it('an image that is not base64 is a 400', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: 'this is not base64!', question: 'q' } });
    assert.match(await errorOf(response, 400, 'E_BAD_BASE64'), /image is not base64/);
    assert.equal(service.calls.length, 0);
  });

  it('a data URL that is not base64-encoded is a 400', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: 'data:image/png,rawbytes', question: 'q' } });
    assert.match(await errorOf(response, 400, 'E_BAD_BASE64'), /;base64/);
  });

  it('malformed JSON is a 400', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: '{"image": "abc", ', headers: { 'content-type': 'application/json' } });
    await errorOf(response, 400, 'E_BAD_REQUEST');
  });

  it('a body that is neither JSON nor multipart is a 415', async (t) => {
    const { app } = await fakeServer(t);
    for (const type of ['text/plain', 'application/xml', 'image/png']) {
      const response = await app.inject({ method: 'POST', url: '/vqa', payload: 'hello', headers: { 'content-type': type } });
      assert.match(await errorOf(response, 415, 'E_UNSUPPORTED_MEDIA_TYPE'), /application\/json.*multipart\/form-data/);
    }
  });

  it('a missing field is a 422 that names it', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64 } });
    assert.equal(await errorOf(response, 422, 'E_INVALID_FIELDS'), 'question: is required');
  });

  it('a request without a body is a 422', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/entailment' });
    assert.equal(await errorOf(response, 422, 'E_INVALID_FIELDS'), 'body: is required');
  });

  it('fields of the wrong type are a 422 that names each', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: 42, question: ['q'], top_k: 'five' } });
    const message = await errorOf(response, 422, 'E_INVALID_FIELDS');
    for (const field of ['image', 'question', 'top_k']) assert.match(message, new RegExp(`${field}:`));
  });

  it('top_k out of range or fractional is a 422', async (t) => {
    const { app } = await fakeServer(t);
    for (const top_k of [0, 101, 2.5, -1]) {
      const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q', top_k } });
      assert.match(await errorOf(response, 422, 'E_INVALID_FIELDS'), /top_k:/, `top_k ${top_k}`);
    }
  });

  it('an unknown field is a 422 (a misspelt option is not silently ignored)', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q', topk: 3 } });
    assert.match(await errorOf(response, 422, 'E_INVALID_FIELDS'), /topk/);
  });

  it('an empty or blank question, hypothesis, statement or text is a 422', async (t) => {
    const { app, service } = await fakeServer(t);
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['/vqa', { image: B64, question: '' }, 'question'],
      ['/vqa', { image: B64, question: ' \n\t ' }, 'question'],
      ['/entailment', { image: B64, hypothesis: '   ' }, 'hypothesis'],
      ['/nlvr2', { images: [B64, B64], statement: '' }, 'statement'],
      ['/itm', { image: B64, texts: ['ok', ' '] }, 'texts.1'],
      ['/embed', { text: '' }, 'text'],
      ['/search', { text: ' ' }, 'text'],
    ];
    for (const [url, payload, field] of cases) {
      const response = await app.inject({ method: 'POST', url, payload });
      assert.match(await errorOf(response, 422, 'E_INVALID_FIELDS'), new RegExp(`${field.replace('.', '\\.')}: must not be empty`), url);
    }
    assert.equal(service.calls.length, 0);
  });

  it('a 10 000-character question is not an error: the model truncates it', async (t) => {
    const { app, service } = await fakeServer(t);
    const question = 'why '.repeat(2500);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question } });
    assert.equal(response.statusCode, 200);
    assert.equal((service.calls[0]!.input as { question: string }).question.length, question.trimEnd().length);
  });

  it('/itm with both or neither shape is a 422 that says which shapes exist', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/itm', payload: { image: B64, text: 'one' } });
    assert.match(await errorOf(response, 422, 'E_INVALID_FIELDS'), /give \{image, texts: \[\.\.\.\]\} or \{images: \[\.\.\.\], text\}/);
  });

  it('/nlvr2 with one image is a 422', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/nlvr2', payload: { images: [B64], statement: 's' } });
    assert.match(await errorOf(response, 422, 'E_INVALID_FIELDS'), /exactly two images/);
  });

  it('an unknown route is a 404 in the same error shape', async (t) => {
    const { app } = await fakeServer(t);
    assert.match(await errorOf(await app.inject({ method: 'POST', url: '/answer' }), 404, 'E_NOT_FOUND'), /POST \/answer/);
  });
});

describe('size limits answer 413', () => {
  it('a body over --body-limit-mb is a 413', async (t) => {
    const { app } = await fakeServer(t, { server: { bodyLimitBytes: 4096 } });
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: fakeImage(8000).toString('base64'), question: 'q' } });
    await errorOf(response, 413, 'E_TOO_LARGE');
  });

  it('a base64 image over the image limit is a 413 before decoding', async (t) => {
    const { app, service } = await fakeServer(t, { server: { maxImageBytes: 1000 } });
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: fakeImage(2000).toString('base64'), question: 'q' } });
    assert.match(await errorOf(response, 413, 'E_TOO_LARGE'), /limit is 1000 bytes/);
    assert.equal(service.calls.length, 0);
  });

  it('a multipart file over the image limit is a 413', async (t) => {
    const { app } = await fakeServer(t, { server: { maxImageBytes: 1000 } });
    const form = await multipart([['image', { bytes: fakeImage(5000) }], ['question', 'q']]);
    await errorOf(await app.inject({ method: 'POST', url: '/vqa', ...form }), 413, 'E_TOO_LARGE');
  });

  it('a multipart body over the body limit is a 413', async (t) => {
    const { app } = await fakeServer(t, { server: { bodyLimitBytes: 3000, maxImageBytes: 2000 } });
    const form = await multipart([['images', { bytes: fakeImage(1900) }], ['images', { bytes: fakeImage(1900) }], ['statement', 's']]);
    await errorOf(await app.inject({ method: 'POST', url: '/nlvr2', ...form }), 413, 'E_TOO_LARGE');
  });

  it('a multipart text field over the field limit is a 413', async (t) => {
    const { app } = await fakeServer(t, { server: { maxImageBytes: 600 } });
    const form = await multipart([['image', { bytes: fakeImage(10) }], ['question', 'x'.repeat(2000)]]);
    assert.match(await errorOf(await app.inject({ method: 'POST', url: '/vqa', ...form }), 413, 'E_TOO_LARGE'), /field 'question'/);
  });
});

describe('bad multipart bodies answer 400', () => {
  it('a truncated multipart body is a 400', async (t) => {
    const { app } = await fakeServer(t);
    const form = await multipart([['image', { bytes: fakeImage(100) }], ['question', 'q']]);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: form.payload.subarray(0, 150), headers: form.headers });
    await errorOf(response, 400, 'E_BAD_REQUEST');
  });

  it('a multipart Content-Type without a boundary is a 400', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: 'question=q', headers: { 'content-type': 'multipart/form-data' } });
    await errorOf(response, 400, 'E_BAD_REQUEST');
  });
});

describe("the runtime's errors keep their status", () => {
  const imageErrors = [
    ['decode', 400, 'E_IMAGE_DECODE'],
    ['too_large', 413, 'E_IMAGE_TOO_LARGE'],
    ['unsupported', 415, 'E_IMAGE_UNSUPPORTED'],
  ] as const;
  for (const [reason, status, code] of imageErrors) {
    it(`an image the runtime refuses as ${reason} is a ${status} ${code} with its message`, async (t) => {
      const { app, service } = await fakeServer(t);
      service.failNextWith(new ImageError(reason, `the image is refused (${reason})`));
      const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
      assert.equal(await errorOf(response, status, code), `the image is refused (${reason})`);
    });
  }

  it('an overloaded runtime is a 503 with Retry-After', async (t) => {
    const { app, service } = await fakeServer(t);
    service.failNextWith(new OverloadError('64 requests are queued: retry later', 1.2));
    const response = await app.inject({ method: 'POST', url: '/entailment', payload: { image: B64, hypothesis: 'h' } });
    assert.equal(await errorOf(response, 503, 'E_OVERLOADED'), '64 requests are queued: retry later');
    assert.equal(response.headers['retry-after'], '2');
  });

  it('a request past its deadline is a 504', async (t) => {
    const { app, service } = await fakeServer(t);
    service.failNextWith(new DeadlineError('the deadline passed'));
    const response = await app.inject({ method: 'POST', url: '/itm', payload: { image: B64, texts: ['t'] } });
    await errorOf(response, 504, 'E_DEADLINE');
  });

  it('an unexpected error is a 500 E_INTERNAL that leaks nothing', async (t) => {
    const { app, service } = await fakeServer(t);
    service.failNextWith(new TypeError('secret path /opt/models/x.onnx: cannot read properties of undefined'));
    const response = await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } });
    assert.equal(await errorOf(response, 500, 'E_INTERNAL'), 'internal error');
    assert.doesNotMatch(response.body, /secret|onnx|TypeError|at /);
  });

  it('a BridgeTowerError whose code maps to a 5xx (a broken bundle) is a 500 E_INTERNAL too', async (t) => {
    const { app, service } = await fakeServer(t);
    service.failNextWith(new BridgeTowerError('E_BUNDLE', 'bundle /secret/dir lacks onnx/fusion.onnx'));
    const response = await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } });
    assert.equal(await errorOf(response, 500, 'E_INTERNAL'), 'internal error');
  });

  it('the server keeps answering after every kind of failure', async (t) => {
    const { app, service } = await fakeServer(t);
    service.failNextWith(new Error('boom'));
    await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } });
    await app.inject({ method: 'POST', url: '/vqa', payload: '{', headers: { 'content-type': 'application/json' } });
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } })).statusCode, 200);
  });
});
