import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

async function tinyBundle(dir: string): Promise<string> {
  const { arch, weights } = tinyWeights();
  const bundle = join(dir, 'bundle');
  await convertCheckpoint({ checkpoint: writeTinyCkpt(dir, weights), out: bundle, textConfig: writeTextConfig(dir, arch), graphs: false });
  return bundle;
}

describe('bridgetower export-ckpt', () => {
  it('writes the checkpoint and a JSON summary with --json; a second run needs --force (exit 2)', async (t) => {
    const dir = tempDir(t);
    const bundle = await tinyBundle(dir);
    const out = join(dir, 'model.ckpt');
    const result = runCli(['export-ckpt', '--bundle', bundle, '--out', out, '--epoch', '3', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.ok, true);
    assert.equal(summary.out, out);
    assert.deepEqual(summary.filled.map((f: { name: string }) => f.name), ['text_transformer.embeddings.position_ids', 'text_transformer.pooler.dense.weight', 'text_transformer.pooler.dense.bias']);
    assert.equal(openTorchCheckpoint(out).metadata.epoch, 3);
    const again = runCli(['export-ckpt', '--bundle', bundle, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /E_USAGE.*already exists.*--force/);
  });

  it('a missing bundle exits with E_BUNDLE (7) and writes nothing; a missing --bundle is a usage error', (t) => {
    const dir = tempDir(t);
    const result = runCli(['export-ckpt', '--bundle', join(dir, 'absent'), '--out', join(dir, 'x.ckpt')]);
    assert.equal(result.code, 7);
    assert.match(result.stderr, /E_BUNDLE/);
    assert.deepEqual(readdirSync(dir), []);
    const usage = runCli(['export-ckpt', '--out', join(dir, 'x.ckpt')]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--bundle <dir> is required/);
    assert.equal(existsSync(join(dir, 'x.ckpt')), false);
  });
});
