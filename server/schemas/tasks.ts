import { z } from 'zod';
import { ANSWERED_BY, ImageInput, MAX_PAIRS, ModelField, Text } from './fields.js';

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
    ...ANSWERED_BY,
  })
  .meta({ id: 'VqaResponse' });

export const EntailmentRequest = z
  .strictObject({ image: ImageInput, hypothesis: Text('The hypothesis the image may entail.'), model: ModelField })
  .meta({ id: 'EntailmentRequest' });

export const EntailmentResponse = z
  .object({
    label: z.enum(['entailment', 'neutral', 'contradiction']),
    scores: z.object({ entailment: z.number(), neutral: z.number(), contradiction: z.number() }).meta({ description: 'softmax over the three classes' }),
    ...ANSWERED_BY,
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
  .object({ answer: z.boolean(), score: z.number().meta({ description: 'softmax probability of `answer`' }), ...ANSWERED_BY })
  .meta({ id: 'Nlvr2Response' });

const Texts = z.array(Text('A text to match.')).min(1).max(MAX_PAIRS);
const Images = z.array(ImageInput).min(1).max(MAX_PAIRS);

export const ItmRequest = z
  .union([z.strictObject({ image: ImageInput, texts: Texts, model: ModelField }), z.strictObject({ images: Images, text: Text('The text to match.'), model: ModelField })], {
    error: 'give {image, texts: [...]} or {images: [...], text}',
  })
  .meta({ id: 'ItmRequest', description: 'One image against several texts, or several images against one text.' });

export const ItmResponse = z
  .object({ scores: z.array(z.number()).meta({ description: 'match probability (softmax) of each pair, in request order' }), ...ANSWERED_BY })
  .meta({ id: 'ItmResponse' });

/** The token fill-mask predicts, as the texts write it (roberta-base's mask token). */
export const MASK_TOKEN = '<mask>';

export const FillMaskRequest = z
  .strictObject({
    image: ImageInput,
    text: Text('The text, with one or more <mask> tokens where a word is to be predicted (e.g. "a <mask> on a sofa").').refine((text) => text.includes(MASK_TOKEN), {
      message: `write the word to predict as ${MASK_TOKEN}, e.g. "a ${MASK_TOKEN} on a sofa"`,
    }),
    top_k: z.number().int().min(1).max(100).default(5).meta({ description: 'How many predictions per mask, best first.' }),
    model: ModelField,
  })
  .meta({ id: 'FillMaskRequest' });

const FillMaskPrediction = z.object({
  score: z.number().meta({ description: 'softmax probability over the vocabulary at this mask' }),
  token: z.number().int().meta({ description: 'the token id' }),
  token_str: z.string().meta({ description: 'the token decoded alone (a word-initial RoBERTa token starts with a space)' }),
  sequence: z.string().meta({ description: 'the text with this mask filled; with several masks the special tokens are kept, as Hugging Face does' }),
});

export const FillMaskResponse = z
  .object({
    masks: z.array(z.array(FillMaskPrediction)).meta({ description: "one list per <mask>, in text order, each in Hugging Face's fill-mask pipeline shape" }),
    ...ANSWERED_BY,
  })
  .meta({ id: 'FillMaskResponse' });
