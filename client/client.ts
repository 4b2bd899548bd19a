import { BridgeTowerHttpError } from './errors.js';
import { jsonWithImages, type WithImageBytes } from './images.js';
import { ROUTES, type RouteKey, type RouteTypes } from './openapi-types.js';
import { DEFAULT_RETRY, retryAfterMs, sleep, type RetryPolicy } from './retry.js';

export interface ClientOptions {
  /** The server, e.g. 'http://localhost:8080' (a path prefix is kept: 'https://host/bridgetower'). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` (the server's --api-key). */
  apiKey?: string;
  /** Per call, retries and their waits included (default 60 s). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Headers added to every request. */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one; pass one for tests or a custom agent). */
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Aborts the call (and any retry wait): rejects with E_ABORTED. */
  signal?: AbortSignal;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

type Body<K extends RouteKey> = RouteTypes[K]['body'];
type Answer<K extends RouteKey> = RouteTypes[K]['response'];
type Query<K extends RouteKey> = RouteTypes[K]['query'];

export interface RequestInput<K extends RouteKey> {
  body?: WithImageBytes<Body<K>>;
  query?: Query<K>;
  params?: RouteTypes[K]['params'];
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * A typed client of the bridgetower-node HTTP server: one method per route, bodies and answers
 * typed by client/openapi-types.ts (generated from the server's OpenAPI document). Fetch only, so
 * it runs in browsers, Node ≥ 18, Deno and Bun. A 503 is retried after its Retry-After; every
 * failure is a BridgeTowerHttpError carrying the server's {code, message}.
 */
export class BridgeTowerClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    if (typeof options?.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) {
      throw new TypeError(`BridgeTowerClient needs { baseUrl: 'http://host:port' }, got ${JSON.stringify(options?.baseUrl)}`);
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    const impl = options.fetch ?? globalThis.fetch;
    if (typeof impl !== 'function') throw new TypeError('no fetch in this environment: pass { fetch } to BridgeTowerClient');
    this.fetchImpl = impl.bind(globalThis);
  }

  health(o?: CallOptions) {
    return this.request('GET /health', {}, o);
  }
  healthz(o?: CallOptions) {
    return this.request('GET /healthz', {}, o);
  }
  /** GET /readyz; while bundles are loading the server answers 503 E_NOT_READY (not retried here: poll). */
  ready(o?: CallOptions) {
    return this.request('GET /readyz', {}, { retry: { retries: 0 }, ...o });
  }
  info(o?: CallOptions) {
    return this.request('GET /info', {}, o);
  }
  /** Prometheus text. */
  metrics(o?: CallOptions) {
    return this.request('GET /metrics', {}, o);
  }
  vqa(body: WithImageBytes<Body<'POST /vqa'>>, o?: CallOptions) {
    return this.request('POST /vqa', { body }, o);
  }
  entailment(body: WithImageBytes<Body<'POST /entailment'>>, o?: CallOptions) {
    return this.request('POST /entailment', { body }, o);
  }
  nlvr2(body: WithImageBytes<Body<'POST /nlvr2'>>, o?: CallOptions) {
    return this.request('POST /nlvr2', { body }, o);
  }
  itm(body: WithImageBytes<Body<'POST /itm'>>, o?: CallOptions) {
    return this.request('POST /itm', { body }, o);
  }
  fillMask(body: WithImageBytes<Body<'POST /fill-mask'>>, o?: CallOptions) {
    return this.request('POST /fill-mask', { body }, o);
  }
  embed(body: WithImageBytes<Body<'POST /embed'>>, o?: CallOptions) {
    return this.request('POST /embed', { body }, o);
  }
  search(body: WithImageBytes<Body<'POST /search'>>, o?: CallOptions) {
    return this.request('POST /search', { body }, o);
  }
  /** OpenAI's GET /v1/models. */
  models(o?: CallOptions) {
    return this.request('GET /v1/models', {}, o);
  }
  /** OpenAI's POST /v1/embeddings. */
  embeddings(body: WithImageBytes<Body<'POST /v1/embeddings'>>, o?: CallOptions) {
    return this.request('POST /v1/embeddings', { body }, o);
  }
  galleryPut(id: string, body: WithImageBytes<Body<'PUT /gallery/{id}'>>, query?: Query<'PUT /gallery/{id}'>, o?: CallOptions) {
    return this.request('PUT /gallery/{id}', { body, params: { id }, ...(query ? { query } : {}) }, o);
  }
  galleryGet(id: string, query?: Query<'GET /gallery/{id}'>, o?: CallOptions) {
    return this.request('GET /gallery/{id}', { params: { id }, ...(query ? { query } : {}) }, o);
  }
  galleryDelete(id: string, query?: Query<'DELETE /gallery/{id}'>, o?: CallOptions) {
    return this.request('DELETE /gallery/{id}', { params: { id }, ...(query ? { query } : {}) }, o);
  }
  galleryList(query?: Query<'GET /gallery'>, o?: CallOptions) {
    return this.request('GET /gallery', query ? { query } : {}, o);
  }
  galleryBatch(body: WithImageBytes<Body<'POST /gallery:batch'>>, o?: CallOptions) {
    return this.request('POST /gallery:batch', { body }, o);
  }

  /** Any route by its key ('POST /vqa'): what the methods above call. */
  async request<K extends RouteKey>(route: K, input: RequestInput<K>, call: CallOptions = {}): Promise<Answer<K>> {
    const retry = { ...DEFAULT_RETRY, ...this.options.retry, ...call.retry };
    const timeoutMs = call.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(call.signal?.reason);
    if (call.signal?.aborted) onAbort();
    call.signal?.addEventListener('abort', onAbort, { once: true });
    const stopped = (cause: unknown) =>
      timedOut
        ? new BridgeTowerHttpError(0, 'E_TIMEOUT', `${route} took longer than ${timeoutMs} ms (the client's timeout): raise timeoutMs, or check the server's load`, route, undefined, { cause })
        : new BridgeTowerHttpError(0, 'E_ABORTED', `${route} was aborted by the caller's signal`, route, undefined, { cause });
    try {
      for (let attempt = 0; ; attempt++) {
        let response: Response;
        try {
          response = await this.fetchImpl(this.url(route, input), this.init(route, input, controller.signal));
        } catch (error) {
          if (controller.signal.aborted) throw stopped(error);
          throw new BridgeTowerHttpError(0, 'E_NETWORK', `${route}: no answer from ${this.baseUrl} (${(error as Error)?.message ?? error}): is the server running there?`, route, undefined, { cause: error });
        }
        if (response.ok) return (await this.answer(route, response)) as Answer<K>;
        const error = await this.failure(route, response);
        if (response.status !== 503 || attempt >= retry.retries) throw error;
        const wait = retryAfterMs(response.headers.get('retry-after')) ?? retry.baseDelayMs * 2 ** attempt;
        // A wait past the policy's limit or the call's deadline would only end in a timeout: answer the 503 now.
        if (wait > retry.maxDelayMs || Date.now() + wait > deadline) throw error;
        try {
          await sleep(wait, controller.signal);
        } catch (cause) {
          throw stopped(cause);
        }
      }
    } finally {
      clearTimeout(timer);
      call.signal?.removeEventListener('abort', onAbort);
    }
  }

  private url<K extends RouteKey>(route: K, input: RequestInput<K>): string {
    const params = (input.params ?? {}) as Record<string, string>;
    const path = ROUTES[route].path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = params[name];
      if (typeof value !== 'string' || value === '') throw new TypeError(`${route} needs the path parameter '${name}'`);
      return encodeURIComponent(value);
    });
    const query = Object.entries((input.query ?? {}) as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `${this.baseUrl}${path}${query.length ? `?${new URLSearchParams(query.map(([k, v]): [string, string] => [k, String(v)]))}` : ''}`;
  }

