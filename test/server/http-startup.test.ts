import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildServer } from '../../server/app.js';
import { FakeModelService, testOptions } from './http-fakes.js';

/** A server whose bundles are fake services that take `ms` each to "load", and the log lines it wrote. */
async function startWithSlowBundles(t: { after(fn: () => unknown): void }, dirs: string[], ms: number) {
  const lines: Array<{ level: number; msg: string }> = [];
  const app = await buildServer(testOptions({ bundles: dirs, logger: true }), {
    openBundle: async (dir) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return new FakeModelService(dir.split('/').pop(), ['vqa']);
    },
    logStream: { write: (line) => void lines.push(JSON.parse(line)) },
  });
  t.after(() => app.close());
  return { app, messages: lines.map((line) => line.msg) };
}

describe('start-up', () => {
  it('no plugin timer races model loading (avvio pluginTimeout is off)', async (t) => {
    const { app } = await startWithSlowBundles(t, ['bundles/a'], 0);
    assert.equal(app.initialConfig.pluginTimeout, 0);
  });

  it('says which bundle loads, N of M, and how long each took', async (t) => {
    const { app, messages } = await startWithSlowBundles(t, ['bundles/a', 'bundles/b'], 50);
    const progress = messages.filter((m) => /^load/.test(m));
    assert.equal(progress.length, 4);
    assert.equal(progress[0], 'loading bundle 1/2: bundles/a');
    assert.match(progress[1]!, /^loaded bundle 1\/2 'a' \(vqa\) in \d+\.\d s$/);
    assert.equal(progress[2], 'loading bundle 2/2: bundles/b');
    assert.match(progress[3]!, /^loaded bundle 2\/2 'b' \(vqa\) in \d+\.\d s$/);
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });
});
