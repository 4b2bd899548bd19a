import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

/** The demo architecture: every upstream head (VQA, SNLI-VE, NLVR2, ITM, ITC), 3 token types. */
async function tinyBundle(dir: string): Promise<string> {
  const { arch, weights } = tinyWeights();
  const bundle = join(dir, 'bundle');
  await convertCheckpoint({ checkpoint: writeTinyCkpt(dir, weights), out: bundle, textConfig: writeTextConfig(dir, arch), graphs: false });
  return bundle;
}

/** runCli returns code -1 when its child was killed; say so instead of failing on the exit code. */
function run(args: string[]) {
  const result = runCli(args);
  assert.notEqual(result.code, -1, `bridgetower ${args.join(' ')} timed out (or was killed): ${result.stderr}`);
  return result;
}

describe('bridgetower export-hf', () => {
  it('writes the folder, names the class and the head file; a second run needs --force (exit 2)', async (t) => {
    const dir = tempDir(t);
    const bundle = await tinyBundle(dir);
    const out = join(dir, 'hf');
    const result = run(['export-hf', bundle, '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /loads with: BridgeTowerForImageAndTextRetrieval\.from_pretrained/);
    assert.match(result.stdout, /head file:\s+bridgetower_heads\.safetensors — vqa, snli, nlvr2, itc/);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).architectures, ['BridgeTowerForImageAndTextRetrieval']);
    assert.ok(existsSync(join(out, 'bridgetower_heads.safetensors')));
    const again = run(['export-hf', bundle, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /E_USAGE.*already exists.*--force/);
  });

  it('--json prints the summary; --class base exports BridgeTowerModel', async (t) => {
    const dir = tempDir(t);
    const bundle = await tinyBundle(dir);
    const result = run(['export-hf', '--bundle', bundle, '--out', join(dir, 'hf'), '--class', 'base', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.ok, true);
    assert.equal(summary.hf_class, 'BridgeTowerModel');
    assert.deepEqual(summary.head_file.heads.sort(), ['itc', 'itm', 'nlvr2', 'snli', 'vqa']);
  });

  it('usage errors exit 2 and write nothing; an unknown --class lists the choices; --help shows an example', async (t) => {
    const dir = tempDir(t);
    const missing = run(['export-hf', '--out', join(dir, 'hf')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /a bundle is required/);
    const bundle = await tinyBundle(dir);
    const badClass = run(['export-hf', bundle, '--out', join(dir, 'hf'), '--class', 'vqa']);
    assert.equal(badClass.code, 2);
    assert.match(badClass.stderr, /itm \(BridgeTowerForImageAndTextRetrieval\).*base \(BridgeTowerModel\)/);
    assert.deepEqual(readdirSync(dir).filter((f) => f === 'hf' || f.startsWith('.hf')), []);
    const help = run(['export-hf', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /bridgetower export-hf bundles\/itm-finetuned --out hf\/itm-finetuned/);
    const absent = run(['export-hf', join(dir, 'absent'), '--out', join(dir, 'x')]);
    assert.equal(absent.code, 7);
    assert.match(absent.stderr, /E_BUNDLE/);
  });
});
