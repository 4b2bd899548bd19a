import { z } from 'zod';
import { GraphPrecisionName, Int8WeightsName } from './fields.js';

export const HealthResponse = z.object({ status: z.literal('ok') }).meta({ id: 'HealthResponse' });

export const ReadyResponse = z
  .object({
    status: z.literal('ready'),
    models: z.array(z.object({ name: z.string(), tasks: z.array(z.string()), demo: z.boolean(), precision: GraphPrecisionName, int8_weights: Int8WeightsName.optional() })),
  })
  .meta({ id: 'ReadyResponse' });

export const InfoResponse = z
  .object({
    version: z.string().meta({ description: "bridgetower-node's version" }),
    models: z.array(
      z.object({
        name: z.string(),
        demo: z.boolean(),
        tasks: z.array(z.string()),
        hidden_size: z.number().int().meta({ description: 'hidden size of the cross-modal layers' }),
        embedding_dim: z.number().int().optional().meta({ description: 'length of the embedding /embed answers (absent without ITC heads)' }),
        max_text_tokens: z.record(z.string(), z.number().int()).meta({ description: 'tokens per text by task, <s> and </s> included; longer texts are truncated' }),
        image_size: z.number().int().meta({ description: 'side of the square image the model sees, in pixels' }),
        precision: GraphPrecisionName,
        int8_weights: Int8WeightsName.optional(),
        weights_dtype: z.enum(['float32', 'float16']).meta({ description: "dtype of the bundle's canonical weights (model.safetensors)" }),
      }),
    ),
    max_batch: z.number().int().meta({ description: 'largest batch a stage runs (--max-batch)' }),
    max_delay_ms: z.number().meta({ description: 'how long a stage waits to fill a batch (--max-delay-ms)' }),
    max_queue: z.number().int().meta({ description: 'requests admitted and not yet answered before 503 (--max-queue)' }),
    request_timeout_ms: z.number().int().meta({ description: 'per-request deadline (--request-timeout-ms)' }),
  })
  .meta({ id: 'InfoResponse' });
