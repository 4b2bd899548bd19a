/**
 * `import { BridgeTowerClient } from 'bridgetower-node/client'`: the typed HTTP client
 * (docs/library.md). Browser-safe: nothing here imports Node or the rest of the package.
 */
export { BridgeTowerClient, CLIENT_METHODS, type CallOptions, type ClientOptions, type RequestInput } from './client.js';
export { BridgeTowerHttpError } from './errors.js';
export { base64, type ImageData, type WithImageBytes } from './images.js';
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export * from './openapi-types.js';
