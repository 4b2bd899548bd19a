import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { buildServer } from '../../server/app.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { bundleCache, floatFeed, int64Feed, maxAbsError, runGraph } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { testOptions } from './http-fakes.js';

/**
 * On a bundle converted from the Hugging Face contrastive fixture, POST /embed and
 * /v1/embeddings answer what embeddings.onnx gives for the same preprocessed inputs (the bundle's
 * tokenizer and image preprocessing), each item run alone through the graph, whether the server
 * embeds the item alone or inside a batch that shares the dynamic batchers' stages.
 */

const TOLERANCE = 1e-5;
const bundleFor = bundleCache();
const IMAGES = ['chelsea.png', 'coffee.jpg', 'astronaut.png'];
const TEXTS = ['a tabby cat with green eyes', 'a cup of coffee on a saucer'];

interface Served {
  app: FastifyInstance;
  service: BundleService;
  bundle: string;
  images: Map<string, Uint8Array>;
}

let served: Promise<Served | undefined> | undefined;
after(async () => {
  const s = await served;
  await s?.app.close();
  await s?.service.close(); // injected services are the caller's to close
});

function server(t: TestContext): Promise<Served | undefined> {
  served ??= (async () => {
    const tokenizer = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'contrastive', 'tokenizer.json');
    const bundle = tokenizer && (await bundleFor(t, ['fixtures', 'bridgetower-hf', 'contrastive'], { tokenizer }));
    if (!bundle) return undefined;
    const images = new Map<string, Uint8Array>();
    for (const name of IMAGES) {
      const path = sharedFixture(t, 'fixtures', 'images', name);
      if (!path) return undefined;
      images.set(name, new Uint8Array(readFileSync(path)));
    }
    // A long batching window, so that a batch request's items share the stages' runs.
    const service = await BundleService.open(bundle, { device: 'cpu', precision: 'fp32', maxBatch: 8, maxDelayMs: 25, maxQueue: 64, cacheMb: 16 });
    const app = await buildServer(testOptions(), { services: [service] });
    return { app, service, bundle, images };
  })();
  return served;
}

/** The graph's output for one item alone: the text and the image through embeddings.onnx (the other input is a stand-in). */
async function reference(s: Served, item: { text?: string; image?: string }): Promise<Float32Array> {
  const pre = BundlePreprocessor.open(s.bundle);
  const { inputIds, dims } = pre.encodeTexts([item.text ?? 'stand-in'], 'itc');
  const S = pre.config.preprocessing.image_size;
  const pixels = await pre.pixelValues(s.images.get(item.image ?? IMAGES[0]!)!);
  const out = await runGraph(s.bundle, 'embeddings', {
    input_ids: int64Feed(dims, inputIds),
    attention_mask: int64Feed(dims, new Array(dims[1]).fill(1)),
    pixel_values: floatFeed({ shape: [1, 3, S, S], data: pixels }),
  });
  const name = item.text === undefined ? 'image_embeds' : item.image === undefined ? 'text_embeds' : 'cross_embeds';
  return out[name]!.data;
}

const ITEMS: Array<{ text?: string; image?: string }> = [
  { text: TEXTS[0]! },
  { image: IMAGES[0]! },
  { text: TEXTS[0]!, image: IMAGES[0]! },
  { text: TEXTS[1]!, image: IMAGES[1]! },
  { text: TEXTS[1]!, image: IMAGES[2]! },
  { image: IMAGES[1]! },
  { text: TEXTS[1]! },
];

const body = (s: Served, item: { text?: string; image?: string }) => ({
  ...(item.text !== undefined ? { text: item.text } : {}),
  ...(item.image !== undefined ? { image: Buffer.from(s.images.get(item.image)!).toString('base64') } : {}),
});

function assertEmbeddings(actual: number[][], expected: Float32Array[], where: string): void {
  assert.equal(actual.length, expected.length, `${where}: count`);
  actual.forEach((embedding, i) => {
    const error = maxAbsError(Float32Array.from(embedding), expected[i]!);
    assert.ok(error <= TOLERANCE, `${where}: item ${i} (${JSON.stringify(ITEMS[i])}) differs from embeddings.onnx by ${error.toExponential(3)} (> ${TOLERANCE})`);
  });
}

describe("the server's embeddings equal embeddings.onnx on a Hugging Face contrastive bundle", () => {
  it('POST /embed with a batch of texts, images and pairs, in request order', async (t) => {
    const s = await server(t);
    if (!s) return;
    const expected = await Promise.all(ITEMS.map((item) => reference(s, item)));
    const response = await s.app.inject({ method: 'POST', url: '/embed', payload: { inputs: ITEMS.map((item) => body(s, item)) } });
    assert.equal(response.statusCode, 200, response.body);
    const json = response.json();
    assert.deepEqual(json.kind, ['text', 'image', 'pair', 'pair', 'pair', 'image', 'text']);
    assert.equal(json.dims, expected[0]!.length);
    assertEmbeddings(json.embeddings, expected, 'batch');
  });

  it('POST /embed with each item alone, concurrently', async (t) => {
    const s = await server(t);
    if (!s) return;
    const expected = await Promise.all(ITEMS.map((item) => reference(s, item)));
    const answers = await Promise.all(ITEMS.map((item) => s.app.inject({ method: 'POST', url: '/embed', payload: { inputs: [body(s, item)] } })));
    assertEmbeddings(answers.map((a) => a.json().embeddings[0]), expected, 'alone');
  });

  it('POST /v1/embeddings in float and base64 (little-endian float32)', async (t) => {
    const s = await server(t);
    if (!s) return;
    const expected = await Promise.all(ITEMS.map((item) => reference(s, item)));
    const input = ITEMS.map((item) => body(s, item));
    const float = (await s.app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input, encoding_format: 'float' } })).json();
    assertEmbeddings(float.data.map((d: { embedding: number[] }) => d.embedding), expected, 'float');
    const base64 = (await s.app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input, encoding_format: 'base64' } })).json();
    const decoded = base64.data.map((d: { embedding: string }) => {
      const bytes = Buffer.from(d.embedding, 'base64');
      return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    });
    assertEmbeddings(decoded, expected, 'base64');
    const pre = BundlePreprocessor.open(s.bundle);
    const tokens = ITEMS.filter((item) => item.text !== undefined).reduce((sum, item) => sum + pre.encodeTexts([item.text!], 'itc').dims[1], 0);
    assert.deepEqual(float.usage, { prompt_tokens: tokens, total_tokens: tokens });
  });
});
