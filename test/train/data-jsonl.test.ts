import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { readJsonlExamples } from '../../train/data/jsonl.js';
import { labelIndexOf, vqaSoftScore, vqaSoftTargets } from '../../train/data/labels.js';
import { tempDir } from '../helpers/temp-dir.js';
import { rejectsWithData, tinyPng } from '../helpers/training-data.js';

const LABELS = ['yes', 'no', 'red', 'blue'];

/** A folder with `a.png`, `b.png` and a JSONL file of the given objects (or raw lines). */
async function jsonlWith(t: { after(fn: () => void): void }, lines: ReadonlyArray<object | string>, name = 'data.jsonl'): Promise<{ dir: string; path: string }> {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.png'), await tinyPng(1));
  writeFileSync(join(dir, 'b.png'), await tinyPng(2));
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return { dir, path };
}

describe('VQA soft scores', () => {
  test('follow upstream: 0.3, 0.6, 0.9 for one to three annotators, 1.0 from four on', () => {
    assert.deepEqual([1, 2, 3, 4, 7].map(vqaSoftScore), [0.3, 0.6, 0.9, 1.0, 1.0]);
  });

  test('count each answer, keep first-seen order and drop answers outside the labels', () => {
    const answers = ['red', 'red', 'blue', 'purple', 'red', 'red', 'blue', 'red'];
    assert.deepEqual(vqaSoftTargets(answers, labelIndexOf(LABELS)), { labels: [2, 3], scores: [1.0, 0.6], dropped: ['purple'] });
  });
});

describe('JSON Lines, VQA', () => {
  test('raw annotator answers become soft targets; "answer" is one answer with score 1; labels/scores are taken as given', async (t) => {
    const { path } = await jsonlWith(t, [
      { image: 'a.png', question: 'colour?', question_id: 7, answers: ['red', 'red', 'blue', 'red'] },
      { image: 'b.png', question: 'yes?', answer: 'yes' },
      { image: 'a.png', question: 'explicit?', labels: ['no', 3], scores: [0.6, 0.3] },
    ]);
    const examples = readJsonlExamples(path, 'vqa', { labels: LABELS });
    assert.deepEqual(
      examples.map((e) => [e.question, e.questionId, e.labels, e.scores]),
      [
        ['colour?', 7, [2, 3], [0.9, 0.3]],
        ['yes?', 2, [0], [1.0]],
        ['explicit?', 3, [1, 3], [0.6, 0.3]],
      ],
    );
    assert.deepEqual(await examples[1]!.image.bytes(), await tinyPng(2));
  });

  test('a label index past the bundle\'s labels names the line', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', question: 'q', labels: [9], scores: [1] }]);
    await rejectsWithData(() => readJsonlExamples(path, 'vqa', { labels: LABELS }), /data\.jsonl line 1/, /label 9 is out of range \(0\.\.3\)/);
  });

  test('answers without the bundle\'s labels are a usage error', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', question: 'q', answer: 'yes' }]);
    assert.throws(() => readJsonlExamples(path, 'vqa'), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && /answer labels/.test(e.message));
  });

  test('questions without answers are allowed only when labels are not required', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', question: 'q', question_id: 'q1' }]);
    await rejectsWithData(() => readJsonlExamples(path, 'vqa', { labels: LABELS }), /line 1/, /missing answers/);
    const [example] = readJsonlExamples(path, 'vqa', { labels: LABELS, requireLabels: false });
    assert.deepEqual([example!.questionId, example!.labels], ['q1', []]);
  });
});

