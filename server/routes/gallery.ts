import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { BridgeTowerError } from '../../common/errors.js';
import type { Gallery } from '../gallery/gallery.js';
import type { StoredItem } from '../gallery/gallery-store.js';
import type { ModelService, RequestContext } from '../model-service.js';
import { ERROR_RESPONSES, HttpError } from '../schemas/errors.js';
import {
  GalleryBatchRequest,
  GalleryBatchResponse,
  GalleryDeleteQuery,
  GalleryDeleteResponse,
  GalleryItemResponse,
  GalleryListQuery,
  GalleryListResponse,
  GalleryModelQuery,
  GalleryParams,
  GalleryPutRequest,
  GalleryPutResponse,
  SearchRequest,
  SearchResponse,
} from '../schemas/gallery.js';
import type { ImageInput } from '../schemas/fields.js';
import { errorAnswer } from '../plugins/error-handling.js';
import { decodeImage } from './image-input.js';
import { BODY_TYPES, requestContext, requestedModel, type RouteContext } from './route-context.js';

/** What the routes need of a model's gallery: `Gallery` (server/gallery/gallery.ts) over any store. */
export type GalleryLike = Pick<Gallery, 'put' | 'delete' | 'get' | 'list' | 'session'>;

export interface GalleryRouteContext extends RouteContext {
  /** The gallery of a model that can do retrieval: each model has its own (features are model-specific). */
  galleryOf(service: ModelService): GalleryLike;
}

