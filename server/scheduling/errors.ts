import { BridgeTowerError, ERROR_CODES } from '../../common/errors.js';

/**
 * The runtime's own failures: the request was fine but could not be served now (503,
 * `E_OVERLOADED`) or in time (504, `E_DEADLINE`); `details.reason` names the condition.
 */

/** Too many requests admitted and not yet answered (or the service is closing): retry later. */
export class OverloadError extends BridgeTowerError {
  constructor(
    message: string,
    /** Seconds after which a retry has a fair chance (the HTTP layer's `Retry-After`). */
    readonly retryAfterSeconds: number,
    details: Record<string, unknown> = {},
  ) {
    super('E_OVERLOADED', message, { reason: 'overloaded', retryAfterSeconds, ...details });
  }

  get httpStatus(): number {
    return ERROR_CODES.E_OVERLOADED.httpStatus;
  }
}

/** The request's deadline passed before its work could start (or finish). */
export class DeadlineError extends BridgeTowerError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('E_DEADLINE', message, { reason: 'deadline', ...details });
  }

  get httpStatus(): number {
    return ERROR_CODES.E_DEADLINE.httpStatus;
  }
}

/** The HTTP status for any error: the error's own `httpStatus`, else its code's, else 500. */
export function httpStatusOf(error: unknown): number {
  if (error instanceof OverloadError || error instanceof DeadlineError) return error.httpStatus;
  if (error instanceof BridgeTowerError) {
    const own = (error as { httpStatus?: unknown }).httpStatus;
    return typeof own === 'number' ? own : ERROR_CODES[error.code].httpStatus;
  }
  return 500;
}

/** Rejects with a DeadlineError when `deadline` (ms since epoch) has passed; `what` names the step. */
export function checkDeadline(deadline: number, what: string, now = Date.now()): void {
  if (now >= deadline) {
    throw new DeadlineError(`the request's deadline passed ${now - deadline} ms before ${what}; raise --request-timeout-ms or retry when the server is less busy`, {
      stage: what,
      lateMs: now - deadline,
    });
  }
}
