import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BridgeTowerError, listSome } from '../common/errors.js';
import { BUNDLE_FILES, taskNameSchema } from './config.js';
import { checkSchema, parseWithSchema, schemaError, text } from './schema-fields.js';
import { jsonDepthExceeds } from '../common/json-depth.js';
import { requireRegularFile } from '../common/fs-errors.js';

/**
 * Class labels of the task heads. VQA's 3129 answers are not stored in the checkpoints, so the user
 * supplies them; SNLI-VE's and NLVR2's are fixed by upstream's data preparation.
 */

export { NLVR2_LABELS, SNLI_VE_LABELS } from './tasks.js';
import { NLVR2_LABELS, SNLI_VE_LABELS } from './tasks.js';

/** Heads whose labels never come from the user. */
export const FIXED_LABELS_BY_HEAD: Readonly<Record<string, readonly string[]>> = Object.freeze({
  snli_classifier: SNLI_VE_LABELS,
  nlvr2_classifier: NLVR2_LABELS,
});

const ACCEPTED_FORMS =
  'accepted forms: a JSON list of strings ["yes", "no", …] (position = class id); an id2label object ' +
  '{"0": "yes", "1": "no", …} with keys exactly 0..n-1; or a Hugging Face config.json holding such an "id2label"';

/** An HF config.json holding id2label is the deepest label file (~4 levels). */
const MAX_LABELS_JSON_DEPTH = 64;

function labelsError(path: string, why: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_LABELS', `label file '${path}': ${why}; ${ACCEPTED_FORMS}`, { path, ...details });
}

