import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { SNLI_VE_LABELS } from '../../bundle/labels.js';
import { BridgeTowerError } from '../../common/errors.js';
import { DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { buildServer } from '../../server/app.js';
import { ServerMetrics } from '../../server/metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { buildVariantBundle, BUILDABLE_PRECISIONS, type BuildablePrecision } from '../helpers/variant-bundle.js';
import { testOptions } from './http-fakes.js';

/**
 * Serving a precision variant changes how the numbers are computed, not what the server answers in
 * kind: every variant answers with the bundle's labels, best first, says its precision everywhere
 * (/readyz, /info, /metrics, each answer), and a request inside a shared batch gets the answer it
 * gets alone. The bundle has real fp32, int8 and fp16 graphs (test/helpers/variant-bundle.ts).
 */

/**
 * Batching invariance, per precision: how far a score (a probability in [0, 1]) may move when the
 * request shares its batch. fp32: rounding of a different GEMM blocking. fp16: two fp16 ulps at 1.0
 * (2 × 2⁻¹⁰), the rounding of half-precision sums in another order. int8: activations are
 * quantized per row, so a row's integers do not depend on its batch; what remains is fp32 rounding.
 */
const BATCH_TOLERANCE: Readonly<Record<BuildablePrecision, number>> = { fp32: 1e-5, int8: 1e-5, fp16: 2e-3 };

const root = tempDir({ after });
const bundle = join(root, 'variants');
before(() => buildVariantBundle(bundle));

async function png(seed: number, width = 70, height = 52): Promise<string> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (7 + seed) + seed * 37) % 251;
  return (await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer()).toString('base64');
}

