import type { ModelRegistry } from '../model-registry.js';
import type { RequestContext } from '../model-service.js';
import type { Access } from '../plugins/access-control.js';

/** What every route plugin is registered with. */
export interface RouteContext {
  registry: ModelRegistry;
  /** Largest encoded image (base64-decoded or file part). */
  maxImageBytes: number;
  /** Per-request deadline (--request-timeout-ms). */
  requestTimeoutMs: number;
  /** The OpenAPI `security` of a route of `access` (none when no key protects it). */
  security(access: Access): Array<Record<string, string[]>> | undefined;
}

/** The runtime's context for a request starting now. */
export function requestContext(context: RouteContext): RequestContext {
  return { deadline: Date.now() + context.requestTimeoutMs };
}

/** Both body formats every route with images accepts (OpenAPI `consumes`). */
export const BODY_TYPES = ['application/json', 'multipart/form-data'];
