import { readFileSync } from 'node:fs';

import { Tokenizer } from '@huggingface/tokenizers';

import { BridgeTowerError } from '../common/errors.js';
import { byteLevelAlphabet, validateTokenizerJson } from '../bundle/tokenizer-json.js';

/**
 * Text preprocessing as upstream BridgeTower does it: roberta-base's byte-level BPE, called as
 * `tokenizer(text, truncation=True, max_length=L)` (UPSTREAM.md, Preprocessing). The ids follow the
 * Rust `tokenizers` library (transformers' fast tokenizer), which the fixtures in
 * shared/fixtures/tokenizer record.
 *
 * `@huggingface/tokenizers` supplies the BPE model, the vocabulary and the post-processor
 * (`<s> … </s>`). Two steps are done here instead, because the package transcribes them with
 * JavaScript's Unicode semantics where Rust's differ:
 * - the GPT-2 pre-tokenizer regex: JS `\s` lacks U+0085 and has U+FEFF, and Node's `\p{L}`/`\p{N}`
 *   know Unicode 17 letters that tokenizers 0.22's Oniguruma tables (Unicode 16) do not;
 * - the added-token split: `<mask>` strips whitespace to its left with Rust's `char::is_whitespace`
 *   (Unicode White_Space), not JS `trimEnd()`.
 */

/** Unicode White_Space: `\s` for Oniguruma and `char::is_whitespace` for Rust. */
const WHITE_SPACE = '[\\t\\n\\v\\f\\r\\x20\\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]';

/**
 * Code points Unicode 17 made letters / numbers, which Node 20 (Unicode 17) puts in `\p{L}` /
 * `\p{N}` and the Rust library (tokenizers 0.22, Unicode 16 tables) does not: taken from
 * shared/fixtures/tokenizer/unicode_classes.json (rows fast=P, js=L or js=N). On a Node with
 * Unicode 16 or older they are unassigned, so subtracting them changes nothing.
 */
const UNICODE_17_LETTERS: readonly (readonly [number, number])[] = [
  [0x088f, 0x088f], [0x0c5c, 0x0c5c], [0x0cdc, 0x0cdc], [0xa7ce, 0xa7cf], [0xa7d2, 0xa7d2],
  [0xa7d4, 0xa7d4], [0xa7f1, 0xa7f1], [0x10940, 0x10959], [0x10ec5, 0x10ec7], [0x11db0, 0x11ddb],
  [0x16ea0, 0x16eb8], [0x16ebb, 0x16ed3], [0x16ff2, 0x16ff3], [0x187f8, 0x187ff], [0x18d09, 0x18d1e],
  [0x18d80, 0x18df2], [0x1e6c0, 0x1e6de], [0x1e6e0, 0x1e6e2], [0x1e6e4, 0x1e6e5], [0x1e6e7, 0x1e6ed],
  [0x1e6f0, 0x1e6f4], [0x1e6fe, 0x1e6ff], [0x2b73a, 0x2b73f], [0x2cea2, 0x2cead], [0x323b0, 0x33479],
];
const UNICODE_17_NUMBERS: readonly (readonly [number, number])[] = [[0x11de0, 0x11de9], [0x16ff4, 0x16ff6]];

function classMinus(property: string, ranges: readonly (readonly [number, number])[]): string {
  const hex = (cp: number): string => `\\u{${cp.toString(16)}}`;
  return `[${property}--[${ranges.map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('')}]]`;
}
const LETTER = classMinus('\\p{L}', UNICODE_17_LETTERS);
const NUMBER = classMinus('\\p{N}', UNICODE_17_NUMBERS);

/**
 * GPT-2's pre-tokenizer regex, `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
 * with the classes spelled out as the Rust library sees them. The `v` flag gives class subtraction
 * (Node ≥ 20); the constructor form keeps TypeScript's ES2022 target from rejecting it.
 */
