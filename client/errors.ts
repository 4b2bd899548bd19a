/**
 * Every failure of a client call: the server's answer `{error: {code, message}}` with its HTTP
 * status, or (status 0) what stopped the request before an answer: E_TIMEOUT, E_ABORTED,
 * E_NETWORK. `code` is the server's stable code (docs/server.md lists them), so callers match it,
 * not the prose.
 */
export class BridgeTowerHttpError extends Error {
  override readonly name = 'BridgeTowerHttpError';

  constructor(
    /** The HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The server's error code (E_USAGE, E_OVERLOADED, …), or the client's E_TIMEOUT / E_ABORTED / E_NETWORK / E_RESPONSE. */
    readonly code: string,
    message: string,
    /** The route, e.g. 'POST /vqa'. */
    readonly route: string,
    /** The answer's body as parsed JSON (or text), when there was one. */
    readonly body?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
