import { z } from 'zod';
import { ImageInput, MAX_PAIRS, ModelField, ModelName, Text } from './fields.js';

/** Request and response of each task route: one declaration validates, serializes and documents it. */

export const VqaRequest = z
  .strictObject({
    image: ImageInput,
    question: Text('The question about the image.'),
    top_k: z.number().int().min(1).max(100).default(5).meta({ description: 'How many answers, best first.' }),
    model: ModelField,
  })
  .meta({ id: 'VqaRequest' });

export const VqaResponse = z
  .object({
    answers: z.array(z.object({ answer: z.string(), score: z.number().meta({ description: "sigmoid of the answer's logit" }) })),
    model: ModelName,
  })
  .meta({ id: 'VqaResponse' });

export const EntailmentRequest = z
  .strictObject({ image: ImageInput, hypothesis: Text('The hypothesis the image may entail.'), model: ModelField })
  .meta({ id: 'EntailmentRequest' });

export const EntailmentResponse = z
  .object({
    label: z.enum(['entailment', 'neutral', 'contradiction']),
    scores: z.object({ entailment: z.number(), neutral: z.number(), contradiction: z.number() }).meta({ description: 'softmax over the three classes' }),
    model: ModelName,
  })
  .meta({ id: 'EntailmentResponse' });

export const Nlvr2Request = z
  .strictObject({
    images: z.array(ImageInput).length(2, 'give exactly two images: [left, right]').meta({ description: '[left, right]' }),
    statement: Text('The statement about the two images.'),
    model: ModelField,
  })
  .meta({ id: 'Nlvr2Request' });

export const Nlvr2Response = z
  .object({ answer: z.boolean(), score: z.number().meta({ description: 'softmax probability of `answer`' }), model: ModelName })
  .meta({ id: 'Nlvr2Response' });

const Texts = z.array(Text('A text to match.')).min(1).max(MAX_PAIRS);
const Images = z.array(ImageInput).min(1).max(MAX_PAIRS);

export const ItmRequest = z
  .union([z.strictObject({ image: ImageInput, texts: Texts, model: ModelField }), z.strictObject({ images: Images, text: Text('The text to match.'), model: ModelField })], {
    error: 'give {image, texts: [...]} or {images: [...], text}',
  })
  .meta({ id: 'ItmRequest', description: 'One image against several texts, or several images against one text.' });

export const ItmResponse = z
  .object({ scores: z.array(z.number()).meta({ description: 'match probability (softmax) of each pair, in request order' }), model: ModelName })
  .meta({ id: 'ItmResponse' });
