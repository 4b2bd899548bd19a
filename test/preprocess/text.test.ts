import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BridgeTowerError } from '../../common/errors.js';
import { buildByteLevelDemoTokenizer, type TokenizerJson } from '../../bundle/tokenizer-json.js';
import { DEFAULT_MAX_INPUT_CHARS, gpt2PreTokenize, TextTokenizer } from '../../preprocess/text.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/** One row of shared/fixtures/tokenizer/cases.jsonl (the fields these tests read). */
interface Case {
  text: string;
  category: string;
  slow_fast_agree: boolean;
  ids_fast_50: number[];
  mask_fast_50: number[];
  ids_fast_40: number[];
  mask_fast_40: number[];
  ids_fast_full: number[];
  ids_slow_full: number[];
}

const dir = mkdtempSync(join(tmpdir(), 'bt-text-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fixture: { tokenizer: TextTokenizer; cases: Case[]; folder: string } | undefined;
/** The fixture tokenizer and its 483 cases, loaded once (loading the vocabulary takes ~0.3 s). */
function loadFixture(t: { skip(message?: string): void }): typeof fixture {
  const folder = sharedFixture(t, 'fixtures', 'tokenizer');
  if (!folder) return undefined;
  fixture ??= {
    tokenizer: TextTokenizer.fromFile(join(folder, 'tokenizer.json')),
    cases: readFileSync(join(folder, 'cases.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Case),
    folder,
  };
  return fixture;
}

/** The fixture row without its padding: the positions whose mask is 1. */
function unpadded(ids: number[], mask: number[]): number[] {
  const length = mask.lastIndexOf(1) + 1;
  assert.ok(mask.slice(0, length).every((m) => m === 1) && ids.slice(length).every((id) => id === 1), 'fixture rows are real tokens, then <pad>');
  return ids.slice(0, length);
}

function assertErrorCode(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

for (const maxLength of [50, 40] as const) {
  test(`every fixture case encodes to ids_fast_${maxLength} and mask_fast_${maxLength} without their padding`, (t) => {
    const f = loadFixture(t);
    if (!f) return;
    const wrong: number[] = [];
    f.cases.forEach((c, i) => {
      const expected = unpadded(c[`ids_fast_${maxLength}`], c[`mask_fast_${maxLength}`]);
      const { ids } = f.tokenizer.encode(c.text, maxLength);
      const batch = f.tokenizer.encodeBatch([c.text], maxLength);
      const same = JSON.stringify(ids) === JSON.stringify(expected) && JSON.stringify(Array.from(batch.attentionMask, Number)) === JSON.stringify(expected.map(() => 1));
      if (!same) wrong.push(i);
    });
    t.diagnostic(`${f.cases.length - wrong.length} of ${f.cases.length} cases match at max_length ${maxLength}`);
    assert.deepEqual(wrong, []);
  });

  test(`a batch of all cases is padded to its longest row and equals the fixture rows at ${maxLength} re-padded`, (t) => {
    const f = loadFixture(t);
    if (!f) return;
    for (const cases of [f.cases, f.cases.slice(0, 5)]) {
      const batch = f.tokenizer.encodeBatch(cases.map((c) => c.text), maxLength);
      const seqLen = Math.max(...cases.map((c) => unpadded(c[`ids_fast_${maxLength}`], c[`mask_fast_${maxLength}`]).length));
      assert.deepEqual(batch.dims, [cases.length, seqLen]);
      // The fixture pads with <pad> (mask 0) to max_length ≥ seqLen, so its first seqLen columns are our rows.
      assert.deepEqual(Array.from(batch.inputIds, Number), cases.flatMap((c) => c[`ids_fast_${maxLength}`].slice(0, seqLen)));
      assert.deepEqual(Array.from(batch.attentionMask, Number), cases.flatMap((c) => c[`mask_fast_${maxLength}`].slice(0, seqLen)));
    }
  });
}

test('every fixture case encodes to ids_fast_full when nothing is truncated', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const wrong = f.cases.map((c, i) => [i, c] as const).filter(([, c]) => JSON.stringify(f.tokenizer.encode(c.text, 1000).ids) !== JSON.stringify(c.ids_fast_full));
  assert.deepEqual(wrong.map(([i]) => i), []);
});

test('truncation cuts the text tokens and keeps <s> first and </s> last', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const long = f.cases.filter((c) => c.ids_fast_full.length > 50);
  assert.equal(long.length, 16);
  for (const c of long) {
    const { ids } = f.tokenizer.encode(c.text, 50);
    assert.deepEqual(ids, [...c.ids_fast_full.slice(0, 49), 2]);
  }
});

test('the six slow/fast disagreements follow the fast (Rust) tokenizer', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const disagreements = f.cases.filter((c) => !c.slow_fast_agree);
  assert.equal(disagreements.length, 6);
  const ids = disagreements.map((c) => f.tokenizer.encode(c.text, 1000).ids);
  const matchSlow = disagreements.filter((c, i) => JSON.stringify(ids[i]) === JSON.stringify(c.ids_slow_full)).length;
  t.diagnostic(`matches slow on ${matchSlow} of 6, fast on all 6 (the two cannot both hold)`);
  assert.deepEqual(ids, disagreements.map((c) => c.ids_fast_full));
});

/** Which GPT-2 regex branch a character falls in, read off how it joins its neighbours. */
function preTokenizerClass(char: string): 'L' | 'N' | 'S' | 'P' {
  if (gpt2PreTokenize(`a${char}`).length === 1) return 'L';
  if (gpt2PreTokenize(`1${char}`).length === 1) return 'N';
  if (gpt2PreTokenize(`!${char}`).length === 1) return 'P';
  return 'S';
}

test('the pre-tokenizer classes every code point of unicode_classes.json as the Rust library does', (t) => {
  const path = sharedFixture(t, 'fixtures', 'tokenizer', 'unicode_classes.json');
  if (!path) return;
  const { ranges } = JSON.parse(readFileSync(path, 'utf8')) as { ranges: { first: string; last: string; fast: string }[] };
  const wrong: string[] = [];
  let checked = 0;
  for (const range of ranges) {
    for (let cp = parseInt(range.first.slice(2), 16); cp <= parseInt(range.last.slice(2), 16); cp++, checked++) {
      if (preTokenizerClass(String.fromCodePoint(cp)) !== range.fast) wrong.push(`U+${cp.toString(16)}`);
    }
  }
  assert.ok(checked > 17_000, `checked ${checked} code points`);
  assert.deepEqual(wrong, []);
  assert.deepEqual(['a', '7', ' ', '\u3000', '\u2028', '?'].map(preTokenizerClass), ['L', 'N', 'S', 'S', 'S', 'P']);
});

test('<mask> swallows Unicode White_Space to its left, not JavaScript trim characters', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const tok = f.tokenizer;
  assert.deepEqual(tok.encode('a\u0085\u3000 <mask>', 50).ids, tok.encode('a<mask>', 50).ids);
  // U+FEFF and U+001C are not White_Space: they stay as tokens before <mask>.
  for (const kept of ['\ufeff', '\u001c']) {
    assert.notDeepEqual(tok.encode(`a${kept}<mask>`, 50).ids, tok.encode('a<mask>', 50).ids);
    assert.deepEqual(tok.encode(`a${kept}<mask>`, 50).ids, [...tok.encode(`a${kept}`, 50).ids.slice(0, -1), 50261, 2]);
  }
  assert.deepEqual(tok.encode('<s> <mask>', 50).ids, [0, 0, 50261, 2]);
});

/** GPT-2's byte order for the demo vocabulary: printable bytes ascending, then the others. */
function demoByteIds(): number[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  const bytes = [...Array(256).keys()];
  const order = [...bytes.filter(printable), ...bytes.filter((b) => !printable(b))];
  const ids: number[] = [];
  order.forEach((b, i) => (ids[b] = 4 + i));
  return ids;
}

test('the demo byte-level tokenizer maps ASCII and UTF-8 text to one id per byte inside <s> … </s>', () => {
  const demo = TextTokenizer.fromJson(buildByteLevelDemoTokenizer());
  const byteIds = demoByteIds();
  for (const text of ['Hello, world!', 'naïve café — 漢字 🙂 a\u0085b', ' \t\n']) {
    const bytes = new TextEncoder().encode(text);
    const { ids } = demo.encode(text, 1000);
    assert.deepEqual(ids, [0, ...Array.from(bytes, (b) => byteIds[b]!), 2]);
    const back = ids.slice(1, -1).map((id) => byteIds.indexOf(id));
    assert.equal(new TextDecoder().decode(Uint8Array.from(back)), text);
  }
  assert.equal(demo.padId, 1);
  assert.deepEqual(demo.encode('x'.repeat(100), 10).ids, [0, ...Array(8).fill(byteIds[0x78]), 2]);
});

test('the empty string encodes as <s></s>', () => {
  const demo = TextTokenizer.fromJson(buildByteLevelDemoTokenizer());
  assert.deepEqual(demo.encode('', 50).ids, [0, 2]);
  const batch = demo.encodeBatch(['', 'ab'], 50);
  assert.deepEqual(batch.dims, [2, 4]);
  assert.deepEqual(Array.from(batch.inputIds, Number), [0, 2, 1, 1, 0, demoByteIds()[0x61], demoByteIds()[0x62], 2]);
  assert.deepEqual(Array.from(batch.attentionMask, Number), [1, 1, 0, 0, 1, 1, 1, 1]);
});

// Timings are reported as diagnostics only: speed is measured by bench/, never asserted in tests.
test('a 10 000-character text is truncated to maxLength', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const prose = 'A man in a red shirt rides a bike past the old stone church. '.repeat(200).slice(0, 10_000);
  const started = performance.now();
  const { ids } = f.tokenizer.encode(prose, 50);
  const ms = performance.now() - started;
  t.diagnostic(`10 000 characters of prose → 50 ids in ${ms.toFixed(2)} ms`);
  assert.deepEqual(ids, f.tokenizer.encode(prose.slice(0, 300), 50).ids);
});

