import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleCache } from '../helpers/parity.js';
import { runCli } from '../helpers/run-cli.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * `bridgetower embed` on a bundle converted from the Hugging Face contrastive fixture: output
 * lines, resuming after an interruption (a torn last line, a killed process) to the same output as
 * an uninterrupted run with every id once, and bad inputs reported with their file and line.
 */

const root = tempDir({ after });
const bundleFor = bundleCache();
const ENTRY = fileURLToPath(new URL('../helpers/cli-entry.ts', import.meta.url));

async function setup(t: TestContext): Promise<{ bundle: string; pairs: string } | undefined> {
  const tokenizer = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'contrastive', 'tokenizer.json');
  const bundle = tokenizer && (await bundleFor(t, ['fixtures', 'bridgetower-hf', 'contrastive'], { tokenizer }));
  if (!bundle) return undefined;
  for (const name of ['chelsea.png', 'coffee.jpg', 'astronaut.png']) {
    const path = sharedFixture(t, 'fixtures', 'images', name);
    if (!path) return undefined;
    copyFileSync(path, join(root, name));
  }
  const pairs = join(root, 'pairs.jsonl');
  const rows = [
    { id: 'cat', text: 'a tabby cat', image: 'chelsea.png' },
    { id: 'coffee', text: 'a cup of coffee', image: 'coffee.jpg' },
    { id: 'astronaut-image', image: 'astronaut.png' },
    { id: 'caption-only', text: 'an astronaut in front of a flag' },
    { id: 7, text: 'a numeric id', image: 'chelsea.png' },
  ];
  writeFileSync(pairs, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { bundle, pairs };
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; kind: string; embedding: number[] });

function assertSameOutput(actual: string, expected: string): void {
  const [a, e] = [lines(actual), lines(expected)];
  assert.deepEqual(a.map((l) => l.id), e.map((l) => l.id), 'ids, once each, in input order');
  a.forEach((line, i) => {
    assert.equal(line.kind, e[i]!.kind);
    const error = Math.max(...line.embedding.map((v, k) => Math.abs(v - e[i]!.embedding[k]!)));
    assert.ok(error <= 1e-6, `${line.id}: differs from the uninterrupted run by ${error}`);
  });
}

describe('bridgetower embed', () => {
  it('writes one {id, kind, embedding} line per item, L2-normalised', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const out = join(root, 'full.jsonl');
    const run = runCli(['embed', '--bundle', s.bundle, '--pairs', s.pairs, '--out', out, '--batch-size', '2']);
    assert.equal(run.code, 0, run.stderr);
    const written = lines(out);
    assert.deepEqual(written.map((l) => [l.id, l.kind]), [['cat', 'pair'], ['coffee', 'pair'], ['astronaut-image', 'image'], ['caption-only', 'text'], ['7', 'pair']]);
    for (const line of written) assert.ok(Math.abs(Math.hypot(...line.embedding) - 1) < 1e-5, `${line.id} has norm ${Math.hypot(...line.embedding)}`);
    assert.match(run.stdout, /5 embedded, 0 already in/);
  });

  it('a restart after a torn last line cuts it off, skips the ids written, and ends equal to an uninterrupted run', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const full = join(root, 'reference.jsonl');
    assert.equal(runCli(['embed', '--bundle', s.bundle, '--pairs', s.pairs, '--out', full, '--batch-size', '2']).code, 0);
    const out = join(root, 'torn.jsonl');
    const text = readFileSync(full, 'utf8').split('\n');
    writeFileSync(out, `${text.slice(0, 2).join('\n')}\n${text[2]!.slice(0, 25)}`);
    const run = runCli(['embed', '--bundle', s.bundle, '--pairs', s.pairs, '--out', out, '--batch-size', '2']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /3 embedded, 2 already in/);
    assert.match(run.stdout, /cut off a torn last line/);
    assertSameOutput(out, full);
  });

  it('killed mid-run and restarted, the output has every id exactly once and equals an uninterrupted run', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const texts = join(root, 'many.txt');
    writeFileSync(texts, Array.from({ length: 300 }, (_, i) => `caption number ${i} of a photograph`).join('\n') + '\n');
    const full = join(root, 'many-full.jsonl');
    assert.equal(runCli(['embed', '--bundle', s.bundle, '--texts', texts, '--out', full, '--batch-size', '1']).code, 0);
    const out = join(root, 'many-killed.jsonl');
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'embed', '--bundle', s.bundle, '--texts', texts, '--out', out, '--batch-size', '1'], { stdio: 'ignore' });
    const exited = new Promise<void>((done) => child.on('exit', () => done()));
    const deadline = Date.now() + 120_000;
    while (!(existsSync(out) && readFileSync(out, 'utf8').length > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(Date.now() < deadline, 'timed out after 120 s waiting for the first output line');
    child.kill('SIGKILL');
    await exited;
    const before = readFileSync(out, 'utf8').split('\n').length - 1;
    t.diagnostic(`killed after ${before} of 300 lines`);
    const run = runCli(['embed', '--bundle', s.bundle, '--texts', texts, '--out', out, '--batch-size', '1']);
    assert.equal(run.code, 0, run.stderr);
    assertSameOutput(out, full);
  });

  it('an unreadable or undecodable image and a line with neither text nor image are skipped and reported with file and line', async (t) => {
    const s = await setup(t);
    if (!s) return;
    writeFileSync(join(root, 'not-an-image.png'), 'plain text');
    const pairs = join(root, 'bad.jsonl');
    writeFileSync(pairs, [{ id: 'ok', text: 'fine' }, { id: 'missing', image: 'nowhere.png' }, { id: 'empty' }, { id: 'broken', text: 'x', image: 'not-an-image.png' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(root, 'bad-out.jsonl');
    const run = runCli(['embed', '--bundle', s.bundle, '--pairs', pairs, '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(lines(out).map((l) => l.id), ['ok']);
    assert.match(run.stdout, new RegExp(`skipped "missing" \\(${pairs.replace(/[.]/g, '\\.')}:2\\): cannot read image .*nowhere\\.png`));
    assert.match(run.stdout, /skipped "empty" \(.*bad\.jsonl:3\): neither/);
    assert.match(run.stdout, /skipped "broken" \(.*bad\.jsonl:4\)/);
  });

  it('a repeated id or a line that is not JSON is fatal, naming the file and line', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const cases: Array<[string, RegExp]> = [
      [`${JSON.stringify({ id: 'a', text: 'x' })}\n${JSON.stringify({ id: 'a', text: 'y' })}\n`, /dup\.jsonl:2: id "a" was already used on line 1/],
      [`${JSON.stringify({ id: 'a', text: 'x' })}\n{not json\n`, /dup\.jsonl:2: not a JSON object/],
    ];
    for (const [content, message] of cases) {
      const pairs = join(root, 'dup.jsonl');
      writeFileSync(pairs, content);
      const run = runCli(['embed', '--bundle', s.bundle, '--pairs', pairs, '--out', join(root, 'dup-out.jsonl')]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
    }
  });
});
