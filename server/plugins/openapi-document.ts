import { isDeepStrictEqual } from 'node:util';
import { IMAGE_DESCRIPTION } from '../schemas/fields.js';

/**
 * Two fixes to the OpenAPI document fastify-type-provider-zod generates, applied once to the whole
 * document:
 * - it writes every schema with an id twice, `X` (the output side: responses) and `XInput` (the
 *   input side: request bodies), although each is only used on one side: one name per schema
 *   remains, `X`, and both stay only where both sides use it and they differ;
 * - multipart bodies share the JSON body's schema, where an image is a base64 string: there each
 *   image field becomes `{type: string, format: binary}`, so that `/docs` "Try it out" offers a file picker.
 */
type Json = Record<string, unknown>;

const INPUT_SUFFIX = 'Input';

export function tidyOpenApiDocument<T>(document: T): T {
  const doc = document as Json & { paths?: Json; components?: { schemas?: Record<string, Json> } };
  const schemas = doc.components?.schemas;
  if (!schemas) return document;
  // Repeated until nothing changes: dropping one duplicate can leave another unreferenced (an
  // `XInput` referenced only from a `YInput` that has just been merged into `Y`).
  while (mergeInputDuplicates(doc, schemas)) {}
  for (const operations of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(operations as Record<string, Json>)) {
      const content = (operation.requestBody as { content?: Record<string, Json> } | undefined)?.content;
      const multipart = content?.['multipart/form-data'];
      // A new object: Fastify's swagger shares one media object between the body's content types.
      if (content && multipart?.schema) content['multipart/form-data'] = { ...multipart, schema: withBinaryImages(resolve(multipart.schema, schemas)) };
    }
  }
  return document;
}

function mergeInputDuplicates(doc: Json, schemas: Record<string, Json>): boolean {
  let changed = false;
  for (const inputName of Object.keys(schemas).filter((name) => name.endsWith(INPUT_SUFFIX))) {
    const name = inputName.slice(0, -INPUT_SUFFIX.length);
    if (!(name in schemas)) {
      // Only the input copy was written (the schema is nested inside others): it takes the one name.
      schemas[name] = schemas[inputName]!;
      delete schemas[inputName];
      renameRefs(doc, `#/components/schemas/${inputName}`, `#/components/schemas/${name}`);
      changed = true;
      continue;
    }
    const usesOf = (target: string) => countRefs(doc, `#/components/schemas/${target}`);
    const [inputUses, outputUses] = [usesOf(inputName), usesOf(name)];
    if (inputUses > 0 && outputUses > 0 && !isDeepStrictEqual(schemas[inputName], schemas[name])) continue;
    if (inputUses > 0 && outputUses === 0) schemas[name] = schemas[inputName]!;
    delete schemas[inputName];
    renameRefs(doc, `#/components/schemas/${inputName}`, `#/components/schemas/${name}`);
    changed = true;
  }
  return changed;
}

function countRefs(value: unknown, ref: string): number {
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + countRefs(item, ref), 0);
  if (value === null || typeof value !== 'object') return 0;
  return Object.entries(value).reduce((sum, [key, item]) => sum + (key === '$ref' && item === ref ? 1 : countRefs(item, ref)), 0);
}

function renameRefs(value: unknown, from: string, to: string): void {
  if (value === null || typeof value !== 'object') return;
  for (const [key, item] of Object.entries(value)) {
    if (key === '$ref' && item === from) (value as Json)[key] = to;
    else renameRefs(item, from, to);
  }
}

/** A schema with its `$ref`s to components inlined (the multipart copy must not change the shared one). */
function resolve(schema: unknown, schemas: Record<string, Json>): unknown {
  if (Array.isArray(schema)) return schema.map((item) => resolve(item, schemas));
  if (schema === null || typeof schema !== 'object') return schema;
  const ref = (schema as Json).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) return resolve(schemas[ref.slice('#/components/schemas/'.length)], schemas);
  return Object.fromEntries(Object.entries(schema).map(([key, item]) => [key, resolve(item, schemas)]));
}

/** Every image field (recognised by the image schema's description) as a file part. */
function withBinaryImages(schema: unknown): Json {
  if (Array.isArray(schema)) return schema.map(withBinaryImages) as unknown as Json;
  if (schema === null || typeof schema !== 'object') return schema as Json;
  if ((schema as Json).description === IMAGE_DESCRIPTION) return { type: 'string', format: 'binary', description: 'An image file (JPEG, PNG, WebP, GIF, TIFF or AVIF).' };
  return Object.fromEntries(Object.entries(schema).map(([key, item]) => [key, withBinaryImages(item)]));
}
