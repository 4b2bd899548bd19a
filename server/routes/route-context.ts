import type { ModelRegistry } from '../model-registry.js';
import { HttpError } from '../schemas/errors.js';
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

/**
 * The `model` a request names, by one rule for every route: in the query (`?model=`, the only place
 * a DELETE can carry it), in the body, or in both when they agree. A name that is not served is
 * the registry's 404 (`E_UNKNOWN_MODEL`), never a silent fall-back to the default model.
 */
export function requestedModel(request: { query?: unknown; body?: unknown }): string | undefined {
  const inQuery = modelField(request.query);
  const inBody = modelField(request.body);
  if (inQuery !== undefined && inBody !== undefined && inQuery !== inBody) {
    throw new HttpError('E_INVALID_FIELDS', `the query names model '${inQuery}' and the body names '${inBody}': name it once (either place)`);
  }
  return inQuery ?? inBody;
}

function modelField(fields: unknown): string | undefined {
  const model = fields !== null && typeof fields === 'object' ? (fields as { model?: unknown }).model : undefined;
  return typeof model === 'string' ? model : undefined;
}