const GPT2_PIECE = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?${LETTER}+| ?${NUMBER}+| ?[^${WHITE_SPACE}${LETTER}${NUMBER}]+|${WHITE_SPACE}+(?!${WHITE_SPACE.replace('[', '[^')})|${WHITE_SPACE}+`,
  'gv',
);
const IS_WHITE_SPACE = new RegExp(`^${WHITE_SPACE}$`, 'v');

/** Splits text into GPT-2 pre-tokens as the regex step of `tokenizers`' ByteLevel pre-tokenizer does. */
export function gpt2PreTokenize(text: string): string[] {
  return Array.from(text.matchAll(GPT2_PIECE), (m) => m[0]);
}

/** GPT-2's bytes_to_unicode as byte → symbol (byteLevelAlphabet lists printable bytes first). */
const BYTE_SYMBOLS: readonly string[] = (() => {
  const symbols = byteLevelAlphabet();
  const table: string[] = new Array<string>(256);
  const shifted = symbols.filter((s) => s.codePointAt(0)! >= 256);
  for (const s of symbols) if (s.codePointAt(0)! < 256) table[s.codePointAt(0)!] = s;
  let k = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = shifted[k++]!;
  return table;
})();
const UTF8 = new TextEncoder();

/**
 * Default cap on input length, in UTF-16 code units. Tokenization stops once `maxLength` tokens
 * exist, so long ordinary text costs about as much as short text (1 MB of prose: ~1 ms). The cap
 * bounds the worst case: one unbroken run of letters, digits or punctuation is a single pre-token
 * that must be BPE-merged whole before its first token is known, and the package's BPE takes
 * 3–30 µs per character of such a run (10 000 × "a": 30 ms warm, up to 0.3 s cold; 100 000: ~1.3 s).
 */
export const DEFAULT_MAX_INPUT_CHARS = 10_000;

export interface TextTokenizerOptions {
  /** Longer inputs are rejected with E_USAGE (JavaScript string length). */
  maxInputChars?: number;
}

export interface EncodedText {
  ids: number[];
}

export interface EncodedBatch {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  /** [batch, seqLen]: every row padded to the longest row of the batch. */
  dims: [number, number];
}

interface SplitToken {
  content: string;
  lstrip: boolean;
  rstrip: boolean;
}
type Segment = { text: string } | { token: string };

function tokenizerError(message: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_TOKENIZER', message, details);
}

function usageError(message: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_USAGE', message, details);
}

export class TextTokenizer {
  /** The id that pads rows of a batch (`<pad>`). */
  readonly padId: number;
  /** Tokens the post-processor adds to one sequence (2: `<s>`, `</s>`). */
  readonly specialCount: number;
  readonly maxInputChars: number;
  private readonly tokenizer: Tokenizer;
  /** Added tokens in the two passes Rust's AddedVocabulary makes: not normalized, then normalized. */
  private readonly splitPasses: SplitToken[][];
  private readonly addPrefixSpace: boolean;
  private readonly useRegex: boolean;

  private constructor(json: Record<string, unknown>, source: string, options: TextTokenizerOptions) {
    this.maxInputChars = options.maxInputChars ?? DEFAULT_MAX_INPUT_CHARS;
    if (!Number.isSafeInteger(this.maxInputChars) || this.maxInputChars < 1) {
      throw usageError(`maxInputChars must be a positive integer, got ${String(options.maxInputChars)}`);
    }
    checkSupported(json, source);
    try {
      this.tokenizer = new Tokenizer(json, {});
    } catch (error) {
      throw tokenizerError(`${source}: @huggingface/tokenizers cannot load it: ${(error as Error).message}`, { source });
    }
    const pre = json.pre_tokenizer as { add_prefix_space?: boolean; use_regex?: boolean };
    this.addPrefixSpace = pre.add_prefix_space === true;
    this.useRegex = pre.use_regex !== false;
    const added = [...this.tokenizer.get_added_tokens_decoder().values()];
    this.splitPasses = [false, true]
      .map((normalized) => added.filter((t) => t.normalized === normalized).map(({ content, lstrip, rstrip }) => ({ content, lstrip, rstrip })))
      .filter((pass) => pass.length > 0);
    this.padId = this.idOf('<pad>', source);
    this.specialCount = this.postProcess([]).length;
  }

  /** Loads a bundle's tokenizer.json. Missing, unreadable or malformed files are E_TOKENIZER. */
  static fromFile(path: string, options: TextTokenizerOptions = {}): TextTokenizer {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw tokenizerError(`cannot read tokenizer file '${path}': ${(error as Error).message}`, { path });
    }
    let json: unknown;
    try {
      json = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch (error) {
      throw tokenizerError(`'${path}' is not valid JSON: ${(error as Error).message}`, { path });
    }
    return TextTokenizer.fromJson(json, options, path);
  }

  /** Builds from a parsed tokenizer.json object (for example `buildByteLevelDemoTokenizer()`). */
  static fromJson(json: unknown, options: TextTokenizerOptions = {}, source = 'tokenizer.json'): TextTokenizer {
    return new TextTokenizer(validateTokenizerJson(json, source), source, options);
  }

  /**
   * `<s> … </s>` ids, truncated to `maxLength` the way transformers' `truncation=True` does: the
   * text's tokens are cut to `maxLength - 2`, then the specials are added, so `</s>` stays last.
   */
  encode(text: unknown, maxLength: number): EncodedText {
    const limit = this.contentLimit(maxLength);
    const content = this.contentTokens(this.checkText(text), limit);
    return { ids: this.postProcess(content).map((token) => this.idOf(token)) };
  }

  /** The id of an added token such as `<mask>`, or undefined when the vocabulary has none. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /**
   * Ids back to text as transformers' `tokenizer.decode` does for RoBERTa (byte-level decoder,
   * no clean-up of spaces, as roberta-base's tokenizer_config.json sets), optionally without
   * `<s>`, `</s>`, `<pad>` and `<mask>`.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens: boolean }): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  /**
   * Encodes each text and pads every row with `<pad>` to the longest row; mask 1 on real tokens.
   * An error names the text by `fieldOf(i)` (a request's `question`, say; default `texts[i]`).
   */
  encodeBatch(texts: unknown, maxLength: number, fieldOf: (index: number) => string = (i) => `texts[${i}]`): EncodedBatch {
    if (!Array.isArray(texts) || texts.length === 0) {
      throw usageError(`texts must be a non-empty array of strings, got ${describe(texts)}`);
    }
    this.contentLimit(maxLength);
    const rows = texts.map((text, i) => {
      try {
        return this.encode(text, maxLength).ids;
      } catch (error) {
        if (error instanceof BridgeTowerError) throw new BridgeTowerError(error.code, `${fieldOf(i)}: ${error.message}`, { ...error.details, index: i, field: fieldOf(i) });
        throw error;
      }
    });
    const seqLen = Math.max(...rows.map((row) => row.length));
    const inputIds = new BigInt64Array(rows.length * seqLen).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(rows.length * seqLen);
    rows.forEach((row, r) => {
      row.forEach((id, c) => {
        inputIds[r * seqLen + c] = BigInt(id);
        attentionMask[r * seqLen + c] = 1n;
      });
    });
    return { inputIds, attentionMask, dims: [rows.length, seqLen] };
  }

  /**
   * Lone UTF-16 surrogates (invalid text) are tokenized as U+FFFD, which is what a Rust String
   * (`String::from_utf16_lossy`) would hold. No rewrite pass is needed: the regex classes a lone
   * surrogate (Cs) like U+FFFD (So) — neither letter, number nor space — and TextEncoder writes
   * U+FFFD's bytes for it.
   */
  private checkText(text: unknown): string {
    if (typeof text !== 'string') throw usageError(`text must be a string, got ${describe(text)}`);
    if (text.length > this.maxInputChars) {
      throw usageError(`text is ${text.length} characters long, over the limit of ${this.maxInputChars}; shorten it (only the first tokens are used anyway; the limit is TextTokenizer's maxInputChars option)`, {
        length: text.length,
        limit: this.maxInputChars,
      });
    }
    return text;
  }

  private contentLimit(maxLength: number): number {
    if (!Number.isSafeInteger(maxLength) || maxLength < this.specialCount) {
      throw usageError(`maxLength must be an integer ≥ ${this.specialCount} (room for <s> and </s>), got ${String(maxLength)}`);
    }
    return maxLength - this.specialCount;
  }

  /**
   * The text's first `limit` tokens (before the post-processor adds `<s>`/`</s>`). Pieces are tokenized in order and the
   * loop stops once `limit` tokens exist: a piece's tokens never depend on text after it (the regex
   * runs over the whole segment), so the result equals tokenizing everything and truncating.
   */
  private contentTokens(text: string, limit: number): string[] {
    const tokens: string[] = [];
    for (const segment of this.splitAddedTokens(text)) {
      if (tokens.length >= limit) break;
      if ('token' in segment) {
        tokens.push(segment.token);
        continue;
      }
      const span = this.addPrefixSpace && !segment.text.startsWith(' ') ? ` ${segment.text}` : segment.text;
      const pieces = this.useRegex ? span.matchAll(GPT2_PIECE) : [[span]];
      for (const [piece] of pieces) {
        let symbols = '';
        for (const byte of UTF8.encode(piece)) symbols += BYTE_SYMBOLS[byte]!;
        for (const token of this.tokenizer.model!([symbols])) tokens.push(token);
        if (tokens.length >= limit) break;
      }
    }
    tokens.length = Math.min(tokens.length, limit);
    return tokens;
  }

  /**
   * Splits out added tokens as Rust's AddedVocabulary does: leftmost-longest, case-sensitive, first
   * the non-normalized tokens over the raw text, then the normalized ones inside what remains. An
   * lstrip token (`<mask>`) takes the Unicode White_Space to its left, an rstrip one to its right.
   * Lazy, so a long text is only scanned as far as the tokens it contributes.
   */
  private *splitAddedTokens(text: string): Generator<Segment> {
    let segments: Iterable<Segment> = [{ text }];
    for (const pass of this.splitPasses) segments = splitEach(segments, pass);
    for (const segment of segments) if (!('text' in segment) || segment.text.length > 0) yield segment;
  }

  private postProcess(tokens: string[]): string[] {
    const post = this.tokenizer.post_processor;
    return post ? post.post_process(tokens).tokens : tokens;
  }

  private idOf(token: string, source?: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw tokenizerError(`token ${JSON.stringify(token)} is not in the vocabulary${source ? ` of ${source}` : ''}`, { token });
    return id;
  }
}

