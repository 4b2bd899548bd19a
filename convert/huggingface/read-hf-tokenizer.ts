import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { buildTokenizerJsonFromFiles, loadTokenizerSource, type TokenizerJson } from '../../bundle/tokenizer-json.js';

/**
 * The tokenizer a Hugging Face folder ships, found as `AutoTokenizer.from_pretrained(folder)`
 * finds it: tokenizer.json first (the released repos' form), else the roberta-base file pair
 * vocab.json + merges.txt, which tokenizer_config.json must not say belongs to another class.
 */

/** tokenizer_config.json's `tokenizer_class` values that mean byte-level BPE with RoBERTa's special tokens. */
const ROBERTA_CLASSES = new Set(['RobertaTokenizer', 'RobertaTokenizerFast']);

export interface HfFolderTokenizer {
  tokenizer: TokenizerJson;
  /** The files it was read from, relative to the folder. */
  files: string[];
}

/** The folder's own tokenizer, or a reason it has none (then the caller warns). */
export function readHfFolderTokenizer(dir: string): HfFolderTokenizer | { missing: string } {
  const has = (file: string) => existsSync(join(dir, file));
  if (has('tokenizer.json')) return { tokenizer: loadTokenizerSource(join(dir, 'tokenizer.json')), files: ['tokenizer.json'] };
  const pair = ['vocab.json', 'merges.txt'];
  const absent = pair.filter((file) => !has(file));
  if (absent.length === 2) return { missing: `${dir} holds no tokenizer.json, vocab.json or merges.txt` };
  if (absent.length === 1) return { missing: `${dir} has no tokenizer.json and its vocab.json + merges.txt pair lacks ${absent[0]}` };
  const files = [...pair];
  if (has('tokenizer_config.json')) {
    checkTokenizerClass(join(dir, 'tokenizer_config.json'));
    files.push('tokenizer_config.json');
  }
  return { tokenizer: buildTokenizerJsonFromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt')), files };
}

function checkTokenizerClass(path: string): void {
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new BridgeTowerError('E_TOKENIZER', `cannot read ${path} as JSON (${(error as Error).message}): fix it, or pass --tokenizer`, { path });
  }
  const tokenizerClass = (config as { tokenizer_class?: unknown } | null)?.tokenizer_class;
  if (tokenizerClass !== undefined && tokenizerClass !== null && !ROBERTA_CLASSES.has(tokenizerClass as string)) {
    throw new BridgeTowerError(
      'E_TOKENIZER',
      `${path} names tokenizer_class ${JSON.stringify(tokenizerClass)}; vocab.json + merges.txt are read as a RoBERTa byte-level BPE (${[...ROBERTA_CLASSES].join(' or ')}): pass --tokenizer with this model's tokenizer.json`,
      { path, tokenizerClass },
    );
  }
}
