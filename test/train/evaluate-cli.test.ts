import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { openDataset } from '../../train/data/open-dataset.js';
import { evaluateBundle } from '../../train/evaluate/evaluate.js';
import { runCli } from '../helpers/run-cli.js';

/**
 * `bridgetower evaluate` and `predict`: argument checks, the bundle check before any data is read,
 * and the commands on JSON Lines data, compared with evaluateBundle in this process (whose metrics
 * test/train/evaluate-bundle.test.ts checks against the server's runtime).
 */

let dir: string;
let bundle: string;
let answers: string[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bridgetower-evaluate-cli-'));
  bundle = join(dir, 'demo');
  await buildDemoBundle(bundle);
  answers = (JSON.parse(readFileSync(join(bundle, 'labels.json'), 'utf8')) as { vqa: string[] }).vqa;
  mkdirSync(join(dir, 'images'));
  for (let i = 0; i < 4; i++) {
    const colour = { r: (i * 80) % 256, g: 200 - i * 40, b: 30 + i * 50 };
    await sharp({ create: { width: 40 + 6 * i, height: 44, channels: 3, background: colour } }).png().toFile(join(dir, 'images', `${i}.png`));
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('bridgetower evaluate and predict', () => {
  it('are listed by bridgetower --help', () => {
    const result = runCli(['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^\s+evaluate\s/m);
    assert.match(result.stdout, /^\s+predict\s/m);
  });

  it('evaluate without --bundle is a usage error', () => {
    const result = runCli(['evaluate', '--task', 'vqa', '--data', 'dev.jsonl']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /E_USAGE.*--bundle is required/);
  });

  it('an unknown task is a usage error listing the tasks', () => {
    const result = runCli(['evaluate', '--bundle', bundle, '--task', 'captioning', '--data', 'dev.jsonl']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--task must be one of vqa, snli, nlvr2, irtr, pretrain, got 'captioning'/);
  });

  it('a non-integer --top-k is a usage error', () => {
    const result = runCli(['evaluate', '--bundle', bundle, '--task', 'irtr', '--data', 'test.jsonl', '--top-k', '12.5']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--top-k must be a positive integer, got '12\.5'/);
  });

  it('predict needs --out', () => {
    const result = runCli(['predict', '--bundle', bundle, '--task', 'vqa', '--data', 'test.jsonl']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--out is required/);
  });

  it('a bundle without the task head is refused before the data is read, as JSON under --json', () => {
    const headless = join(dir, 'no-itm');
    mkdirSync(headless, { recursive: true });
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    delete config.tasks.itm;
    writeFileSync(join(headless, 'config.json'), JSON.stringify(config));
    const result = runCli(['evaluate', '--bundle', headless, '--task', 'irtr', '--data', join(dir, 'does-not-exist.jsonl'), '--json']);
    assert.equal(result.code, 2);
    const error = JSON.parse(result.stdout).error;
    assert.equal(error.code, 'E_USAGE');
    assert.match(error.message, /has no itm head/);
    assert.deepEqual(error.details.missing, ['itm']);
  });

  const writeJsonl = (name: string, lines: object[]) => {
    const file = join(dir, name);
    writeFileSync(file, lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
    return file;
  };

  it('evaluate --json prints the VQA score evaluateBundle computes on the same file', async () => {
    const data = writeJsonl('vqa_dev.jsonl', [0, 1, 2, 3].map((i) => ({ image: `${i}.png`, question: `question ${i}?`, question_id: 100 + i, answers: [answers[i]!, answers[i]!, answers[i + 1]!] })));
    const result = runCli(['evaluate', '--bundle', bundle, '--task', 'vqa', '--data', data, '--images', join(dir, 'images'), '--batch-size', '3', '--precision', 'fp32', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout);
    const expected = await evaluateBundle(bundle, await openDataset(data, 'vqa', { images: join(dir, 'images'), labels: answers }));
    assert.equal(printed.ok, true);
    assert.equal(printed.count, 4);
    assert.deepEqual(printed.metrics, expected.metrics);
  });

  it('evaluate prints retrieval recall as text, with the top-k it used', async () => {
    const data = writeJsonl('f30k_test.jsonl', [0, 1, 2].map((i) => ({ image: `images/${i}.png`, image_id: `${i}.jpg`, captions: [`caption ${i}a`, `caption ${i}b`] })));
    // --precision fp32: evaluateBundle below runs the fp32 graphs (the CLI's auto would take int8 where the bundle has it).
    const result = runCli(['evaluate', '--bundle', bundle, '--task', 'irtr', '--data', data, '--precision', 'fp32']);
    assert.equal(result.code, 0, result.stderr);
    const expected = await evaluateBundle(bundle, await openDataset(data, 'irtr'));
    assert.match(result.stdout, /^irtr on .*f30k_test\.jsonl: 3 images, top-k 128$/m);
    for (const [name, value] of Object.entries(expected.metrics)) assert.match(result.stdout, new RegExp(`^  ${name} +${value.toFixed(2).replace('.', '\\.')}$`, 'm'));
  });

  it('evaluate on data of another task is a data error', () => {
    const data = writeJsonl('snli_dev.jsonl', [{ image: 'images/0.png', hypothesis: 'h', label: 'neutral' }]);
    const result = runCli(['evaluate', '--bundle', bundle, '--task', 'nlvr2', '--data', data]);
    assert.equal(result.code, 11, result.stderr);
    assert.match(result.stderr, /E_DATA/);
  });

  it('predict writes the EvalAI submission for unlabelled VQA questions', () => {
    const data = writeJsonl('vqa_test.jsonl', [0, 1].map((i) => ({ image: `images/${i}.png`, question: `what is ${i}?`, question_id: 262148000 + i })));
    const out = join(dir, 'submission.json');
    const result = runCli(['predict', '--bundle', bundle, '--task', 'vqa', '--data', data, '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /2 answers \(EvalAI submission\)/);
    const submission = JSON.parse(readFileSync(out, 'utf8')) as Array<{ question_id: number; answer: string }>;
    assert.deepEqual(submission.map((s) => s.question_id), [262148000, 262148001]);
    for (const { answer } of submission) assert.ok(answers.includes(answer), `'${answer}' is one of labels.json`);
  });
});
