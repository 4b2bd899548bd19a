import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { buildServer } from '../../server/app.js';
import { testOptions } from './http-fakes.js';

const MAX_QUEUE = 3;

/** A distinct image per index, so no request is served from the image cache. */
async function image(index: number): Promise<string> {
  const colour = { r: (index * 53) % 256, g: (index * 97) % 256, b: (index * 31) % 256 };
  return (await sharp({ create: { width: 96, height: 72, channels: 3, background: colour } }).png().toBuffer()).toString('base64');
}

describe('overload on the demo bundle', () => {
  let app: FastifyInstance;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-overload-'));
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    app = await buildServer(testOptions({ bundles: [bundle], dataDir: join(dir, 'data'), maxQueue: MAX_QUEUE, maxBatch: 2, cacheMb: 0 }));
    for (let tries = 0; (await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200; tries++) {
      assert.ok(tries < 600, 'the server never became ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('three times the admitted load gets 503s with Retry-After, and the served answers are exact', async () => {
    const question = 'what colour is the square?';
    const images = await Promise.all(Array.from({ length: 3 * MAX_QUEUE }, (_, i) => image(i)));
    const burst = images.map((picture) => app.inject({ method: 'POST', url: '/vqa', payload: { image: picture, question, top_k: 3 } }));
    // /healthz is answered while the burst is still being computed (sessions run in a worker).
    let burstDone = false;
    const settled = Promise.all(burst).then((responses) => {
      burstDone = true;
      return responses;
    });
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assert.equal(burstDone, false, '/healthz had to wait for the burst');
    const responses = await settled;

    const refused = responses.filter((r) => r.statusCode === 503);
    const served = responses.map((r, i) => ({ r, i })).filter(({ r }) => r.statusCode === 200);
    assert.ok(refused.length > 0, 'no request was refused');
    assert.ok(served.length >= MAX_QUEUE, `only ${served.length} requests were served`);
    assert.equal(refused.length + served.length, responses.length, responses.map((r) => r.statusCode).join(','));
    for (const r of refused) {
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
      assert.equal(r.json().error.code, 'E_OVERLOADED');
    }
    // Each served answer equals the same request made alone, after the load.
    for (const { r, i } of served) {
      const alone = await app.inject({ method: 'POST', url: '/vqa', payload: { image: images[i], question, top_k: 3 } });
      const [a, b] = [r.json().answers, alone.json().answers] as Array<Array<{ answer: string; score: number }>>;
      assert.deepEqual(a!.map((x) => x.answer), b!.map((x) => x.answer));
      a!.forEach((x, k) => assert.ok(Math.abs(x.score - b![k]!.score) <= 1e-5, `request ${i}: ${x.score} vs ${b![k]!.score}`));
    }
  });

  it('the queue depth gauge returns to zero once the burst is answered', async () => {
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const depth = /^bridgetower_queue_depth(?:\{[^}]*\})? (\d+)/m.exec(metrics);
    assert.ok(depth, 'no queue-depth gauge in /metrics');
    assert.equal(Number(depth[1]), 0);
  });
});
