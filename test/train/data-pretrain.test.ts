import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readJsonlExamples } from '../../train/data/jsonl.js';
import { openDataset, readArrowExamples } from '../../train/data/open-dataset.js';
import { tempDir } from '../helpers/temp-dir.js';
import { column, rejectsWithData, tinyPng, writeArrow } from '../helpers/training-data.js';

/**
 * Pre-training's caption data: ViLT's caption Arrow files (COCO Karpathy, VG, SBU, GCC) and JSON
 * Lines `{image, caption}`. One example per caption, as upstream's pre-training index; bad rows
 * fail at open time and name the row or line.
 */

describe('pre-training caption Arrow files', () => {
  for (const name of ['coco_caption_karpathy_train.arrow', 'vg.arrow', 'sbu_0.arrow', 'conceptual_caption_train_0.arrow']) {
    test(`${name}: one example per caption, each with its image and image_id`, async (t) => {
      const path = join(tempDir(t), name);
      const [a, b] = [await tinyPng(1), await tinyPng(2)];
      writeArrow(path, {
        image: column.binary([a, b]),
        caption: column.stringLists([['a dog.', 'a brown dog.'], ['a cat.']]),
        image_id: column.strings(['1.jpg', '2.jpg']),
        split: column.strings(['train', 'train']),
      });
      const examples = readArrowExamples(path, 'pretrain');
      assert.deepEqual(examples.map((e) => [e.imageId, e.caption, e.ref.index]), [['1.jpg', 'a dog.', 0], ['1.jpg', 'a brown dog.', 0], ['2.jpg', 'a cat.', 1]]);
      assert.deepEqual(await examples[2]!.image.bytes(), b);
    });
  }

  test('a folder reads the files named for pre-training, and a row without captions adds no example', async (t) => {
    const dir = tempDir(t);
    const img = await tinyPng(3);
    writeArrow(join(dir, 'sbu_0.arrow'), { image: column.binary([img, img]), caption: column.stringLists([['x'], []]) });
    writeArrow(join(dir, 'vqav2_train.arrow'), { image: column.binary([img]), questions: column.stringLists([['q']]), question_id: column.int64Lists([[1]]) });
    const dataset = await openDataset(dir, 'pretrain');
    assert.equal(dataset.size, 1);
    assert.equal(dataset.get(0).imageId, 'sbu_0.arrow#0');
  });

  test('a caption that is not text, a null image and a missing column name the file and row', async (t) => {
    const dir = tempDir(t);
    const img = await tinyPng(4);
    const numbers = join(dir, 'vg.arrow');
    writeArrow(numbers, { image: column.binary([img]), caption: column.int64Lists([[7]]) });
    await rejectsWithData(() => readArrowExamples(numbers, 'pretrain'), /vg\.arrow row 0/, /caption' item 0 should be text/);
    const nullImage = join(dir, 'sbu_1.arrow');
    writeArrow(nullImage, { image: column.binary([null]), caption: column.stringLists([['x']]) });
    await rejectsWithData(() => readArrowExamples(nullImage, 'pretrain'), /sbu_1\.arrow row 0/, /null/);
    const noCaption = join(dir, 'sbu_2.arrow');
    writeArrow(noCaption, { image: column.binary([img]) });
    await rejectsWithData(() => readArrowExamples(noCaption, 'pretrain'), /missing column 'caption'/);
  });
});

describe('pre-training JSON Lines', () => {
  test('{image, caption} lines, image_id defaulting to the image path', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'a.png'), await tinyPng(5));
    const path = join(dir, 'captions.jsonl');
    writeFileSync(path, `${JSON.stringify({ image: 'a.png', caption: 'a red cube' })}\n${JSON.stringify({ image: 'a.png', caption: 'a cube', image_id: 9 })}\n`);
    assert.deepEqual(readJsonlExamples(path, 'pretrain').map((e) => [e.imageId, e.caption]), [['a.png', 'a red cube'], ['9', 'a cube']]);
  });

  test('a missing caption, a caption list and a missing image file name the line', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'a.png'), await tinyPng(6));
    const write = (line: object) => {
      const path = join(dir, 'bad.jsonl');
      writeFileSync(path, `${JSON.stringify({ image: 'a.png', caption: 'fine' })}\n${JSON.stringify(line)}\n`);
      return path;
    };
    await rejectsWithData(() => readJsonlExamples(write({ image: 'a.png' }), 'pretrain'), /line 2/, /missing "caption"/);
    await rejectsWithData(() => readJsonlExamples(write({ image: 'a.png', caption: ['x'] }), 'pretrain'), /line 2/, /"caption" should be text/);
    await rejectsWithData(() => readJsonlExamples(write({ image: 'gone.png', caption: 'x' }), 'pretrain'), /line 2/, /does not exist/);
  });
});
