import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import { readArrowExamples } from '../../train/data/open-dataset.js';
import { openArrowIpc } from '../../train/data/arrow-ipc.js';
import { tempDir } from '../helpers/temp-dir.js';
import { column, rejectsWithData, tinyPng, vqaColumns, writeArrow } from '../helpers/training-data.js';

const LABELS = ['yes', 'no', 'red', 'blue'];

describe('Arrow IPC reading', () => {
  for (const format of ['file', 'stream'] as const) {
    test(`reads the ${format} format, every record batch, and serves each image's exact bytes on demand`, async (t) => {
      const dir = tempDir(t);
      const { images, columns } = await vqaColumns();
      const path = join(dir, 'vqav2_train.arrow');
      writeArrow(path, columns, { format, batches: 2 });
      assert.equal(tableFromIPC(readFileSync(path)).batches.length, 2);
      const table = openArrowIpc(path);
      assert.equal(table.format, format);
      assert.equal(table.numRows, 2);
      const examples = readArrowExamples(path, 'vqa', { labels: LABELS });
      assert.deepEqual(await examples[2]!.image.bytes(), images[1]);
      assert.deepEqual(await examples[0]!.image.bytes(), images[0]);
    });
  }

  test('keeps image bytes out of memory: the binary column yields byte ranges into the file', async (t) => {
    const dir = tempDir(t);
    const { images, columns } = await vqaColumns();
    const path = join(dir, 'vqav2_val.arrow');
    writeArrow(path, columns);
    const range = openArrowIpc(path).binary('image').range(1)!;
    assert.equal(range.length, images[1]!.length);
    assert.ok(range.position > 0);
  });

  test('a truncated file is an E_DATA naming the file', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const path = join(dir, 'vqav2_train.arrow');
    writeArrow(path, columns);
    writeFileSync(path, readFileSync(path).subarray(0, 200));
    await rejectsWithData(() => openArrowIpc(path), /vqav2_train\.arrow/, /truncated/);
  });
});

describe('VQAv2 Arrow files', () => {
  test('give one example per question with its labels, scores and question id', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const path = join(dir, 'vqav2_train.arrow');
    writeArrow(path, columns);
    const examples = readArrowExamples(path, 'vqa', { labels: LABELS });
    assert.equal(examples.length, 3);
    assert.deepEqual(
      examples.map((e) => [e.question, e.questionId, e.labels, e.scores, e.ref.index]),
      [
        ['is it red?', 100, [0, 2], [1, 0.3], 0],
        ['what colour?', 101, [2, 3], [0.9, 0.6], 0],
        ['is it blue?', 110, [1], [1], 1],
      ],
    );
    // Questions of one row share the row's image.
    assert.equal(examples[0]!.image, examples[1]!.image);
  });

  test('test splits without answer columns give unlabelled examples when labels are not required', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const { answer_labels: _l, answer_scores: _s, ...testColumns } = columns;
    const path = join(dir, 'vqav2_test.arrow');
    writeArrow(path, testColumns);
    const examples = readArrowExamples(path, 'vqa', { requireLabels: false });
    assert.equal(examples.length, 3);
    assert.ok(examples.every((e) => e.labels.length === 0 && e.scores.length === 0));
  });

  test('missing columns name the file, the missing columns and the columns found', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const { answer_labels: _l, answer_scores: _s, ...testColumns } = columns;
    const path = join(dir, 'vqav2_test.arrow');
    writeArrow(path, testColumns);
    await rejectsWithData(() => readArrowExamples(path, 'vqa', { labels: LABELS }), /vqav2_test\.arrow/, /missing columns 'answer_labels', 'answer_scores'/, /found 'image', 'questions'/);
  });

  test('a label index past the bundle\'s labels names the row', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const path = join(dir, 'vqav2_train.arrow');
    writeArrow(path, { ...columns, answer_labels: column.int64ListLists([[[0], [2]], [[7]]]), answer_scores: column.float64ListLists([[[1], [1]], [[1]]]) });
    await rejectsWithData(() => readArrowExamples(path, 'vqa', { labels: LABELS }), /vqav2_train\.arrow row 1/, /label 7 is out of range \(0\.\.3\)/);
  });

  test('answer lists shorter than the questions name the row', async (t) => {
    const dir = tempDir(t);
    const { columns } = await vqaColumns();
    const path = join(dir, 'vqav2_train.arrow');
    writeArrow(path, { ...columns, answer_labels: column.int64ListLists([[[0]], [[1]]]), answer_scores: column.float64ListLists([[[1]], [[1]]]) });
    await rejectsWithData(() => readArrowExamples(path, 'vqa', { labels: LABELS }), /row 0/, /answer_labels' has 1 entries but the row has 2 questions/);
  });

  test('an empty image cell names the row and column', async (t) => {
    const dir = tempDir(t);
    const { columns, images } = await vqaColumns();
    const path = join(dir, 'vqav2_train.arrow');
    writeArrow(path, { ...columns, image: column.binary([images[0]!, new Uint8Array(0)]) });
    await rejectsWithData(() => readArrowExamples(path, 'vqa', { labels: LABELS }), /vqav2_train\.arrow row 1/, /column 'image' is empty/);
  });
});

