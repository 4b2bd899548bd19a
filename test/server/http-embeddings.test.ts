import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { MAX_EMBED_INPUTS } from '../../server/schemas/embeddings.js';
import { fakeImage, fakeServer, FakeModelService } from './http-fakes.js';

/**
 * POST /embed batches and the OpenAI-compatible routes over a fake service whose embeddings are
 * simple functions of the input (text: [length, 0.5, -0.25]; image: [bytes, -0.5, 0.25]; pair:
 * [length, bytes, 1]), so order and routing are visible. The OpenAI client is the `openai` npm
 * package pointed at a listening server.
 */

const IMAGE = fakeImage(12);
const B64 = IMAGE.toString('base64');

async function openAiClient(t: TestContext, services?: FakeModelService[]) {
  const { app, service } = await fakeServer(t, services ? { services } : {});
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { client: new OpenAI({ apiKey: 'not-checked', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 60_000 }), service };
}

describe('POST /embed with a batch of inputs', () => {
  it('answers one embedding per input in request order, with its kind and the dims', async (t) => {
    const { app, service } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/embed', payload: { inputs: [{ text: 'four' }, { image: B64 }, { text: 'pair', image: `data:image/png;base64,${B64}` }] } });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), {
      embeddings: [
        [4, 0.5, -0.25],
        [12, -0.5, 0.25],
        [4, 12, 1],
      ],
      dims: 3,
      kind: ['text', 'image', 'pair'],
      model: 'fake',
      precision: 'fp32',
    });
    assert.deepEqual(service.calls.map((c) => c.method), ['embed'], 'the batch is one request to the model');
  });

  it('an image–text pair on a bundle without a cross-modal head is a 422 naming the served bundles that can', async (t) => {
    const plain = new FakeModelService('retrieval', ['itc']);
    plain.embedsPairs = false;
    const joint = new FakeModelService('contrastive', ['itc']);
    const { app } = await fakeServer(t, { services: [plain, joint] });
    const response = await app.inject({ method: 'POST', url: '/embed', payload: { model: 'retrieval', inputs: [{ text: 'a' }, { text: 'b', image: B64 }] } });
    assert.equal(response.statusCode, 422);
    assert.equal(response.json().error.code, 'E_INVALID_FIELDS');
    assert.match(response.json().error.message, /inputs\[1\]: model 'retrieval' cannot embed an image–text pair.*'contrastive'/);
    assert.deepEqual(plain.calls, [], 'nothing of the batch was embedded');
  });

  it(`refuses an empty batch, more than ${MAX_EMBED_INPUTS} inputs, an item with neither text nor image, and normalize: false`, async (t) => {
    const { app, service } = await fakeServer(t);
    const cases: Array<[unknown, RegExp]> = [
      [{ inputs: [] }, /inputs/],
      [{ inputs: Array.from({ length: MAX_EMBED_INPUTS + 1 }, () => ({ text: 'x' })) }, /inputs/],
      [{ inputs: [{ text: 'ok' }, {}] }, /give text, image, or both/],
      [{ inputs: [{ text: 'ok' }], normalize: false }, /normalize: only true/],
    ];
    for (const [payload, message] of cases) {
      const response = await app.inject({ method: 'POST', url: '/embed', payload: payload as object });
      assert.equal(response.statusCode, 422, JSON.stringify(payload).slice(0, 80));
      assert.match(response.json().error.message, message);
    }
    assert.deepEqual(service.calls, []);
  });

  it('the single {text} and {image} bodies keep their answer', async (t) => {
    const { app } = await fakeServer(t);
    assert.deepEqual((await app.inject({ method: 'POST', url: '/embed', payload: { text: 'four' } })).json(), { embedding: [4, 0.5, -0.25], model: 'fake', precision: 'fp32' });
  });
});

describe('OpenAI-compatible /v1/embeddings and /v1/models, through the openai SDK', () => {
  it('embeds a string array with the SDK default (base64, decoded by the SDK) and in float, in order, with usage', async (t) => {
    const { client } = await openAiClient(t);
    for (const encoding_format of [undefined, 'float'] as const) {
      const response: OpenAI.CreateEmbeddingResponse = await client.embeddings.create({ model: 'fake', input: ['four', 'sixsix'], ...(encoding_format ? { encoding_format } : {}) });
      assert.equal(response.object, 'list');
      assert.equal(response.model, 'fake');
      assert.deepEqual(
        response.data.map((d) => [d.object, d.index, d.embedding]),
        [
          ['embedding', 0, [4, 0.5, -0.25]],
          ['embedding', 1, [6, 0.5, -0.25]],
        ],
        `encoding_format ${encoding_format ?? '(SDK default)'}`,
      );
      // The fake counts one token per character plus <s> and </s>.
      assert.deepEqual(response.usage, { prompt_tokens: 6 + 8, total_tokens: 6 + 8 });
    }
  });

  it('embeds a single string, and {text?, image?} items with images as data URLs', async (t) => {
    const { client } = await openAiClient(t);
    assert.deepEqual((await client.embeddings.create({ model: 'fake', input: 'four', encoding_format: 'float' })).data[0]!.embedding, [4, 0.5, -0.25]);
    const items = [{ image: `data:image/png;base64,${B64}` }, { text: 'pair', image: B64 }] as unknown as string[];
    const response = await client.embeddings.create({ model: 'fake', input: items, encoding_format: 'float' });
    assert.deepEqual(response.data.map((d) => d.embedding), [[12, -0.5, 0.25], [4, 12, 1]]);
    assert.equal(response.usage.prompt_tokens, 6, 'images count no tokens');
  });

  it('errors come in OpenAI’s shape, which the SDK reads: unknown model, wrong dimensions, token arrays', async (t) => {
    const { client } = await openAiClient(t);
    const cases: Array<[Parameters<typeof client.embeddings.create>[0], number, RegExp]> = [
      [{ model: 'nope', input: 'x' }, 404, /no model named 'nope'/],
      [{ model: 'fake', input: 'x', dimensions: 2 }, 422, /dimensions: model 'fake' makes embeddings of exactly 3 dimensions/],
      [{ model: 'fake', input: [[1, 2, 3]] }, 422, /token arrays are not accepted/],
    ];
    for (const [body, status, message] of cases) {
      await assert.rejects(client.embeddings.create(body), (error: unknown) => {
        assert.ok(error instanceof OpenAI.APIError, `not an APIError: ${String(error)}`);
        assert.equal(error.status, status);
        assert.match(error.message, message);
        const raw = error.error as { message: string; type: string; code: string };
        assert.equal(raw.type, 'invalid_request_error');
        assert.match(raw.code, /^E_/);
        return true;
      });
    }
  });

  it('GET /v1/models lists every served bundle', async (t) => {
    const { client } = await openAiClient(t, [new FakeModelService('one'), new FakeModelService('two', ['vqa'])]);
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    assert.deepEqual(models.map((m) => [m.id, m.object, m.owned_by]), [['one', 'model', 'bridgetower-node'], ['two', 'model', 'bridgetower-node']]);
    assert.ok(models.every((m) => Number.isInteger(m.created)));
  });
});