/** Retrieval as upstream evaluates it: store images (ITC features + the image), then search them by text or by image. */
export const galleryRoutes: FastifyPluginAsyncZod<GalleryRouteContext> = async (app, context) => {
  const { registry } = context;
  const encodeWith = (service: ModelService, ctx: RequestContext) => (image: Uint8Array) => service.encodeImage(image, ctx);

  // A database that cannot be reached is a 503 with Retry-After (the request may be retried), not a 500.
  app.setErrorHandler((error) => {
    if (error instanceof BridgeTowerError && error.code === 'E_GALLERY_UNAVAILABLE') throw new HttpError('E_GALLERY_UNAVAILABLE', error.message, { 'retry-after': '1' });
    throw error;
  });

  const addImage = async (service: ModelService, item: { id: string; image: ImageInput; metadata?: Record<string, unknown> | undefined }, ctx: RequestContext) => {
    const image = decodeImage(item.image, 'image', context.maxImageBytes);
    const encoding = await service.encodeImage(image, ctx);
    return context.galleryOf(service).put({ id: item.id, image, encoding, ...(item.metadata ? { metadata: item.metadata } : {}) });
  };

  app.put(
    '/gallery/:id',
    {
      config: { access: 'write' },
      schema: {
        tags: ['retrieval'],
        summary: 'Add an image to the gallery',
        description: 'Encodes the image and stores its ITC feature, the image itself and the metadata under the id, replacing any previous item of that id.',
        consumes: BODY_TYPES,
        security: context.security('write'),
        params: GalleryParams,
        querystring: GalleryDeleteQuery,
        body: GalleryPutRequest,
        response: { 200: GalleryPutResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const service = registry.select('retrieval', requestedModel(request));
      const stored = await addImage(service, { id: request.params.id, image: request.body.image, metadata: request.body.metadata }, requestContext(context));
      return { id: stored.id, hash: stored.hash, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/gallery::batch',
    {
      config: { access: 'write' },
      schema: {
        tags: ['retrieval'],
        summary: 'Add several images to the gallery',
        description: 'Each item is encoded and stored on its own: the answer says, per item, whether it was stored or why not.',
        security: context.security('write'),
        body: GalleryBatchRequest,
        response: { 200: GalleryBatchResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const service = registry.select('retrieval', request.body.model);
      const ctx = requestContext(context);
      const settled = await Promise.allSettled(request.body.items.map((item) => addImage(service, item, ctx)));
      const results = settled.map((outcome, i) => {
        const id = request.body.items[i]!.id;
        if (outcome.status === 'fulfilled') return { id, ok: true as const, hash: outcome.value.hash };
        return { id, ok: false as const, error: itemError(outcome.reason, context.maxImageBytes) };
      });
      const added = results.filter((r) => r.ok).length;
      return { results, added, failed: results.length - added, ...registry.answeredBy(service) };
    },
  );

  app.get(
    '/gallery',
    {
      schema: {
        tags: ['retrieval'],
        summary: 'List the gallery, by id',
        security: context.security('read'),
        querystring: GalleryListQuery,
        response: { 200: GalleryListResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { model, limit, after } = request.query;
      const service = registry.select('retrieval', model);
      const { items, total } = await context.galleryOf(service).list({ limit: limit + 1, ...(after ? { after } : {}) });
      const page = items.slice(0, limit);
      return { items: page.map(itemView), total, ...(items.length > limit ? { next: page.at(-1)!.id } : {}), ...registry.answeredBy(service) };
    },
  );

  app.get(
    '/gallery/:id',
    {
      schema: {
        tags: ['retrieval'],
        summary: 'One gallery item: hash, metadata, timestamps',
        security: context.security('read'),
        params: GalleryParams,
        querystring: GalleryModelQuery,
        response: { 200: GalleryItemResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const service = registry.select('retrieval', request.query.model);
      const item = await context.galleryOf(service).get(request.params.id);
      if (!item) throw new HttpError('E_NOT_IN_GALLERY', `the gallery of '${service.name}' has no image '${request.params.id}'`);
      return { ...itemView(item), ...registry.answeredBy(service) };
    },
  );

  app.delete(
    '/gallery/:id',
    {
      config: { access: 'write' },
      schema: {
        tags: ['retrieval'],
        summary: 'Remove an image from the gallery',
        security: context.security('write'),
        params: GalleryParams,
        querystring: GalleryDeleteQuery,
        response: { 200: GalleryDeleteResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const service = registry.select('retrieval', requestedModel(request));
      if (!(await context.galleryOf(service).delete(request.params.id))) {
        throw new HttpError('E_NOT_IN_GALLERY', `the gallery of '${service.name}' has no image '${request.params.id}'`);
      }
      return { id: request.params.id, deleted: true as const, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/search',
    {
      schema: {
        tags: ['retrieval'],
        summary: 'Search the gallery by text or by image',
        description:
          'Text: ITC scores of the text against the gallery; the top `candidates` re-ranked by the ITM match logit (unless `rerank` is false or the model has no ITM head); the best `k` returned. ' +
          'Image: the `k` items whose ITC image features are nearest the query image’s (cosine). `filter` restricts either to items with matching metadata.',
        consumes: BODY_TYPES,
        security: context.security('read'),
        body: SearchRequest,
        response: { 200: SearchResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { text, image, k, candidates, rerank, filter, model } = request.body;
      const service = registry.select('retrieval', model);
      const ctx = requestContext(context);
      const session = context.galleryOf(service).session(encodeWith(service, ctx), filter);
      if (text !== undefined) {
        const results = await service.search({ text, k, candidates, rerank, gallery: session }, ctx);
        return { results, query: 'text' as const, reranked: rerank && service.tasks.includes('itm'), reencoded: session.reencoded, ...registry.answeredBy(service) };
      }
      const query = await service.embedImage(decodeImage(image!, 'image', context.maxImageBytes), ctx);
      const found = await session.nearest(query, k);
      const results = found.map(({ id, similarity }) => ({ id, score: similarity, itc: similarity }));
      return { results, query: 'image' as const, reranked: false, reencoded: 0, ...registry.answeredBy(service) };
    },
  );
};

/** Why one batch item failed, as the error body of a request of its own would say. */
function itemError(reason: unknown, maxImageBytes: number): { code: string; message: string } {
  if (reason instanceof BridgeTowerError && reason.code === 'E_GALLERY_UNAVAILABLE') return { code: reason.code, message: reason.message };
  return errorAnswer(reason, { bodyLimitBytes: 0, maxImageBytes }).body.error;
}

function itemView(item: StoredItem) {
  return { id: item.id, hash: item.hash, metadata: item.metadata, created_at: item.createdAt, updated_at: item.updatedAt };
}
