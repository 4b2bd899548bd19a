import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../server/app.js';
import { ModelRegistry } from '../../server/model-registry.js';
import type { FillMaskPrediction } from '../../server/model-service.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { bundleCache, dense, floatFeed, int64Feed, ints, loadFixture, runGraph, type Fixture } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { FakeModelService, memoryGallery, testOptions } from './http-fakes.js';

/**
 * POST /fill-mask on a bundle converted from Hugging Face's BridgeTowerForMaskedLM fixture answers
 * in transformers' fill-mask pipeline shape: per <mask>, the top k tokens by softmax over the
 * vocabulary, each with its decoded token and the caption with that mask filled. The scores are
 * the softmax of mlm.onnx's logits run directly on the same ids and pixels (no batching, no
 * cache); mlm.onnx itself reproduces transformers' logits (test/models/parity-hf.test.ts). The
 * bundle preprocesses images as upstream does, not as HF's image processor, so transformers'
 * logits on the image files (expected_processor.safetensors) are not a golden for these pixels;
 * its caption ids are.
 */

const TOLERANCE = 1e-4;
const HF = ['fixtures', 'bridgetower-hf'];
const MASK_ID = 999;
const FAR = { deadline: Date.now() + 10 * 60_000 };
const bundleFor = bundleCache();

interface Served {
  bundle: string;
  app: FastifyInstance;
  service: BundleService;
  goldens: Fixture;
  cases: Record<string, { file: string; caption_mlm: string }>;
}

let served: Promise<Served> | undefined;
after(async () => {
  const s = await served?.catch(() => undefined);
  await s?.app.close();
  await s?.service.close();
});
async function serve(t: TestContext): Promise<Served | undefined> {
  const goldens = sharedFixture(t, ...HF, 'mlm', 'expected_processor.safetensors');
  const cases = sharedFixture(t, ...HF, 'processor_cases.json');
  if (!goldens || !cases) return undefined;
  const tokenizer = sharedFixture(t, ...HF, 'mlm', 'tokenizer.json');
  if (!tokenizer) return undefined;
  const bundle = await bundleFor(t, [...HF, 'mlm'], { tokenizer });
  if (!bundle) return undefined;
  served ??= (async () => {
    const service = await BundleService.open(bundle, { device: 'cpu', precision: 'fp32', maxBatch: 4, maxDelayMs: 2, maxQueue: 64, cacheMb: 16 });
    const app = await buildServer(testOptions(), { services: [service], gallery: await memoryGallery() });
    return { bundle, app, service, goldens: loadFixture(goldens), cases: JSON.parse(readFileSync(cases, 'utf8')).cases };
  })();
  return served;
}

/** softmax of mlm.onnx's logits at the text's one <mask>, the graph run on this thread. */
async function referenceProbabilities(bundle: string, image: Uint8Array, text: string): Promise<number[]> {
  const pre = BundlePreprocessor.open(bundle);
  const { inputIds, attentionMask } = pre.encodeTexts([text], 'mlm');
  const at = Array.from(inputIds, Number).indexOf(MASK_ID);
  const pixels = await pre.pixelBatch([image]);
  const out = await runGraph(bundle, 'mlm', {
    input_ids: int64Feed([1, inputIds.length], inputIds),
    attention_mask: int64Feed([1, attentionMask.length], attentionMask),
    pixel_values: floatFeed({ shape: pixels.dims, data: pixels.data }),
    mask_positions: int64Feed([1], [at]),
  });
  return softmax(out.logits!.data);
}

