import { BridgeTowerError } from '../../common/errors.js';
import type { ValueTransform } from '../../bundle/tensors/canonical-tensor.js';
import { HF_NAME_MAP, mapHuggingFaceName, type HfNameRow } from '../huggingface/hf-name-map.js';

/**
 * Canonical (upstream) names → Hugging Face names, by running HF_NAME_MAP backwards: there is one
 * name table, and this file only compiles it in the other direction. Each row's `hf` pattern is
 * literal text around capture groups (`^bridgetower\.text_model\.(encoder\.layer\.\d+\..+)$`) and
 * its `canonical` template puts the groups back (`text_transformer.$1`); swapping the two gives a
 * pattern over canonical names and a template for the HF name. Every name produced is mapped
 * forward again and must come back to the canonical name it came from, so the two directions
 * cannot drift apart.
 */

export interface HfName {
  readonly hf: string;
  /** The forward transform (HF → canonical) of the row; the exporter applies its inverse. */
  readonly transform?: ValueTransform;
}

interface ReverseRow {
  readonly row: HfNameRow;
  readonly canonical: RegExp;
  /** Literal text and group numbers (1-based) that spell the HF name. */
  readonly hfParts: ReadonlyArray<string | number>;
}

/** Splits an `hf` pattern into literal text and its top-level capture groups' sources. */
function parsePattern(row: HfNameRow): { parts: Array<string | number>; groups: string[] } {
  const bad = (why: string): never => {
    throw new BridgeTowerError('E_INTERNAL', `HF_NAME_MAP row ${row.hf} cannot be run backwards: ${why}`, { row: row.hf.source });
  };
  const source = row.hf.source;
  if (!source.startsWith('^') || !source.endsWith('$')) bad('it is not anchored with ^ and $');
  const body = source.slice(1, -1);
  const parts: Array<string | number> = [];
  const groups: string[] = [];
  let literal = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\') {
      const next = body[i + 1];
      if (next !== '.') bad(`the escape \\${next} outside a group has no literal meaning`);
      literal += next;
      i++;
    } else if (c === '(') {
      if (body.startsWith('(?', i)) bad('a non-capturing group outside a capture group has no single spelling');
      let depth = 1;
      let j = i + 1;
      for (; j < body.length && depth > 0; j++) {
        if (body[j] === '\\') j++;
        else if (body[j] === '(') {
          if (!body.startsWith('(?:', j)) bad('nested capture groups');
          depth++;
        } else if (body[j] === ')') depth--;
      }
      if (depth !== 0) bad('unbalanced parentheses');
      if (literal) parts.push(literal);
      literal = '';
      groups.push(body.slice(i + 1, j - 1));
      parts.push(groups.length);
      i = j - 1;
    } else if (/[\w-]/.test(c)) {
      literal += c;
    } else {
      bad(`'${c}' outside a group is not literal text`);
    }
  }
  if (literal) parts.push(literal);
  return { parts, groups };
}

function compileReverse(row: HfNameRow): ReverseRow | undefined {
  // Legacy buffers: transformers ≥ 4.31 no longer saves them, so nothing is written back.
  if (row.kind === 'ignored') return undefined;
  const { parts, groups } = parsePattern(row);
  if (row.kind === 'hf-only') {
    // Kept under its own HF name in the bundle: the canonical name is the HF name.
    return { row, canonical: row.hf, hfParts: parts };
  }
  const template = row.canonical!;
  let pattern = '';
  let last = 0;
  for (const match of template.matchAll(/\$(\d)/g)) {
    const group = groups[Number(match[1]) - 1];
    if (group === undefined) throw new BridgeTowerError('E_INTERNAL', `HF_NAME_MAP row ${row.hf}: its template names group ${match[0]}, which the pattern lacks`);
    pattern += escapeRegExp(template.slice(last, match.index)) + `(${group})`;
    last = match.index! + match[0].length;
  }
  pattern += escapeRegExp(template.slice(last));
  // Groups keep their numbers only if the template uses them in order, once each.
  const order = [...template.matchAll(/\$(\d)/g)].map((m) => Number(m[1]));
  if (order.some((n, i) => n !== i + 1) || order.length !== groups.length) {
    throw new BridgeTowerError('E_INTERNAL', `HF_NAME_MAP row ${row.hf}: template ${template} must use each group once, in order`);
  }
  return { row, canonical: new RegExp(`^${pattern}$`), hfParts: parts };
}

const REVERSE_ROWS: readonly ReverseRow[] = HF_NAME_MAP.map(compileReverse).filter((r): r is ReverseRow => r !== undefined);

/**
 * The Hugging Face name of a canonical tensor, or undefined when HF has no such parameter
 * (upstream-only tensors: task classifiers, CLIP text-tower leftovers, legacy buffers).
 */
export function huggingFaceNameOf(canonical: string): HfName | undefined {
  for (const reverse of REVERSE_ROWS) {
    const match = reverse.canonical.exec(canonical);
    if (!match) continue;
    const hf = reverse.hfParts.map((p) => (typeof p === 'number' ? match[p]! : p)).join('');
    const forward = mapHuggingFaceName(hf);
    if (forward.kind !== 'mapped' || forward.canonical !== canonical) {
      throw new BridgeTowerError('E_INTERNAL', `HF_NAME_MAP run backwards turns '${canonical}' into '${hf}', which maps forward to ${JSON.stringify(forward)}`, {
        canonical,
        hf,
      });
    }
    return { hf, ...(forward.transform ? { transform: forward.transform } : {}) };
  }
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
