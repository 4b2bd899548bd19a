/**
 * client/openapi-types.ts is generated from the server's OpenAPI document by this module: one
 * TypeScript type per component schema and one row per route. `npm run client:types` rewrites
 * the file; test/client/client-openapi.test.ts regenerates it in memory and fails when the
 * committed file differs, i.e. when a route or schema changed without the client.
 */
type Json = Record<string, any>;

const HEADER = `// Generated from the server's OpenAPI document (GET /openapi.json) by test/helpers/openapi-client-types.ts.
// Do not edit: change the route's zod schema in server/schemas/, then run \`npm run client:types\`.
/* eslint-disable */
`;

/** The whole generated file. */
export function clientTypesSource(document: Json): string {
  const schemas: Record<string, Json> = document.components?.schemas ?? {};
  const types = Object.keys(schemas)
    .sort()
    .map((name) => `${doc(schemas[name]!.description, '')}export type ${typeName(name)} = ${typeOf(schemas[name]!, '')};\n`);
  const routes = routeRows(document);
  const table = routes.map((r) => `  '${r.key}': { method: '${r.method}', path: '${r.path}', body: ${lit(r.body)}, response: ${lit(r.response)}, error: ${lit(r.error)}, query: ${JSON.stringify(r.query)}, params: ${JSON.stringify(r.params)} },`);
  const queries = routes.filter((r) => r.queryType).map((r) => `  '${r.key}': ${r.queryType};`);
  return [
    HEADER,
    ...types,
    '/** Every route: its body and 200 schema names (null: none, or not JSON), its error schema, its query and path parameters. */',
    'export const ROUTES = {',
    ...table,
    '} as const;\n',
    'export type RouteKey = keyof typeof ROUTES;\n',
    '/** Query parameters by route. */',
    'export interface RouteQueries {',
    ...queries,
    '}\n',
    '/** Body and answer types by route (a route without a JSON answer answers text). */',
    'export interface RouteTypes {',
    ...routes.map((r) => `  '${r.key}': { body: ${r.body ?? 'undefined'}; response: ${r.response ?? 'string'}; query: ${r.queryType ? `RouteQueries['${r.key}']` : 'undefined'}; params: ${r.params.length ? `{ ${r.params.map((p) => `${p}: string`).join('; ')} }` : 'undefined'} };`),
    '}\n',
  ].join('\n');
}

interface RouteRow {
  key: string;
  method: string;
  path: string;
  body: string | null;
  response: string | null;
  error: string | null;
  query: string[];
  params: string[];
  queryType?: string;
}

function routeRows(document: Json): RouteRow[] {
  const rows: RouteRow[] = [];
  for (const [path, operations] of Object.entries(document.paths as Record<string, Json>)) {
    for (const [method, op] of Object.entries(operations as Record<string, Json>)) {
      const parameters: Json[] = op.parameters ?? [];
      const query = parameters.filter((p) => p.in === 'query');
      rows.push({
        key: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        body: refName(op.requestBody?.content?.['application/json']?.schema),
        response: refName(op.responses?.['200']?.content?.['application/json']?.schema),
        error: refName((op.responses?.['4XX'] ?? op.responses?.['503'])?.content?.['application/json']?.schema),
        query: query.map((p) => p.name),
        params: parameters.filter((p) => p.in === 'path').map((p) => p.name),
        ...(query.length
          ? { queryType: objectType({ type: 'object', additionalProperties: false, properties: Object.fromEntries(query.map((p) => [p.name, { ...p.schema, description: p.description }])), required: query.filter((p) => p.required).map((p) => p.name) }, '  ') }
          : {}),
      });
    }
  }
  return rows.sort((a, b) => a.key.localeCompare(b.key));
}

function refName(schema: Json | undefined): string | null {
  const ref: unknown = schema?.$ref;
  return typeof ref === 'string' ? typeName(ref.replace('#/components/schemas/', '')) : null;
}

/** Schema names as type names; `Error` would shadow the global class in the client. */
const RENAMED: Readonly<Record<string, string>> = { Error: 'ErrorResponse' };

function typeName(schemaName: string): string {
  return RENAMED[schemaName] ?? schemaName;
}

function lit(value: string | null): string {
  return value === null ? 'null' : `'${value}'`;
}

/** JSON Schema (the subset zod writes) → a TypeScript type expression. */
function typeOf(schema: Json, indent: string): string {
  if (schema.$ref) return refName(schema)!;
  if (schema.anyOf) return union(schema.anyOf.map((s: Json) => typeOf(s, indent)));
  if ('const' in schema) return JSON.stringify(schema.const);
  if (schema.enum) return union(schema.enum.map((v: unknown) => JSON.stringify(v)));
  if (Array.isArray(schema.type)) return union(schema.type.map((t: string) => typeOf({ ...schema, type: t }, indent)));
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array':
      return `Array<${typeOf(schema.items ?? {}, indent)}>`;
    case 'object':
      return objectType(schema, indent);
    default:
      return 'unknown';
  }
}

function objectType(schema: Json, indent: string): string {
  const properties: Record<string, Json> = schema.properties ?? {};
  const required = new Set<string>(schema.required ?? []);
  const extra = schema.additionalProperties;
  const inner = `${indent}  `;
  const lines = Object.entries(properties).map(([key, value]) => `${doc(value.description, inner)}${inner}${key}${required.has(key) ? '' : '?'}: ${typeOf(value, inner)};`);
  if (extra !== undefined && extra !== false) lines.push(`${inner}[key: string]: ${extra === true || Object.keys(extra).length === 0 ? 'unknown' : typeOf(extra, inner)};`);
  else if (schema.additionalProperties === undefined && schema.properties) lines.push(`${inner}[key: string]: unknown;`);
  if (lines.length === 0) return 'Record<string, unknown>';
  return `{\n${lines.join('\n')}\n${indent}}`;
}

function union(parts: string[]): string {
  const unique = [...new Set(parts)];
  return unique.join(' | ');
}

function doc(description: unknown, indent: string): string {
  if (typeof description !== 'string' || description === '') return '';
  return `${indent}/** ${description.replace(/\*\//g, '*\\/').replace(/\s*\n\s*/g, ' ')} */\n`;
}