function softmax(row: Float32Array): number[] {
  const max = Math.max(...row);
  const exps = Array.from(row, (x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** transformers' probabilities at the caption's one <mask>, from its logits [1, T, vocab]. */
function goldenProbabilities(goldens: Fixture, name: string): { ids: number[]; probabilities: number[] } {
  const ids = ints(goldens, `${name}.input_ids`);
  const logits = dense(goldens, `${name}.logits`);
  const vocab = logits.shape[2]!;
  const at = ids.indexOf(MASK_ID);
  assert.ok(at > 0 && ids.lastIndexOf(MASK_ID) === at, `${name}: the golden caption has exactly one <mask>`);
  return { ids, probabilities: softmax(logits.data.subarray(at * vocab, (at + 1) * vocab)) };
}

async function post(app: FastifyInstance, body: Record<string, unknown>) {
  const response = await app.inject({ method: 'POST', url: '/fill-mask', payload: body });
  return { status: response.statusCode, body: response.json() };
}

describe('POST /fill-mask on the Hugging Face BridgeTowerForMaskedLM fixture', () => {
  for (const name of ['chelsea.png', 'coffee.png', 'astronaut.jpg']) {
    it(`${name}: the top 5 tokens and scores are the softmax of mlm.onnx's logits at the mask, within ${TOLERANCE}`, async (t) => {
      const s = await serve(t);
      if (!s) return;
      const { file, caption_mlm: caption } = s.cases[name]!;
      const image = sharedFixture(t, 'fixtures', 'bridgetower-hf', file);
      if (!image) return;
      const bytes = readFileSync(image);
      const probabilities = await referenceProbabilities(s.bundle, bytes, caption);
      const { status, body } = await post(s.app, { image: bytes.toString('base64'), text: caption, top_k: 5 });
      assert.equal(status, 200, JSON.stringify(body));
      const masks = body.masks as FillMaskPrediction[][];
      assert.equal(masks.length, 1, 'one <mask>, one list');
      const expectedTop = probabilities.map((p, token) => ({ p, token })).sort((a, b) => b.p - a.p).slice(0, 5);
      assert.deepEqual(masks[0]!.map((p) => p.token), expectedTop.map((e) => e.token));
      for (const [i, prediction] of masks[0]!.entries()) {
        assert.ok(Math.abs(prediction.score - expectedTop[i]!.p) <= TOLERANCE, `score ${prediction.score} vs ${expectedTop[i]!.p}`);
        // <mask> strips the space before it (lstrip), so the filled text is the caption with " <mask>" → token_str.
        assert.equal(prediction.sequence, caption.replace(' <mask>', prediction.token_str));
      }
    });
  }

  it("the caption encodes to transformers' input ids, <mask> included", async (t) => {
    const s = await serve(t);
    if (!s) return;
    const { caption_mlm: caption } = s.cases['chelsea.png']!;
    const { inputIds } = BundlePreprocessor.open(s.bundle).encodeTexts([caption], 'mlm');
    assert.deepEqual(Array.from(inputIds, Number), goldenProbabilities(s.goldens, 'chelsea.png').ids);
  });

  it('two masks give two lists in text order; each sequence fills its own mask and keeps the specials, as the HF pipeline', async (t) => {
    const s = await serve(t);
    if (!s) return;
    const image = sharedFixture(t, 'fixtures', 'images', 'coffee.png');
    if (!image) return;
    const masks = await s.service.fillMask({ image: readFileSync(image), text: 'a <mask> of coffee with <mask> art', topK: 3 }, FAR);
    assert.equal(masks.length, 2);
    for (const list of masks) {
      assert.equal(list.length, 3);
      assert.ok(list.every((p, i) => i === 0 || p.score <= list[i - 1]!.score), 'best first');
    }
    assert.equal(masks[0]![0]!.sequence, `<s>a${masks[0]![0]!.token_str} of coffee with<mask> art</s>`);
    assert.equal(masks[1]![0]!.sequence, `<s>a<mask> of coffee with${masks[1]![0]!.token_str} art</s>`);
  });

  it('a text without <mask> is a 422 that says how to write one', async (t) => {
    const s = await serve(t);
    if (!s) return;
    const image = sharedFixture(t, 'fixtures', 'images', 'coffee.png');
    if (!image) return;
    const { status, body } = await post(s.app, { image: readFileSync(image).toString('base64'), text: 'a cup of coffee' });
    assert.equal(status, 422);
    assert.equal(body.error.code, 'E_INVALID_FIELDS');
    assert.match(body.error.message, /<mask>, e\.g\. "a <mask> on a sofa"/);
  });
});

describe('which routes a bundle serves', () => {
  it('a pre-trained bundle (MLM + ITM heads) serves /itm and /fill-mask', () => {
    const registry = new ModelRegistry([new FakeModelService('pt', ['itm', 'mlm'])]);
    assert.deepEqual(registry.routesOf(registry.services[0]!), ['itm', 'fill-mask']);
    assert.equal(registry.select('fill-mask', undefined).name, 'pt');
  });

  it('a bundle that serves no route is refused with a message naming it', async () => {
    await assert.rejects(
      buildServer(testOptions(), { services: [new FakeModelService('backbone', [])], gallery: await memoryGallery() }),
      (error: Error & { code?: string }) => error.code === 'E_USAGE' && /bundle 'backbone' serves no route: it has no task head/.test(error.message),
    );
  });
});
