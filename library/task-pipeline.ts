import { BridgeTowerError } from '../common/errors.js';
import type { TaskName } from '../bundle/tasks.js';
import { fillMaskPredictions, maskPositions, type FillMaskPrediction } from '../runtime/fill-mask.js';
import type { ImageEmbeds, TextEncoding } from '../runtime/graph-batches.js';
import { entailmentResult, itmProbability, nlvr2Result, rankDescending, vqaAnswers, type EntailmentResult, type Nlvr2Result, type VqaAnswer } from '../runtime/task-results.js';
import type { BundleModel } from './bundle-model.js';
import type { FusionItem, TokenItem } from './stage-runs.js';

/** What a stage call carries: the server's request deadline (the library has none). */
export interface StageContext {
  /** Absolute time (ms since epoch, `Date.now()` clock) after which the work is abandoned. */
  readonly deadline?: number;
}

/**
 * The stages a task's flow goes through, each taking the rows of one call and answering in order.
 * The library runs them directly on the runner (one graph run per chunk of rows); the server
 * submits each row to its stage's dynamic batcher (rows of concurrent requests share runs) and
 * puts an image cache in front of the image encoder. `Image` is what the caller hands in.
 */
export interface ModelStages<Image> {
  texts(rows: readonly BigInt64Array[], ctx: StageContext): Promise<TextEncoding[]>;
  images(images: readonly Image[], ctx: StageContext): Promise<ImageEmbeds[]>;
  head(task: TaskName, items: readonly FusionItem[], ctx: StageContext): Promise<Float32Array[]>;
  pair(items: readonly FusionItem[], ctx: StageContext): Promise<Float32Array[]>;
  tokenHead(task: TaskName, items: readonly TokenItem[], ctx: StageContext): Promise<Float32Array[]>;
}

/** A text, an image, or both (a pair: Hugging Face's cross-modal embedding). */
export type EmbedInput<Image> = { text: string; image?: undefined } | { image: Image; text?: undefined } | { text: string; image: Image };

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

export interface SearchOptions {
  k: number;
  candidates: number;
  rerank: boolean;
  gallery: SearchableGallery;
}

/** How tokenizer errors name a text: one field name for all, or one per row. */
export type FieldNames = string | ((index: number) => string);

/**
 * The tasks as flows over the stages: tokenize (the bundle's preprocessor), encode texts and
 * images, fuse and run the head, decode logits into answers (runtime/task-results.ts). The one
 * code path of the library's `BridgeTower` and the server's `BundleService`: only the stages
 * differ (direct runs vs. dynamic batchers with a cache).
 */
export class TaskPipeline<Image> {
  constructor(
    readonly model: BundleModel,
    private readonly stages: ModelStages<Image>,
  ) {}

  requireTask(task: TaskName): void {
    const { tasks, name } = this.model;
    if (!tasks.includes(task)) {
      throw new BridgeTowerError('E_USAGE', `bundle '${name}' has no ${task} head (it serves ${tasks.join(', ') || 'no task'}): use a bundle converted from a ${task} checkpoint`, { task });
    }
  }

  async vqa(items: ReadonlyArray<{ image: Image; question: string }>, topK: number, ctx: StageContext, field: FieldNames = 'question'): Promise<VqaAnswer[][]> {
    this.requireTask('vqa');
    const logits = await this.fusionLogits('vqa', items.map((item) => ({ text: item.question, images: [item.image] })), field, ctx);
    return logits.map((row) => vqaAnswers(row, this.model.labels.vqa, topK));
  }

  async entailment(items: ReadonlyArray<{ image: Image; hypothesis: string }>, ctx: StageContext, field: FieldNames = 'hypothesis'): Promise<EntailmentResult[]> {
    this.requireTask('snli');
    return (await this.fusionLogits('snli', items.map((item) => ({ text: item.hypothesis, images: [item.image] })), field, ctx)).map(entailmentResult);
  }

