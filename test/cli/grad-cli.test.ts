import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { openSafetensors, readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { Rng } from '../../train/rng.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

/** `bridgetower grad` for every task on the demo bundle: outputs, determinism, bad batches. */

function writeBatch(path: string, task: string, size = 2, seq = 6, image = 64): void {
  const rng = Rng.derive(5, 'grad-cli');
  const ids = BigInt64Array.from({ length: size * seq }, (_, i) => (i % seq === 0 ? 0n : i % seq === seq - 1 ? 2n : BigInt(5 + rng.int(200))));
  const mask = BigInt64Array.from({ length: size * seq }, () => 1n);
  const pixels = () => Float32Array.from({ length: size * 3 * image * image }, () => rng.range(-1, 1));
  const bytes = (a: BigInt64Array | Float32Array) => new Uint8Array(a.buffer);
  const tensors = [
    { name: 'input_ids', dtype: 'int64' as const, shape: [size, seq], data: bytes(ids) },
    { name: 'attention_mask', dtype: 'int64' as const, shape: [size, seq], data: bytes(mask) },
    { name: 'pixel_values', dtype: 'float32' as const, shape: [size, 3, image, image], data: bytes(pixels()) },
  ];
  if (task === 'vqa') tensors.push({ name: 'targets', dtype: 'float32' as const, shape: [size, 16], data: bytes(Float32Array.from({ length: size * 16 }, (_, i) => (i % 5 === 0 ? 0.9 : 0))) });
  if (task === 'snli' || task === 'nlvr2') tensors.push({ name: 'labels', dtype: 'int64' as const, shape: [size], data: bytes(BigInt64Array.from({ length: size }, (_, i) => BigInt(i % 2))) });
  if (task === 'nlvr2') tensors.push({ name: 'pixel_values_right', dtype: 'float32' as const, shape: [size, 3, image, image], data: bytes(pixels()) });
  writeSafetensors(path, tensors);
}

describe('bridgetower grad', () => {
  it('writes loss, logits and a gradient for every float tensor, for every task', async (t) => {
    const dir = tempDir(t);
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    const floats = [...openSafetensors(join(bundle, 'model.safetensors')).tensors].filter(([, v]) => v.dtype === 'float32').map(([n]) => n);
    for (const task of ['vqa', 'snli', 'nlvr2', 'irtr']) {
      const batch = join(dir, `${task}.safetensors`);
      writeBatch(batch, task);
      const out = join(dir, `${task}-grads.safetensors`);
      const r = runCli(['grad', bundle, '--task', task, '--batch', batch, '--out', out]);
      assert.equal(r.code, 0, `${task}: ${r.stderr}`);
      const grads = readSafetensors(out);
      const loss = toFloat64Array('float32', grads.get('loss')!.data)[0]!;
      assert.ok(Number.isFinite(loss) && loss > 0, `${task}: loss ${loss}`);
      assert.deepEqual(floats.filter((n) => !grads.has(`grad.${n}`)), [], `${task}: missing gradients`);
      const head = { vqa: 'vqa_classifier.3.weight', snli: 'snli_classifier.3.weight', nlvr2: 'nlvr2_classifier.3.weight', irtr: 'itm_score.fc.weight' }[task]!;
      assert.ok(toFloat64Array('float32', grads.get(`grad.${head}`)!.data).some((g) => g !== 0), `${task}: the head's gradient is zero`);
    }
  });

  it('draws retrieval negatives from --seed: same seed, same result', async (t) => {
    const dir = tempDir(t);
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    const batch = join(dir, 'irtr.safetensors');
    writeBatch(batch, 'irtr', 4);
    const run = (seed: string, name: string) => {
      const out = join(dir, name);
      assert.equal(runCli(['grad', bundle, '--task', 'irtr', '--batch', batch, '--out', out, '--seed', seed]).code, 0);
      return Buffer.from(readSafetensors(out).get('logits')!.data);
    };
    assert.deepEqual(run('1', 'a.safetensors'), run('1', 'b.safetensors'));
  });

  it('refuses a batch without the task label, and an unknown task, with usage errors', async (t) => {
    const dir = tempDir(t);
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    const batch = join(dir, 'vqa.safetensors');
    writeBatch(batch, 'vqa');
    const missing = runCli(['grad', bundle, '--task', 'snli', '--batch', batch, '--out', join(dir, 'g.safetensors')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /lacks 'labels'/);
    assert.equal(runCli(['grad', bundle, '--task', 'mlm', '--batch', batch, '--out', join(dir, 'g.safetensors')]).code, 2);
  });
});
