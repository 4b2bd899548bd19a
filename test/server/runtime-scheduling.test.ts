import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BundleService, type BundleServiceOptions } from '../../server/scheduling/bundle-service.js';
import { DeadlineError, OverloadError, httpStatusOf } from '../../server/scheduling/errors.js';
import { GraphRunner } from '../../runtime/graph-runner.js';
import type { RuntimeMetrics } from '../../server/runtime-metrics.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * How the runtime schedules work on the demo bundle: batching across concurrent requests changes
 * no score, the image cache skips the vision encoder, admission refuses past the queue bound,
 * deadlines are honoured, the main thread stays free while ONNX Runtime runs, close() drains.
 */

const TOLERANCE = 1e-5;
const root = tempDir({ after });
const bundle = join(root, 'demo');
const opened: Array<{ close(): Promise<void> }> = [];

before(() => buildDemoBundle(bundle));
after(async () => {
  for (const service of opened) await service.close();
});

const far = () => ({ deadline: Date.now() + 10 * 60_000 });

/** A deterministic test image that differs per seed, encoded as PNG. */
async function png(seed: number, width = 72, height = 56): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (5 + seed) + seed * 61) % 253;
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** A RuntimeMetrics that keeps everything it is told. */
function recorder() {
  const seen = { batches: [] as Array<[string, number]>, models: new Set<string>(), depths: [] as number[], cache: [] as boolean[], providers: [] as Array<[string, string, boolean]>, precisions: [] as Array<[string, string, string | undefined]> };
  const metrics: RuntimeMetrics = {
    batch: (model, stage, size) => {
      seen.models.add(model);
      seen.batches.push([stage, size]);
    },
    queueTime() {},
    inferenceTime() {},
    queueDepth: (depth) => seen.depths.push(depth),
    cache: (hit) => seen.cache.push(hit),
    executionProvider: (name, provider, fellBack) => seen.providers.push([name, provider, fellBack]),
    graphPrecision: (name, precision, int8Weights) => seen.precisions.push([name, precision, int8Weights]),
  };
  const items = (stage: string) => seen.batches.filter(([s]) => s === stage).reduce((sum, [, n]) => sum + n, 0);
  return { metrics, seen, items };
}

async function open(options: Partial<BundleServiceOptions>, metrics?: RuntimeMetrics): Promise<BundleService> {
  const service = await BundleService.open(bundle, { device: 'cpu', maxBatch: 8, maxDelayMs: 2, maxQueue: 64, cacheMb: 16, log: () => {}, ...options }, metrics);
  opened.push(service);
  return service;
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(0, ...a.map((x, i) => Math.abs(x - b[i]!)));
}