  private init<K extends RouteKey>(route: K, input: RequestInput<K>, signal: AbortSignal): RequestInit {
    const headers: Record<string, string> = { accept: 'application/json', ...this.options.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    const hasBody = ROUTES[route].body !== null;
    if (hasBody) headers['content-type'] = 'application/json';
    return { method: ROUTES[route].method, headers, signal, ...(hasBody ? { body: jsonWithImages(input.body ?? {}) } : {}) };
  }

  private async answer(route: RouteKey, response: Response): Promise<unknown> {
    if (ROUTES[route].response === null) return response.text();
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw new BridgeTowerHttpError(response.status, 'E_RESPONSE', `${route} answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`, route, text, { cause });
    }
  }

  /** The server's {error: {code, message}} (OpenAI routes: {error: {message, type, code}}) as an exception. */
  private async failure(route: RouteKey, response: Response): Promise<BridgeTowerHttpError> {
    const text = await response.text().catch(() => '');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page): the text is the message
    }
    const error = (body as { error?: { code?: unknown; message?: unknown; type?: unknown } } | null)?.error;
    const code = typeof error?.code === 'string' ? error.code : typeof error?.type === 'string' ? error.type : `HTTP_${response.status}`;
    const message = typeof error?.message === 'string' ? error.message : `${route} answered ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`;
    return new BridgeTowerHttpError(response.status, code, message, route, body);
  }
}

/** The client method of every route: a route the server adds without one here fails to compile (and the client test). */
export const CLIENT_METHODS: { readonly [K in RouteKey]: keyof BridgeTowerClient } = {
  'DELETE /gallery/{id}': 'galleryDelete',
  'GET /gallery': 'galleryList',
  'GET /gallery/{id}': 'galleryGet',
  'GET /health': 'health',
  'GET /healthz': 'healthz',
  'GET /info': 'info',
  'GET /metrics': 'metrics',
  'GET /readyz': 'ready',
  'GET /v1/models': 'models',
  'POST /embed': 'embed',
  'POST /entailment': 'entailment',
  'POST /fill-mask': 'fillMask',
  'POST /gallery:batch': 'galleryBatch',
  'POST /itm': 'itm',
  'POST /nlvr2': 'nlvr2',
  'POST /search': 'search',
  'POST /v1/embeddings': 'embeddings',
  'POST /vqa': 'vqa',
  'PUT /gallery/{id}': 'galleryPut',
};