  async nlvr2(items: ReadonlyArray<{ left: Image; right: Image; statement: string }>, ctx: StageContext, field: FieldNames = 'statement'): Promise<Nlvr2Result[]> {
    this.requireTask('nlvr2');
    return (await this.fusionLogits('nlvr2', items.map((item) => ({ text: item.statement, images: [item.left, item.right] })), field, ctx)).map(nlvr2Result);
  }

  /** ITM match probabilities, one per pair, in order. */
  async itm(pairs: ReadonlyArray<{ image: Image; text: string }>, ctx: StageContext, field: FieldNames = 'text'): Promise<number[]> {
    this.requireTask('itm');
    return (await this.fusionLogits('itm', pairs.map((pair) => ({ text: pair.text, images: [pair.image] })), field, ctx)).map(itmProbability);
  }

  /** Per item, per `<mask>` of its text (in order), the top k fills: Hugging Face's fill-mask pipeline shape. */
  async fillMask(items: ReadonlyArray<{ image: Image; text: string }>, topK: number, ctx: StageContext, field: FieldNames = 'text'): Promise<FillMaskPrediction[][][]> {
    this.requireTask('mlm');
    const { preprocessor } = this.model;
    const maskId = preprocessor.maskTokenId();
    const rows = items.map((item, i) => preprocessor.encodeTexts([item.text], 'mlm', () => fieldName(field, i)).inputIds);
    const ids = rows.map((row) => Array.from(row, Number));
    const positions = ids.map((row) => maskPositions(row, maskId, preprocessor.maxTextLength('mlm')));
    const [texts, images] = await Promise.all([this.stages.texts(rows, ctx), this.stages.images(items.map((item) => item.image), ctx)]);
    const logits = await this.stages.tokenHead('mlm', items.map((_, i) => ({ text: texts[i]!, image: images[i]!.embeds, positions: positions[i]! })), ctx);
    return logits.map((row, i) => fillMaskPredictions(row, ids[i]!, positions[i]!, topK, (tokens, options) => preprocessor.decode(tokens, options)));
  }

  /**
   * L2-normalised ITC embeddings of texts and images, and pairs' cross-modal embeddings (where the
   * bundle has the head), in order; all texts share one text-stage call, all images one image-stage call.
   */
  async embed(items: ReadonlyArray<EmbedInput<Image>>, ctx: StageContext, field: FieldNames = 'text'): Promise<Float32Array[]> {
    this.requireTask('itc');
    const pairAt = items.findIndex((item) => item.text !== undefined && item.image !== undefined);
    if (pairAt >= 0 && !this.model.embedsPairs) {
      throw new BridgeTowerError(
        'E_USAGE',
        `item ${pairAt} is an image–text pair, but bundle '${this.model.name}' has no itc_cross_modal_head to embed pairs with (only Hugging Face BridgeTowerForContrastiveLearning checkpoints, such as bridgetower-large-itm-mlm-itc, have one): embed the text and the image separately, or use such a bundle`,
        { index: pairAt },
      );
    }
    const withText = items.flatMap((item, i) => (item.text !== undefined ? [i] : []));
    const withImage = items.flatMap((item, i) => (item.image !== undefined ? [i] : []));
    const [texts, images] = await Promise.all([
      this.encodeTexts('itc', withText.map((i) => items[i]!.text!), (at) => fieldName(field, withText[at]!), ctx),
      this.stages.images(withImage.map((i) => items[i]!.image!), ctx),
    ]);
    const textOf = new Map(withText.map((item, at) => [item, texts[at]!]));
    const imageOf = new Map(withImage.map((item, at) => [item, images[at]!]));
    const pairs = items.flatMap((item, i) => (item.text !== undefined && item.image !== undefined ? [i] : []));
    const pairEmbeds = pairs.length ? await this.stages.pair(pairs.map((i) => ({ text: textOf.get(i)!, images: [imageOf.get(i)!.embeds] })), ctx) : [];
    const pairOf = new Map(pairs.map((item, at) => [item, pairEmbeds[at]!]));
    return items.map((_, i) => pairOf.get(i) ?? textOf.get(i)?.itc ?? imageOf.get(i)!.itc!);
  }