describe('BundleService scheduling on the demo bundle', () => {
  it('gives the same scores to a request alone and inside 16 concurrent mixed requests, which share batches', async () => {
    const { metrics, seen } = recorder();
    const service = await open({ cacheMb: 0, maxDelayMs: 20 }, metrics); // no cache: every request runs every stage
    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => png(20 + i, 60 + 4 * i, 50)));
    const texts = ['a dog', 'what is on the table?', 'two cats sleeping on a red sofa next to the window', 'is it raining'];
    const requests: Array<() => Promise<number[]>> = [];
    for (let i = 0; i < 4; i++) {
      const [image, other, text] = [images[i]!, images[i + 4]!, texts[i]!];
      requests.push(
        async () => (await service.vqa({ image, question: text, topK: 3 }, far())).map((a) => a.score),
        async () => Object.values((await service.entailment({ image, hypothesis: text }, far())).scores),
        async () => [(await service.nlvr2({ left: image, right: other, statement: text }, far())).score],
        () => service.itm({ pairs: [{ image, text }, { image: other, text }] }, far()),
      );
    }
    const alone: number[][] = [];
    for (const request of requests) alone.push(await request());
    const batchesAlone = seen.batches.length;
    const together = await Promise.all(requests.map((request) => request()));
    together.forEach((scores, i) => assert.ok(maxAbsDiff(scores, alone[i]!) <= TOLERANCE, `request ${i}: ${scores} vs alone ${alone[i]}`));
    const concurrentSizes = seen.batches.slice(batchesAlone).map(([, size]) => size);
    assert.ok(Math.max(...concurrentSizes) > 1, `the concurrent requests ran in batches of ${concurrentSizes.join(', ')}`);
  });

  it('skips the image encoder for a second question about the same image', async () => {
    const { metrics, items, seen } = recorder();
    const service = await open({}, metrics);
    const image = await png(40);
    await service.vqa({ image, question: 'what is it?', topK: 1 }, far());
    await service.entailment({ image, hypothesis: 'it is a cat' }, far());
    assert.equal(items('image_encoder'), 1);
    assert.deepEqual(seen.cache, [false, true]);
    // Every stage reports under the bundle's name, so that two bundles' stages stay apart.
    assert.deepEqual([...seen.models], [service.name]);
  });

  it('encodes an image once for concurrent requests about it', async () => {
    const { metrics, items } = recorder();
    const service = await open({ maxDelayMs: 10 }, metrics);
    const image = await png(41);
    await Promise.all(['one', 'two', 'three'].map((question) => service.vqa({ image, question, topK: 1 }, far())));
    assert.equal(items('image_encoder'), 1);
  });

  it('evicts the least recently used encoding past the cache budget', async () => {
    const service = await open({ cacheMb: 0.02 }); // 20 KiB: two demo encodings (2 × 17 × 64 floats + ITC each)
    const [a, b, c] = await Promise.all([png(42), png(43), png(44)]);
    const hashes = [];
    for (const image of [a, b, a, c]) hashes.push((await service.encodeImage(image, far())).hash);
    assert.equal(service.cache.has(hashes[0]!), true);
    assert.equal(service.cache.has(hashes[1]!), false);
    assert.equal(service.cache.has(hashes[3]!), true);
  });

  it('refuses a request past maxQueue at once with an OverloadError carrying Retry-After', async () => {
    const { metrics, seen } = recorder();
    const service = await open({ maxQueue: 2 }, metrics);
    const image = await png(45);
    const results = await Promise.allSettled([1, 2, 3].map((i) => service.vqa({ image, question: `question ${i}`, topK: 1 }, far())));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected']);
    const error = (results[2] as PromiseRejectedResult).reason as unknown;
    assert.ok(error instanceof OverloadError, String(error));
    assert.equal(httpStatusOf(error), 503);
    assert.ok(Number.isInteger(error.retryAfterSeconds) && error.retryAfterSeconds >= 1);
    assert.equal(Math.max(...seen.depths), 2);
    assert.equal(service.queueDepth, 0);
  });

  it('rejects a request whose deadline has passed with a DeadlineError', async () => {
    const service = await open({});
    const error = await service.vqa({ image: await png(46), question: 'late?', topK: 1 }, { deadline: Date.now() - 1 }).catch((e: unknown) => e);
    assert.ok(error instanceof DeadlineError, String(error));
    assert.equal(httpStatusOf(error), 504);
    assert.equal(service.queueDepth, 0);
  });

  it('frees the admission slot of a request whose image does not decode', async () => {
    const service = await open({ maxQueue: 1 });
    await assert.rejects(service.vqa({ image: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]), question: 'what?', topK: 1 }, far()), /E_IMAGE|decode|PNG/i);
    assert.equal((await service.vqa({ image: await png(47), question: 'what?', topK: 1 }, far())).length, 1);
  });

  it('finishes admitted requests on close, then refuses new ones', async () => {
    const service = await BundleService.open(bundle, { device: 'cpu', maxBatch: 4, maxDelayMs: 50, maxQueue: 8, cacheMb: 16, log: () => {} });
    const image = await png(48);
    const pending = [1, 2, 3].map((i) => service.vqa({ image, question: `q${i}`, topK: 2 }, far()));
    await service.close();
    assert.deepEqual((await Promise.all(pending)).map((answers) => answers.length), [2, 2, 2]);
    await assert.rejects(service.vqa({ image, question: 'after', topK: 1 }, far()), OverloadError);
  });

  it('reports the execution provider when it opens', async () => {
    const { metrics, seen } = recorder();
    const service = await open({}, metrics);
    assert.deepEqual(seen.providers, [[service.name, 'cpu', false]]);
  });
});

describe('GraphRunner', () => {
  it('keeps the event loop free while a batch runs: a timer set during the run fires before it ends', async () => {
    const runner = await GraphRunner.open(bundle, ['image_encoder']);
    try {
      const batch = 512; // long enough (tens of ms) that a 1 ms timer has every chance; bounded memory (25 MB)
      let runEnded = false;
      const running = runner.run('image_encoder', { pixel_values: { type: 'float32', dims: [batch, 3, 64, 64], data: new Float32Array(batch * 3 * 64 * 64) } }).then(() => {
        runEnded = true;
      });
      // onnxruntime-node runs a session inside a setImmediate callback; one turn later, a session on
      // this thread would already be blocking it, and would finish before any new timer could fire.
      await new Promise((resolve) => setImmediate(resolve));
      const firedBeforeEnd = await new Promise<boolean>((resolve) => setTimeout(() => resolve(!runEnded), 1));
      await running;
      assert.equal(firedBeforeEnd, true);
    } finally {
      await runner.close();
    }
  });

  it('transfers feed buffers to the worker instead of copying them', async () => {
    const runner = await GraphRunner.open(bundle, ['head_itm']);
    try {
      const cls = new Float32Array(2 * 128);
      const out = await runner.run('head_itm', { cls_feats: { type: 'float32', dims: [2, 128], data: cls } });
      assert.equal(cls.length, 0, 'the feed was detached');
      assert.deepEqual(out.logits!.dims, [2, 2]);
    } finally {
      await runner.close();
    }
  });

  it('says which execution provider it runs on when CUDA is asked for, falling back to the CPU', async () => {
    const runner = await GraphRunner.open(bundle, ['head_itm'], { device: 'cuda' });
    try {
      assert.ok(runner.provider === 'cuda' ? !runner.fellBack : runner.provider === 'cpu' && runner.fellBack && runner.fallbackReason !== undefined);
      const out = await runner.run('head_itm', { cls_feats: { type: 'float32', dims: [1, 128], data: new Float32Array(128) } });
      assert.deepEqual(out.logits!.dims, [1, 2]);
    } finally {
      await runner.close();
    }
  });

  it('names a graph the bundle lacks when opening it', async () => {
    await assert.rejects(GraphRunner.open(bundle, ['head_mlm']), (error: Error) => /head_mlm/.test(error.message) && /E_BUNDLE/.test(String((error as { code?: string }).code)));
  });
});
