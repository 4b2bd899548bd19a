import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_BUNDLE_ROOT } from '../../bundle/bundle-folders.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTinySafetensors } from '../helpers/tiny-checkpoints.js';
import { childTimeoutMs } from '../helpers/child-timeout.js';

const CLI_ENTRY = fileURLToPath(new URL('../helpers/cli-entry.ts', import.meta.url));
/** Resolved here: the child runs in a temporary folder, where `--import tsx` would not find it. */
const TSX = import.meta.resolve('tsx');
/** Loading and warming up sessions on a loaded CI machine: generous, and reported as a timeout. */
const READY_TIMEOUT_MS = childTimeoutMs(48_000);

/** A real (not demo) bundle with a VQA head, converted from tiny random weights as a user's checkpoint would be. */
async function convertTinyBundle(work: string, out: string): Promise<void> {
  const { arch, weights } = tinyWeights();
  const checkpoint = writeTinySafetensors(work, weights, 'tiny-vqa.safetensors');
  const tokenizer = join(work, 'tokenizer.json');
  writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
  const labels = join(work, 'labels.json');
  writeFileSync(labels, JSON.stringify(DEMO_VQA_LABELS));
  const textConfig = { num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps, source: 'the test' };
  await convertCheckpoint({ checkpoint, out, tokenizer, labels, textConfig, name: 'tiny-vqa' });
}

/**
 * Runs `bridgetower serve` with no bundle named, from `cwd` (as `npm start` does from the checkout),
 * until it is ready; `check` gets its URL; then it is stopped with SIGTERM. Returns its stderr and logs.
 */
async function serveFrom(cwd: string, check: (url: string) => Promise<void>): Promise<{ stderr: string; logs: string }> {
  const child = spawn(process.execPath, ['--import', TSX, CLI_ENTRY, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(cwd, 'data')], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let url: string | undefined;
    for (;;) {
      url ??= /serving on (http:\/\/[\d.]+:\d+)/.exec(logs)?.[1];
      if (url && (await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) === 200) break;
      if (child.exitCode !== null) throw new Error(`serve exited early (${child.exitCode}):\n${stderr}\n${logs}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${READY_TIMEOUT_MS} ms waiting for serve to be ready:\n${stderr}\n${logs}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await check(url);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, `serve exits 0 on SIGTERM:\n${stderr}`);
  return { stderr, logs };
}

async function png(): Promise<Blob> {
  const bytes = await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
  return new Blob([bytes], { type: 'image/png' });
}

/** The README's `curl -s localhost:8080/vqa -F image=@cat.jpg -F question=…`: no "model" field. */
async function readmeCurl(url: string): Promise<Response> {
  const form = new FormData();
  form.append('image', await png(), 'cat.png');
  form.append('question', 'What color is the cat?');
  return fetch(`${url}/vqa`, { method: 'POST', body: form });
}

describe('serve without bundles named, from a checkout', () => {
  it('with a built demo bundle and a converted one under ./bundles, serves only the converted one, says the demo was skipped, and the README curl answers', async (t) => {
    const cwd = tempDir(t);
    await buildDemoBundle(join(cwd, DEFAULT_BUNDLE_ROOT, 'demo'));
    await convertTinyBundle(tempDir(t), join(cwd, DEFAULT_BUNDLE_ROOT, 'tiny-vqa'));
    const { stderr } = await serveFrom(cwd, async (url) => {
      const ready = (await (await fetch(`${url}/readyz`)).json()) as { models: Array<{ name: string; demo: boolean }> };
      assert.deepEqual(ready.models.map((m) => [m.name, m.demo]), [['tiny-vqa', false]]);
      const response = await readmeCurl(url);
      assert.equal(response.status, 200, await response.clone().text());
      const body = (await response.json()) as { model: string; answers: Array<{ answer: string }> };
      assert.equal(body.model, 'tiny-vqa');
      assert.ok(body.answers.length > 0 && body.answers.every((a) => DEMO_VQA_LABELS.includes(a.answer)));
    });
    assert.match(stderr, new RegExp(`skipping the demo bundle ${join(DEFAULT_BUNDLE_ROOT, 'demo')}`));
  });

  it('with only the demo bundle under ./bundles, serves it with its warning', async (t) => {
    const cwd = tempDir(t);
    await buildDemoBundle(join(cwd, DEFAULT_BUNDLE_ROOT, 'demo'));
    const { stderr, logs } = await serveFrom(cwd, async (url) => {
      const ready = (await (await fetch(`${url}/readyz`)).json()) as { models: Array<{ name: string; demo: boolean }> };
      assert.equal(ready.models.length, 1);
      assert.equal(ready.models[0]!.demo, true);
      assert.match(ready.models[0]!.name, /meaningless/);
    });
    assert.match(logs, /SERVING THE DEMO MODEL/);
    assert.doesNotMatch(stderr, /skipping/);
  });
});