  /** How many tokens the model reads of `text` (after truncation to the ITC length). */
  countTokens(text: string): number {
    return this.model.preprocessor.encodeTexts([text], 'itc').inputIds.length;
  }

  /**
   * Upstream's retrieval (irtr_itm_itc): ITC candidates (cosine / temperature) re-ranked by the
   * ITM match logit; ITC alone when `rerank` is false or the bundle has no ITM head.
   */
  async search(text: string, options: SearchOptions, ctx: StageContext): Promise<SearchHit[]> {
    this.requireTask('itc');
    const { temperature, tasks, name } = this.model;
    if (temperature === undefined) throw new BridgeTowerError('E_BUNDLE', `bundle '${name}' has ITC heads but its weights hold no 'temperature': convert it again`);
    const [encoded] = await this.encodeTexts('itc', [text], () => 'text', ctx);
    const k = Math.max(0, Math.floor(options.k));
    const rerank = options.rerank && tasks.includes('itm');
    const found = await options.gallery.nearest(encoded!.itc!, rerank ? Math.max(1, Math.floor(options.candidates)) : k);
    const candidates = found.map(({ id, similarity }) => ({ id, itc: similarity / temperature }));
    if (!rerank) return candidates.slice(0, k).map((c) => ({ ...c, score: c.itc }));
    const fetched = await Promise.all(candidates.map(async (candidate) => ({ ...candidate, embeds: await options.gallery.embeds(candidate.id) })));
    // Deleted since it was found: dropped. Checked here, not in the ITM run: a bad item must not fail other rows.
    const kept = fetched.filter((c): c is typeof c & { embeds: Float32Array } => c.embeds !== undefined);
    for (const candidate of kept) this.checkEmbeds(candidate.id, candidate.embeds);
    const logits = kept.length ? await this.stages.head('itm', kept.map((c) => ({ text: encoded!, images: [c.embeds] })), ctx) : [];
    const hits = kept.map(({ id, itc }, i) => ({ id, itc, score: logits[i]![1]! }));
    return rankDescending(hits.map((hit) => hit.score))
      .slice(0, k)
      .map((r) => hits[r]!);
  }

  /** Each text tokenized alone (own length, truncated to the task's max_text_len), then one text-stage call. */
  private encodeTexts(task: TaskName, texts: readonly string[], fieldOf: (index: number) => string, ctx: StageContext): Promise<TextEncoding[]> {
    if (texts.length === 0) return Promise.resolve([]);
    const rows = texts.map((text, i) => this.model.preprocessor.encodeTexts([text], task, () => fieldOf(i)).inputIds);
    return this.stages.texts(rows, ctx);
  }

  /** A task's logits for each text and its images (one per fusion pass), texts and images encoded concurrently. */
  private async fusionLogits(task: TaskName, items: ReadonlyArray<{ text: string; images: readonly Image[] }>, field: FieldNames, ctx: StageContext): Promise<Float32Array[]> {
    if (items.length === 0) return [];
    const passes = items[0]!.images.length;
    const [texts, images] = await Promise.all([
      this.encodeTexts(task, items.map((item) => item.text), (i) => fieldName(field, i), ctx),
      this.stages.images(items.flatMap((item) => item.images), ctx),
    ]);
    return this.stages.head(task, items.map((_, i) => ({ text: texts[i]!, images: images.slice(i * passes, (i + 1) * passes).map((image) => image.embeds) })), ctx);
  }

  /** A gallery item's encoding must come from a bundle of this one's shape (L × N × H). */
  private checkEmbeds(id: string, embeds: Float32Array): void {
    const { layers: L, imageTokens: N, hidden: H } = this.model.dims;
    if (embeds.length !== L * N * H) {
      throw new BridgeTowerError('E_USAGE', `gallery item '${id}' has embeddings of ${embeds.length} values, not L×N×H = ${L}×${N}×${H}: it was encoded by another bundle; encode it again with '${this.model.name}'`, {
        id,
      });
    }
  }
}

function fieldName(field: FieldNames, index: number): string {
  return typeof field === 'string' ? field : field(index);
}