async function serve(precision: BuildablePrecision, metrics: ServerMetrics): Promise<FastifyInstance> {
  const app = await buildServer(testOptions({ bundles: [bundle], precision, dataDir: join(root, `data-${precision}`), maxBatch: 8, maxDelayMs: 25, cacheMb: 0 }), { metrics });
  const until = Date.now() + 120_000;
  while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
    if (Date.now() > until) throw new Error(`the ${precision} server was not ready in 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return app;
}

interface Scores {
  vqa: number[];
  snli: number[];
}

/** Each precision's answers to the same requests, kept to compare the variants with each other. */
const answered: Partial<Record<BuildablePrecision, Scores>> = {};

for (const precision of BUILDABLE_PRECISIONS) {
  describe(`serve --precision ${precision}`, () => {
    let app: FastifyInstance;
    const metrics = new ServerMetrics({ processMetrics: false });
    before(async () => {
      app = await serve(precision, metrics);
    });
    after(() => app?.close());
    const post = async (url: string, payload: object): Promise<any> => {
      const response = await app.inject({ method: 'POST', url, payload });
      assert.equal(response.statusCode, 200, response.body);
      return response.json();
    };

    it(`/readyz, /info and /metrics say ${precision}`, async () => {
      const ready = (await app.inject({ method: 'GET', url: '/readyz' })).json();
      assert.equal(ready.models[0].precision, precision);
      // int8 names its weight set (s8, or u8 on CPUs without VNNI); the others have none.
      assert.equal(ready.models[0].int8_weights !== undefined, (precision as string) === 'int8');
      const info = (await app.inject({ method: 'GET', url: '/info' })).json();
      assert.equal(info.models[0].precision, precision);
      assert.equal(info.models[0].int8_weights, ready.models[0].int8_weights);
      assert.equal(info.models[0].weights_dtype, 'float32');
      const scraped = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(scraped, new RegExp(`bridgetower_graph_precision\\{model="variant-test",precision="${precision}",int8_weights="${ready.models[0].int8_weights ?? ''}"\\} 1`));
    });

    it('answers /vqa and /entailment with the bundle’s labels, best first, naming the precision', async () => {
      const image = await png(1);
      const vqa = await post('/vqa', { image, question: 'what colour is it?', top_k: DEMO_VQA_LABELS.length });
      assert.equal(vqa.precision, precision);
      assert.equal(vqa.answers.length, DEMO_VQA_LABELS.length);
      for (const { answer } of vqa.answers) assert.ok(DEMO_VQA_LABELS.includes(answer), answer);
      const scores = vqa.answers.map((a: { score: number }) => a.score);
      assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
      const snli = await post('/entailment', { image, hypothesis: 'a cat sleeps' });
      assert.equal(snli.precision, precision);
      assert.deepEqual(Object.keys(snli.scores).sort(), [...SNLI_VE_LABELS].sort());
      const best = Object.entries(snli.scores as Record<string, number>).sort(([, a], [, b]) => b - a)[0]![0];
      assert.equal(snli.label, best);
      const byLabel = new Map(vqa.answers.map((a: { answer: string; score: number }) => [a.answer, a.score]));
      answered[precision] = { vqa: DEMO_VQA_LABELS.map((label) => byLabel.get(label) as number), snli: SNLI_VE_LABELS.map((label) => snli.scores[label]) };
    });

    it('names the precision in /itm, /nlvr2 and /embed answers too', async () => {
      const [a, b] = [await png(2), await png(3)];
      assert.equal((await post('/itm', { image: a, texts: ['a dog', 'a cat'] })).precision, precision);
      assert.equal((await post('/nlvr2', { images: [a, b], statement: 'both are red' })).precision, precision);
      assert.equal((await post('/embed', { text: 'a dog' })).precision, precision);
    });

    it('a request inside a shared batch gets the scores it gets alone', async () => {
      const images = await Promise.all([10, 11, 12, 13].map((seed, i) => png(seed, 60 + 6 * i, 48)));
      const questions = ['a dog', 'what is on the table?', 'two cats sleeping on a red sofa next to the window', 'is it raining'];
      const requests = images.map((image, i) => () => post('/vqa', { image, question: questions[i], top_k: 3 }));
      const alone: Array<{ answers: Array<{ answer: string; score: number }> }> = [];
      for (const request of requests) alone.push(await request());
      const before = batchTotals(await scrape(app));
      const together = await Promise.all(requests.map((request) => request()));
      const during = batchTotals(await scrape(app));
      assert.ok(during.sum - before.sum > during.count - before.count, 'the concurrent requests shared at least one batch');
      together.forEach((answer, i) => {
        assert.deepEqual(answer.answers.map((a: { answer: string }) => a.answer), alone[i]!.answers.map((a: { answer: string }) => a.answer), `request ${i}: same answers, same order`);
        answer.answers.forEach((a: { score: number }, j: number) => {
          const moved = Math.abs(a.score - alone[i]!.answers[j]!.score);
          assert.ok(moved <= BATCH_TOLERANCE[precision], `request ${i} answer ${j}: moved ${moved} > ${BATCH_TOLERANCE[precision]} inside a batch`);
        });
      });
    });
  });
}

describe('serve --precision on a bundle without that variant', () => {
  it('refuses to start, naming the variants the bundle has and --variants', async () => {
    const only = join(root, 'fp32-only');
    await buildVariantBundle(only, ['fp32']);
    await assert.rejects(
      buildServer(testOptions({ bundles: [only], precision: 'fp16', dataDir: join(root, 'data-refused') })),
      (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && /has fp32 graphs only, not fp16: use --precision fp32 or auto, or .*--variants fp32,fp16/.test(e.message),
    );
  });
});

describe('the variants compute the same model', () => {
  it('fp16 answers differ from fp32 (other graphs ran) by under 1e-2 relative L2 (the fp16 parity bound)', () => {
    const [fp32, fp16] = [answered.fp32, answered.fp16];
    assert.ok(fp32 && fp16, 'both variants answered');
    for (const task of ['vqa', 'snli'] as const) {
      const [a, b] = [fp32[task], fp16[task]];
      const diff = Math.hypot(...a.map((x, i) => x - b[i]!));
      const relative = diff / Math.hypot(...a);
      assert.ok(diff > 0, `${task}: fp16 scores equal fp32 bit for bit, so the fp16 graphs did not run`);
      assert.ok(relative < 1e-2, `${task}: relative L2 ${relative}`);
    }
  });
});

async function scrape(app: FastifyInstance): Promise<string> {
  return (await app.inject({ method: 'GET', url: '/metrics' })).body;
}

/** Items and batches of the fusion_vqa stage so far: items > batches means some batch held several requests. */
function batchTotals(scraped: string): { sum: number; count: number } {
  const read = (what: string) => Number(new RegExp(`bridgetower_batch_size_${what}\\{model="variant-test",stage="fusion_vqa"\\} (\\d+)`).exec(scraped)?.[1] ?? 0);
  return { sum: read('sum'), count: read('count') };
}
