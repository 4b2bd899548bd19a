/**
 * `npm run client:types`: writes client/openapi-types.ts from the OpenAPI document of a server
 * built on fakes (the document depends on the routes only, not on the bundles served).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { clientTypesSource } from './openapi-client-types.js';
import { serverOpenApiDocument } from './server-openapi.js';

const target = fileURLToPath(new URL('../../client/openapi-types.ts', import.meta.url));
writeFileSync(target, clientTypesSource(await serverOpenApiDocument()));
process.stdout.write(`wrote ${target}\n`);