test('one unbroken 10 000-character word, the worst case under the default cap, still finishes', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const started = performance.now();
  const { ids } = f.tokenizer.encode('a'.repeat(DEFAULT_MAX_INPUT_CHARS), 50);
  const ms = performance.now() - started;
  t.diagnostic(`10 000 × "a" (one pre-token, BPE-merged whole) in ${ms.toFixed(0)} ms`);
  assert.equal(ids.length, 50);
});

test('text over maxInputChars is a usage error and a raised limit accepts 1 MB', (t) => {
  const f = loadFixture(t);
  if (!f) return;
  const megabyte = 'The cat sat on the <mask> next to a dog. '.repeat(25_600);
  assertErrorCode(() => f.tokenizer.encode(megabyte, 50), 'E_USAGE', /1049600 characters long, over the limit of 10000/);
  const roomy = TextTokenizer.fromFile(join(f.folder, 'tokenizer.json'), { maxInputChars: 2_000_000 });
  const started = performance.now();
  const { ids } = roomy.encode(megabyte, 50);
  const ms = performance.now() - started;
  t.diagnostic(`1 MB of text → 50 ids in ${ms.toFixed(2)} ms`);
  assert.deepEqual(ids, f.tokenizer.encode(megabyte.slice(0, 400), 50).ids);
});

