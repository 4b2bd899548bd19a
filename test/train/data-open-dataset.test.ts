import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openDataset } from '../../train/data/open-dataset.js';
import { tempDir } from '../helpers/temp-dir.js';
import { column, rejectsWithData, tinyPng, writeArrow } from '../helpers/training-data.js';

async function snliFile(path: string, hypotheses: string[]): Promise<void> {
  writeArrow(path, {
    image: column.binary([await tinyPng(hypotheses.length)]),
    sentences: column.stringLists([hypotheses]),
    labels: column.int64Lists([hypotheses.map((_, i) => i % 3)]),
  });
}

describe('openDataset', () => {
  test('a folder concatenates the task\'s Arrow files in name order, either SNLI naming, and ignores other tasks\' files', async (t) => {
    const dir = tempDir(t);
    await snliFile(join(dir, 'snli_ve_train.arrow'), ['c', 'd']);
    await snliFile(join(dir, 'snli_dev.arrow'), ['a', 'b']);
    writeArrow(join(dir, 'nlvr2_dev.arrow'), { identifier: column.strings(['x']) });
    const dataset = await openDataset(dir, 'snli');
    assert.equal(dataset.task, 'snli');
    assert.equal(dataset.source, dir);
    assert.deepEqual(Array.from({ length: dataset.size }, (_, i) => dataset.get(i).hypothesis), ['a', 'b', 'c', 'd']);
    assert.match(dataset.get(2).ref.file, /snli_ve_train\.arrow$/);
  });

  test('a folder without files named for the task reads every .arrow file', async (t) => {
    const dir = tempDir(t);
    await snliFile(join(dir, 'part-1.arrow'), ['x']);
    await snliFile(join(dir, 'part-0.arrow'), ['y']);
    const dataset = await openDataset(dir, 'snli');
    assert.deepEqual([dataset.get(0).hypothesis, dataset.get(1).hypothesis], ['y', 'x']);
  });

  test('the format comes from the magic bytes before the extension', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'data.bin');
    await snliFile(path, ['h']);
    assert.equal((await openDataset(path, 'snli')).get(0).hypothesis, 'h');
  });

  test('JSON Lines files open by extension, with the image folder option', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'img'));
    writeFileSync(join(dir, 'img', 'a.png'), await tinyPng(1));
    const path = join(dir, 'dev.json-lines');
    writeFileSync(path, `${JSON.stringify({ image: 'a.png', question: 'q', answers: ['yes', 'yes'] })}\n`);
    const dataset = await openDataset(path, 'vqa', { images: join(dir, 'img'), labels: ['no', 'yes'] });
    assert.deepEqual([dataset.get(0).labels, dataset.get(0).scores], [[1], [0.6]]);
  });

  test('an unknown format is an E_DATA naming the file', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'data.csv');
    writeFileSync(path, 'image,question\n');
    await rejectsWithData(openDataset(path, 'vqa'), /data\.csv/, /unknown data format/);
  });

  test('a path that does not exist is an E_DATA naming it', async (t) => {
    const dir = tempDir(t);
    await rejectsWithData(openDataset(join(dir, 'absent.arrow'), 'vqa'), /absent\.arrow/, /no such file or folder/);
  });
});
