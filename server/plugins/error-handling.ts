import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { BridgeTowerError } from '../../common/errors.js';
import { DeadlineError, httpStatusOf, OverloadError } from '../scheduling/errors.js';
import { HttpError, HTTP_ERROR_CODES, type ErrorBody, type HttpErrorCode } from '../schemas/errors.js';
import { RouteMethods } from './route-methods.js';
import { sharedPlugin } from './shared-plugin.js';

export interface ErrorLimits {
  bodyLimitBytes: number;
  maxImageBytes: number;
}

/**
 * The longest path parameter the router reads (Fastify's default is 100): longer than any gallery
 * id (128), so that an overlong id gets the id's own 400 that says the rule, not a 414.
 */
export const MAX_PARAM_LENGTH = 512;

/** Framework and plugin errors, by their code: our code and a message that says what to do. */
const FRAMEWORK_ERRORS: Record<string, (limits: ErrorLimits) => [HttpErrorCode, string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: () => ['E_BAD_REQUEST', 'the body is not valid JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: () => ['E_BAD_REQUEST', 'the body is empty but Content-Type says JSON: send a JSON object'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => ['E_BAD_REQUEST', 'the Content-Length header does not match the body'],
  FST_ERR_CTP_BODY_TOO_LARGE: (l) => ['E_TOO_LARGE', `the body is larger than the server's limit of ${mb(l.bodyLimitBytes)} (--body-limit-mb)`],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => ['E_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json (images in base64) or multipart/form-data (images as file parts)'],
  FST_REQ_FILE_TOO_LARGE: (l) => ['E_TOO_LARGE', `an uploaded file is larger than the limit of ${mb(l.maxImageBytes)} per image`],
  FST_PARTS_LIMIT: () => ['E_TOO_LARGE', 'the multipart body has too many parts'],
  FST_FILES_LIMIT: () => ['E_TOO_LARGE', 'the multipart body has too many files'],
  FST_FIELDS_LIMIT: () => ['E_TOO_LARGE', 'the multipart body has too many fields'],
  FST_PROTO_VIOLATION: () => ['E_BAD_REQUEST', 'a multipart field is named like an Object prototype property'],
  FST_INVALID_MULTIPART_CONTENT_TYPE: () => ['E_BAD_REQUEST', 'the body is not multipart/form-data'],
  FST_INVALID_JSON_FIELD_ERROR: () => ['E_BAD_REQUEST', 'a multipart field declared as application/json is not valid JSON'],
  FST_MP_PREMATURE_CLOSE: () => ['E_BAD_REQUEST', 'the request ended before its multipart body did'],
  // The router's own refusals (Fastify's `frameworkErrors`): they never reach a route.
  FST_ERR_BAD_URL: () => ['E_BAD_REQUEST', "the URL's path has a malformed percent-encoding: write a literal '%' as %25"],
  FST_ERR_INVALID_URL: () => ['E_BAD_REQUEST', 'the request has no valid URL'],
  FST_ERR_MAX_PARAM_LENGTH: () => ['E_URI_TOO_LONG', `a path segment is longer than ${MAX_PARAM_LENGTH} characters: gallery ids are 1–128 characters`],
};

/**
 * Our code for a 4xx some plugin raised with only a status; the answer then has that code's
 * status, so that a code always comes with the status docs/server.md gives it. Other 4xx
 * statuses become 400 E_BAD_REQUEST.
 */
const CODE_BY_STATUS: Record<number, HttpErrorCode> = {
  401: 'E_UNAUTHORIZED',
  // @fastify/static (the /docs UI) refuses paths outside its folder (`..`, dotfiles) with a 403: to the client, a file that is not there.
  403: 'E_NOT_FOUND',
  404: 'E_NOT_FOUND',
  405: 'E_METHOD_NOT_ALLOWED',
  408: 'E_REQUEST_TIMEOUT',
  413: 'E_TOO_LARGE',
  414: 'E_URI_TOO_LONG',
  415: 'E_UNSUPPORTED_MEDIA_TYPE',
  417: 'E_EXPECTATION_FAILED',
  422: 'E_INVALID_FIELDS',
  429: 'E_RATE_LIMITED',
  431: 'E_HEADERS_TOO_LARGE',
};

export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
  /** A bug: log the stack, tell the client nothing more. */
  internal: boolean;
}

