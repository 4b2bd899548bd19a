import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ImageEncoding, ModelService } from '../model-service.js';
import { ERROR_RESPONSES, HttpError } from '../schemas/errors.js';
import { GalleryDeleteQuery, GalleryDeleteResponse, GalleryParams, GalleryPutRequest, GalleryPutResponse, SearchRequest, SearchResponse } from '../schemas/gallery.js';
import { decodeImage } from './image-input.js';
import { BODY_TYPES, requestContext, requestedModel, type RouteContext } from './route-context.js';

/** What the routes need of a model's gallery (`GalleryStore` is one; tests pass an in-memory one). */
export interface GalleryLike {
  put(id: string, encoding: ImageEncoding): void | Promise<void>;
  delete(id: string): boolean | Promise<boolean>;
  list(): ReadonlyArray<{ id: string; encoding: ImageEncoding }> | Promise<ReadonlyArray<{ id: string; encoding: ImageEncoding }>>;
}

export interface GalleryRouteContext extends RouteContext {
  /** The gallery of a model that can do retrieval: each model has its own (encodings are model-specific). */
  galleryOf(service: ModelService): GalleryLike;
}

/** Retrieval as upstream evaluates it: store images' encodings, then search them by text. */
export const galleryRoutes: FastifyPluginAsyncZod<GalleryRouteContext> = async (app, context) => {
  const { registry } = context;

  app.put(
    '/gallery/:id',
    {
      config: { access: 'write' },
      schema: {
        tags: ['retrieval'],
        summary: 'Add an image to the gallery',
        description: "Encodes the image (ITC feature and the fusion's input) and stores it under the id, replacing any previous image of that id.",
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
      const encoding = await service.encodeImage(decodeImage(request.body.image, 'image', context.maxImageBytes), requestContext(context));
      await context.galleryOf(service).put(request.params.id, encoding);
      return { id: request.params.id, hash: encoding.hash, model: registry.label(service) };
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
      return { id: request.params.id, deleted: true as const, model: registry.label(service) };
    },
  );

  app.post(
    '/search',
    {
      schema: {
        tags: ['retrieval'],
        summary: 'Search the gallery by text',
        description: 'ITC scores of the text against every gallery image; the top `candidates` re-ranked by the ITM match logit; the best `k` returned.',
        consumes: BODY_TYPES,
        security: context.security('read'),
        body: SearchRequest,
        response: { 200: SearchResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { text, k, candidates, model } = request.body;
      const service = registry.select('retrieval', model);
      const gallery = await context.galleryOf(service).list();
      const results = gallery.length === 0 ? [] : await service.search({ text, k, candidates, gallery }, requestContext(context));
      return { results, model: registry.label(service) };
    },
  );
};