describe('JSON Lines, other tasks', () => {
  test('SNLI-VE takes label names or indices in upstream\'s order', async (t) => {
    const { path } = await jsonlWith(t, [
      { image: 'a.png', hypothesis: 'h1', label: 'entailment' },
      { image: 'b.png', hypothesis: 'h2', label: 0 },
      { image: 'a.png', hypothesis: 'h3', label: 'Neutral' },
    ]);
    assert.deepEqual(readJsonlExamples(path, 'snli').map((e) => [e.hypothesis, e.label]), [['h1', 2], ['h2', 0], ['h3', 1]]);
  });

  test('SNLI-VE: an unknown label names the line', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', hypothesis: 'h', label: 'entailment' }, '', { image: 'a.png', hypothesis: 'h', label: 5 }]);
    await rejectsWithData(() => readJsonlExamples(path, 'snli'), /data\.jsonl line 3/, /label 5 is out of range/);
  });

  test('NLVR2 takes booleans or "True"/"False" and both images', async (t) => {
    const { path } = await jsonlWith(t, [
      { left: 'a.png', right: 'b.png', sentence: 's1', label: true, identifier: 'id-1' },
      { left: 'b.png', right: 'a.png', sentence: 's2', label: 'False' },
    ]);
    const examples = readJsonlExamples(path, 'nlvr2');
    assert.deepEqual(examples.map((e) => [e.sentence, e.label, e.identifier]), [['s1', 1, 'id-1'], ['s2', 0, 'line-2']]);
    assert.deepEqual(await examples[1]!.left.bytes(), await tinyPng(2));
    assert.deepEqual(await examples[1]!.right.bytes(), await tinyPng(1));
  });

  test('retrieval takes an image with its captions', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', captions: ['c1', 'c2'], image_id: 42 }, { image: 'b.png', captions: ['c3'] }]);
    assert.deepEqual(readJsonlExamples(path, 'irtr').map((e) => [e.imageId, e.captions]), [['42', ['c1', 'c2']], ['b.png', ['c3']]]);
  });

  test('retrieval: an empty caption list names the line', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', captions: [] }]);
    await rejectsWithData(() => readJsonlExamples(path, 'irtr'), /line 1/, /non-empty list/);
  });
});

describe('JSON Lines, files and images', () => {
  test('malformed JSON names the line', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', hypothesis: 'h', label: 1 }, '{"image": "a.png", "hypothesis": ']);
    await rejectsWithData(() => readJsonlExamples(path, 'snli'), /data\.jsonl line 2/, /malformed JSON/);
  });

  test('a missing image file is found at open time and names the line and how many more are missing', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', hypothesis: 'h', label: 1 }, { image: 'nope.png', hypothesis: 'h', label: 1 }, { image: 'gone.png', hypothesis: 'h', label: 1 }]);
    await rejectsWithData(() => readJsonlExamples(path, 'snli'), /data\.jsonl line 2/, /'nope\.png' does not exist/, /1 more line name missing images/);
  });

  test('image paths are relative to --images when given, else to the JSONL file\'s folder', async (t) => {
    const { dir, path } = await jsonlWith(t, [{ image: 'c.png', hypothesis: 'h', label: 2 }]);
    const images = join(dir, 'pictures');
    mkdirSync(images);
    writeFileSync(join(images, 'c.png'), await tinyPng(3));
    await rejectsWithData(() => readJsonlExamples(path, 'snli'), /'c\.png' does not exist/);
    const [example] = readJsonlExamples(path, 'snli', { images });
    assert.deepEqual(await example!.image.bytes(), await tinyPng(3));
  });

  test('a missing field names the line and the field', async (t) => {
    const { path } = await jsonlWith(t, [{ image: 'a.png', label: 1 }]);
    await rejectsWithData(() => readJsonlExamples(path, 'snli'), /line 1/, /missing "hypothesis"/);
  });

  test('labels are optional when not required (prediction data)', async (t) => {
    const { path } = await jsonlWith(t, [{ left: 'a.png', right: 'b.png', sentence: 's' }]);
    await rejectsWithData(() => readJsonlExamples(path, 'nlvr2'), /line 1/, /missing "label"/);
    assert.equal(readJsonlExamples(path, 'nlvr2', { requireLabels: false })[0]!.label, undefined);
  });
});
