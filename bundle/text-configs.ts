import { readFileSync } from 'node:fs';
import { BridgeTowerError } from '../common/errors.js';

/**
 * The two text-encoder facts that are not in a checkpoint's weights. Upstream took them from
 * `RobertaModel.from_pretrained(config['tokenizer'])`, i.e. the hub config.json of that name.
 */
export interface TextConfigFacts {
  num_attention_heads: number;
  layer_norm_eps: number;
  source: string;
}

/** Hub text configs of the released checkpoints (roberta-base / roberta-large config.json). */
export const KNOWN_TEXT_CONFIGS: Readonly<Record<string, { hidden_size: number; num_attention_heads: number; layer_norm_eps: number }>> = {
  'roberta-base': { hidden_size: 768, num_attention_heads: 12, layer_norm_eps: 1e-5 },
  'roberta-large': { hidden_size: 1024, num_attention_heads: 16, layer_norm_eps: 1e-5 },
};

/** Reads the facts from a Hugging Face text config.json (`--text-config`). */
export function readTextConfigFile(path: string): TextConfigFacts {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new BridgeTowerError('E_USAGE', `--text-config ${path}: cannot read a JSON object (${(error as Error).message})`);
  }
  const heads = json.num_attention_heads;
  const eps = json.layer_norm_eps ?? 1e-12; // transformers' BertConfig/RobertaConfig default
  if (typeof heads !== 'number' || !Number.isInteger(heads) || heads <= 0) {
    throw new BridgeTowerError('E_USAGE', `--text-config ${path}: num_attention_heads must be a positive integer, got ${JSON.stringify(heads)}`);
  }
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new BridgeTowerError('E_USAGE', `--text-config ${path}: layer_norm_eps must be a positive number, got ${JSON.stringify(eps)}`);
  }
  return { num_attention_heads: heads, layer_norm_eps: eps, source: `--text-config ${path}` };
}

/** Looks a tokenizer/model name (e.g. `roberta-base`, or a path ending in it) up in the table. */
export function lookupKnownTextConfig(name: string): TextConfigFacts | undefined {
  const key = name.replace(/\/+$/, '').split('/').pop() ?? name;
  const known = KNOWN_TEXT_CONFIGS[key];
  return known && { num_attention_heads: known.num_attention_heads, layer_norm_eps: known.layer_norm_eps, source: `${key} (built-in table)` };
}
