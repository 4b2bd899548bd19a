import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

import { BridgeTowerError, listSome } from '../common/errors.js';
import { jsonDepthExceeds } from '../common/json-depth.js';
import { requireRegularFile } from '../common/fs-errors.js';

/**
 * A Hugging Face `tokenizer.json` for RoBERTa's byte-level BPE, as the Rust `tokenizers` library
 * (0.20+) writes it for `RobertaTokenizerFast("vocab.json", "merges.txt")`. Upstream BridgeTower
 * tokenizes with roberta-base; a bundle ships this file so every runtime reads one format.
 */
export type TokenizerJson = Record<string, unknown>;

/** RoBERTa's special tokens. Only `<mask>` swallows the whitespace to its left (lstrip). */
export const ROBERTA_SPECIAL_TOKENS = ['<s>', '<pad>', '</s>', '<unk>', '<mask>'] as const;

/** tokenizer.json nests about 6 levels (post_processor.special_tokens.<s>.ids); far deeper is corrupt or hostile. */
export const MAX_TOKENIZER_JSON_DEPTH = 64;

const SOURCE_FORMS =
  'a tokenizer.json file, a folder holding tokenizer.json or vocab.json + merges.txt, or "path/vocab.json,path/merges.txt"';

function tokenizerError(message: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_TOKENIZER', message, details);
}

/**
 * Reads a tokenizer from `pathOrPair`: a tokenizer.json path, a folder (tokenizer.json preferred,
 * as transformers does, else vocab.json + merges.txt), or a `vocab.json,merges.txt` pair.
 */
export function loadTokenizerSource(pathOrPair: string): TokenizerJson {
  if (!existsSync(pathOrPair) && pathOrPair.includes(',')) {
    const parts = pathOrPair.split(',').map((p) => p.trim());
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      throw tokenizerError(`'${pathOrPair}' is not a 'vocab.json,merges.txt' pair: expected exactly two paths separated by one comma`, { source: pathOrPair });
    }
    const [vocabPath, mergesPath] = parts as [string, string];
    if (/\.txt$/i.test(vocabPath) && /\.json$/i.test(mergesPath)) {
      throw tokenizerError(`the pair '${pathOrPair}' names merges first: write it as '${mergesPath},${vocabPath}' (vocab.json, then merges.txt)`, { source: pathOrPair });
    }
    return buildTokenizerJsonFromFiles(vocabPath, mergesPath);
  }
  if (!existsSync(pathOrPair)) {
    throw tokenizerError(`tokenizer source '${pathOrPair}' does not exist; give ${SOURCE_FORMS}`, { source: pathOrPair });
  }
  if (statSync(pathOrPair).isDirectory()) {
    const tokenizerPath = join(pathOrPair, 'tokenizer.json');
    if (existsSync(tokenizerPath)) return validateTokenizerJson(readJson(tokenizerPath), tokenizerPath);
    const vocabPath = join(pathOrPair, 'vocab.json');
    const mergesPath = join(pathOrPair, 'merges.txt');
    const missing = [vocabPath, mergesPath].filter((p) => !existsSync(p)).map((p) => basename(p));
    if (missing.length > 0) {
      throw tokenizerError(`folder '${pathOrPair}' has no tokenizer.json and lacks ${missing.join(' and ')}; give ${SOURCE_FORMS}`, {
        source: pathOrPair,
        missing,
      });
    }
    return buildTokenizerJsonFromFiles(vocabPath, mergesPath);
  }
  const json = readJson(pathOrPair);
  if (isPlainObject(json) && !('model' in json) && Object.values(json).every((v) => Number.isInteger(v))) {
    throw tokenizerError(`'${pathOrPair}' looks like a vocab.json, which needs its merges.txt: give the folder holding both, or 'vocab.json,merges.txt'`, {
      source: pathOrPair,
    });
  }
  return validateTokenizerJson(json, pathOrPair);
}

