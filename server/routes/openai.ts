import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ErrorLimits } from '../plugins/error-handling.js';
import { errorAnswer } from '../plugins/error-handling.js';
import { HttpError } from '../schemas/errors.js';
import { OpenAiEmbeddingsRequest, OpenAiEmbeddingsResponse, OpenAiModelsResponse, OpenAiErrorBody } from '../schemas/embeddings.js';
import { embedAll, embedInputs, type EmbedItemBody } from './embed-items.js';
import { decodeImage } from './image-input.js';
import { requestContext, type RouteContext } from './route-context.js';

/**
 * OpenAI-compatible embeddings (POST /v1/embeddings) and model list (GET /v1/models), so that
 * OpenAI SDKs and the LangChain / LlamaIndex clients built on them work unchanged. Every error of
 * these routes answers in OpenAI's shape (`{error: {message, type, param, code}}`); this plugin's
 * own error handler rewrites the server's answer, so status codes and messages stay the same.
 */
export const openAiRoutes: FastifyPluginAsyncZod<RouteContext & { limits: ErrorLimits }> = async (app, context) => {
  const { registry, maxImageBytes, limits } = context;
  const schema = { tags: ['openai'], security: context.security('read') };
  const errors = { '4xx': OpenAiErrorBody, '5xx': OpenAiErrorBody };
  const created = Math.floor(Date.now() / 1000);

  app.setErrorHandler((error, request, reply) => {
    const { status, body, headers, internal } = errorAnswer(error, limits);
    if (internal) request.log.error({ err: error }, `internal error answering ${request.method} ${request.url}`);
    const answer: OpenAiErrorBody = { error: { message: body.error.message, type: OPENAI_ERROR_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param: null, code: body.error.code } };
    return reply.code(status).headers(headers).send(answer);
  });

  app.get(
    '/v1/models',
    { schema: { ...schema, summary: 'Served models (OpenAI-compatible)', response: { 200: OpenAiModelsResponse, ...errors } } },
    async () => ({ object: 'list' as const, data: registry.services.map((s) => ({ id: s.name, object: 'model' as const, created, owned_by: 'bridgetower-node' })) }),
  );

  app.post(
    '/v1/embeddings',
    {
      schema: {
        ...schema,
        consumes: ['application/json'],
        summary: 'Embeddings (OpenAI-compatible)',
        description: "OpenAI's embeddings API: texts as OpenAI sends them, or {text?, image?} items (images as base64 or data URLs; both for a pair).",
        body: OpenAiEmbeddingsRequest,
        response: { 200: OpenAiEmbeddingsResponse, ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('embed', body.model);
      const raw: EmbedItemBody[] = typeof body.input === 'string' ? [{ text: body.input }] : body.input.map((item) => (typeof item === 'string' ? { text: item } : item));
      const field = (i: number) => (typeof body.input === 'string' ? 'input' : `input[${i}]`);
      const items = embedInputs(raw, (image, name) => decodeImage(image, name, maxImageBytes), field);
      const embeddings = await embedAll(registry, service, items, requestContext(context), field);
      const dims = embeddings[0]!.length;
      if (body.dimensions !== undefined && body.dimensions !== dims) {
        throw new HttpError('E_INVALID_FIELDS', `dimensions: model '${service.name}' makes embeddings of exactly ${dims} dimensions, not ${body.dimensions}: omit the field or send ${dims}`);
      }
      const tokens = items.reduce((sum, item) => sum + (item.text === undefined ? 0 : service.countTokens(item.text)), 0);
      return {
        object: 'list' as const,
        data: embeddings.map((e, index) => ({ object: 'embedding' as const, index, embedding: body.encoding_format === 'base64' ? float32Base64(e) : Array.from(e) })),
        model: service.name,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    },
  );
};

/** OpenAI's `error.type` per status. */
const OPENAI_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** Little-endian float32 bytes in base64: what OpenAI's `encoding_format: "base64"` returns and its SDKs decode. */
function float32Base64(values: Float32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes.toString('base64');
}
