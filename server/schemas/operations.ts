import { z } from 'zod';

export const HealthResponse = z.object({ status: z.literal('ok') }).meta({ id: 'HealthResponse' });

export const ReadyResponse = z
  .object({
    status: z.literal('ready'),
    models: z.array(z.object({ name: z.string(), tasks: z.array(z.string()), demo: z.boolean() })),
  })
  .meta({ id: 'ReadyResponse' });
