import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { FakeModelService, fakeServer } from './http-fakes.js';

describe('a known path asked with the wrong method', () => {
  it('GET /vqa is a 405 with Allow: POST, not a 404', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'GET', url: '/vqa' });
    assert.equal(response.statusCode, 405);
    assert.equal(response.headers.allow, 'POST');
    assert.equal(response.json().error.code, 'E_METHOD_NOT_ALLOWED');
    assert.match(response.json().error.message, /\/vqa does not answer GET: use POST/);
  });

  it('a path with a parameter lists every method its routes answer', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/gallery/cat-1?model=x' });
    assert.equal(response.statusCode, 405);
    assert.equal(response.headers.allow, 'DELETE, PUT');
  });

  it('a GET route allows HEAD too', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/readyz' });
    assert.equal(response.statusCode, 405);
    assert.equal(response.headers.allow, 'GET, HEAD');
  });

  it('a path no route has is still a 404', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'GET', url: '/vqa/extra' });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().error.code, 'E_NOT_FOUND');
  });
});

describe('GET /health', () => {
  it('answers as /healthz does, without the key under --auth all', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: 'secret', auth: 'all' } });
    const response = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok' });
  });
});

describe('GET /info', () => {
  it("says each model's sizes, text length, image size and precision, and the batching limits", async (t) => {
    const services = [new FakeModelService('alpha', ['vqa']), new FakeModelService('beta', ['itm', 'itc'], true)];
    services[0]!.info.precision = 'float16';
    const { app } = await fakeServer(t, { services, server: { maxBatch: 16, maxQueue: 99 } });
    const response = await app.inject({ method: 'GET', url: '/info' });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(body.models[0], { name: 'alpha', demo: false, tasks: ['vqa'], hidden_size: 32, embedding_dim: 3, max_text_tokens: { vqa: 40 }, image_size: 64, precision: 'float16' });
    assert.equal(body.models[1].name, 'beta (random weights: answers are meaningless)');
    assert.deepEqual(body.models[1].max_text_tokens, { itm: 40, itc: 40 });
    assert.equal(body.max_batch, 16);
    assert.equal(body.max_queue, 99);
    assert.equal(body.max_delay_ms, DEFAULT_SERVER_OPTIONS.maxDelayMs);
    assert.equal(body.request_timeout_ms, DEFAULT_SERVER_OPTIONS.requestTimeoutMs);
  });

  it('needs the key under --auth all', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: 'secret', auth: 'all' } });
    assert.equal((await app.inject({ method: 'GET', url: '/info' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/info', headers: { authorization: 'Bearer secret' } })).statusCode, 200);
  });
});
