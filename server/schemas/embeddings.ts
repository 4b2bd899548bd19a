import { z } from 'zod';
import { ANSWERED_BY, ImageInput, MAX_PAIRS, ModelField, Text } from './fields.js';

/**
 * /embed and the OpenAI-compatible /v1/embeddings and /v1/models: one declaration validates,
 * serializes and documents each.
 */

/** Most items one /embed or /v1/embeddings request may embed (as many as /itm pairs). */
export const MAX_EMBED_INPUTS = MAX_PAIRS;

/** A text, an image, or both: the pair's joint embedding (bundles with Hugging Face's itc_cross_modal_head). */
export const EmbedItem = z
  .strictObject({ text: Text('A text to embed.').optional(), image: ImageInput.optional() })
  .refine((item) => item.text !== undefined || item.image !== undefined, { message: 'give text, image, or both (a pair)' })
  .meta({ id: 'EmbedItem', description: 'A text, an image, or both: an image–text pair (needs a bundle with a cross-modal ITC head).' });

export const EMBED_KINDS = ['text', 'image', 'pair'] as const;
export type EmbedKind = (typeof EMBED_KINDS)[number];

const EmbedBatchRequest = z.strictObject({
  inputs: z.array(EmbedItem).min(1).max(MAX_EMBED_INPUTS).meta({ description: `1–${MAX_EMBED_INPUTS} items, embedded as one request; answers come in request order.` }),
  model: ModelField,
  normalize: z
    .boolean()
    .default(true)
    .meta({ description: 'Embeddings are L2-normalised inside the graph, as transformers computes them; only true is accepted.' }),
});

export const EmbedRequest = z
  .union(
    [
      z.strictObject({ image: ImageInput, model: ModelField }),
      z.strictObject({ text: Text('The text to embed.'), model: ModelField }),
      EmbedBatchRequest,
    ],
    { error: 'give {image}, {text} or {inputs: [{text?, image?}, …]}' },
  )
  .meta({ id: 'EmbedRequest' });

export const EmbedResponse = z
  .union([
    z.object({ embedding: z.array(z.number()).meta({ description: 'the normalized ITC feature' }), ...ANSWERED_BY }),
    z.object({
      embeddings: z.array(z.array(z.number())).meta({ description: 'one L2-normalised embedding per input, in request order' }),
      dims: z.number().int().meta({ description: 'length of every embedding' }),
      kind: z.array(z.enum(EMBED_KINDS)).meta({ description: 'what each input was: text, image or pair' }),
      ...ANSWERED_BY,
    }),
  ])
  .meta({ id: 'EmbedResponse', description: '{embedding} for a single {image} or {text}; {embeddings, dims, kind} for {inputs}.' });

// ---- OpenAI-compatible (https://platform.openai.com/docs/api-reference/embeddings) --------------

const OpenAiText = z.string().min(1, 'must not be empty');

export const OpenAiEmbeddingsRequest = z
  .object({
    model: z.string().min(1).optional().meta({ description: 'A served model (GET /v1/models). Optional when one served model has ITC heads.' }),
    input: z
      .union([OpenAiText, z.array(OpenAiText).min(1).max(MAX_EMBED_INPUTS), z.array(EmbedItem).min(1).max(MAX_EMBED_INPUTS)], {
        error: `give a string, an array of 1–${MAX_EMBED_INPUTS} strings, or an array of {text?, image?} objects (images as base64 or data URLs); token arrays are not accepted`,
      })
      .meta({ description: 'Texts (as OpenAI), or {text?, image?} items: images as base64 or data URLs, both together for a pair.' }),
    encoding_format: z.enum(['float', 'base64']).default('float').meta({ description: 'base64: little-endian float32 bytes, as OpenAI sends them' }),
    dimensions: z.number().int().positive().optional().meta({ description: "Must equal the model's embedding size if given (BridgeTower embeddings cannot be shortened)." }),
    user: z.string().optional().meta({ description: 'Accepted and ignored.' }),
  })
  .meta({ id: 'OpenAiEmbeddingsRequest' });

export const OpenAiEmbeddingsResponse = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ object: z.literal('embedding'), index: z.number().int(), embedding: z.union([z.array(z.number()), z.string()]) })),
    model: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }).meta({ description: 'tokens of the texts as the model reads them; images count 0' }),
  })
  .meta({ id: 'OpenAiEmbeddingsResponse' });

export const OpenAiModelsResponse = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })),
  })
  .meta({ id: 'OpenAiModelsResponse' });

/** OpenAI's error shape; `code` carries this server's error code (E_INVALID_FIELDS, …). */
export const OpenAiErrorBody = z
  .object({ error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }) })
  .meta({ id: 'OpenAiError', description: 'Every 4xx and 5xx answer of the /v1 routes, in OpenAI’s shape.' });

export type OpenAiErrorBody = z.infer<typeof OpenAiErrorBody>;
