import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ERROR_RESPONSES } from '../schemas/errors.js';
import {
  EntailmentRequest,
  EntailmentResponse,
  FillMaskRequest,
  FillMaskResponse,
  ItmRequest,
  ItmResponse,
  Nlvr2Request,
  Nlvr2Response,
  VqaRequest,
  VqaResponse,
} from '../schemas/tasks.js';
import { decodeImage } from './image-input.js';
import { BODY_TYPES, requestContext, type RouteContext } from './route-context.js';

/** The model's tasks: each route validates, picks the model, calls it, and names the model in its answer. */
export const taskRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, context) => {
  const { registry, maxImageBytes } = context;
  const image = (value: Parameters<typeof decodeImage>[0], field: string) => decodeImage(value, field, maxImageBytes);
  const schema = { tags: ['tasks'], consumes: BODY_TYPES, security: context.security('read') };

  app.post(
    '/vqa',
    {
      schema: {
        ...schema,
        summary: 'Visual question answering',
        description: "The bundle's answers to a question about an image, best first; score = sigmoid(logit), as upstream.",
        body: VqaRequest,
        response: { 200: VqaResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('vqa', body.model);
      const answers = await service.vqa({ image: image(body.image, 'image'), question: body.question, topK: body.top_k }, requestContext(context));
      return { answers, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/entailment',
    {
      schema: {
        ...schema,
        summary: 'Visual entailment (SNLI-VE)',
        description: 'Whether the image entails, is neutral to, or contradicts the hypothesis (softmax over the three).',
        body: EntailmentRequest,
        response: { 200: EntailmentResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('entailment', body.model);
      const result = await service.entailment({ image: image(body.image, 'image'), hypothesis: body.hypothesis }, requestContext(context));
      return { ...result, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/nlvr2',
    {
      schema: {
        ...schema,
        summary: 'Two-image reasoning (NLVR2)',
        description: 'Whether the statement is true of the pair of images [left, right].',
        body: Nlvr2Request,
        response: { 200: Nlvr2Response, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('nlvr2', body.model);
      const [left, right] = body.images.map((value, i) => image(value, `images[${i}]`));
      const result = await service.nlvr2({ left: left!, right: right!, statement: body.statement }, requestContext(context));
      return { ...result, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/itm',
    {
      schema: {
        ...schema,
        summary: 'Image-text matching',
        description: 'The match probability of each image-text pair, in request order: one image against several texts, or several images against one text.',
        body: ItmRequest,
        response: { 200: ItmResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('itm', body.model);
      let pairs: Array<{ image: Uint8Array; text: string }>;
      if ('texts' in body) {
        const bytes = image(body.image, 'image');
        pairs = body.texts.map((text) => ({ image: bytes, text }));
      } else {
        pairs = body.images.map((value, i) => ({ image: image(value, `images[${i}]`), text: body.text }));
      }
      const scores = await service.itm({ pairs }, requestContext(context));
      return { scores, ...registry.answeredBy(service) };
    },
  );

  app.post(
    '/fill-mask',
    {
      schema: {
        ...schema,
        summary: 'Fill-mask (masked language modelling)',
        description:
          "The MLM head's best tokens for every <mask> of the text, given the image: per mask, Hugging Face's fill-mask pipeline answer [{score, token, token_str, sequence}] (score = softmax over the vocabulary). Served by bundles with an MLM head (the pre-trained checkpoints).",
        body: FillMaskRequest,
        response: { 200: FillMaskResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const body = request.body;
      const service = registry.select('fill-mask', body.model);
      const masks = await service.fillMask({ image: image(body.image, 'image'), text: body.text, topK: body.top_k }, requestContext(context));
      return { masks, ...registry.answeredBy(service) };
    },
  );
};
