import type { GraphPrecision } from '../bundle/config.js';
import type { TaskName } from '../bundle/tasks.js';
import type { Int8Weights } from '../runtime/cpu-int8.js';

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
export type EmbedInput = LibraryEmbedInput<Uint8Array>;

// The shapes the library's model object answers with: the routes serialize the same values.
export type { ModelInfo } from '../library/bundle-model.js';
import type { ModelInfo } from '../library/bundle-model.js';
export type { SearchableGallery, SearchHit } from '../library/task-pipeline.js';
import type { EmbedInput as LibraryEmbedInput, SearchableGallery, SearchHit } from '../library/task-pipeline.js';

export interface ModelService {
  /** The bundle's name (config.json `name` or folder name). */
  readonly name: string;
  /** Whether the bundle is a demo with random weights (its answers are meaningless). */
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly info: ModelInfo;
  /** The precision variant its graphs are opened in (library/precision.ts; `--precision`). */
  readonly precision: GraphPrecision;
  /** int8 only: the weight set opened (s8; u8 on CPUs without VNNI: runtime/cpu-int8.ts). */
  readonly int8Weights?: Int8Weights;
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
