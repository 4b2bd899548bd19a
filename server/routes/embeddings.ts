import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { HttpError, ERROR_RESPONSES } from '../schemas/errors.js';
import { EmbedRequest, EmbedResponse, MAX_EMBED_INPUTS } from '../schemas/embeddings.js';
import { embedAll, embedInputs, kindOf } from './embed-items.js';
import { decodeImage } from './image-input.js';
import { BODY_TYPES, requestContext, type RouteContext } from './route-context.js';

/**
 * POST /embed: a single text or image (the original body), or a batch of texts, images and
 * image–text pairs embedded as one request through the stages' dynamic batchers.
 */
export const embedRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, context) => {
  const { registry, maxImageBytes } = context;
  const image = (value: Parameters<typeof decodeImage>[0], field: string) => decodeImage(value, field, maxImageBytes);

  app.post(
    '/embed',
    {
      schema: {
        tags: ['tasks'],
        consumes: BODY_TYPES,
        security: context.security('read'),
        summary: 'Image, text and image–text pair embeddings',
        description:
          `The L2-normalised ITC embedding of an image or a text ({image} or {text}), or of up to ${MAX_EMBED_INPUTS} items ({inputs: [{text?, image?}, …]}) in request order. ` +
          "An item with both is a pair: its joint embedding (Hugging Face's cross_embeds), for bundles with a cross-modal ITC head only.",
        body: EmbedRequest,
        response: { 200: EmbedResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('embed', body.model);
      if (!('inputs' in body)) {
        const embedding = 'text' in body ? await service.embedText(body.text, requestContext(context)) : await service.embedImage(image(body.image, 'image'), requestContext(context));
        return { embedding: Array.from(embedding), ...registry.answeredBy(service) };
      }
      if (!body.normalize) {
        throw new HttpError('E_INVALID_FIELDS', 'normalize: only true is accepted: the bundle L2-normalises embeddings inside its graph, as transformers does; omit the field');
      }
      const field = (i: number) => `inputs[${i}]`;
      const items = embedInputs(body.inputs, image, field);
      const embeddings = await embedAll(registry, service, items, requestContext(context), field);
      return { embeddings: embeddings.map((e) => Array.from(e)), dims: embeddings[0]!.length, kind: items.map(kindOf), ...registry.answeredBy(service) };
    },
  );
};
