import type { TaskName } from '../bundle/tasks.js';

/**
 * What the HTTP layer asks of a served bundle. The runtime (`server/scheduling/` on `runtime/`) implements it on
 * ONNX Runtime sessions in worker threads with dynamic batching and an image-encoding cache; the
 * routes (`server/routes/`) only validate, call and serialize. Every method rejects with a
 * BridgeTowerError for client mistakes (bad image, empty text) and with a `DeadlineError` or
 * `OverloadError` (server/scheduling/errors.ts) when the request cannot be served in time.
 */
export interface RequestContext {
  /** Absolute time (ms since epoch, `Date.now()` clock) after which the work is abandoned. */
  readonly deadline: number;
}

export type { EntailmentResult, Nlvr2Result, VqaAnswer } from '../runtime/task-results.js';
import type { EntailmentResult, Nlvr2Result, VqaAnswer } from '../runtime/task-results.js';
export type { FillMaskPrediction } from '../runtime/fill-mask.js';
import type { FillMaskPrediction } from '../runtime/fill-mask.js';

/** An image's cached encodings: what the gallery stores and search re-ranks with. */
export interface ImageEncoding {
  /** sha256 of the encoded image bytes (the cache key). */
  hash: string;
  /** Normalized ITC feature [dim] (absent when the bundle has no ITC heads). */
  itc?: Float32Array;
  /** image_encoder output [L, N, H] for this image, the fusion's input. */
  embeds: Float32Array;
}

/** What /embed and /v1/embeddings embed: a text, an image, or both (a pair). */
export type EmbedInput = { text: string; image?: undefined } | { image: Uint8Array; text?: undefined } | { text: string; image: Uint8Array };

export interface SearchHit {
  id: string;
  /** The ITM match logit `itm_score(cls_feats)[:, 1]` (upstream's re-ranking score); the ITC score when not re-ranked. */
  score: number;
  /** ITC cosine similarity / temperature, the candidate score. */
  itc: number;
}

/** What a search needs of a gallery: ITC candidates, and the image-encoder output of each one it re-ranks. */
export interface SearchableGallery {
  /** The `n` items whose ITC features have the highest cosine similarity with `query`, best first. */
  nearest(query: Float32Array, n: number): Promise<ReadonlyArray<{ id: string; similarity: number }>>;
  /** The item's image_encoder output [L, N, H]; undefined when it left the gallery meanwhile. */
  embeds(id: string): Promise<Float32Array | undefined>;
}

/** What `GET /info` says of a served model: sizes a client needs to know, read from its config. */
export interface ModelInfo {
  /** Hidden size of the cross-modal layers (and of the pooled features the heads read). */
  hiddenSize: number;
  /** Length of the normalized ITC embedding `/embed` answers; absent without ITC heads. */
  embeddingDim?: number;
  /** Tokens per text, `<s>` and `</s>` included, by task (longer texts are truncated). */
  maxTextTokens: Partial<Record<TaskName, number>>;
  /** Side of the square image the model sees, in pixels. */
  imageSize: number;
  /** dtype of the weights. */
  precision: 'float32' | 'float16';
}

export interface ModelService {
  /** The bundle's name (config.json `name` or folder name). */
  readonly name: string;
  /** Whether the bundle is a demo with random weights (its answers are meaningless). */
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly info: ModelInfo;
  /** Resolves when every session is loaded and warmed up. */
  ready(): Promise<void>;

  vqa(input: { image: Uint8Array; question: string; topK: number }, ctx: RequestContext): Promise<VqaAnswer[]>;
  entailment(input: { image: Uint8Array; hypothesis: string }, ctx: RequestContext): Promise<EntailmentResult>;
  nlvr2(input: { left: Uint8Array; right: Uint8Array; statement: string }, ctx: RequestContext): Promise<Nlvr2Result>;
  /** ITM match probabilities, one per pair, in request order. */
  itm(input: { pairs: Array<{ image: Uint8Array; text: string }> }, ctx: RequestContext): Promise<number[]>;
  /** Per `<mask>` of the text (in order), the top k fills: Hugging Face's fill-mask pipeline shape. */
  fillMask(input: { image: Uint8Array; text: string; topK: number }, ctx: RequestContext): Promise<FillMaskPrediction[][]>;
  embedText(text: string, ctx: RequestContext): Promise<Float32Array>;
  embedImage(image: Uint8Array, ctx: RequestContext): Promise<Float32Array>;
  /** Whether `embedPair` can answer: the bundle has Hugging Face's `itc_cross_modal_head`. */
  readonly embedsPairs: boolean;
  /**
   * L2-normalised embeddings of texts, images and image–text pairs (HF's `cross_embeds`; only
   * where `embedsPairs`), in order, as one request: the items share the stages' batches.
   */
  embed(items: readonly EmbedInput[], ctx: RequestContext): Promise<Float32Array[]>;
  /** How many tokens the model reads of `text` (after truncation): the `usage` of /v1/embeddings. */
  countTokens(text: string): number;
  /** Encodes an image for the gallery (uses and fills the image cache). */
  encodeImage(image: Uint8Array, ctx: RequestContext): Promise<ImageEncoding>;
  /**
   * Upstream's retrieval: ITC scores of `text` against the gallery, the top `candidates`
   * re-ranked by the ITM match logit (when `rerank` and the bundle has an ITM head), best `k` returned.
   */
  search(input: { text: string; k: number; candidates: number; rerank: boolean; gallery: SearchableGallery }, ctx: RequestContext): Promise<SearchHit[]>;
  /** Stops accepting work, finishes what is queued, releases sessions and workers. */
  close(): Promise<void>;
}