export function buildTokenizerJsonFromFiles(vocabPath: string, mergesPath: string): TokenizerJson {
  for (const [what, path] of [['vocab file', vocabPath], ['merges file', mergesPath]] as const) {
    if (!existsSync(path)) throw tokenizerError(`${what} '${path}' does not exist; a byte-level BPE tokenizer needs both vocab.json and merges.txt`, { path });
  }
  return buildTokenizerJson(readJson(vocabPath), readText(mergesPath), { vocab: vocabPath, merges: mergesPath });
}

/**
 * Builds the tokenizer.json that `RobertaTokenizerFast(vocab, merges).backend_tokenizer` saves:
 * the same keys, values and order, so the result deep-equals what transformers writes (and
 * `serializeTokenizerJson` reproduces its bytes).
 */
export function buildTokenizerJson(
  vocab: unknown,
  mergesText: string,
  sources: { vocab: string; merges: string } = { vocab: 'vocab.json', merges: 'merges.txt' },
): TokenizerJson {
  const ids = checkVocab(vocab, sources.vocab);
  const merges = parseMerges(mergesText, ids, sources.merges);
  return robertaTokenizerJson(ids, merges);
}

/**
 * A tokenizer for demo bundles, which ship no real vocabulary: the RoBERTa specials, then the 256
 * byte-level symbols (ids 4–259, GPT-2's order) and `<mask>` last, with no merges — every byte is
 * its own token, so any text round-trips and ids stay below 261.
 */
export function buildByteLevelDemoTokenizer(): TokenizerJson {
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  byteLevelAlphabet().forEach((symbol, i) => (vocab[symbol] = 4 + i));
  vocab['<mask>'] = 260;
  return robertaTokenizerJson(vocab, []);
}

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards, in this order (which is also the order of GPT-2's first 256 vocabulary ids).
 */
export function byteLevelAlphabet(): string[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  const symbols: string[] = [];
  for (let b = 0; b < 256; b++) if (printable(b)) symbols.push(String.fromCodePoint(b));
  let shifted = 0;
  for (let b = 0; b < 256; b++) if (!printable(b)) symbols.push(String.fromCodePoint(256 + shifted++));
  return symbols;
}

function robertaTokenizerJson(vocab: Record<string, number>, merges: [string, string][]): TokenizerJson {
  const id = (token: string): number => vocab[token]!;
  const addedTokens = ROBERTA_SPECIAL_TOKENS.map((content) => ({
    id: id(content),
    content,
    single_word: false,
    lstrip: content === '<mask>',
    rstrip: false,
    // transformers declares `<mask>` with normalized=False and the others with the default (True).
    normalized: content !== '<mask>',
    special: true,
  })).sort((a, b) => a.id - b.id);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', id('</s>')], cls: ['<s>', id('<s>')], trim_offsets: true, add_prefix_space: false },
    // `decoders.ByteLevel()` with its defaults; the decoder ignores all three flags.
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      // RoBERTa needs no unknown token: every byte has a symbol. `<unk>` stays an added token.
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // tokenizers ≥ 0.20 writes pairs; older files (the hub's roberta-base) hold "a b" strings.
      merges,
    },
  };
}

function checkVocab(vocab: unknown, source: string): Record<string, number> {
  if (!isPlainObject(vocab)) {
    throw tokenizerError(`${source} must be a JSON object mapping token → id, like {"<s>": 0, "<pad>": 1, ...}; found ${describe(vocab)}`, { source });
  }
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      throw tokenizerError(`${source}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be non-negative integers`, { source, token });
    }
    const other = byId.get(id);
    if (other !== undefined) {
      throw tokenizerError(`${source}: tokens ${JSON.stringify(other)} and ${JSON.stringify(token)} share id ${id}; every id must be unique`, { source, id });
    }
    byId.set(id, token);
  }
  const missing = ROBERTA_SPECIAL_TOKENS.filter((t) => !Object.hasOwn(vocab, t));
  if (missing.length > 0) {
    throw tokenizerError(`${source} lacks the RoBERTa special tokens ${missing.join(', ')}; BridgeTower needs all of ${ROBERTA_SPECIAL_TOKENS.join(' ')}`, {
      source,
      missing,
    });
  }
  return vocab as Record<string, number>;
}

