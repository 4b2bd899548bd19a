import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { readSafetensors, toFloat32 } from '../../bundle/safetensors/read-safetensors.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { buildVariantBundle } from '../helpers/variant-bundle.js';

/** `--precision` on the commands that open graphs, on a bundle with fp32 and fp16 variants. */

const root = tempDir({ after });
const bundle = join(root, 'variants');
/** fp32 + fp16 only: what a bundle without int8 graphs does. */
const noInt8 = join(root, 'no-int8');
before(async () => {
  await buildVariantBundle(bundle);
  await buildVariantBundle(noInt8, ['fp32', 'fp16']);
  mkdirSync(join(root, 'images'));
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 40 + 8 * i, height: 36, channels: 3, background: { r: 60 * i, g: 200 - 50 * i, b: 90 } } }).png().toFile(join(root, 'images', `${i}.png`));
  }
});

/** head_snli's logits for the same cls_feats, from run-graph at `precision`. */
function headLogits(precision: string, dir = bundle): { code: number; stderr: string; logits?: Float32Array } {
  const inputs = join(root, 'cls.safetensors');
  const feats = Float32Array.from({ length: 2 * 128 }, (_, i) => Math.sin(i * 0.37));
  writeSafetensors(inputs, [{ name: 'cls_feats', dtype: 'float32', shape: [2, 128], data: new Uint8Array(feats.buffer) }]);
  const out = join(root, `logits-${precision}.safetensors`);
  const run = runCli(['run-graph', dir, 'head_snli', '--precision', precision, '--inputs', inputs, '--out', out]);
  if (run.code !== 0) return run;
  const logits = readSafetensors(out).get('logits')!;
  return { ...run, logits: toFloat32(logits.dtype, logits.data) };
}

describe('--precision', () => {
  it('run-graph runs the variant asked for: fp16 logits differ from fp32 by under 1e-2 relative L2', () => {
    const [fp32, fp16] = [headLogits('fp32'), headLogits('fp16')];
    assert.equal(fp32.code, 0, fp32.stderr);
    assert.equal(fp16.code, 0, fp16.stderr);
    const diff = Math.hypot(...fp32.logits!.map((x, i) => x - fp16.logits![i]!));
    assert.ok(diff > 0, 'the fp16 graph ran, not the fp32 one');
    assert.ok(diff / Math.hypot(...fp32.logits!) < 1e-2, `relative L2 ${diff / Math.hypot(...fp32.logits!)}`);
  });

  it('a precision the bundle lacks is a usage error naming the ones it has', () => {
    const run = headLogits('int8', noInt8);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /has fp32, fp16 graphs only, not int8: use --precision fp32\|fp16 or auto, or .*--variants fp32,fp16,int8/);
  });

  it('auto on the CPU notes on stderr that it fell back from int8', () => {
    const run = headLogits('auto', noInt8);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /note: auto on cpu: fp32, because the bundle has no int8 graphs/);
  });

  it('evaluate --precision fp16 scores the fp16 graphs', () => {
    const data = join(root, 'snli_dev.jsonl');
    const labels = ['entailment', 'neutral', 'contradiction'];
    writeFileSync(data, [0, 1, 2].map((i) => JSON.stringify({ image: `images/${i}.png`, hypothesis: `hypothesis ${i}`, label: labels[i] })).join('\n'));
    for (const precision of ['fp32', 'fp16']) {
      const run = runCli(['evaluate', '--bundle', bundle, '--task', 'snli', '--data', data, '--precision', precision, '--json']);
      assert.equal(run.code, 0, run.stderr);
      const accuracy = (JSON.parse(run.stdout) as { metrics: { accuracy: number } }).metrics.accuracy;
      assert.ok(accuracy >= 0 && accuracy <= 100, `${precision}: accuracy ${accuracy}`);
    }
    const bad = runCli(['evaluate', '--bundle', bundle, '--task', 'snli', '--data', data, '--precision', 'fp8']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--precision must be one of fp32, int8, fp16, auto, got 'fp8'/);
  });
});
