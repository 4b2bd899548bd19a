import { z } from 'zod';

/**
 * The HTTP layer's own error codes, each with its status. Errors the model raises keep their
 * BridgeTowerError code (E_IMAGE_DECODE, E_IMAGE_TOO_LARGE, …) and the status `common/errors.ts`
 * gives it; the runtime's overload and deadline errors become E_OVERLOADED and E_DEADLINE.
 */
export const HTTP_ERROR_CODES = {
  /** Malformed JSON or multipart, or a body the route cannot read. */
  E_BAD_REQUEST: 400,
  /** An image string that is not base64 (nor a base64 data URL). */
  E_BAD_BASE64: 400,
  /** Several served models can answer the route and the request named none. */
  E_MODEL_REQUIRED: 400,
  /** Missing or wrong `Authorization: Bearer <key>`. */
  E_UNAUTHORIZED: 401,
  /** No such route (or file under /docs). */
  E_NOT_FOUND: 404,
  /** A path that exists, asked with a method it does not answer; the `Allow` header lists those it does. */
  E_METHOD_NOT_ALLOWED: 405,
  /** The named model is not served, or lacks the head the route needs. */
  E_UNKNOWN_MODEL: 404,
  /** A gallery id that is not in the gallery. */
  E_NOT_IN_GALLERY: 404,
  /** The request did not arrive within Node's request or headers timeout. */
  E_REQUEST_TIMEOUT: 408,
  /** Body, file or field over its limit. */
  E_TOO_LARGE: 413,
  /** A path segment (a gallery id) longer than the router reads. */
  E_URI_TOO_LONG: 414,
  /** A body that is neither JSON nor multipart/form-data. */
  E_UNSUPPORTED_MEDIA_TYPE: 415,
  /** An `Expect` header other than `100-continue`. */
  E_EXPECTATION_FAILED: 417,
  /** Fields that are missing, of the wrong type or out of range. */
  E_INVALID_FIELDS: 422,
  E_RATE_LIMITED: 429,
  /** The request line and headers together are over Node's header-size limit. */
  E_HEADERS_TOO_LARGE: 431,
  /** A bug: logged with its stack, answered without details. */
  E_INTERNAL: 500,
  /** The queue is full: retry after the `Retry-After` header's seconds. */
  E_OVERLOADED: 503,
  /** The models are still loading, or the server is shutting down (every request that arrives then). */
  E_NOT_READY: 503,
  /** The gallery's database cannot be reached now: retry after the `Retry-After` header's seconds. */
  E_GALLERY_UNAVAILABLE: 503,
  /** The request could not be served within the request timeout. */
  E_DEADLINE: 504,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERROR_CODES;

/** An error the routes and plugins throw on purpose; the error handler answers it as is. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly statusCode: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.statusCode = HTTP_ERROR_CODES[code];
  }
}

/** The body of every error answer. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().describe('stable machine-readable code, e.g. E_INVALID_FIELDS, E_IMAGE_UNSUPPORTED, E_OVERLOADED'),
      message: z.string().describe('what was wrong, with which value, and what to do'),
    }),
  })
  .meta({ id: 'Error', description: 'Every 4xx and 5xx answer. 503 E_OVERLOADED comes with a Retry-After header.' });

export type ErrorBody = z.infer<typeof ErrorBody>;

/** Error responses every route declares, so that error bodies are checked and documented too. */
export const ERROR_RESPONSES = { '4xx': ErrorBody, '5xx': ErrorBody } as const;