/**
 * Parses merges.txt as `tokenizers` does (`BPE::read_file`): one `left right` pair per line, split
 * on a single space, `#version` lines skipped, CRLF tolerated. Blank lines, which Rust rejects, are
 * skipped (they hold no merge). Unlike the slow Python tokenizer we keep a last line that lacks its
 * newline: the slow one drops it (`split("\n")[1:-1]`), which only matters for truncated files.
 */
function parseMerges(text: string, vocab: Record<string, number>, source: string): [string, string][] {
  const merges: [string, string][] = [];
  const seen = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '' || line.startsWith('#version')) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      throw tokenizerError(`${source} line ${i + 1}: expected two tokens separated by one space ("Ġ t"), found ${JSON.stringify(line)}`, { source, line: i + 1 });
    }
    const [left, right] = parts as [string, string];
    const absent = [left, right, left + right].filter((t) => !Object.hasOwn(vocab, t));
    if (absent.length > 0) {
      throw tokenizerError(`${source} line ${i + 1}: merge "${line}" uses ${absent.map((t) => JSON.stringify(t)).join(', ')}, absent from the vocabulary; are vocab.json and merges.txt from the same model?`, {
        source,
        line: i + 1,
      });
    }
    const first = seen.get(line);
    if (first !== undefined) {
      throw tokenizerError(`${source} line ${i + 1}: merge "${line}" repeats line ${first}; a merges file lists each pair once`, { source, line: i + 1 });
    }
    seen.set(line, i + 1);
    merges.push([left, right]);
  }
  return merges;
}

/**
 * Accepts an existing tokenizer.json if it is RoBERTa-style byte-level BPE, and returns it
 * unchanged (merges in either the string or the pair form).
 */
export function validateTokenizerJson(json: unknown, source: string): TokenizerJson {
  const fail = (why: string): never => {
    throw tokenizerError(`${source} is not a RoBERTa byte-level BPE tokenizer.json: ${why}`, { source });
  };
  if (!isPlainObject(json)) return fail(`expected a JSON object, found ${describe(json)}`);
  if (jsonDepthExceeds(json, MAX_TOKENIZER_JSON_DEPTH)) {
    throw tokenizerError(`${source} nests more than ${MAX_TOKENIZER_JSON_DEPTH} levels deep (a tokenizer.json needs about 6): it is corrupt`, {
      source,
      reason: 'json_too_deep',
    });
  }
  const model = json.model;
  if (!isPlainObject(model)) return fail('it has no "model" object');
  // Files from old `tokenizers` versions omit the model type; BPE is the one model with merges.
  if (model.type !== 'BPE' && !(model.type === undefined && Array.isArray(model.merges))) {
    fail(`model type is ${JSON.stringify(model.type)}, BridgeTower's text encoder needs "BPE"`);
  }
  if (!isPlainObject(model.vocab)) fail('model.vocab must be an object mapping token → id');
  if (!Array.isArray(model.merges)) fail('model.merges must be a list');
  const badMerge = (model.merges as unknown[]).findIndex(
    (m) => !(typeof m === 'string' && m.split(' ').length === 2) && !(Array.isArray(m) && m.length === 2 && m.every((s) => typeof s === 'string')),
  );
  if (badMerge >= 0) fail(`model.merges[${badMerge}] is ${JSON.stringify((model.merges as unknown[])[badMerge])}, expected "a b" or ["a", "b"]`);
  const preTokenizer = json.pre_tokenizer;
  if (!isPlainObject(preTokenizer) || preTokenizer.type !== 'ByteLevel') {
    fail(`pre_tokenizer is ${describeType(preTokenizer)}, expected ByteLevel`);
  }
  if (json.decoder !== null && json.decoder !== undefined && (!isPlainObject(json.decoder) || json.decoder.type !== 'ByteLevel')) {
    fail(`decoder is ${describeType(json.decoder)}, expected ByteLevel`);
  }

  const vocab = model.vocab as Record<string, unknown>;
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as unknown[]).filter(isPlainObject) : [];
  const problems: string[] = [];
  for (const token of ROBERTA_SPECIAL_TOKENS) {
    const id = Object.hasOwn(vocab, token) ? vocab[token] : undefined;
    const entry = added.find((a) => a.content === token);
    if (typeof id !== 'number') problems.push(`${token} is not in model.vocab`);
    else if (!entry) problems.push(`${token} is not in added_tokens, so it would not be split out of raw text`);
    else if (entry.id !== id) problems.push(`${token} has id ${String(entry.id)} in added_tokens but ${id} in model.vocab`);
    else if (entry.special !== true) problems.push(`${token} is not marked special`);
  }
  if (problems.length > 0) fail(`its special tokens are inconsistent: ${listSome(problems)}`);

  const post = json.post_processor;
  if (isPlainObject(post) && post.type === 'RobertaProcessing') {
    for (const [key, token] of [['cls', '<s>'], ['sep', '</s>']] as const) {
      const pair = post[key];
      if (!Array.isArray(pair) || pair[0] !== token || pair[1] !== vocab[token]) {
        fail(`post_processor.${key} is ${JSON.stringify(pair)}, expected ["${token}", ${String(vocab[token])}]`);
      }
    }
  } else if (!(isPlainObject(post) && post.type === 'TemplateProcessing')) {
    fail(`post_processor is ${describeType(post)}: without RobertaProcessing (or a TemplateProcessing) the ids would lack <s> … </s>`);
  }
  return json;
}

