import { z } from 'zod';
import { MAX_METADATA_BYTES, validateGalleryId } from '../gallery/gallery-store.js';
import { ANSWERED_BY, ImageInput, ModelField, Text } from './fields.js';

/** Most items one POST /gallery:batch may add. */
export const MAX_BATCH_ITEMS = 32;

const GalleryId = z
  .string()
  .superRefine((id, context) => {
    try {
      validateGalleryId(id);
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message });
    }
  })
  .meta({ description: "The image's id in the gallery: 1–128 characters of A–Z, a–z, 0–9, '.', '_', ':' and '-'." });

/** A JSON object; in multipart/form-data, a field holding one as JSON text. */
const JsonObject = (description: string) =>
  z
    .preprocess((value) => {
      if (typeof value !== 'string') return value;
      try {
        return JSON.parse(value) as unknown;
      } catch {
        return value;
      }
    }, z.record(z.string(), z.unknown()))
    .meta({ description });

const Metadata = JsonObject(`Your data about the image (a JSON object, at most ${MAX_METADATA_BYTES} bytes as JSON); scalar values can be filtered on.`);
const Filter = z
  .preprocess(
    (value) => {
      if (typeof value !== 'string') return value;
      try {
        return JSON.parse(value) as unknown;
      } catch {
        return value;
      }
    },
    z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  )
  .meta({ description: 'Only items whose metadata has each of these keys equal to the value (JSON scalars).' });

export const GalleryParams = z.object({ id: GalleryId });

export const GalleryPutRequest = z.strictObject({ image: ImageInput, metadata: Metadata.optional(), model: ModelField }).meta({ id: 'GalleryPutRequest' });

export const GalleryPutResponse = z
  .object({ id: z.string(), hash: z.string().meta({ description: "sha256 of the image's bytes" }), ...ANSWERED_BY })
  .meta({ id: 'GalleryPutResponse' });

export const GalleryModelQuery = z.strictObject({ model: ModelField });
export const GalleryDeleteQuery = GalleryModelQuery;

export const GalleryDeleteResponse = z.object({ id: z.string(), deleted: z.literal(true), ...ANSWERED_BY }).meta({ id: 'GalleryDeleteResponse' });

export const GalleryItem = z
  .object({
    id: z.string(),
    hash: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: z.string().meta({ description: 'ISO 8601' }),
    updated_at: z.string().meta({ description: 'ISO 8601' }),
  })
  .meta({ id: 'GalleryItem' });

export const GalleryItemResponse = GalleryItem.extend({ ...ANSWERED_BY }).meta({ id: 'GalleryItemResponse' });

export const GalleryListQuery = z.strictObject({
  model: ModelField,
  limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: 'Items per page.' }),
  after: GalleryId.optional().meta({ description: 'The `next` of the previous page: items with ids after this one.' }),
});

export const GalleryListResponse = z
  .object({
    items: z.array(GalleryItem),
    total: z.number().int().meta({ description: 'Items in the gallery.' }),
    next: z.string().optional().meta({ description: 'Pass as `after` for the next page; absent on the last page.' }),
    ...ANSWERED_BY,
  })
  .meta({ id: 'GalleryListResponse' });

export const GalleryBatchRequest = z
  .strictObject({
    items: z.array(z.strictObject({ id: z.string(), image: ImageInput, metadata: Metadata.optional() })).min(1).max(MAX_BATCH_ITEMS),
    model: ModelField,
  })
  .meta({ id: 'GalleryBatchRequest' });

export const GalleryBatchResponse = z
  .object({
    results: z.array(
      z.union([
        z.object({ id: z.string(), ok: z.literal(true), hash: z.string() }),
        z.object({ id: z.string(), ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) }),
      ]),
    ),
    added: z.number().int(),
    failed: z.number().int(),
    ...ANSWERED_BY,
  })
  .meta({ id: 'GalleryBatchResponse' });

export const SearchRequest = z
  .strictObject({
    text: Text('The query: find images matching this text.').optional(),
    image: ImageInput.optional().meta({ description: 'The query: find images like this one (ITC image–image cosine). Send text or image, not both.' }),
    k: z.number().int().min(1).max(1000).default(10).meta({ description: 'How many results, best first.' }),
    candidates: z.number().int().min(1).max(1000).default(128).meta({ description: 'How many ITC candidates the ITM head re-ranks (bounds the re-ranking cost).' }),
    rerank: z.boolean().default(true).meta({ description: 'Re-rank the candidates with the ITM head (text queries on bundles that have one); false: ITC only.' }),
    filter: Filter.optional(),
    model: ModelField,
  })
  .superRefine((body, context) => {
    if ((body.text === undefined) === (body.image === undefined)) context.addIssue({ code: 'custom', path: ['text'], message: 'send exactly one of text and image' });
  })
  .meta({ id: 'SearchRequest' });

export const SearchResponse = z
  .object({
    results: z.array(
      z.object({
        id: z.string(),
        score: z.number().meta({ description: 'ITM match logit when re-ranked; else the ITC score (text queries) or the cosine similarity (image queries)' }),
        itc: z.number().meta({ description: 'ITC similarity / temperature, the candidate score (image queries: the cosine similarity)' }),
      }),
    ),
    query: z.enum(['text', 'image']),
    reranked: z.boolean().meta({ description: 'Whether the ITM head re-ranked the candidates.' }),
    reencoded: z.number().int().meta({ description: 'Candidates whose encoding was not cached: their stored image was encoded again.' }),
    ...ANSWERED_BY,
  })
  .meta({ id: 'SearchResponse' });
