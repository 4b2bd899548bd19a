import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { HttpError, HTTP_ERROR_CODES, type ErrorBody, type HttpErrorCode } from '../schemas/errors.js';
import { sharedPlugin } from './shared-plugin.js';

/**
 * What Node's HTTP layer refuses before Fastify sees a request, answered in the same
 * `{error: {code, message}}` as everything else instead of Node's and Fastify's own bodies (or no
 * body at all): parser errors (`clientError`), an unsupported `Expect`, a missing `Host`, CONNECT.
 */

/** Node's HTTP parser errors, by `error.code`; any other parser error is a 400. */
const PARSER_ERRORS: Record<string, readonly [HttpErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: ['E_HEADERS_TOO_LARGE', `the request line and headers are over ${maxHeaderSize / 1024} KiB: shorten the URL or the headers (gallery ids are at most 128 characters)`],
  ERR_HTTP_REQUEST_TIMEOUT: ['E_REQUEST_TIMEOUT', 'the request did not arrive in time: send the headers and body without pausing'],
};

function envelope(code: HttpErrorCode, message: string): string {
  const body: ErrorBody = { error: { code, message } };
  return JSON.stringify(body);
}

/**
 * Fastify's `clientErrorHandler`: the answer to bytes Node's parser refuses (a malformed request
 * line or header, a URL or headers over the size limit, a bad Content-Length), written straight
 * to the socket, which then closes (the parser cannot find the next request in what follows).
 */
export function answerClientError(this: { log: FastifyBaseLogger }, error: NodeJS.ErrnoException & { reason?: string }, socket: Socket): void {
  // A reset connection has no one to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message] = PARSER_ERRORS[error.code ?? ''] ?? [
    'E_BAD_REQUEST',
    `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'}${error.reason ? `: ${error.reason}` : ''}): send a well-formed request`,
  ];
  const status = HTTP_ERROR_CODES[code];
  const body = envelope(code, message);
  this.log.info({ status, code, parser: error.code }, message);
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

/**
 * `Expect` other than `100-continue` (which Node answers itself) is a 417 in our shape, where Node
 * would answer a bodyless one; a missing `Host` on HTTP/1.1 is a 400 (RFC 9112 §3.2), checked here
 * because Node's own check (`requireHostHeader`, switched off in app.ts) answers without a body.
 */
export const httpProtocol = sharedPlugin('http-protocol', async (app) => {
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const body = envelope('E_EXPECTATION_FAILED', `the only Expect this server supports is '100-continue', got '${String(request.headers.expect).slice(0, 100)}': leave the header out`);
    response.writeHead(HTTP_ERROR_CODES.E_EXPECTATION_FAILED, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    response.end(body);
  });
  // Node hands CONNECT (proxy tunnels) to this event and, without a listener, drops the connection unanswered.
  app.server.on('connect', (request: IncomingMessage, socket: Socket) => {
    const body = envelope('E_NOT_FOUND', `no route CONNECT ${String(request.url).slice(0, 100)}: this server is not a proxy`);
    if (socket.writable) socket.end(`HTTP/1.1 404 ${STATUS_CODES[404]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new HttpError('E_BAD_REQUEST', 'an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)');
    }
  });
});