function* splitEach(segments: Iterable<Segment>, tokens: readonly SplitToken[]): Generator<Segment> {
  for (const segment of segments) {
    if ('text' in segment) yield* splitOn(segment.text, tokens);
    else yield segment;
  }
}

function* splitOn(text: string, tokens: readonly SplitToken[]): Generator<Segment> {
  const next = tokens.map((t) => text.indexOf(t.content));
  let start = 0;
  for (;;) {
    let best = -1;
    for (let k = 0; k < tokens.length; k++) {
      if (next[k]! !== -1 && next[k]! < start) next[k] = text.indexOf(tokens[k]!.content, start);
      const at = next[k]!;
      if (at === -1) continue;
      if (best === -1 || at < next[best]! || (at === next[best]! && tokens[k]!.content.length > tokens[best]!.content.length)) best = k;
    }
    if (best === -1) break;
    const token = tokens[best]!;
    let from = next[best]!;
    let to = from + token.content.length;
    // White_Space is all in the BMP, so stepping by UTF-16 code units is stepping by characters.
    if (token.lstrip) while (from > start && IS_WHITE_SPACE.test(text[from - 1]!)) from--;
    if (token.rstrip) while (to < text.length && IS_WHITE_SPACE.test(text[to]!)) to++;
    yield { text: text.slice(start, from) };
    yield { token: token.content };
    start = to;
  }
  yield { text: text.slice(start) };
}

