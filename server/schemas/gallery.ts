import { z } from 'zod';
import { validateGalleryId } from '../gallery/gallery-store.js';
import { ImageInput, ModelField, ModelName, Text } from './fields.js';

export const GalleryParams = z.object({
  id: z
    .string()
    .superRefine((id, context) => {
      try {
        validateGalleryId(id);
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .meta({ description: "The image's id in the gallery: 1–128 characters of A–Z, a–z, 0–9, '.', '_', ':' and '-'." }),
});

export const GalleryPutRequest = z.strictObject({ image: ImageInput, model: ModelField }).meta({ id: 'GalleryPutRequest' });

export const GalleryPutResponse = z
  .object({ id: z.string(), hash: z.string().meta({ description: "sha256 of the image's bytes" }), model: ModelName })
  .meta({ id: 'GalleryPutResponse' });

export const GalleryDeleteQuery = z.strictObject({ model: ModelField });

export const GalleryDeleteResponse = z.object({ id: z.string(), deleted: z.literal(true), model: ModelName }).meta({ id: 'GalleryDeleteResponse' });

export const SearchRequest = z
  .strictObject({
    text: Text('The query.'),
    k: z.number().int().min(1).max(1000).default(10).meta({ description: 'How many results, best first.' }),
    candidates: z.number().int().min(1).max(10_000).default(128).meta({ description: 'How many ITC candidates the ITM head re-ranks.' }),
    model: ModelField,
  })
  .meta({ id: 'SearchRequest' });

export const SearchResponse = z
  .object({
    results: z.array(
      z.object({
        id: z.string(),
        score: z.number().meta({ description: 'ITM match logit, the re-ranking score' }),
        itc: z.number().meta({ description: 'ITC similarity / temperature, the candidate score' }),
      }),
    ),
    model: ModelName,
  })
  .meta({ id: 'SearchResponse' });
