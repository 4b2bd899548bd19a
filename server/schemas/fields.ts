import { z } from 'zod';
import { GRAPH_PRECISIONS } from '../../bundle/config.js';

/** Most image-text pairs one /itm request may score (it is also the multipart file-count limit). */
export const MAX_PAIRS = 64;

/** The image field's description: it also marks image fields for the multipart side of the OpenAPI document. */
export const IMAGE_DESCRIPTION = 'An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data.';

/**
 * An image: a base64 string or data URL in JSON, a file part in multipart/form-data (which the
 * multipart plugin hands over as bytes). Decoding and size checks happen in the route
 * (`decodeImage`), so bad base64 answers 400, not 422.
 */
export const ImageInput = z
  .union([
    z.string().min(1, 'must not be empty'),
    z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected an image (base64 string, data URL or file part)'),
  ])
  .meta({
    description: IMAGE_DESCRIPTION,
    example: 'data:image/png;base64,iVBORw0KGgo…',
  });

export type ImageInput = z.output<typeof ImageInput>;

/** A text the model reads: must not be empty once trimmed; over-long text is truncated, as upstream does. */
export const Text = (description: string) =>
  z.string().trim().min(1, 'must not be empty').meta({ description: `${description} Longer texts are truncated to the model's text length.` });

/** Selects a served model by name; optional when only one served model can answer the route. */
export const ModelField = z
  .string()
  .min(1)
  .optional()
  .meta({ description: "The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head." });

/** Every answer names the model that produced it; the demo's name says its answers are meaningless. */
export const ModelName = z.string().meta({ description: 'The model that answered.' });

/** The precision variant of a model's graphs (docs/precision.md). */
export const GraphPrecisionName = z.enum(GRAPH_PRECISIONS).meta({ description: "The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md)." });

/** The int8 weight set a model runs (int8 only). */
export const Int8WeightsName = z
  .enum(['s8', 'u8'])
  .meta({ description: 'int8 only: the weight set in use, s8, or u8 on CPUs without AVX-512-VNNI / AVX-VNNI (BRIDGETOWER_INT8_WEIGHTS overrides; docs/precision.md).' });

/**
 * The fields every answer carries about the model that produced it: its name and the precision
 * variant it ran in. Spread into each response schema; `ModelRegistry#answeredBy` fills them.
 */
export const ANSWERED_BY = { model: ModelName, precision: GraphPrecisionName };
