/**
 * JSON as Python's `json.dumps(value, indent=2, sort_keys=True)` writes it, which is how
 * transformers saves config.json, preprocessor_config.json and the tokenizer configs. Writing the
 * same bytes (not just the same values) lets a folder exported from a Hugging Face import diff
 * clean against the original, and keeps `1e-05` from becoming `0.00001` for a human reading it.
 *
 * Numbers: integers as integers; other numbers as Python's `repr(float)` (shortest round-trip
 * digits, exponent form below 1e-4 and from 1e16). An integral value is always written as an
 * integer, as transformers' own configs hold them (`initializer_factor: 1`).
 */

export interface PythonJsonOptions {
  /** `ensure_ascii` (json.dumps' default): escape every character outside printable ASCII. */
  readonly ensureAscii?: boolean;
}

export function pythonJsonDumps(value: unknown, options: PythonJsonOptions = {}): string {
  const ensureAscii = options.ensureAscii ?? true;
  const write = (item: unknown, indent: string): string => {
    if (item === null || item === undefined) return 'null';
    if (typeof item === 'boolean') return item ? 'true' : 'false';
    if (typeof item === 'number') return pythonNumber(item);
    if (typeof item === 'string') return pythonString(item, ensureAscii);
    const inner = `${indent}  `;
    if (Array.isArray(item)) {
      if (item.length === 0) return '[]';
      return `[\n${item.map((v) => inner + write(v, inner)).join(',\n')}\n${indent}]`;
    }
    if (typeof item === 'object') {
      const entries = Object.entries(item as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      if (entries.length === 0) return '{}';
      return `{\n${entries.map(([k, v]) => `${inner}${pythonString(k, ensureAscii)}: ${write(v, inner)}`).join(',\n')}\n${indent}}`;
    }
    throw new TypeError(`cannot write a ${typeof item} as JSON`);
  };
  return write(value, '');
}

/** Python's `repr` of a float (or an int when the value is integral). */
export function pythonNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`${value} is not valid JSON`);
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return String(value);
  // toExponential() without an argument gives the shortest digits that round-trip, as repr does.
  const [mantissa, exponentText] = value.toExponential().split('e') as [string, string];
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const point = exponent + 1;
  const fixed =
    point <= 0
      ? `0.${'0'.repeat(-point)}${digits}`
      : point >= digits.length
        ? `${digits}${'0'.repeat(point - digits.length)}.0`
        : `${digits.slice(0, point)}.${digits.slice(point)}`;
  return negative ? `-${fixed}` : fixed;
}

/** A JSON string literal with Python's escapes; `ensureAscii` escapes U+007F and above as \uXXXX. */
export function pythonString(text: string, ensureAscii: boolean): string {
  const json = JSON.stringify(text);
  return ensureAscii ? json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
}
