// Generated from the server's OpenAPI document (GET /openapi.json) by test/helpers/openapi-client-types.ts.
// Do not edit: change the route's zod schema in server/schemas/, then run `npm run client:types`.
/* eslint-disable */

/** A text, an image, or both: an image–text pair (needs a bundle with a cross-modal ITC head). */
export type EmbedItem = {
  /** A text to embed. Longer texts are truncated to the model's text length. */
  text?: string;
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image?: string;
};

export type EmbedRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
} | {
  /** The text to embed. Longer texts are truncated to the model's text length. */
  text: string;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
} | {
  /** 1–64 items, embedded as one request; answers come in request order. */
  inputs: Array<EmbedItem>;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
  /** Embeddings are L2-normalised inside the graph, as transformers computes them; only true is accepted. */
  normalize?: boolean;
};

/** {embedding} for a single {image} or {text}; {embeddings, dims, kind} for {inputs}. */
export type EmbedResponse = {
  /** the normalized ITC feature */
  embedding: Array<number>;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
} | {
  /** one L2-normalised embedding per input, in request order */
  embeddings: Array<Array<number>>;
  /** length of every embedding */
  dims: number;
  /** what each input was: text, image or pair */
  kind: Array<"text" | "image" | "pair">;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type EntailmentRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  /** The hypothesis the image may entail. Longer texts are truncated to the model's text length. */
  hypothesis: string;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type EntailmentResponse = {
  label: "entailment" | "neutral" | "contradiction";
  /** softmax over the three classes */
  scores: {
    entailment: number;
    neutral: number;
    contradiction: number;
  };
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

/** Every 4xx and 5xx answer. 503 E_OVERLOADED comes with a Retry-After header. */
export type ErrorResponse = {
  error: {
    /** stable machine-readable code, e.g. E_INVALID_FIELDS, E_IMAGE_UNSUPPORTED, E_OVERLOADED */
    code: string;
    /** what was wrong, with which value, and what to do */
    message: string;
  };
};

export type FillMaskRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  /** The text, with one or more <mask> tokens where a word is to be predicted (e.g. "a <mask> on a sofa"). Longer texts are truncated to the model's text length. */
  text: string;
  /** How many predictions per mask, best first. */
  top_k?: number;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type FillMaskResponse = {
  /** one list per <mask>, in text order, each in Hugging Face's fill-mask pipeline shape */
  masks: Array<Array<{
    /** softmax probability over the vocabulary at this mask */
    score: number;
    /** the token id */
    token: number;
    /** the token decoded alone (a word-initial RoBERTa token starts with a space) */
    token_str: string;
    /** the text with this mask filled; with several masks the special tokens are kept, as Hugging Face does */
    sequence: string;
  }>>;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type GalleryBatchRequest = {
  items: Array<{
    id: string;
    /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
    image: string;
    /** Your data about the image (a JSON object, at most 4096 bytes as JSON); scalar values can be filtered on. */
    metadata?: {
      [key: string]: unknown;
    };
  }>;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type GalleryBatchResponse = {
  results: Array<{
    id: string;
    ok: true;
    hash: string;
  } | {
    id: string;
    ok: false;
    error: {
      code: string;
      message: string;
    };
  }>;
  added: number;
  failed: number;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type GalleryDeleteResponse = {
  id: string;
  deleted: true;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type GalleryItem = {
  id: string;
  hash: string;
  metadata: {
    [key: string]: unknown;
  };
  /** ISO 8601 */
  created_at: string;
  /** ISO 8601 */
  updated_at: string;
};

export type GalleryItemResponse = {
  id: string;
  hash: string;
  metadata: {
    [key: string]: unknown;
  };
  /** ISO 8601 */
  created_at: string;
  /** ISO 8601 */
  updated_at: string;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type GalleryListResponse = {
  items: Array<GalleryItem>;
  /** Items in the gallery. */
  total: number;
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type GalleryPutRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  /** Your data about the image (a JSON object, at most 4096 bytes as JSON); scalar values can be filtered on. */
  metadata?: {
    [key: string]: unknown;
  };
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type GalleryPutResponse = {
  id: string;
  /** sha256 of the image's bytes */
  hash: string;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type HealthResponse = {
  status: "ok";
};

export type InfoResponse = {
  /** bridgetower-node's version */
  version: string;
  models: Array<{
    name: string;
    demo: boolean;
    tasks: Array<string>;
    /** hidden size of the cross-modal layers */
    hidden_size: number;
    /** length of the embedding /embed answers (absent without ITC heads) */
    embedding_dim?: number;
    /** tokens per text by task, <s> and </s> included; longer texts are truncated */
    max_text_tokens: {
      [key: string]: number;
    };
    /** side of the square image the model sees, in pixels */
    image_size: number;
    /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
    precision: "fp32" | "int8" | "fp16";
    /** int8 only: the weight set in use, s8, or u8 on CPUs without AVX-512-VNNI / AVX-VNNI (BRIDGETOWER_INT8_WEIGHTS overrides; docs/precision.md). */
    int8_weights?: "s8" | "u8";
    /** dtype of the bundle's canonical weights (model.safetensors) */
    weights_dtype: "float32" | "float16";
  }>;
  /** largest batch a stage runs (--max-batch) */
  max_batch: number;
  /** how long a stage waits to fill a batch (--max-delay-ms) */
  max_delay_ms: number;
  /** requests admitted and not yet answered before 503 (--max-queue) */
  max_queue: number;
  /** per-request deadline (--request-timeout-ms) */
  request_timeout_ms: number;
};

/** One image against several texts, or several images against one text. */
export type ItmRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  texts: Array<string>;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
} | {
  images: Array<string>;
  /** The text to match. Longer texts are truncated to the model's text length. */
  text: string;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type ItmResponse = {
  /** match probability (softmax) of each pair, in request order */
  scores: Array<number>;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type Nlvr2Request = {
  /** [left, right] */
  images: Array<string>;
  /** The statement about the two images. Longer texts are truncated to the model's text length. */
  statement: string;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type Nlvr2Response = {
  answer: boolean;
  /** softmax probability of `answer` */
  score: number;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type OpenAiEmbeddingsRequest = {
  /** A served model (GET /v1/models). Optional when one served model has ITC heads. */
  model?: string;
  /** Texts (as OpenAI), or {text?, image?} items: images as base64 or data URLs, both together for a pair. */
  input: string | Array<string> | Array<EmbedItem>;
  /** base64: little-endian float32 bytes, as OpenAI sends them */
  encoding_format?: "float" | "base64";
  /** Must equal the model's embedding size if given (BridgeTower embeddings cannot be shortened). */
  dimensions?: number;
  /** Accepted and ignored. */
  user?: string;
  [key: string]: unknown;
};

export type OpenAiEmbeddingsResponse = {
  object: "list";
  data: Array<{
    object: "embedding";
    index: number;
    embedding: Array<number> | string;
  }>;
  model: string;
  /** tokens of the texts as the model reads them; images count 0 */
  usage: {
    prompt_tokens: number;
    total_tokens: number;
  };
};

/** Every 4xx and 5xx answer of the /v1 routes, in OpenAI’s shape. */
export type OpenAiError = {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
};

export type OpenAiModelsResponse = {
  object: "list";
  data: Array<{
    id: string;
    object: "model";
    created: number;
    owned_by: string;
  }>;
};

export type ReadyResponse = {
  status: "ready";
  models: Array<{
    name: string;
    tasks: Array<string>;
    demo: boolean;
    /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
    precision: "fp32" | "int8" | "fp16";
    /** int8 only: the weight set in use, s8, or u8 on CPUs without AVX-512-VNNI / AVX-VNNI (BRIDGETOWER_INT8_WEIGHTS overrides; docs/precision.md). */
    int8_weights?: "s8" | "u8";
  }>;
};

export type SearchRequest = {
  /** The query: find images matching this text. Longer texts are truncated to the model's text length. */
  text?: string;
  /** The query: find images like this one (ITC image–image cosine). Send text or image, not both. */
  image?: string;
  /** How many results, best first. */
  k?: number;
  /** How many ITC candidates the ITM head re-ranks (bounds the re-ranking cost). */
  candidates?: number;
  /** Re-rank the candidates with the ITM head (text queries on bundles that have one); false: ITC only. */
  rerank?: boolean;
  /** Only items whose metadata has each of these keys equal to the value (JSON scalars). */
  filter?: {
    [key: string]: string | number | boolean | null;
  };
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type SearchResponse = {
  results: Array<{
    id: string;
    /** ITM match logit when re-ranked; else the ITC score (text queries) or the cosine similarity (image queries) */
    score: number;
    /** ITC similarity / temperature, the candidate score (image queries: the cosine similarity) */
    itc: number;
  }>;
  query: "text" | "image";
  /** Whether the ITM head re-ranked the candidates. */
  reranked: boolean;
  /** Candidates whose encoding was not cached: their stored image was encoded again. */
  reencoded: number;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

export type VqaRequest = {
  /** An image (JPEG, PNG, WebP, GIF, TIFF or AVIF): base64 or a base64 data URL in JSON; a file part in multipart/form-data. */
  image: string;
  /** The question about the image. Longer texts are truncated to the model's text length. */
  question: string;
  /** How many answers, best first. */
  top_k?: number;
  /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
  model?: string;
};

export type VqaResponse = {
  answers: Array<{
    answer: string;
    /** sigmoid of the answer's logit */
    score: number;
  }>;
  /** The model that answered. */
  model: string;
  /** The precision variant of the model's graphs that answered: fp32, int8 or fp16 (serve --precision; docs/precision.md). */
  precision: "fp32" | "int8" | "fp16";
};

/** Every route: its body and 200 schema names (null: none, or not JSON), its error schema, its query and path parameters. */
export const ROUTES = {
  'DELETE /gallery/{id}': { method: 'DELETE', path: '/gallery/{id}', body: null, response: 'GalleryDeleteResponse', error: 'ErrorResponse', query: ["model"], params: ["id"] },
  'GET /gallery': { method: 'GET', path: '/gallery', body: null, response: 'GalleryListResponse', error: 'ErrorResponse', query: ["model","limit","after"], params: [] },
  'GET /gallery/{id}': { method: 'GET', path: '/gallery/{id}', body: null, response: 'GalleryItemResponse', error: 'ErrorResponse', query: ["model"], params: ["id"] },
  'GET /health': { method: 'GET', path: '/health', body: null, response: 'HealthResponse', error: null, query: [], params: [] },
  'GET /healthz': { method: 'GET', path: '/healthz', body: null, response: 'HealthResponse', error: null, query: [], params: [] },
  'GET /info': { method: 'GET', path: '/info', body: null, response: 'InfoResponse', error: null, query: [], params: [] },
  'GET /metrics': { method: 'GET', path: '/metrics', body: null, response: null, error: null, query: [], params: [] },
  'GET /readyz': { method: 'GET', path: '/readyz', body: null, response: 'ReadyResponse', error: 'ErrorResponse', query: [], params: [] },
  'GET /v1/models': { method: 'GET', path: '/v1/models', body: null, response: 'OpenAiModelsResponse', error: 'OpenAiError', query: [], params: [] },
  'POST /embed': { method: 'POST', path: '/embed', body: 'EmbedRequest', response: 'EmbedResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /entailment': { method: 'POST', path: '/entailment', body: 'EntailmentRequest', response: 'EntailmentResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /fill-mask': { method: 'POST', path: '/fill-mask', body: 'FillMaskRequest', response: 'FillMaskResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /gallery:batch': { method: 'POST', path: '/gallery:batch', body: 'GalleryBatchRequest', response: 'GalleryBatchResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /itm': { method: 'POST', path: '/itm', body: 'ItmRequest', response: 'ItmResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /nlvr2': { method: 'POST', path: '/nlvr2', body: 'Nlvr2Request', response: 'Nlvr2Response', error: 'ErrorResponse', query: [], params: [] },
  'POST /search': { method: 'POST', path: '/search', body: 'SearchRequest', response: 'SearchResponse', error: 'ErrorResponse', query: [], params: [] },
  'POST /v1/embeddings': { method: 'POST', path: '/v1/embeddings', body: 'OpenAiEmbeddingsRequest', response: 'OpenAiEmbeddingsResponse', error: 'OpenAiError', query: [], params: [] },
  'POST /vqa': { method: 'POST', path: '/vqa', body: 'VqaRequest', response: 'VqaResponse', error: 'ErrorResponse', query: [], params: [] },
  'PUT /gallery/{id}': { method: 'PUT', path: '/gallery/{id}', body: 'GalleryPutRequest', response: 'GalleryPutResponse', error: 'ErrorResponse', query: ["model"], params: ["id"] },
} as const;

export type RouteKey = keyof typeof ROUTES;

/** Query parameters by route. */
export interface RouteQueries {
  'DELETE /gallery/{id}': {
    /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
    model?: string;
  };
  'GET /gallery': {
    /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
    model?: string;
    /** Items per page. */
    limit?: number;
    /** The `next` of the previous page: items with ids after this one. */
    after?: string;
  };
  'GET /gallery/{id}': {
    /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
    model?: string;
  };
  'PUT /gallery/{id}': {
    /** The served model to use, by name (GET /readyz lists them). Optional when only one served model has the route's head. */
    model?: string;
  };
}

/** Body and answer types by route (a route without a JSON answer answers text). */
export interface RouteTypes {
  'DELETE /gallery/{id}': { body: undefined; response: GalleryDeleteResponse; query: RouteQueries['DELETE /gallery/{id}']; params: { id: string } };
  'GET /gallery': { body: undefined; response: GalleryListResponse; query: RouteQueries['GET /gallery']; params: undefined };
  'GET /gallery/{id}': { body: undefined; response: GalleryItemResponse; query: RouteQueries['GET /gallery/{id}']; params: { id: string } };
  'GET /health': { body: undefined; response: HealthResponse; query: undefined; params: undefined };
  'GET /healthz': { body: undefined; response: HealthResponse; query: undefined; params: undefined };
  'GET /info': { body: undefined; response: InfoResponse; query: undefined; params: undefined };
  'GET /metrics': { body: undefined; response: string; query: undefined; params: undefined };
  'GET /readyz': { body: undefined; response: ReadyResponse; query: undefined; params: undefined };
  'GET /v1/models': { body: undefined; response: OpenAiModelsResponse; query: undefined; params: undefined };
  'POST /embed': { body: EmbedRequest; response: EmbedResponse; query: undefined; params: undefined };
  'POST /entailment': { body: EntailmentRequest; response: EntailmentResponse; query: undefined; params: undefined };
  'POST /fill-mask': { body: FillMaskRequest; response: FillMaskResponse; query: undefined; params: undefined };
  'POST /gallery:batch': { body: GalleryBatchRequest; response: GalleryBatchResponse; query: undefined; params: undefined };
  'POST /itm': { body: ItmRequest; response: ItmResponse; query: undefined; params: undefined };
  'POST /nlvr2': { body: Nlvr2Request; response: Nlvr2Response; query: undefined; params: undefined };
  'POST /search': { body: SearchRequest; response: SearchResponse; query: undefined; params: undefined };
  'POST /v1/embeddings': { body: OpenAiEmbeddingsRequest; response: OpenAiEmbeddingsResponse; query: undefined; params: undefined };
  'POST /vqa': { body: VqaRequest; response: VqaResponse; query: undefined; params: undefined };
  'PUT /gallery/{id}': { body: GalleryPutRequest; response: GalleryPutResponse; query: RouteQueries['PUT /gallery/{id}']; params: { id: string } };
}