/**
 * Serialises a tokenizer.json the way `tokenizers`' `Tokenizer.save` pretty-prints it: two-space
 * indent, `": "`, UTF-8 unescaped, no final newline, and the model vocabulary in id order (a JS
 * object would put integer-like tokens such as "0" first). For the fixture pair this reproduces
 * transformers' file byte for byte.
 */
export function serializeTokenizerJson(tokenizer: TokenizerJson): string {
  const parts: string[] = [];
  const write = (value: unknown, indent: string, path: string): void => {
    if (Array.isArray(value)) {
      if (value.length === 0) return void parts.push('[]');
      parts.push('[');
      value.forEach((item, i) => {
        parts.push(`${i === 0 ? '' : ','}\n${indent}  `);
        write(item, `${indent}  `, `${path}[]`);
      });
      parts.push(`\n${indent}]`);
    } else if (isPlainObject(value)) {
      const entries = Object.entries(value);
      if (path === '.model.vocab') entries.sort((a, b) => (a[1] as number) - (b[1] as number));
      if (entries.length === 0) return void parts.push('{}');
      parts.push('{');
      entries.forEach(([key, item], i) => {
        parts.push(`${i === 0 ? '' : ','}\n${indent}  ${JSON.stringify(key)}: `);
        write(item, `${indent}  `, `${path}.${key}`);
      });
      parts.push(`\n${indent}}`);
    } else {
      parts.push(JSON.stringify(value ?? null));
    }
  };
  write(tokenizer, '', '');
  return parts.join('');
}

function readText(path: string): string {
  requireRegularFile(path, 'tokenizer file', 'E_TOKENIZER');
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw tokenizerError(`cannot read '${path}': ${(error as Error).message}`, { path });
  }
}

function readJson(path: string): unknown {
  const text = readText(path);
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw tokenizerError(`'${path}' is not valid JSON: ${(error as Error).message}`, { path });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return value === null ? 'null' : `a ${typeof value}`;
}

function describeType(value: unknown): string {
  return isPlainObject(value) ? JSON.stringify(value.type) : describe(value);
}