/** The answer to any error: client mistakes keep their message, everything else is E_INTERNAL. */
export function errorAnswer(error: unknown, limits: ErrorLimits): ErrorAnswer {
  const answer = (status: number, code: string, message: string, headers: Record<string, string> = {}): ErrorAnswer => ({
    status,
    body: { error: { code, message } },
    headers,
    internal: false,
  });
  if (error instanceof HttpError) return answer(error.statusCode, error.code, error.message, { ...error.headers });
  if (hasZodFastifySchemaValidationErrors(error)) {
    return answer(HTTP_ERROR_CODES.E_INVALID_FIELDS, 'E_INVALID_FIELDS', describeValidation(error.validation, (error as { validationContext?: string }).validationContext));
  }
  if (error instanceof OverloadError) {
    return answer(httpStatusOf(error), 'E_OVERLOADED', error.message, { 'retry-after': String(Math.max(1, Math.ceil(error.retryAfterSeconds))) });
  }
  if (error instanceof DeadlineError) return answer(httpStatusOf(error), 'E_DEADLINE', error.message);
  if (error instanceof BridgeTowerError) {
    const status = httpStatusOf(error);
    if (status < 500) return answer(status, error.code, error.message);
    return internal();
  }
  const { code, statusCode, message } = (error ?? {}) as Partial<FastifyError>;
  const framework = code !== undefined ? FRAMEWORK_ERRORS[code] : undefined;
  if (framework) {
    const [ours, text] = framework(limits);
    return answer(HTTP_ERROR_CODES[ours], ours, text);
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const ours = CODE_BY_STATUS[statusCode] ?? 'E_BAD_REQUEST';
    const status = HTTP_ERROR_CODES[ours];
    // A plugin's message for another status ("Forbidden") would contradict the code.
    return answer(status, ours, status === statusCode && message ? message : `${STATUS_CODES[status]}: ${message || 'bad request'}`);
  }
  return internal();
}

function internal(): ErrorAnswer {
  return { status: 500, body: { error: { code: 'E_INTERNAL', message: 'internal error' } }, headers: {}, internal: true };
}

interface ValidationIssue {
  instancePath: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

interface ZodIssueLike {
  path: PropertyKey[];
  message: string;
  code?: string;
  errors?: ZodIssueLike[][];
}

/** One clause per invalid field, `field: what is wrong`; at most 8. */
export function describeValidation(issues: readonly ValidationIssue[], context = 'body'): string {
  const clauses = issues.flatMap((issue) =>
    describeIssue(
      { path: issue.instancePath.split('/').filter(Boolean), message: issue.message ?? 'is invalid', code: issue.keyword, errors: issue.params?.errors as ZodIssueLike[][] | undefined },
      [],
      context,
    ),
  );
  return clauses.slice(0, 8).join('; ') + (clauses.length > 8 ? `; … (${clauses.length - 8} more)` : '');
}

/** Of a union's alternatives, the one that came closest explains the failure; a union's own custom message prefixes it. */
function describeIssue(issue: ZodIssueLike, base: readonly string[], context: string): string[] {
  const path = [...base, ...issue.path.map(String)];
  const closest = issue.code === 'invalid_union' ? issue.errors?.filter((branch) => branch.length > 0).sort((a, b) => a.length - b.length)[0] : undefined;
  if (!closest) return [`${where(path, context)} ${fieldMessage(issue.message)}`];
  const details = closest.flatMap((inner) => describeIssue(inner, path, context));
  return issue.message === 'Invalid input' ? details : [`${issue.message} (${details.join('; ')})`];
}

function where(path: readonly string[], context: string): string {
  const name = path.length > 0 ? path.join('.') : context;
  return context === 'body' || path.length === 0 ? `${name}:` : `${name} (${context}):`;
}

function fieldMessage(message = 'is invalid'): string {
  return /received (undefined|null)$/.test(message) ? 'is required' : message;
}

function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
}

/**
 * Sends the answer to an error. It is also Fastify's `frameworkErrors` option (a malformed URL, an
 * overlong path parameter), which the router raises before any route or error handler.
 */
export function answerError(limits: ErrorLimits): (error: unknown, request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (error, request, reply) => {
    const { status, body, headers, internal: isBug } = errorAnswer(error, limits);
    if (isBug) request.log.error({ err: error }, `internal error answering ${request.method} ${request.url}`);
    else request.log.info({ status, code: body.error.code }, body.error.message);
    return reply.code(status).headers(headers).send(body);
  };
}

/**
 * Every error answers `{error: {code, message}}`: client mistakes with their status and a
 * message that says what to do, anything else (a bug) as a bare 500 E_INTERNAL whose stack goes
 * to the log only. Unknown routes answer 404 the same way; a known path asked with a method it
 * does not answer is a 405 with `Allow`.
 */
export const errorHandling = sharedPlugin<ErrorLimits>('error-handling', async (app, limits) => {
  const routeMethods = new RouteMethods();
  app.addHook('onRoute', (route) => routeMethods.add(route.url, route.method));
  app.setErrorHandler(answerError(limits));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = routeMethods.allowed(path);
    if (allowed.length > 0) {
      const body: ErrorBody = { error: { code: 'E_METHOD_NOT_ALLOWED', message: `${path} does not answer ${request.method}: use ${allowed.join(', ')}` } };
      return reply.code(HTTP_ERROR_CODES.E_METHOD_NOT_ALLOWED).header('allow', allowed.join(', ')).send(body);
    }
    const body: ErrorBody = { error: { code: 'E_NOT_FOUND', message: `no route ${request.method} ${path}: GET /openapi.json lists them` } };
    return reply.code(404).send(body);
  });
});
