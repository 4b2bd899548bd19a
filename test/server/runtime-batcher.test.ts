import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DynamicBatcher, type DynamicBatcherOptions } from '../../server/scheduling/dynamic-batcher.js';
import { DeadlineError, OverloadError, httpStatusOf } from '../../server/scheduling/errors.js';
import type { RuntimeMetrics } from '../../server/runtime-metrics.js';

/**
 * DynamicBatcher on fake run functions: what it batches, when, in which order, and what it does
 * with late items and at close. No timing is asserted; delays only bound how long a test waits.
 */

const FAR = () => Date.now() + 60_000;

/** A run function that records its batches and, while `hold` is set, waits to be released. */
function recordingRun<I, O>(map: (item: I) => O) {
  const batches: I[][] = [];
  let active = 0;
  let maxActive = 0;
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const run = async (items: I[]): Promise<O[]> => {
    batches.push([...items]);
    active++;
    maxActive = Math.max(maxActive, active);
    if (gate) await gate;
    await new Promise((resolve) => setImmediate(resolve));
    active--;
    return items.map(map);
  };
  return {
    run,
    batches,
    get maxActive() {
      return maxActive;
    },
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      gate = undefined;
      open?.();
    },
  };
}

function batcher<I, O>(options: Partial<DynamicBatcherOptions<I, O>> & Pick<DynamicBatcherOptions<I, O>, 'run'>): DynamicBatcher<I, O> {
  return new DynamicBatcher<I, O>({ stage: 'test', maxBatch: 4, maxDelayMs: 10, ...options });
}

describe('DynamicBatcher', () => {
  it('runs a full batch at once, without waiting for the delay', async () => {
    const fake = recordingRun((x: number) => x);
    const b = batcher({ run: fake.run, maxBatch: 4, maxDelayMs: 60_000 });
    await Promise.all([1, 2, 3, 4].map((x) => b.submit(x, FAR())));
    assert.deepEqual(fake.batches, [[1, 2, 3, 4]]);
  });

  it('runs a partial batch once the oldest item has waited maxDelayMs', async () => {
    const fake = recordingRun((x: number) => x);
    const b = batcher({ run: fake.run, maxBatch: 8, maxDelayMs: 20 });
    await Promise.all([1, 2, 3].map((x) => b.submit(x, FAR())));
    assert.deepEqual(fake.batches, [[1, 2, 3]]);
  });

  it('never runs more than maxBatch items, nor two batches at once', async () => {
    const fake = recordingRun((x: number) => x);
    const b = batcher({ run: fake.run, maxBatch: 4, maxDelayMs: 5 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i, FAR())));
    assert.deepEqual(fake.batches.map((batch) => batch.length), [4, 4, 2]);
    assert.equal(fake.maxActive, 1);
  });

  it('hands items to run in submission order and gives each submitter its own output', async () => {
    const fake = recordingRun((x: string) => `out:${x}`);
    const b = batcher({ run: fake.run, maxBatch: 3, maxDelayMs: 5 });
    const items = ['a', 'b', 'c', 'd', 'e'];
    const outputs = await Promise.all(items.map((x) => b.submit(x, FAR())));
    assert.deepEqual(outputs, items.map((x) => `out:${x}`));
    assert.deepEqual(fake.batches.flat(), items);
  });

  it('rejects an item whose deadline passes while it is queued with a DeadlineError, and never runs it', async () => {
    const fake = recordingRun((x: string) => x);
    const b = batcher({ run: fake.run, maxBatch: 1, maxDelayMs: 0 });
    fake.hold();
    const first = b.submit('first', FAR());
    const late = b.submit('late', Date.now() + 20);
    await assert.rejects(late, (error: unknown) => error instanceof DeadlineError && httpStatusOf(error) === 504);
    fake.release();
    assert.equal(await first, 'first');
    await b.close();
    assert.deepEqual(fake.batches, [['first']]);
  });

  it('rejects an item submitted after its deadline at once', async () => {
    const fake = recordingRun((x: number) => x);
    const b = batcher({ run: fake.run });
    await assert.rejects(b.submit(1, Date.now() - 1), DeadlineError);
    assert.equal(fake.batches.length, 0);
  });

  it('rejects every item of a failing batch with its error, and runs the next batch', async () => {
    const b = batcher({
      maxBatch: 2,
      maxDelayMs: 5,
      run: async (items: number[]) => {
        if (items.includes(2)) throw new Error('batch failed');
        return items;
      },
    });
    const results = await Promise.allSettled([1, 2, 3, 4].map((x) => b.submit(x, FAR())));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    assert.equal((results[0] as PromiseRejectedResult).reason.message, 'batch failed');
  });

  it('rejects a batch whose run returns the wrong number of outputs', async () => {
    const b = batcher({ run: async (items: number[]) => items.slice(1), maxBatch: 2 });
    const results = await Promise.allSettled([1, 2].map((x) => b.submit(x, FAR())));
    assert.ok(results.every((r) => r.status === 'rejected' && /returned 1 outputs for a batch of 2/.test(String(r.reason.message))));
  });

  it('close runs every queued item without waiting for the delay, then refuses new ones', async () => {
    const fake = recordingRun((x: number) => x * 2);
    const b = batcher({ run: fake.run, maxBatch: 2, maxDelayMs: 60_000 });
    const queued = [1, 2, 3].map((x) => b.submit(x, FAR()));
    await b.close();
    assert.deepEqual(await Promise.all(queued), [2, 4, 6]);
    await assert.rejects(b.submit(4, FAR()), (error: unknown) => error instanceof OverloadError && httpStatusOf(error) === 503);
  });

  it("reports each batch size, each item's queue time and each batch's run time to the metrics, labelled with model and stage", async () => {
    const seen = { batches: [] as Array<[string, string, number]>, queueTimes: [] as Array<[string, string, number]>, runTimes: [] as Array<[string, string, number]> };
    const metrics: RuntimeMetrics = {
      batch: (model, stage, size) => seen.batches.push([model, stage, size]),
      queueTime: (model, stage, ms) => seen.queueTimes.push([model, stage, ms]),
      inferenceTime: (model, stage, ms) => seen.runTimes.push([model, stage, ms]),
      queueDepth() {},
      cache() {},
      executionProvider() {},
      graphPrecision() {},
    };
    const slowRun = async (items: number[]) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return items;
    };
    const b = batcher({ stage: 'fusion_vqa', model: 'vqa-base', run: slowRun, maxBatch: 3, maxDelayMs: 5, metrics });
    await Promise.all([1, 2, 3, 4].map((x) => b.submit(x, FAR())));
    assert.deepEqual(seen.batches, [['vqa-base', 'fusion_vqa', 3], ['vqa-base', 'fusion_vqa', 1]]);
    assert.equal(seen.queueTimes.length, 4);
    assert.ok(seen.queueTimes.every(([model, stage, ms]) => model === 'vqa-base' && stage === 'fusion_vqa' && ms >= 0));
    assert.equal(seen.runTimes.length, 2);
    // Each batch's run waited 20 ms (timers may fire a little early, never much).
    assert.ok(seen.runTimes.every(([model, stage, ms]) => model === 'vqa-base' && stage === 'fusion_vqa' && ms >= 15), JSON.stringify(seen.runTimes));
  });

  it('refuses a maxBatch that is not a positive integer', () => {
    assert.throws(() => batcher({ run: async (items: number[]) => items, maxBatch: 0 }), /maxBatch must be a positive integer, got 0/);
  });
});
