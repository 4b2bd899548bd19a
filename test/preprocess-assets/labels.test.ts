import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BridgeTowerError } from '../../common/errors.js';
import { checkLabelCount, FIXED_LABELS_BY_HEAD, loadLabels, NLVR2_LABELS, SNLI_VE_LABELS } from '../../bundle/labels.js';

const dir = mkdtempSync(join(tmpdir(), 'bt-labels-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
/** Writes `text` to a fresh file in the test's temporary folder and returns its path. */
function labelFile(text: string): string {
  const path = join(dir, `labels-${fileCount++}.json`);
  writeFileSync(path, text);
  return path;
}

/** Asserts an E_LABELS error whose message matches `pattern` and shows the accepted forms. */
function assertLabelsError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String(error)}`);
    assert.equal(error.code, 'E_LABELS');
    assert.match(error.message, pattern);
    return true;
  });
}

test('a JSON list of strings gives the labels in list order, the empty string included', () => {
  assert.deepEqual(loadLabels(labelFile('["yes", "no", "", "2"]')), ['yes', 'no', '', '2']);
});

test('an id2label object gives the labels in id order, whatever the key order in the file', () => {
  assert.deepEqual(loadLabels(labelFile('{"2": "two", "0": "zero", "1": "one"}')), ['zero', 'one', 'two']);
});

test('a Hugging Face config.json is read through its id2label', () => {
  const config = { architectures: ['ViltForQuestionAnswering'], id2label: { '0': 'net', '1': 'pitcher' }, label2id: { net: 0, pitcher: 1 } };
  assert.deepEqual(loadLabels(labelFile(JSON.stringify(config))), ['net', 'pitcher']);
});

test('a duplicate key elsewhere in a config.json does not matter', () => {
  assert.deepEqual(loadLabels(labelFile('{"a": {"0": 1, "0": 2}, "id2label": {"0": "x"}}')), ['x']);
});

test('every error shows the accepted forms', () => {
  assertLabelsError(() => loadLabels(labelFile('[]')), /accepted forms: a JSON list of strings \["yes", "no", …\].*id2label object \{"0": "yes"/);
});

test('label ids with a gap are rejected, naming the missing id', () => {
  assertLabelsError(() => loadLabels(labelFile('{"0": "a", "1": "b", "3": "d"}')), /ids must be 0\.\.2, but it has id 3 and lacks 2/);
});

test('a repeated id in id2label is rejected instead of silently keeping the last label', () => {
  assertLabelsError(() => loadLabels(labelFile('{"0": "a", "1": "b", "1": "c"}')), /repeats the id "1"/);
});

test('a repeated id inside a config.json id2label is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('{"id2label": {"0": "a", "0": "b"}, "label2id": {"a": 0}}')), /id2label repeats the id "0"/);
});

test('a non-canonical id such as "01" is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('{"0": "a", "01": "b"}')), /key "01" is not a class id/);
});

test('a non-string label in a list is rejected with its position', () => {
  assertLabelsError(() => loadLabels(labelFile('["yes", 2, "no"]')), /entry 1 is 2, not a string/);
});

test('a non-string label in id2label is rejected with its id', () => {
  assertLabelsError(() => loadLabels(labelFile('{"0": "yes", "1": null}')), /\["1"\] is null, not a string/);
});

test('an empty list is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('[]')), /the list is empty/);
});

test('an object that is neither id2label nor a config is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('{"labels": ["a"]}')), /without "id2label".*"labels"/);
});

test('a config.json whose id2label is a list is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('{"id2label": ["a", "b"]}')), /"id2label" is a list, not an object/);
});

test('a file that is not JSON is rejected', () => {
  assertLabelsError(() => loadLabels(labelFile('yes\nno\n')), /is not valid JSON/);
});

test('a missing file is a labels error naming the path', () => {
  const path = join(dir, 'absent.json');
  assertLabelsError(() => loadLabels(path), /absent\.json.*cannot be read/);
});

test('SNLI-VE labels follow upstream ids: 0 contradiction, 1 neutral, 2 entailment', () => {
  assert.deepEqual([...SNLI_VE_LABELS], ['contradiction', 'neutral', 'entailment']);
  assert.equal(FIXED_LABELS_BY_HEAD.snli_classifier, SNLI_VE_LABELS);
});

test('NLVR2 labels put True at class 1', () => {
  assert.deepEqual([...NLVR2_LABELS], ['False', 'True']);
  assert.equal(FIXED_LABELS_BY_HEAD.nlvr2_classifier, NLVR2_LABELS);
});

test('the fixed label tables cannot be modified', () => {
  assert.throws(() => (SNLI_VE_LABELS as string[]).push('other'), TypeError);
});

test('a label count that matches the head passes', () => {
  assert.doesNotThrow(() => checkLabelCount(SNLI_VE_LABELS, 3, 'snli_classifier'));
});

test('a wrong label count is rejected, naming the head and both numbers', () => {
  assert.throws(
    () => checkLabelCount(['a', 'b'], 3129, 'vqa_classifier'),
    (error: unknown) =>
      error instanceof BridgeTowerError && error.code === 'E_LABELS' && /vqa_classifier has 3129 outputs but 2 labels were given/.test(error.message),
  );
});
