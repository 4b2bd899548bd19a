import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBundleConfig, type GraphPrecision } from '../../bundle/config.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

/** `convert --variants`: which graph sets a bundle gets, where, and what config.json says about them. */

function tinyCheckpoint(t: { after(fn: () => void): void }) {
  const dir = tempDir(t);
  const { arch, weights } = tinyWeights();
  return { dir, checkpoint: writeTinyCkpt(dir, weights), textConfig: writeTextConfig(dir, arch) };
}

/** Bytes of a graph set as they are on disk: its graph files and its weights file. */
function onDisk(bundle: string, set: { dir: string; files: string[]; weights: string }): number {
  return [...set.files, set.weights].reduce((sum, f) => sum + statSync(join(bundle, set.dir, f)).size, 0);
}

describe('convert --variants', () => {
  it('writes fp32 and int8 (with its u8-weight set) by default, each listed in config.json with its size on disk', async (t) => {
    const { dir, checkpoint, textConfig } = tinyCheckpoint(t);
    const out = join(dir, 'bundle');
    await convertCheckpoint({ checkpoint, out, textConfig });
    const { graphs } = readBundleConfig(out);
    assert.deepEqual(Object.keys(graphs!.variants!), ['fp32', 'int8']);
    const { fp32, int8 } = graphs!.variants!;
    assert.equal(fp32!.dir, 'onnx');
    assert.equal(int8!.dir, 'onnx/int8');
    assert.equal(int8!.u8!.dir, 'onnx/int8-u8');
    for (const set of [fp32!, int8!, int8!.u8!]) {
      assert.deepEqual(set.files, graphs!.files, `${set.dir}: the same graph file names as fp32`);
      assert.equal(set.bytes, onDisk(out, set), `${set.dir}: bytes in config.json`);
    }
    assert.ok(int8!.bytes < fp32!.bytes, `int8 (${int8!.bytes} B) is smaller than fp32 (${fp32!.bytes} B)`);
    assert.equal(existsSync(join(out, 'onnx', 'fp16')), false);
  });

  it('--variants fp16,fp32 writes exactly those: fp32 in onnx/, fp16 in onnx/fp16/', (t) => {
    const { dir, checkpoint, textConfig } = tinyCheckpoint(t);
    const out = join(dir, 'bundle');
    const result = runCli(['convert', checkpoint, '--out', out, '--text-config', textConfig, '--variants', 'fp16,fp32']);
    assert.equal(result.code, 0, result.stderr);
    const variants = readBundleConfig(out).graphs!.variants!;
    assert.deepEqual(Object.keys(variants), ['fp32', 'fp16']);
    assert.equal(variants.fp16!.dir, 'onnx/fp16');
    assert.equal(variants.fp16!.bytes, onDisk(out, variants.fp16!));
    assert.equal(existsSync(join(out, 'onnx', 'int8')), false);
    assert.match(result.stdout, /graphs: +fp32, fp16/);
  });

  it('a --dtype fp16 bundle keeps its fp16 graphs in onnx/ and adds int8 by default', async (t) => {
    const { dir, checkpoint, textConfig } = tinyCheckpoint(t);
    const out = join(dir, 'bundle');
    await convertCheckpoint({ checkpoint, out, textConfig, dtype: 'fp16' });
    const variants = readBundleConfig(out).graphs!.variants!;
    assert.deepEqual(Object.keys(variants), ['int8', 'fp16']);
    assert.equal(variants.fp16!.dir, 'onnx');
    assert.equal(variants.int8!.dir, 'onnx/int8');
  });

  for (const bad of ['fp32,int4', 'bf16', ',']) {
    it(`--variants ${JSON.stringify(bad)} is a usage error naming the allowed precisions, and writes nothing`, (t) => {
      const { dir, checkpoint, textConfig } = tinyCheckpoint(t);
      const out = join(dir, 'bundle');
      const result = runCli(['convert', checkpoint, '--out', out, '--text-config', textConfig, '--variants', bad]);
      assert.equal(result.code, 2, result.stdout);
      assert.match(result.stderr, /--variants/);
      assert.match(result.stderr, /fp32, int8, fp16/);
      assert.equal(existsSync(out), false);
    });
  }

  it('a failure while writing a later variant leaves no bundle folder behind', async (t) => {
    const { dir, checkpoint, textConfig } = tinyCheckpoint(t);
    const out = join(dir, 'bundle');
    await assert.rejects(convertCheckpoint({ checkpoint, out, textConfig, variants: ['fp32', 'int4' as GraphPrecision] }), (error: { code?: string; message: string }) => {
      assert.equal(error.code, 'E_USAGE');
      assert.match(error.message, /int4/);
      return true;
    });
    assert.equal(existsSync(out), false);
  });
});
