import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { VERSION } from '../../common/version.js';
import { tidyOpenApiDocument } from './openapi-document.js';
import { sharedPlugin } from './shared-plugin.js';

/**
 * The OpenAPI document, generated from the routes' zod schemas (the same ones that validate and
 * serialize), at `GET /openapi.json`, and its UI at `GET /docs`. Registered before the routes so
 * that it sees them.
 */
export const openApi = sharedPlugin<{ apiKey: boolean }>('openapi', async (app, { apiKey }) => {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'bridgetower-node',
        version: VERSION,
        description:
          'BridgeTower vision-language models over HTTP: visual question answering, visual entailment, NLVR2, image-text matching, ' +
          'embeddings and gallery retrieval. Images go as base64 (data URLs accepted) in JSON bodies, or as file parts in ' +
          'multipart/form-data. Errors answer {error: {code, message}}.',
      },
      ...(apiKey ? { components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } } } : {}),
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => tidyOpenApiDocument(jsonSchemaTransformObject(document)),
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
});
