import { BridgeTowerError } from '../../common/errors.js';
import type { BundleConfig } from '../../bundle/config.js';
import type { TokenizerJson } from '../../bundle/tokenizer-json.js';
import { pythonJsonDumps, pythonString } from './python-json.js';

/**
 * The files beside the weights that make an exported folder a complete hub-style repo: the image
 * processor's settings and the tokenizer in the forms transformers reads (fixtures/bridgetower-hf
 * README, "Processor goldens" and "Tokenizer files"). Every text is written as transformers'
 * `save_pretrained` writes it (sorted keys, two-space indent, final newline).
 */

export interface HfTextFile {
  readonly name: string;
  readonly text: string;
}

/** PIL resampling filters by the bundle's resample name (`resample` in preprocessor_config.json). */
const PIL_RESAMPLE: Readonly<Record<BundleConfig['preprocessing']['resample'], number>> = { bicubic: 3 };

/** BridgeTowerImageProcessor's size_divisor in every released repo (and its class default). */
const SIZE_DIVISOR = 32;

/** The longest text a task of the bundle takes (`<s>`, `</s>` included). */
export function maxTextLength(bundle: BundleConfig): number {
  const lengths = Object.values(bundle.tasks).map((task) => task?.max_text_len ?? 0);
  return Math.max(0, ...lengths) || bundle.architecture.text.max_position_embeddings - 2;
}

/**
 * preprocessor_config.json as BridgeTowerImageProcessor reads it. crop_size is written out because
 * transformers 4.x reads an unset crop_size as `size` and 5.x as 288 (README, "pitfalls").
 */
export function preprocessorConfigFor(bundle: BundleConfig): HfTextFile {
  const p = bundle.preprocessing;
  // A bundle converted from an HF folder gives its processor settings back as they were read.
  const hf = p.hf_processor;
  const config = {
    crop_size: { shortest_edge: p.image_size },
    do_center_crop: true,
    do_normalize: hf?.do_normalize ?? true,
    do_pad: hf?.do_pad ?? true,
    do_rescale: hf?.do_rescale ?? true,
    do_resize: hf?.do_resize ?? true,
    image_mean: [...p.mean],
    image_processor_type: 'BridgeTowerImageProcessor',
    image_std: [...p.std],
    // Read by no transformers code; the released repos carry both.
    max_text_len: maxTextLength(bundle),
    resample: PIL_RESAMPLE[p.resample],
    rescale_factor: p.rescale_factor,
    size: { shortest_edge: hf?.shortest_edge ?? p.image_size },
    size_divisor: hf?.size_divisor ?? SIZE_DIVISOR,
    vocab_size: bundle.architecture.text.vocab_size,
  };
  return { name: 'preprocessor_config.json', text: `${pythonJsonDumps(config)}\n` };
}

/** RoBERTa's special-token roles, as RobertaTokenizer names them. */
const SPECIAL_ROLES = {
  bos_token: '<s>',
  cls_token: '<s>',
  eos_token: '</s>',
  mask_token: '<mask>',
  pad_token: '<pad>',
  sep_token: '</s>',
  unk_token: '<unk>',
} as const;

interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * tokenizer.json is the bundle's own; vocab.json + merges.txt are its BPE model as the roberta-base
 * file pair (for the slow RobertaTokenizer); tokenizer_config.json and special_tokens_map.json carry
 * the special tokens and their flags (`<mask>` lstrip) and the text length.
 */
export function tokenizerFilesFor(tokenizerText: string, tokenizer: TokenizerJson, modelMaxLength: number): HfTextFile[] {
  const model = tokenizer.model as { vocab: Record<string, number>; merges: Array<string | [string, string]> };
  const added = (tokenizer.added_tokens as AddedToken[] | undefined) ?? [];
  const token = (content: string): AddedToken => {
    const entry = added.find((a) => a.content === content);
    if (!entry) throw new BridgeTowerError('E_TOKENIZER', `the bundle's tokenizer.json has no added token ${content}: RobertaTokenizer needs it`, { token: content });
    return entry;
  };
  const addedDecoder = Object.fromEntries(
    added.map((a) => [String(a.id), { content: a.content, lstrip: a.lstrip, normalized: a.normalized, rstrip: a.rstrip, single_word: a.single_word, special: a.special }]),
  );
  // transformers writes a token with default flags as its text, any other as an AddedToken dict.
  const specialForm = (content: string): unknown => {
    const t = token(content);
    const plain = !t.lstrip && !t.rstrip && !t.single_word && t.normalized;
    return plain ? t.content : { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word };
  };
  const pre = tokenizer.pre_tokenizer as { add_prefix_space?: boolean } | undefined;
  const post = tokenizer.post_processor as { trim_offsets?: boolean } | undefined;
  const tokenizerConfig = {
    add_prefix_space: pre?.add_prefix_space ?? false,
    added_tokens_decoder: addedDecoder,
    ...SPECIAL_ROLES,
    clean_up_tokenization_spaces: false,
    errors: 'replace',
    model_max_length: modelMaxLength,
    tokenizer_class: 'RobertaTokenizer',
    trim_offsets: post?.trim_offsets ?? true,
  };
  const specialMap = Object.fromEntries(Object.entries(SPECIAL_ROLES).map(([role, content]) => [role, specialForm(content)]));
  return [
    { name: 'tokenizer.json', text: tokenizerText },
    { name: 'vocab.json', text: vocabJson(model.vocab) },
    { name: 'merges.txt', text: mergesText(model.merges) },
    { name: 'tokenizer_config.json', text: `${pythonJsonDumps(tokenizerConfig, { ensureAscii: false })}\n` },
    { name: 'special_tokens_map.json', text: `${pythonJsonDumps(specialMap, { ensureAscii: false })}\n` },
  ];
}

/** roberta-base's vocab.json layout: one line, id order, `json.dumps` separators, ASCII escapes. */
function vocabJson(vocab: Record<string, number>): string {
  const entries = Object.entries(vocab).sort((a, b) => a[1] - b[1]);
  return `{${entries.map(([piece, id]) => `${pythonString(piece, true)}: ${id}`).join(', ')}}`;
}

/** merges.txt: the version line, then one merge per line in rank order. */
function mergesText(merges: ReadonlyArray<string | readonly [string, string]>): string {
  return `#version: 0.2\n${merges.map((m) => (typeof m === 'string' ? m : m.join(' '))).map((line) => `${line}\n`).join('')}`;
}
