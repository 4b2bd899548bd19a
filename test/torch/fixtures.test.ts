import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { DTYPES, type DType } from '../../bundle/tensors/dtype.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { sharedFixture, TINY_DIR } from '../helpers/shared-fixtures.js';

/**
 * The golden tiny checkpoints, written by torch itself: every state-dict entry must come out with
 * the dtype, shape, layout and values that keys_<name>.txt records.
 */

const CHECKPOINTS = ['irtr', 'irtr_itm_itc', 'nlvr2', 'pt', 'pt_res32', 'snli', 'vqa', 'vqa_fp16', 'vqa_legacy'];

interface KeyLine {
  name: string;
  dtype: string;
  shape: number[];
  storageKey: string;
  storageNumel: number;
  storageOffset: number;
  stride: number[];
  sha256: string;
  sum: number;
}

function readKeys(path: string): KeyLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [name, dtype, shape, storageKey, storageNumel, storageOffset, stride, , , sha256, sum] = line.split('\t');
      return {
        name: name!,
        dtype: dtype!,
        shape: JSON.parse(shape!) as number[],
        storageKey: storageKey!,
        storageNumel: Number(storageNumel),
        storageOffset: Number(storageOffset),
        stride: JSON.parse(stride!) as number[],
        sha256: sha256!,
        sum: Number(sum),
      };
    });
}

/** Values as float64, in row-major order, for the checksum sum. */
function decode(dtype: DType, bytes: Buffer): ArrayLike<number> {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (dtype) {
    case 'float32': return new Float32Array(ab);
    case 'float64': return new Float64Array(ab);
    case 'int32': return new Int32Array(ab);
    case 'int16': return new Int16Array(ab);
    case 'int8': return new Int8Array(ab);
    case 'uint8': case 'bool': return new Uint8Array(ab);
    case 'int64': return Array.from(new BigInt64Array(ab), Number);
    case 'float16': return Array.from(new Uint16Array(ab), halfToNumber);
    case 'bfloat16': return Array.from(new Uint16Array(ab), (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!);
  }
}

function halfToNumber(h: number): number {
  const exponent = (h >> 10) & 0x1f;
  const sign = h & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * (h & 0x3ff) * 2 ** -24;
  if (exponent === 31) return h & 0x3ff ? NaN : sign * Infinity;
  return sign * (1 + (h & 0x3ff) / 1024) * 2 ** (exponent - 15);
}

/** Neumaier summation: accurate enough that only the reference's own rounding remains. */
function sum(values: ArrayLike<number>): number {
  let total = 0;
  let compensation = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const t = total + v;
    compensation += Math.abs(total) >= Math.abs(v) ? total - t + v : v - t + total;
    total = t;
  }
  return total + compensation;
}

for (const name of CHECKPOINTS) {
  test(`${name}.ckpt opens with the state-dict entries of keys_${name}.txt, in order, with their dtypes, shapes and layouts`, (t) => {
    const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `${name}.ckpt`);
    if (!path) return;
    const expected = readKeys(join(TINY_DIR, `keys_${name}.txt`));
    const checkpoint = openTorchCheckpoint(path);
    assert.equal(checkpoint.format, name === 'vqa_legacy' ? 'torch-legacy' : 'torch-zip');
    assert.deepEqual([...checkpoint.tensors.keys()], expected.map((e) => e.name));
    for (const e of expected) {
      const view = checkpoint.tensors.get(e.name)!;
      const layout = { dtype: view.dtype, shape: view.shape, strides: view.strides, offset: view.storageOffset, numel: view.storage.byteLength / DTYPES[view.dtype].bytes };
      assert.deepEqual(layout, { dtype: e.dtype, shape: e.shape, strides: e.stride, offset: e.storageOffset, numel: e.storageNumel }, e.name);
      // Legacy keys are memory addresses (written as '(address)'); zip keys are the record names.
      if (e.storageKey !== '(address)') assert.equal(view.storage.key, e.storageKey, e.name);
    }
  });

  test(`${name}.ckpt yields every tensor with the sha256 and sum of its values in keys_${name}.txt`, (t) => {
    const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `${name}.ckpt`);
    if (!path) return;
    const expected = readKeys(join(TINY_DIR, `keys_${name}.txt`));
    const checkpoint = openTorchCheckpoint(path);
    const fd = openSync(path, 'r');
    try {
      for (const e of expected) {
        const view = checkpoint.tensors.get(e.name)!;
        const bytes = readTensorBytes(fd, view);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), e.sha256, `sha256 of ${e.name}`);
        const actual = sum(decode(view.dtype, bytes));
        const tolerance = 1e-9 * Math.max(1, Math.abs(e.sum));
        assert.ok(Math.abs(actual - e.sum) <= tolerance, `sum of ${e.name}: ${actual} vs ${e.sum}`);
      }
    } finally {
      closeSync(fd);
    }
  });

  const hparams = join(TINY_DIR, `hparams_${name}.json`);
  if (!existsSync(TINY_DIR) || existsSync(hparams)) {
    test(`${name}.ckpt carries hyper_parameters equal to hparams_${name}.json`, (t) => {
      const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `${name}.ckpt`);
      if (!path) return;
      const checkpoint = openTorchCheckpoint(path);
      assert.deepEqual(checkpoint.metadata.hyper_parameters, JSON.parse(readFileSync(hparams, 'utf8')));
    });
  }
}

test('the Lightning top-level items become metadata, beside the state dict', (t) => {
  const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'vqa_legacy.ckpt');
  if (!path) return;
  const { metadata } = openTorchCheckpoint(path);
  assert.deepEqual(Object.keys(metadata).sort(), ['epoch', 'global_step', 'hyper_parameters', 'pytorch-lightning_version']);
  assert.deepEqual([metadata.epoch, metadata.global_step, metadata['pytorch-lightning_version']], [9, 1234, '1.5.10']);
});

test('irtr.ckpt gives rank_output and itm_score.fc one shared storage', (t) => {
  const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'irtr.ckpt');
  if (!path) return;
  const { tensors } = openTorchCheckpoint(path);
  assert.equal(tensors.get('rank_output.weight')!.storage, tensors.get('itm_score.fc.weight')!.storage);
  assert.equal(tensors.get('rank_output.bias')!.storage, tensors.get('itm_score.fc.bias')!.storage);
});
