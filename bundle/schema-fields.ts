import { z } from 'zod';
import { BridgeTowerError, listSome, type ErrorCode } from '../common/errors.js';

/**
 * Field types shared by the bundle's JSON schemas (config.json, labels.json), each with the one
 * phrase an error states ("expected a positive integer"), and the translation of a schema's
 * failures into a BridgeTowerError that names the field path.
 */

const expecting = (what: string) => ({ error: `expected ${what}` });

export const positiveInt = () => z.int(expecting('a positive integer')).min(1, expecting('a positive integer'));
export const nonNegativeInt = () => z.int(expecting('a non-negative integer')).min(0, expecting('a non-negative integer'));
export const positiveNumber = () => z.number(expecting('a positive number')).positive(expecting('a positive number'));
export const finiteNumber = () => z.number(expecting('a number'));
export const text = () => z.string(expecting('a string'));
export const nonEmptyText = () => z.string(expecting('a non-empty string')).min(1, expecting('a non-empty string'));
export const flag = () => z.boolean(expecting('true or false'));

/** Why a JSON file was refused: `details.reason` of its errors. */
export type SchemaReason =
  /** A field this version does not know (a typo, or a file written by a newer tool). */
  | 'unknown_field'
  /** A required field is absent. */
  | 'missing_field'
  /** A field holds a value of the wrong type or range. */
  | 'invalid_field';

export interface SchemaProblem {
  /** Dotted path of the field, e.g. `tasks.vqa.max_text_len` (`(top level)` for the whole file). */
  field: string;
  reason: SchemaReason;
  message: string;
}

/** Validates `value`; every failure comes back as a problem naming its field, none thrown. */
export function checkSchema<T>(schema: z.ZodType<T>, value: unknown): { ok: true; value: T } | { ok: false; problems: SchemaProblem[] } {
  const result = schema.safeParse(value, { reportInput: true, error: fallbackMessage });
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, problems: result.error.issues.flatMap(describeIssue) };
}

/** Parses `value` with `schema`, or throws `code` naming the file, the first bad field and the count of others. */
export function parseWithSchema<T>(schema: z.ZodType<T>, value: unknown, code: ErrorCode, file: string, remedy: string): T {
  const checked = checkSchema(schema, value);
  if (checked.ok) return checked.value;
  throw schemaError(code, file, checked.problems, remedy);
}

export function schemaError(code: ErrorCode, file: string, problems: readonly SchemaProblem[], remedy: string): BridgeTowerError {
  const [first] = problems;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more: ${listSome(problems.slice(1).map((p) => p.field), 5)})` : '';
  return new BridgeTowerError(code, `${file}: ${first!.field}: ${first!.message}${more}; ${remedy}`, {
    path: file,
    reason: first!.reason,
    field: first!.field,
    problems,
  });
}

function describeIssue(issue: z.core.$ZodIssue): SchemaProblem[] {
  const at = (path: readonly PropertyKey[]) => (path.length === 0 ? '(top level)' : path.map(String).join('.'));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ field: at([...issue.path, key]), reason: 'unknown_field', message: 'unknown field (not part of this format: a typo, or written by a newer bridgetower-node)' }));
  }
  if (issue.input === undefined) return [{ field: at(issue.path), reason: 'missing_field', message: `missing (${issue.message})` }];
  return [{ field: at(issue.path), reason: 'invalid_field', message: `${issue.message}, got ${show(issue.input)}` }];
}

/** Messages for the issues a field type above does not phrase itself (objects, lists, enums, literals). */
function fallbackMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_value') return `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`;
  if (issue.code === 'invalid_type') return `expected ${ARTICLES[issue.expected] ?? issue.expected}`;
  if (issue.code === 'too_small' && issue.origin === 'array') return `expected at least ${String(issue.minimum)} item(s)`;
  return undefined;
}

const ARTICLES: Record<string, string> = { object: 'an object', array: 'a list', record: 'an object', string: 'a string', number: 'a number', boolean: 'true or false' };

function show(value: unknown): string {
  const shown = JSON.stringify(value) ?? String(value);
  return shown.length > 60 ? `${shown.slice(0, 60)}…` : shown;
}
