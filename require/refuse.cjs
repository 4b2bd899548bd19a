'use strict';
// bridgetower-node is an ES module package (its entry and client use top-level ESM, worker
// threads and import.meta). CommonJS `require` is refused here with what to do instead, rather
// than failing later with ERR_REQUIRE_ESM deep inside the package (docs/library.md, CommonJS).
const error = new Error(
  "bridgetower-node is ESM-only: require('bridgetower-node') is not supported. " +
    "Use `import { BridgeTower } from 'bridgetower-node'` in an ES module (.mjs, or \"type\": \"module\"), " +
    "or from CommonJS `const { BridgeTower } = await import('bridgetower-node')` (the same for 'bridgetower-node/client').",
);
error.code = 'ERR_BRIDGETOWER_ESM_ONLY';
throw error;