test('lone UTF-16 surrogates are tokenized as U+FFFD and never throw', () => {
  const demo = TextTokenizer.fromJson(buildByteLevelDemoTokenizer());
  for (const [broken, repaired] of [
    ['a\ud800b', 'a\ufffdb'],
    ['\udc00 start', '\ufffd start'],
    ['end \ud83d', 'end \ufffd'],
    ['\ude00\ud83d swapped', '\ufffd\ufffd swapped'],
    ['x\ud800<mask>', 'x\ufffd<mask>'],
  ]) {
    assert.deepEqual(demo.encode(broken!, 50).ids, demo.encode(repaired!, 50).ids);
  }
  assert.deepEqual(gpt2PreTokenize('a\ud800b'), ['a', '\ud800', 'b']);
});

test('non-string text, a non-array batch and a too-small maxLength are usage errors', () => {
  const demo = TextTokenizer.fromJson(buildByteLevelDemoTokenizer());
  for (const value of [42, null, undefined, { text: 'a' }, ['a'], Buffer.from('a')]) {
    assertErrorCode(() => demo.encode(value, 50), 'E_USAGE', /text must be a string/);
  }
  assertErrorCode(() => demo.encodeBatch('a', 50), 'E_USAGE', /non-empty array of strings/);
  assertErrorCode(() => demo.encodeBatch([], 50), 'E_USAGE', /non-empty array of strings/);
  assertErrorCode(() => demo.encodeBatch(['a', 7], 50), 'E_USAGE', /^texts\[1\]: text must be a string, got number/);
  for (const maxLength of [1, 0, -5, 2.5, Number.NaN]) {
    assertErrorCode(() => demo.encode('a', maxLength), 'E_USAGE', /maxLength must be an integer ≥ 2/);
  }
  assert.deepEqual(demo.encode('abc', 2).ids, [0, 2]);
});

