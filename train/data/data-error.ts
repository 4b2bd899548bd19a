import { BridgeTowerError } from '../../common/errors.js';
import { describeRow, type RowRef } from './examples.js';

/**
 * The one way the data layer reports a bad file or row: E_DATA, with the file and row (or line)
 * first in the message, so a user can open the file at the place that is wrong.
 */
export function rowError(ref: RowRef, message: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_DATA', `${describeRow(ref)}: ${message}`, { file: ref.file, [ref.unit]: ref.index, ...details });
}

/** A problem with a whole file (format, missing columns), not one row. */
export function fileError(file: string, message: string, details: Record<string, unknown> = {}): BridgeTowerError {
  return new BridgeTowerError('E_DATA', `${file}: ${message}`, { file, ...details });
}

/** A value for a message: short JSON, so strings show their quotes and a huge list stays short. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
