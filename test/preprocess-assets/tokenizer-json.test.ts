import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BridgeTowerError } from '../../common/errors.js';
import {
  buildByteLevelDemoTokenizer,
  buildTokenizerJson,
  byteLevelAlphabet,
  loadTokenizerSource,
  serializeTokenizerJson,
  type TokenizerJson,
} from '../../bundle/tokenizer-json.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bt-tokenizer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A complete miniature RoBERTa vocabulary: the specials, the byte alphabet, and the tokens the two
 * merges produce ("Ġt", "he", then "Ġthe" would need a third).
 */
function tinyVocab(): Record<string, number> {
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  byteLevelAlphabet().forEach((symbol, i) => (vocab[symbol] = 4 + i));
  vocab['Ġt'] = 260;
  vocab.he = 261;
  vocab['<mask>'] = 262;
  return vocab;
}
const TINY_MERGES = '#version: 0.2\nĠ t\nh e\n';

let folderCount = 0;
/** Writes the given files into a fresh folder and returns its path. */
function folderWith(files: Record<string, string>): string {
  const folder = join(dir, `case-${folderCount++}`);
  mkdirSync(folder);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
  return folder;
}

function assertTokenizerError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String(error)}`);
    assert.equal(error.code, 'E_TOKENIZER');
    assert.match(error.message, pattern);
    return true;
  });
}

function model(tokenizer: TokenizerJson): Record<string, unknown> {
  return tokenizer.model as Record<string, unknown>;
}

test('building from the fixture vocab.json and merges.txt gives exactly the tokenizer.json transformers wrote', (t) => {
  const fixtureDir = sharedFixture(t, 'fixtures', 'tokenizer');
  if (!fixtureDir) return;
  const built = loadTokenizerSource(`${join(fixtureDir, 'vocab.json')},${join(fixtureDir, 'merges.txt')}`);
  const expected = readFileSync(join(fixtureDir, 'tokenizer.json'), 'utf8');
  assert.deepEqual(built, JSON.parse(expected));
  // Byte for byte too: same pretty-printing, vocabulary in id order, no trailing newline.
  assert.equal(serializeTokenizerJson(built), expected);
});

test('an existing tokenizer.json is accepted and returned unchanged', (t) => {
  const path = sharedFixture(t, 'fixtures', 'tokenizer', 'tokenizer.json');
  if (!path) return;
  assert.deepEqual(loadTokenizerSource(path), JSON.parse(readFileSync(path, 'utf8')));
});

test('a folder holding vocab.json and merges.txt is built from that pair', () => {
  const folder = folderWith({ 'vocab.json': JSON.stringify(tinyVocab()), 'merges.txt': TINY_MERGES });
  const built = loadTokenizerSource(folder);
  assert.deepEqual(model(built).merges, [['Ġ', 't'], ['h', 'e']]);
  assert.deepEqual(model(built).vocab, tinyVocab());
});

test('a folder holding tokenizer.json prefers it over vocab.json and merges.txt', () => {
  const fromTokenizerJson = buildTokenizerJson(tinyVocab(), 'Ġ t\n');
  const folder = folderWith({
    'tokenizer.json': JSON.stringify(fromTokenizerJson),
    'vocab.json': JSON.stringify(tinyVocab()),
    'merges.txt': TINY_MERGES,
  });
  assert.deepEqual(model(loadTokenizerSource(folder)).merges, [['Ġ', 't']]);
});

test('the structure matches RobertaTokenizerFast: byte-level BPE, RobertaProcessing, lstrip on <mask> only', () => {
  const built = buildTokenizerJson(tinyVocab(), TINY_MERGES);
  assert.equal(built.normalizer, null);
  assert.equal(built.truncation, null);
  assert.equal(built.padding, null);
  assert.deepEqual(built.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
  assert.deepEqual(built.post_processor, { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false });
  assert.equal((built.decoder as { type: string }).type, 'ByteLevel');
  assert.equal(model(built).type, 'BPE');
  assert.equal(model(built).unk_token, null);
  const added = built.added_tokens as Array<{ id: number; content: string; lstrip: boolean; normalized: boolean; special: boolean }>;
  assert.deepEqual(added.map((a) => [a.id, a.content, a.lstrip, a.normalized, a.special]), [
    [0, '<s>', false, true, true],
    [1, '<pad>', false, true, true],
    [2, '</s>', false, true, true],
    [3, '<unk>', false, true, true],
    [262, '<mask>', true, false, true],
  ]);
});

test('merges.txt with CRLF line ends and no final newline keeps every merge', () => {
  const built = buildTokenizerJson(tinyVocab(), '#version: 0.2\r\nĠ t\r\nh e');
  assert.deepEqual(model(built).merges, [['Ġ', 't'], ['h', 'e']]);
});

test('the demo tokenizer holds the specials, the 256 byte symbols in GPT-2 order and <mask> last, with no merges', () => {
  const demo = buildByteLevelDemoTokenizer();
  const vocab = model(demo).vocab as Record<string, number>;
  assert.equal(Object.keys(vocab).length, 261);
  assert.deepEqual([vocab['<s>'], vocab['<pad>'], vocab['</s>'], vocab['<unk>'], vocab['<mask>']], [0, 1, 2, 3, 260]);
  assert.equal(vocab['!'], 4);
  // Space (0x20) becomes U+0120 "Ġ", after the 188 printable bytes and the 32 shifted bytes 0x00–0x1F: GPT-2's id 220.
  assert.equal(vocab['Ġ'], 4 + 220);
  assert.equal(new Set(Object.values(vocab)).size, 261);
  assert.deepEqual(model(demo).merges, []);
  assert.deepEqual(demo.post_processor, { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false });
});

test('the byte-level alphabet is GPT-2 bytes_to_unicode: 256 distinct symbols, printable bytes unchanged', () => {
  const alphabet = byteLevelAlphabet();
  assert.equal(new Set(alphabet).size, 256);
  assert.equal(alphabet[0], '!');
  assert.equal(alphabet[93], '~');
  assert.equal(alphabet[188], 'Ā', 'byte 0x00 is the first shifted symbol, U+0100');
});

test('the demo tokenizer passes the same validation as a user tokenizer.json', () => {
  const folder = folderWith({ 'tokenizer.json': serializeTokenizerJson(buildByteLevelDemoTokenizer()) });
  assert.deepEqual(loadTokenizerSource(folder), buildByteLevelDemoTokenizer());
});

test('an older tokenizer.json with "a b" string merges and no model type is accepted unchanged', () => {
  const old = buildTokenizerJson(tinyVocab(), TINY_MERGES);
  const oldModel = { ...model(old), merges: ['Ġ t', 'h e'] };
  delete (oldModel as Record<string, unknown>).type;
  const folder = folderWith({ 'tokenizer.json': JSON.stringify({ ...old, model: oldModel }) });
  assert.deepEqual(model(loadTokenizerSource(folder)).merges, ['Ġ t', 'h e']);
});

test('a missing merges file is rejected, naming it', () => {
  const folder = folderWith({ 'vocab.json': JSON.stringify(tinyVocab()) });
  assertTokenizerError(() => loadTokenizerSource(folder), /has no tokenizer\.json and lacks merges\.txt/);
  assertTokenizerError(() => loadTokenizerSource(`${join(folder, 'vocab.json')},${join(folder, 'merges.txt')}`), /merges file .*merges\.txt' does not exist/);
});

test('a vocab.json that is not an object is rejected', () => {
  const folder = folderWith({ 'vocab.json': '["<s>", "<pad>"]', 'merges.txt': TINY_MERGES });
  assertTokenizerError(() => loadTokenizerSource(folder), /must be a JSON object mapping token → id.*found a list of 2/);
});

test('a vocab id that is not a non-negative integer is rejected', () => {
  assertTokenizerError(() => buildTokenizerJson({ ...tinyVocab(), extra: 1.5 }, TINY_MERGES), /token "extra" has id 1\.5/);
});

test('two tokens sharing an id are rejected', () => {
  assertTokenizerError(() => buildTokenizerJson({ ...tinyVocab(), extra: 7 }, TINY_MERGES), /share id 7/);
});

test('a vocabulary without the RoBERTa specials is rejected, listing them', () => {
  const vocab = tinyVocab();
  delete vocab['<mask>'];
  assertTokenizerError(() => buildTokenizerJson(vocab, TINY_MERGES), /lacks the RoBERTa special tokens <mask>/);
});

test('a malformed merges line is rejected with its line number', () => {
  assertTokenizerError(() => buildTokenizerJson(tinyVocab(), '#version: 0.2\nĠ t\nh e x\n'), /line 3: expected two tokens/);
});

test('a merge whose result is not in the vocabulary is rejected', () => {
  assertTokenizerError(() => buildTokenizerJson(tinyVocab(), 'Ġt he\n'), /line 1: merge "Ġt he" uses "Ġthe", absent from the vocabulary/);
});

test('a repeated merge is rejected', () => {
  assertTokenizerError(() => buildTokenizerJson(tinyVocab(), 'Ġ t\nh e\nĠ t\n'), /line 3: merge "Ġ t" repeats line 1/);
});

test('a tokenizer.json of another model type is rejected', () => {
  const wordPiece = { ...buildTokenizerJson(tinyVocab(), TINY_MERGES), model: { type: 'WordPiece', vocab: tinyVocab() } };
  const folder = folderWith({ 'tokenizer.json': JSON.stringify(wordPiece) });
  assertTokenizerError(() => loadTokenizerSource(folder), /model type is "WordPiece"/);
});

test('a tokenizer.json whose <mask> is not an added token is rejected', () => {
  const built = buildTokenizerJson(tinyVocab(), TINY_MERGES);
  const withoutMask = { ...built, added_tokens: (built.added_tokens as Array<{ content: string }>).filter((a) => a.content !== '<mask>') };
  const folder = folderWith({ 'tokenizer.json': JSON.stringify(withoutMask) });
  assertTokenizerError(() => loadTokenizerSource(folder), /<mask> is not in added_tokens/);
});

test('a tokenizer.json without a ByteLevel pre-tokenizer is rejected', () => {
  const built = { ...buildTokenizerJson(tinyVocab(), TINY_MERGES), pre_tokenizer: { type: 'Whitespace' } };
  const folder = folderWith({ 'tokenizer.json': JSON.stringify(built) });
  assertTokenizerError(() => loadTokenizerSource(folder), /pre_tokenizer is "Whitespace", expected ByteLevel/);
});

test('a lone vocab.json path is rejected with a hint to pass its merges too', () => {
  const folder = folderWith({ 'vocab.json': JSON.stringify(tinyVocab()) });
  assertTokenizerError(() => loadTokenizerSource(join(folder, 'vocab.json')), /looks like a vocab\.json, which needs its merges\.txt/);
});

test('a pair given merges-first is rejected with the corrected order', () => {
  assertTokenizerError(() => loadTokenizerSource(join(dir, 'm.txt') + ',' + join(dir, 'v.json')), /names merges first/);
});

test('a path that does not exist is rejected, listing the accepted forms', () => {
  assertTokenizerError(() => loadTokenizerSource(join(dir, 'nowhere')), /does not exist; give a tokenizer\.json file, a folder/);
});

test('a tokenizer.json that is not JSON is rejected', () => {
  const folder = folderWith({ 'tokenizer.json': '{"model": ' });
  assertTokenizerError(() => loadTokenizerSource(folder), /is not valid JSON/);
});
