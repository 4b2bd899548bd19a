/**
 * Every user-facing failure is a BridgeTowerError with a stable code. The CLI maps the code to an
 * exit status and the server to an HTTP status, through the one table below.
 */
export const ERROR_CODES = {
  /** Bad command-line usage or option value. */
  E_USAGE: { exitCode: 2, httpStatus: 400 },
  /** A file could not be read or written. */
  E_IO: { exitCode: 3, httpStatus: 500 },
  /** The checkpoint file is not a readable PyTorch / safetensors / Hugging Face checkpoint. */
  E_CHECKPOINT_FORMAT: { exitCode: 4, httpStatus: 400 },
  /** The pickle references a global outside the allowlist (it could execute code in Python). */
  E_FORBIDDEN_GLOBAL: { exitCode: 4, httpStatus: 400 },
  /** A tensor's shape, strides or offset do not fit its storage. */
  E_TENSOR_LAYOUT: { exitCode: 4, httpStatus: 400 },
  /** State-dict entries that map to no known BridgeTower parameter. */
  E_UNKNOWN_TENSOR: { exitCode: 5, httpStatus: 400 },
  /** Parameters BridgeTower needs that the checkpoint lacks. */
  E_MISSING_TENSOR: { exitCode: 5, httpStatus: 400 },
  /** The architecture cannot be determined or is inconsistent. */
  E_ARCHITECTURE: { exitCode: 5, httpStatus: 400 },
  /** A safetensors file violates the format. */
  E_SAFETENSORS: { exitCode: 4, httpStatus: 400 },
  /** Tokenizer files are missing or malformed. */
  E_TOKENIZER: { exitCode: 6, httpStatus: 400 },
  /** A label file is malformed or does not fit the head. */
  E_LABELS: { exitCode: 6, httpStatus: 400 },
  /** A bundle folder is incomplete or malformed. */
  E_BUNDLE: { exitCode: 7, httpStatus: 500 },
  /** Image bytes in a supported format that do not decode (truncated, corrupt, empty). */
  E_IMAGE_DECODE: { exitCode: 8, httpStatus: 400 },
  /** Too many encoded bytes or decoded pixels (decompression bombs), refused before decoding. */
  E_IMAGE_TOO_LARGE: { exitCode: 8, httpStatus: 413 },
  /** Not an accepted image format (JPEG, PNG, WebP, GIF, TIFF, AVIF). */
  E_IMAGE_UNSUPPORTED: { exitCode: 8, httpStatus: 415 },
  /** Too many requests admitted and not yet answered: retry later (the server adds Retry-After). */
  E_OVERLOADED: { exitCode: 9, httpStatus: 503 },
  /** The gallery's database cannot be reached now (PostgreSQL restarting, network): retry later. */
  E_GALLERY_UNAVAILABLE: { exitCode: 9, httpStatus: 503 },
  /** The request's deadline passed before it could be served. */
  E_DEADLINE: { exitCode: 9, httpStatus: 504 },
  /** Autodiff met an op on a differentiable path that has no gradient rule (train/autodiff). */
  E_NO_GRADIENT_RULE: { exitCode: 10, httpStatus: 500 },
  /** An op's gradient rule does not support this use of the op (e.g. a Conv stride ≠ kernel). */
  E_GRADIENT_UNSUPPORTED: { exitCode: 10, httpStatus: 500 },
  /** A loss or parameter named for differentiation is not in the graph, or not a float. */
  E_GRADIENT_TARGET: { exitCode: 10, httpStatus: 500 },
  /** A training or evaluation data file is unreadable, lacks columns, or has a bad row (the message names it). */
  E_DATA: { exitCode: 11, httpStatus: 400 },
  /** The loss or a gradient became NaN or infinite; training stopped, the last good checkpoint is kept. */
  E_DIVERGED: { exitCode: 12, httpStatus: 500 },
  /** A training checkpoint cannot be resumed (missing, partial, or made for another bundle/task/options). */
  E_RESUME: { exitCode: 12, httpStatus: 400 },
  /** A broken invariant inside bridgetower-node (a bug, not bad input): report it with the command and input. */
  E_INTERNAL: { exitCode: 70, httpStatus: 500 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BridgeTowerError extends Error {
  override readonly name = 'BridgeTowerError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Machine-readable context (offending names, values), also printed by `--json`. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }
}

/** Lists at most `max` items, then says how many more there were: keeps error messages readable. */
export function listSome(items: readonly string[], max = 12): string {
  const shown = items.slice(0, max).join(', ');
  return items.length > max ? `${shown}, … (${items.length - max} more)` : shown;
}
