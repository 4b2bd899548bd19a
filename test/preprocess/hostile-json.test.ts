import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { loadLabels } from '../../bundle/labels.js';
import { loadTokenizerSource, MAX_TOKENIZER_JSON_DEPTH } from '../../bundle/tokenizer-json.js';
import { TextTokenizer } from '../../preprocess/text.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

// JSON nested far deeper than any real file (issue #11, item 6): JSON.parse accepts it, and the
// recursive code after it (tokenizer.json serialization, error messages) overflowed the stack.

const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);

function refusal(fn: () => unknown): BridgeTowerError {
  let caught: unknown;
  assert.throws(fn, (err) => ((caught = err), true));
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String((caught as Error)?.stack ?? caught)}`);
  return caught;
}

test('a tokenizer.json whose post_processor nests 20,000 levels is E_TOKENIZER, for the converter and the runtime', (t) => {
  const fixture = sharedFixture(t, 'fixtures', 'tokenizer', 'tokenizer.json');
  if (!fixture) return;
  const json = JSON.parse(readFileSync(fixture, 'utf8'));
  delete json.post_processor;
  const deep = `{"type":"TemplateProcessing","single":${nested(20_000)},"pair":[],"special_tokens":{}}`;
  const path = join(tempDir(t), 'tokenizer.json');
  writeFileSync(path, JSON.stringify(json).replace(/}$/, `,"post_processor":${deep}}`));
  for (const load of [() => loadTokenizerSource(path), () => TextTokenizer.fromFile(path)]) {
    const error = refusal(load);
    assert.deepEqual([error.code, error.details.reason], ['E_TOKENIZER', 'json_too_deep'], error.message);
  }
});

test(`the real tokenizer.json is well within ${MAX_TOKENIZER_JSON_DEPTH} levels`, (t) => {
  const fixture = sharedFixture(t, 'fixtures', 'tokenizer', 'tokenizer.json');
  if (fixture) assert.ok(loadTokenizerSource(fixture).model);
});

test('a label file nested 20,000 levels deep is E_LABELS, not a stack overflow while quoting it', (t) => {
  const path = join(tempDir(t), 'labels.json');
  writeFileSync(path, `{"id2label": ${nested(20_000)}}`);
  const error = refusal(() => loadLabels(path));
  assert.deepEqual([error.code, error.details.reason], ['E_LABELS', 'json_too_deep']);
});
