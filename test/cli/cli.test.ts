import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { forbiddenGlobalPickle, writeTorchCheckpoint } from '../helpers/torch-writer.js';
import { runCli } from '../helpers/run-cli.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

describe('the bridgetower and convert-ckpt commands', () => {
  it('convert-ckpt writes a bundle and prints a JSON summary with --json', (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights);
    const out = join(dir, 'bundle');
    const result = runCli([ckpt, '--out', out, '--text-config', writeTextConfig(dir, arch), '--json'], { preset: 'convert' });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.ok, true);
    assert.deepEqual(summary.tasks, ['vqa', 'snli', 'nlvr2', 'itm', 'itc']);
    assert.equal(summary.tensors, weights.size);
    assert.ok(existsSync(join(out, 'model.safetensors')));
  });

  it('a pickle calling posix.system is refused by name, exit code 4, and nothing is written', (t) => {
    const dir = tempDir(t);
    const ckpt = join(dir, 'evil.ckpt');
    writeTorchCheckpoint(ckpt, { tensors: [], rawPickle: forbiddenGlobalPickle('touch /tmp/pwned') });
    const result = runCli(['convert', ckpt, '--out', join(dir, 'out')]);
    assert.equal(result.code, 4);
    assert.match(result.stderr, /E_FORBIDDEN_GLOBAL/);
    assert.match(result.stderr, /posix\.system/);
    assert.deepEqual(readdirSync(dir), ['evil.ckpt']);
  });

  it('errors are JSON objects with the code and details under --json', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'not-a-checkpoint.ckpt');
    writeFileSync(file, 'hello, I am text');
    const result = runCli(['convert', file, '--out', join(dir, 'out'), '--json']);
    assert.equal(result.code, 4);
    const body = JSON.parse(result.stdout);
    assert.equal(body.ok, false);
    assert.equal(body.error.code, 'E_CHECKPOINT_FORMAT');
  });

  it('bad option values are usage errors with exit code 2', (t) => {
    const dir = tempDir(t);
    assert.equal(runCli(['convert', 'x.ckpt', '--dtype', 'int8']).code, 2);
    assert.equal(runCli(['convert', 'x.ckpt', '--image-size', 'big']).code, 2);
    assert.equal(runCli(['convert']).code, 2);
    assert.equal(runCli(['convert', 'a', 'b', '--out', dir]).code, 2);
    const unknown = runCli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  it('inspect describes a fixture checkpoint without converting it', (t) => {
    const ckpt = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'nlvr2.ckpt');
    const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
    if (!ckpt || !textConfig) return;
    const result = runCli(['inspect', ckpt, '--text-config', textConfig, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.kind, 'lightning-ckpt');
    assert.equal(report.tensorCount, 314);
    assert.equal(report.architecture.cross_modal.token_types, 3);
    assert.deepEqual(Object.keys(report.architecture.heads), ['nlvr2']);
    assert.deepEqual(report.dtypes, { float32: 313, int64: 1 });
  });

  it('inspect still lists the tensors when the architecture needs --text-config', (t) => {
    const ckpt = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'vqa.ckpt');
    if (!ckpt) return;
    const result = runCli(['inspect', ckpt]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /architecture: not determined — .*--text-config/);
    assert.match(result.stdout, /tensors: +314/);
  });

  it('demo builds a bundle with every task head', (t) => {
    const out = join(tempDir(t), 'demo');
    const result = runCli(['demo', '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /RANDOM WEIGHTS/);
    assert.deepEqual(readdirSync(out).sort(), ['config.json', 'labels.json', 'model.safetensors', 'onnx', 'tokenizer.json']);
  });

  it('demo keeps an existing bundle unless --force, which replaces it', (t) => {
    const out = join(tempDir(t), 'demo');
    assert.equal(runCli(['demo', '--out', out]).code, 0);
    writeFileSync(join(out, 'stale.txt'), 'left in the old bundle');
    const again = runCli(['demo', '--out', out]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /E_USAGE.*already exists.*--force/);
    assert.ok(existsSync(join(out, 'stale.txt')));
    const forced = runCli(['demo', '--out', out, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(existsSync(join(out, 'stale.txt')), false, 'the bundle was replaced whole');
  });

  it('demo --out a folder that is not a bundle is refused, with or without --force, and deletes nothing', (t) => {
    const out = join(tempDir(t), 'work');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.md'), 'mine');
    for (const args of [[], ['--force']]) {
      const result = runCli(['demo', '--out', out, ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, args.length ? /E_USAGE.*is not a bundle.*nothing was deleted/ : /E_USAGE.*already exists/);
      assert.deepEqual(readdirSync(out), ['notes.md']);
      assert.equal(readFileSync(join(out, 'notes.md'), 'utf8'), 'mine');
    }
  });

  it('convert --force --out a folder of source files is refused (exit 2) and deletes nothing', (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights);
    const out = join(dir, 'cli-sources');
    cpSync(fileURLToPath(new URL('../../cli', import.meta.url)), out, { recursive: true });
    const before = readdirSync(out, { recursive: true }).map(String).sort();
    assert.ok(before.includes('main.ts'));
    const result = runCli(['convert', ckpt, '--force', '--out', out, '--text-config', writeTextConfig(dir, arch)]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /E_USAGE.*is not a bundle.*nothing was deleted/);
    assert.deepEqual(readdirSync(out, { recursive: true }).map(String).sort(), before);
  });
});
