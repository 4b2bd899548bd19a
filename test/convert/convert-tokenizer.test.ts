import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

it('a vocab.json + merges.txt pair becomes the bundle tokenizer.json, byte for byte as the Rust library writes it', async (t) => {
  const ckpt = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'vqa.ckpt');
  const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
  const tokenizerDir = sharedFixture(t, 'fixtures', 'tokenizer');
  if (!ckpt || !textConfig || !tokenizerDir) return;
  const out = join(tempDir(t), 'bundle');
  const summary = await convertCheckpoint({ checkpoint: ckpt, out, textConfig, tokenizer: `${join(tokenizerDir, 'vocab.json')},${join(tokenizerDir, 'merges.txt')}` });
  assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'));
  // The fixture vocabulary (50262 entries) is larger than the tiny model's 1000 word embeddings.
  assert.ok(summary.warnings.some((w) => /ids up to 50261 but the text encoder has only 1000/.test(w)), summary.warnings.join('\n'));
  const pre = BundlePreprocessor.open(out);
  assert.deepEqual(Array.from(pre.encodeTexts(['!'], 'vqa').inputIds, Number), [0, 4, 2]);
  assert.throws(() => pre.encodeTexts(['a photograph of a cat'], 'vqa'), (e: any) => e.code === 'E_TOKENIZER' && /past the model's vocabulary of 1000/.test(e.message));
});