/** Reads class labels, in class-id order, from a JSON list, an id2label object or an HF config.json. */
export function loadLabels(path: string): string[] {
  let text: string;
  // A wrong --labels path is a labels mistake (E_LABELS, as before the FIFO check), not an I/O failure.
  if (!existsSync(path)) throw labelsError(path, 'cannot be read (no such file)', { reason: 'not_found' });
  requireRegularFile(path, 'label file', 'E_LABELS');
  try {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch (error) {
    throw labelsError(path, `cannot be read (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw labelsError(path, `is not valid JSON (${(error as Error).message})`);
  }
  // A label file is one or two levels deep; a deeper one is corrupt, and quoting it would overflow the stack.
  if (jsonDepthExceeds(json, MAX_LABELS_JSON_DEPTH)) {
    throw labelsError(path, `nests more than ${MAX_LABELS_JSON_DEPTH} levels deep`, { reason: 'json_too_deep' });
  }

  if (Array.isArray(json)) return checkLabelList(json, path);
  if (typeof json !== 'object' || json === null) throw labelsError(path, `holds ${json === null ? 'null' : `a ${typeof json}`}`);
  const record = json as Record<string, unknown>;
  if (Object.hasOwn(record, 'id2label')) {
    const id2label = record.id2label;
    if (typeof id2label !== 'object' || id2label === null || Array.isArray(id2label)) {
      throw labelsError(path, `"id2label" is ${Array.isArray(id2label) ? 'a list' : JSON.stringify(id2label)}, not an object`);
    }
    return labelsFromId2Label(id2label as Record<string, unknown>, duplicateKeys(text, ['id2label']), path, 'id2label');
  }
  const keys = Object.keys(record);
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) return labelsFromId2Label(record, duplicateKeys(text, []), path, 'object');
  throw labelsError(path, `is an object without "id2label" and its keys are not class ids (found ${listSome(keys.map((k) => JSON.stringify(k)), 5) || 'no keys'})`);
}

/** Throws when a head's output count and the label count differ (a wrong label file would mislabel every answer). */
export function checkLabelCount(labels: readonly string[], expected: number, head: string): void {
  if (labels.length !== expected) {
    throw new BridgeTowerError(
      'E_LABELS',
      `${head} has ${expected} outputs but ${labels.length} labels were given; use the label file the checkpoint was trained with`,
      { head, expected, actual: labels.length },
    );
  }
}

function checkLabelList(list: unknown[], path: string): string[] {
  if (list.length === 0) throw labelsError(path, 'the list is empty');
  const bad = list.findIndex((label) => typeof label !== 'string');
  if (bad >= 0) throw labelsError(path, `entry ${bad} is ${JSON.stringify(list[bad])}, not a string`, { index: bad });
  return list as string[];
}

function labelsFromId2Label(id2label: Record<string, unknown>, duplicates: string[], path: string, where: string): string[] {
  if (duplicates.length > 0) {
    throw labelsError(path, `${where} repeats the id${duplicates.length > 1 ? 's' : ''} ${listSome(duplicates.map((k) => JSON.stringify(k)))}; each id must appear once`, {
      duplicates,
    });
  }
  const entries = Object.entries(id2label);
  if (entries.length === 0) throw labelsError(path, `${where} is empty`);
  const labels: string[] = new Array<string>(entries.length);
  for (const [key, label] of entries) {
    // Canonical decimal only: "01" or " 1" would silently collide with "1" once parsed.
    if (!/^(0|[1-9]\d*)$/.test(key)) throw labelsError(path, `${where} key ${JSON.stringify(key)} is not a class id (0, 1, 2, …)`, { key });
    const id = Number(key);
    if (id >= entries.length) {
      const missing = Array.from({ length: entries.length }, (_, i) => String(i)).filter((k) => !Object.hasOwn(id2label, k));
      throw labelsError(path, `${where} has ${entries.length} entries, so its ids must be 0..${entries.length - 1}, but it has id ${id} and lacks ${listSome(missing, 5)}`, {
        missing,
      });
    }
    if (typeof label !== 'string') throw labelsError(path, `${where}["${key}"] is ${JSON.stringify(label)}, not a string`, { key });
    labels[id] = label;
  }
  return labels;
}

/**
 * Keys repeated in the object at `objectPath` (a list of keys from the top level) of a valid JSON
 * text. `JSON.parse` keeps the last of duplicate keys silently, which would drop a label unnoticed.
 */
function duplicateKeys(text: string, objectPath: readonly string[]): string[] {
  interface Frame {
    readonly isObject: boolean;
    readonly path: readonly string[] | null;
    readonly keys: Set<string>;
    expectKey: boolean;
    lastKey: string;
  }
  const target = JSON.stringify(objectPath);
  const stack: Frame[] = [];
  const duplicates: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const top = stack[stack.length - 1];
    if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const value = JSON.parse(text.slice(i, end + 1)) as string;
      if (top?.isObject && top.expectKey) {
        if (top.path && JSON.stringify(top.path) === target && top.keys.has(value)) duplicates.push(value);
        top.keys.add(value);
        top.lastKey = value;
      }
      i = end;
    } else if (ch === '{' || ch === '[') {
      // Only paths made of object keys are tracked; anything inside a list is out of scope.
      const path = top === undefined ? [] : top.isObject && top.path ? [...top.path, top.lastKey] : null;
      stack.push({ isObject: ch === '{', path, keys: new Set(), expectKey: ch === '{', lastKey: '' });
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ':' && top) {
      top.expectKey = false;
    } else if (ch === ',' && top?.isObject) {
      top.expectKey = true;
    }
  }
  return duplicates;
}

/**
 * `labels.json`: `{task: [names]}`, each list in head-output order. Why it was refused is
 * `details.reason` of its E_LABELS errors: `not_json`, or the schema's `unknown_field` (a task
 * bridgetower-node does not know), `missing_field`, `invalid_field`; a labels file that config.json
 * names but the folder lacks is E_BUNDLE `missing_file`.
 */
export const bundleLabelsSchema = z.partialRecord(taskNameSchema, z.array(text()).min(1));
export type BundleLabels = z.infer<typeof bundleLabelsSchema>;

/** Reads a bundle's labels; none when the bundle was converted without labels. */
export function readLabels(bundleDir: string, file: string | null): BundleLabels {
  if (!file) return {};
  const path = join(bundleDir, file);
  if (!existsSync(path)) {
    throw new BridgeTowerError('E_BUNDLE', `bundle '${bundleDir}' names labels file ${file} in config.json, but ${path} does not exist`, { path, reason: 'missing_file' });
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new BridgeTowerError('E_LABELS', `${path} is not valid JSON (${(error as Error).message})`, { path, reason: 'not_json' });
  }
  return parseWithSchema(bundleLabelsSchema, json, 'E_LABELS', path, 'labels.json holds {task: [label names]}: convert the checkpoint again with --labels');
}

/** Writes `<dir>/labels.json` after checking the JSON that will be on disk, as writeBundleConfig does. */
export function writeBundleLabels(dir: string, labels: { readonly [T in keyof BundleLabels]: readonly string[] | undefined }): void {
  const path = join(dir, BUNDLE_FILES.labels);
  const serialized = `${JSON.stringify(labels, null, 2)}\n`;
  const checked = checkSchema(bundleLabelsSchema, JSON.parse(serialized));
  if (!checked.ok) throw schemaError('E_INTERNAL', path, checked.problems, 'bridgetower-node built invalid bundle labels (a bug): please report it with the command');
  writeFileSync(path, serialized);
}