/**
 * Refuses what this pipeline does not reproduce (rather than tokenizing differently from Rust):
 * RoBERTa's tokenizer.json has none of these. Also checks the byte-level alphabet and the merges
 * against the vocabulary, which the package would otherwise drop silently.
 */
function checkSupported(json: Record<string, unknown>, source: string): void {
  const fail = (why: string): never => {
    throw tokenizerError(`${source}: ${why}`, { source });
  };
  if (json.normalizer !== null && json.normalizer !== undefined) fail('has a normalizer; a RoBERTa byte-level tokenizer.json has "normalizer": null');
  const model = json.model as { vocab: Record<string, unknown>; merges: (string | [string, string])[] };
  const added = (json.added_tokens ?? []) as Record<string, unknown>[];
  const singleWord = added.find((t) => t.single_word === true);
  if (singleWord) fail(`added token ${JSON.stringify(singleWord.content)} is single_word, which is not supported`);
  const missing = BYTE_SYMBOLS.filter((s) => !Object.hasOwn(model.vocab, s));
  if (missing.length > 0) fail(`model.vocab lacks ${missing.length} of the 256 byte-level symbols (e.g. ${JSON.stringify(missing[0])}), so some text could not be encoded`);
  model.merges.forEach((merge, i) => {
    const [a, b] = typeof merge === 'string' ? merge.split(' ') : merge;
    if (!Object.hasOwn(model.vocab, `${a}${b}`)) fail(`model.merges[${i}] ${JSON.stringify(merge)} makes ${JSON.stringify(`${a}${b}`)}, which is not in model.vocab`);
  });
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === null ? 'null' : typeof value;
}