describe('SNLI-VE Arrow files', () => {
  test('read plain hypotheses and [premise, hypothesis] pairs, labels as indices or names', async (t) => {
    const dir = tempDir(t);
    const images = [await tinyPng(3), await tinyPng(4)];
    const plain = join(dir, 'snli_dev.arrow');
    writeArrow(plain, { image: column.binary(images), sentences: column.stringLists([['a dog runs', 'a cat sleeps'], ['two men']]), labels: column.int64Lists([[2, 0], [1]]) });
    assert.deepEqual(
      readArrowExamples(plain, 'snli').map((e) => [e.hypothesis, e.label]),
      [['a dog runs', 2], ['a cat sleeps', 0], ['two men', 1]],
    );
    const pairs = join(dir, 'snli_ve_dev.arrow');
    writeArrow(pairs, {
      image: column.binary(images),
      sentences: column.stringPairLists([[['premise one', 'a dog runs']], [['premise two', 'two men']]]),
      labels: column.stringLists([['entailment'], ['contradiction']]),
    });
    assert.deepEqual(
      readArrowExamples(pairs, 'snli').map((e) => [e.hypothesis, e.label]),
      [['a dog runs', 2], ['two men', 0]],
    );
  });

  test('a label outside 0..2 names the row and the value', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'snli_train.arrow');
    writeArrow(path, { image: column.binary([await tinyPng(5), await tinyPng(6)]), sentences: column.stringLists([['x'], ['y']]), labels: column.int64Lists([[0], [7]]) });
    await rejectsWithData(() => readArrowExamples(path, 'snli'), /snli_train\.arrow row 1/, /label 7 is out of range \(0\.\.2/);
  });
});

describe('NLVR2 Arrow files', () => {
  test('give one example per statement over the row\'s image pair, True = 1', async (t) => {
    const dir = tempDir(t);
    const [a, b] = [await tinyPng(7), await tinyPng(8)];
    const path = join(dir, 'nlvr2_dev.arrow');
    writeArrow(path, {
      image_0: column.binary([a]),
      image_1: column.binary([b]),
      questions: column.stringLists([['one dog', 'no dogs']]),
      answers: column.stringLists([['True', 'False']]),
      identifier: column.strings(['dev-1-0']),
    });
    const examples = readArrowExamples(path, 'nlvr2');
    assert.deepEqual(examples.map((e) => [e.sentence, e.label, e.identifier]), [['one dog', 1, 'dev-1-0'], ['no dogs', 0, 'dev-1-0']]);
    assert.deepEqual(await examples[0]!.left.bytes(), a);
    assert.deepEqual(await examples[0]!.right.bytes(), b);
  });

  test('an answer other than True/False names the row', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'nlvr2_train.arrow');
    const img = await tinyPng(9);
    writeArrow(path, { image_0: column.binary([img]), image_1: column.binary([img]), questions: column.stringLists([['s']]), answers: column.stringLists([['maybe']]), identifier: column.strings(['x']) });
    await rejectsWithData(() => readArrowExamples(path, 'nlvr2'), /nlvr2_train\.arrow row 0/, /"maybe" is not "True" or "False"/);
  });
});

describe('caption (retrieval) Arrow files', () => {
  for (const name of ['f30k_caption_karpathy_test.arrow', 'coco_caption_karpathy_val.arrow']) {
    test(`${name.split('_')[0]} files give one example per image with all its captions`, async (t) => {
      const dir = tempDir(t);
      const path = join(dir, name);
      const img = await tinyPng(10);
      writeArrow(path, { image: column.binary([img]), caption: column.stringLists([['a dog.', 'a brown dog.']]), image_id: column.strings(['1000.jpg']), split: column.strings(['test']) });
      const [example, ...rest] = readArrowExamples(path, 'irtr');
      assert.equal(rest.length, 0);
      assert.deepEqual([example!.imageId, example!.captions], ['1000.jpg', ['a dog.', 'a brown dog.']]);
      assert.deepEqual(await example!.image.bytes(), img);
    });
  }
});