/** The demo tokenizer.json with one change applied. */
function demoWith(change: (json: TokenizerJson & { model: Record<string, unknown> }) => void): TokenizerJson {
  const json = buildByteLevelDemoTokenizer() as TokenizerJson & { model: Record<string, unknown> };
  change(json);
  return json;
}

test('a missing, unparsable or malformed tokenizer.json is a tokenizer error', () => {
  const notJson = join(dir, 'broken.json');
  writeFileSync(notJson, '{"model": {');
  assertErrorCode(() => TextTokenizer.fromFile(join(dir, 'absent.json')), 'E_TOKENIZER', /cannot read tokenizer file/);
  assertErrorCode(() => TextTokenizer.fromFile(notJson), 'E_TOKENIZER', /is not valid JSON/);
  assertErrorCode(() => TextTokenizer.fromJson([]), 'E_TOKENIZER', /expected a JSON object/);
  assertErrorCode(() => TextTokenizer.fromJson(demoWith((j) => delete (j as Record<string, unknown>).model)), 'E_TOKENIZER', /no "model" object/);
  assertErrorCode(() => TextTokenizer.fromJson(demoWith((j) => (j.normalizer = { type: 'Lowercase' }))), 'E_TOKENIZER', /has a normalizer/);
  assertErrorCode(
    () => TextTokenizer.fromJson(demoWith((j) => delete (j.model.vocab as Record<string, number>)['Ġ'])),
    'E_TOKENIZER',
    /lacks 1 of the 256 byte-level symbols/,
  );
  assertErrorCode(() => TextTokenizer.fromJson(demoWith((j) => (j.model.merges = [['a', 'b']]))), 'E_TOKENIZER', /makes "ab", which is not in model.vocab/);
  assertErrorCode(
    () => TextTokenizer.fromJson(demoWith((j) => ((j.added_tokens as Record<string, unknown>[])[0]!.single_word = true))),
    'E_TOKENIZER',
    /single_word, which is not supported/,
  );
  assertErrorCode(() => TextTokenizer.fromJson(demoWith((j) => (j.post_processor = null))), 'E_TOKENIZER', /post_processor/);
});
