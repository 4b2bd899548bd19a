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
    // PUT and DELETE store and remove; GET (and so HEAD) reads one item.
    assert.equal(response.headers.allow, 'DELETE, GET, HEAD, PUT');
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
    services[0]!.info.weightsDtype = 'float16';
    services[0]!.precision = 'int8';
    services[0]!.int8Weights = 'u8';
    const { app } = await fakeServer(t, { services, server: { maxBatch: 16, maxQueue: 99 } });
    const response = await app.inject({ method: 'GET', url: '/info' });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(body.models[0], { name: 'alpha', demo: false, tasks: ['vqa'], hidden_size: 32, embedding_dim: 3, max_text_tokens: { vqa: 40 }, image_size: 64, precision: 'int8', int8_weights: 'u8', weights_dtype: 'float16' });
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

describe('the OpenAPI document', () => {
  const documentOf = async (t: { after(fn: () => unknown): void }) => {
    const { app } = await fakeServer(t);
    return (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
  };

  it('marks every multipart image field as a binary file, so that /docs offers a file picker', async (t) => {
    const doc = await documentOf(t);
    const multipart = (path: string, method = 'post') => doc.paths[path][method].requestBody.content['multipart/form-data'].schema;
    const binary = { type: 'string', format: 'binary' };
    assert.deepEqual(pick(multipart('/vqa').properties.image, binary), binary);
    assert.deepEqual(pick(multipart('/gallery/{id}', 'put').properties.image, binary), binary);
    assert.deepEqual(pick(multipart('/nlvr2').properties.images.items, binary), binary);
    assert.deepEqual(pick(multipart('/itm').anyOf[0].properties.image, binary), binary);
    assert.deepEqual(pick(multipart('/itm').anyOf[1].properties.images.items, binary), binary);
    // The JSON side keeps the base64 string, by reference to the one shared schema.
    assert.deepEqual(doc.paths['/vqa'].post.requestBody.content['application/json'].schema, { $ref: '#/components/schemas/VqaRequest' });
    assert.equal(doc.components.schemas.VqaRequest.properties.image.anyOf[0].type, 'string');
    assert.equal(doc.components.schemas.VqaRequest.properties.image.anyOf[0].format, undefined);
  });

  it('names each schema once: no *Input duplicates, and every $ref resolves', async (t) => {
    const doc = await documentOf(t);
    const names = Object.keys(doc.components.schemas);
    assert.deepEqual(names.filter((name) => name.endsWith('Input')), []);
    assert.ok(names.includes('VqaRequest') && names.includes('VqaResponse') && names.includes('Error'));
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z0-9]+/g) ?? [];
    assert.ok(refs.length > 10);
    for (const ref of refs) assert.ok(names.includes(ref.split('/').pop()!), `${ref} does not resolve`);
  });
});

function pick(value: Record<string, unknown>, like: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(like).map((key) => [key, value[key]]));
}
