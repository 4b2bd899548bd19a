import fastifyMultipart from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { HttpError } from '../schemas/errors.js';
import { MAX_PAIRS } from '../schemas/fields.js';
import { sharedPlugin } from './shared-plugin.js';

export interface MultipartLimits {
  /** Largest body, all parts together. */
  bodyLimitBytes: number;
  /** Largest file part (one encoded image). */
  maxImageBytes: number;
}

/** How a form field's string becomes the value the route's schema expects. */
type FieldKind = 'number' | 'boolean' | 'list' | 'value';

type LooseDef = { type: string; shape?: Record<string, z.core.$ZodType>; options?: z.core.$ZodType[]; innerType?: z.core.$ZodType; in?: z.core.$ZodType };

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional']);

function defOf(schema: z.core.$ZodType): LooseDef {
  return schema._zod.def as unknown as LooseDef;
}

function kindOf(schema: z.core.$ZodType): FieldKind {
  let def = defOf(schema);
  while (WRAPPERS.has(def.type) || def.type === 'pipe') {
    const inner = def.type === 'pipe' ? def.in : def.innerType;
    if (!inner) break;
    def = defOf(inner);
  }
  if (def.type === 'number' || def.type === 'int' || def.type === 'bigint') return 'number';
  if (def.type === 'boolean') return 'boolean';
  if (def.type === 'array' || def.type === 'tuple') return 'list';
  return 'value';
}

/** Each body field's kind, read from the route's zod schema (objects, and unions of objects). */
function fieldKinds(schema: z.core.$ZodType, kinds = new Map<string, FieldKind>()): Map<string, FieldKind> {
  const def = defOf(schema);
  if (def.type === 'object' && def.shape) for (const [key, field] of Object.entries(def.shape)) kinds.set(key, kindOf(field));
  else if (def.type === 'union' && def.options) for (const option of def.options) fieldKinds(option, kinds);
  else if (WRAPPERS.has(def.type) && def.innerType) fieldKinds(def.innerType, kinds);
  else if (def.type === 'pipe' && def.in) fieldKinds(def.in, kinds);
  return kinds;
}

const kindsBySchema = new WeakMap<object, Map<string, FieldKind>>();

const NUMBER = /^\s*-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i;

function fromForm(kind: FieldKind | undefined, text: string): unknown {
  if (kind === 'number' && NUMBER.test(text)) return Number(text);
  if (kind === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

/** The JSON-shaped body of a multipart request: files as bytes, fields typed as the schema says. */
async function readForm(request: FastifyRequest, kinds: Map<string, FieldKind>, limits: MultipartLimits, fieldSize: number): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  let total = 0;
  try {
    for await (const part of request.parts()) {
      let value: unknown;
      if (part.type === 'file') {
        const bytes = await part.toBuffer();
        total += bytes.byteLength;
        value = bytes;
      } else {
        if (part.valueTruncated) throw new HttpError('E_TOO_LARGE', `multipart field '${part.fieldname}' is longer than ${fieldSize} bytes: send images as file parts`);
        const raw: unknown = part.value;
        // Fields sent as application/json arrive parsed already; plain ones are strings.
        total += typeof raw === 'string' ? raw.length : 0;
        value = typeof raw === 'string' ? fromForm(kinds.get(part.fieldname), raw) : raw;
      }
      if (total > limits.bodyLimitBytes) throw new HttpError('E_TOO_LARGE', `the multipart body is larger than the server's limit of ${limits.bodyLimitBytes} bytes (--body-limit-mb)`);
      const previous = body[part.fieldname];
      if (kinds.get(part.fieldname) === 'list') body[part.fieldname] = [...((previous as unknown[] | undefined) ?? []), value];
      else body[part.fieldname] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
    }
  } catch (error) {
    if (typeof (error as { statusCode?: unknown }).statusCode === 'number') throw error;
    throw new HttpError('E_BAD_REQUEST', `the multipart body is malformed: ${(error as Error).message}`);
  }
  return body;
}

/**
 * multipart/form-data bodies, turned into the same body a JSON request has before validation:
 * file parts become bytes (an image field), repeated fields lists, and numeric fields numbers, as
 * the route's one zod schema says. Explicit limits: bytes per file, per field, in all, and counts.
 */
export const multipartBodies = sharedPlugin<MultipartLimits>('multipart-bodies', async (app, limits) => {
  // A field may hold a base64 image (data URLs from a canvas), so it may be as long as one.
  const fieldSize = Math.ceil((limits.maxImageBytes * 4) / 3) + 1024;
  await app.register(fastifyMultipart, {
    throwFileSizeLimit: true,
    limits: {
      fieldNameSize: 100,
      fieldSize,
      fields: MAX_PAIRS + 16,
      fileSize: limits.maxImageBytes,
      files: MAX_PAIRS,
      parts: 2 * MAX_PAIRS + 16,
      headerPairs: 100,
    },
  });
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema?.body as z.core.$ZodType | undefined;
    if (!request.isMultipart() || schema === undefined) return;
    let kinds = kindsBySchema.get(schema);
    if (!kinds) kindsBySchema.set(schema, (kinds = fieldKinds(schema)));
    request.body = await readForm(request, kinds, limits, fieldSize);
  });
});
