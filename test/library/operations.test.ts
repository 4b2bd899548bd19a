import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { BridgeTower, buildDemoBundle, evaluate, exportCkpt, predict, type Progress } from '../../library/index.js';

/**
 * The operations as functions report progress in one shape and return what their commands print
 * with --json; evaluate's accuracy is checked against the library's own entailment answers.
 */
describe('library operations on the demo bundle', () => {
  let dir: string;
  let bundle: string;
  let data: string;
  const hypotheses = ['a red picture', 'a blue picture', 'nothing at all'];
  const labels = ['entailment', 'contradiction', 'neutral'] as const;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-operations-'));
    bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    for (const [name, colour] of [['red.png', { r: 220, g: 10, b: 10 }], ['blue.png', { r: 10, g: 10, b: 220 }]] as const) {
      await sharp({ create: { width: 40, height: 30, channels: 3, background: colour } }).png().toFile(join(dir, name));
    }
    data = join(dir, 'snli_dev.jsonl');
    const images = ['red.png', 'blue.png', 'red.png'];
    writeFileSync(data, hypotheses.map((hypothesis, i) => JSON.stringify({ image: images[i], hypothesis, label: labels[i] })).join('\n'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("evaluate scores the argmax of the model's own entailment answers, reporting progress", async () => {
    const progress: Progress[] = [];
    const result = await evaluate({ bundle, task: 'snli', data, batchSize: 2, threads: 1, onProgress: (p) => progress.push(p) });
    assert.equal(result.count, 3);
    const model = await BridgeTower.load(bundle, { threads: 1 });
    try {
      const answers = await model.entailment([join(dir, 'red.png'), join(dir, 'blue.png'), join(dir, 'red.png')], hypotheses);
      const right = answers.filter((a, i) => a.label === labels[i]).length;
      assert.ok(Math.abs(result.metrics.accuracy! - (100 * right) / 3) < 1e-9, `accuracy ${result.metrics.accuracy} vs ${right}/3 right`);
    } finally {
      await model.dispose();
    }
    assert.ok(progress.length > 0 && progress.at(-1)!.done === progress.at(-1)!.total, `progress ends complete: ${JSON.stringify(progress)}`);
    const predictions = await predict({ bundle, task: 'snli', data, threads: 1 });
    assert.equal(predictions.task, 'snli');
  });

  it('exportCkpt writes the checkpoint and reports its bytes as exporting progress', async () => {
    const progress: Progress[] = [];
    const out = join(dir, 'demo.ckpt');
    const summary = await exportCkpt({ bundle, out, onProgress: (p) => progress.push(p) });
    assert.equal(summary.out, out);
    assert.ok(existsSync(out));
    assert.ok(progress.length > 0 && progress.every((p) => p.stage === 'exporting'));
    assert.equal(progress.at(-1)!.done, progress.at(-1)!.total);
  });
});
