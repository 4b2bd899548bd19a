import { BridgeTowerError } from '../common/errors.js';
import type { TaskName } from '../bundle/tasks.js';
import type { FillMaskPrediction } from '../runtime/fill-mask.js';
import { GraphRunner } from '../runtime/graph-runner.js';
import type { Device } from '../runtime/session.js';
import type { EntailmentResult, Nlvr2Result, VqaAnswer } from '../runtime/task-results.js';
import { BundleModel, type ModelInfo } from './bundle-model.js';
import { directStages } from './direct-stages.js';
import { loadImage, type ImageInput, type LoadedImage } from './image-input.js';
import { MemoryGallery } from './memory-gallery.js';
import type { Int8Weights } from '../runtime/cpu-int8.js';
import { servedPrecision, type Precision, type ServedPrecision } from './precision.js';
import { TaskPipeline, type ModelStages, type SearchHit } from './task-pipeline.js';

export interface LoadOptions {
  /** 'cuda' falls back to the CPU, reported through `onWarning` (default 'cpu'). */
  device?: Device;
  /** Graph precision variant; 'auto' (default): int8 on the CPU, fp16 on CUDA, else what the bundle has (docs/precision.md). */
  precision?: Precision;
  /** ONNX Runtime intra-op threads (default: one per core). */
  threads?: number;
  /** Rows per graph run when a call passes arrays (default 8). */
  maxBatch?: number;
  /** Where a CUDA fallback is reported (default: stderr). */
  onWarning?: (message: string) => void;
  /** Where the precision chosen, and why, is said (default: nowhere; `model.precisionSummary` has it). */
  onInfo?: (message: string) => void;
}

/** What `embed` takes: a text, an image, or both (a pair: needs Hugging Face's itc_cross_modal_head). */
export type EmbedItem = { text: string; image?: undefined } | { image: ImageInput; text?: undefined } | { text: string; image: ImageInput };

export interface SearchCallOptions {
  gallery: MemoryGallery;
  /** Hits returned (default 10). */
  k?: number;
  /** ITC candidates re-ranked by ITM (default 128, as the server). */
  candidates?: number;
  /** Re-rank by the ITM match logit where the bundle has an ITM head (default true). */
  rerank?: boolean;
}

const DEFAULT_MAX_BATCH = 8;
const DEFAULT_TOP_K = 5;

/**
 * A bundle loaded for use from code: `await BridgeTower.load('bundles/vqa')`. Each task method
 * takes one input (answering one result) or arrays (answering an array, run `maxBatch` rows a
 * graph run); images are file paths, Buffers or raw RGB. The tasks are the server's own code
 * (library/task-pipeline.ts), so a call answers what the HTTP route answers for the same input.
 * `dispose()` stops the ONNX Runtime worker.
 */
export class BridgeTower {
  readonly name: string;
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly info: ModelInfo;
  /** The execution provider the sessions run on (after a CUDA fallback: 'cpu'). */
  readonly device: Device;
  /** The precision variant the graphs were opened in. */
  readonly precision: Exclude<Precision, 'auto'>;
  /** int8 only: the weight set opened (s8; u8 on CPUs without VNNI). */
  readonly int8Weights: Int8Weights | undefined;
  /** The precision, the int8 weight set, and why each (what `onInfo` was told). */
  readonly precisionSummary: string;
  private readonly pipeline: TaskPipeline<LoadedImage>;
  private disposed = false;

  private constructor(
    readonly bundleDir: string,
    model: BundleModel,
    private readonly runner: GraphRunner,
    private readonly stages: ModelStages<LoadedImage>,
    served: ServedPrecision,
  ) {
    this.pipeline = new TaskPipeline(model, stages);
    this.name = model.name;
    this.isDemo = model.isDemo;
    this.tasks = model.tasks;
    this.info = model.info;
    this.device = runner.provider;
    this.precision = served.precision;
    this.int8Weights = served.graphs.int8Weights;
    this.precisionSummary = served.summary;
  }

  /** Opens the bundle's graphs (those its tasks need) in a worker thread and warms them up. */
  static async load(bundleDir: string, options: LoadOptions = {}): Promise<BridgeTower> {
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new BridgeTowerError('E_USAGE', `maxBatch must be a positive integer, got ${maxBatch}`);
    if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1)) throw new BridgeTowerError('E_USAGE', `threads must be a positive integer, got ${options.threads}`);
    if (options.device !== undefined && options.device !== 'cpu' && options.device !== 'cuda') throw new BridgeTowerError('E_USAGE', `device must be 'cpu' or 'cuda', got '${String(options.device)}'`);
    const model = BundleModel.open(bundleDir);
    const served = servedPrecision(bundleDir, model.preprocessor.config, options.precision, options.device ?? 'cpu');
    const said = `bundle '${model.name}': ${served.summary}`;
    if (served.graphs.int8MaySaturate) (options.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(said);
    else options.onInfo?.(said);
    const runner = await GraphRunner.open(bundleDir, model.graphs, {
      device: options.device ?? 'cpu',
      graphs: served.graphs,
      ...(options.threads ? { threads: options.threads } : {}),
      ...(options.onWarning ? { warn: options.onWarning } : {}),
    });
    return new BridgeTower(bundleDir, model, runner, directStages(runner, model, maxBatch), served);
  }

  /** VQA: the top `topK` (default 5) answers, best first, score σ(logit). Arrays: one answer list per (image, question). */
  vqa(image: ImageInput, question: string, options?: { topK?: number }): Promise<VqaAnswer[]>;
  vqa(images: readonly ImageInput[], questions: string | readonly string[], options?: { topK?: number }): Promise<VqaAnswer[][]>;
  async vqa(image: ImageInput | readonly ImageInput[], question: string | readonly string[], options: { topK?: number } = {}): Promise<VqaAnswer[] | VqaAnswer[][]> {
    const topK = positiveInteger(options.topK ?? DEFAULT_TOP_K, 'topK');
    return this.call(image, question, 'question', async (images, texts) => this.pipeline.vqa(zip(images, texts, (i, question) => ({ image: i, question })), topK, {}, rowField('question', image)));
  }

  /** SNLI-VE: entailment, neutral or contradiction, with the softmax of each. */
  entailment(image: ImageInput, hypothesis: string): Promise<EntailmentResult>;
  entailment(images: readonly ImageInput[], hypotheses: string | readonly string[]): Promise<EntailmentResult[]>;
  async entailment(image: ImageInput | readonly ImageInput[], hypothesis: string | readonly string[]): Promise<EntailmentResult | EntailmentResult[]> {
    return this.call(image, hypothesis, 'hypothesis', (images, texts) => this.pipeline.entailment(zip(images, texts, (i, h) => ({ image: i, hypothesis: h })), {}, rowField('hypothesis', image)));
  }

  /** NLVR2: whether the statement holds of the two images (left, right). Arrays: lefts[i], rights[i], statements[i]. */
  nlvr2(left: ImageInput, right: ImageInput, statement: string): Promise<Nlvr2Result>;
  nlvr2(lefts: readonly ImageInput[], rights: readonly ImageInput[], statements: string | readonly string[]): Promise<Nlvr2Result[]>;
  async nlvr2(left: ImageInput | readonly ImageInput[], right: ImageInput | readonly ImageInput[], statement: string | readonly string[]): Promise<Nlvr2Result | Nlvr2Result[]> {
    this.checkOpen();
    const batch = Array.isArray(left);
    if (batch !== Array.isArray(right)) throw new BridgeTowerError('E_USAGE', 'nlvr2: pass the left and right images both as single images or both as arrays of the same length');
    const lefts = await this.loadAll(batch ? (left as ImageInput[]) : [left as ImageInput], 'left');
    const rights = await this.loadAll(batch ? (right as ImageInput[]) : [right as ImageInput], 'right');
    if (lefts.length !== rights.length) throw new BridgeTowerError('E_USAGE', `nlvr2: ${lefts.length} left images but ${rights.length} right images: pass one right image per left one`);
    const statements = texts(statement, lefts.length, 'statement');
    const results = await this.pipeline.nlvr2(lefts.map((l, i) => ({ left: l, right: rights[i]!, statement: statements[i]! })), {}, rowField('statement', left));
    return batch ? results : results[0]!;
  }

  /** ITM: the probability that the text describes the image. Arrays: one probability per pair. */
  itm(image: ImageInput, text: string): Promise<number>;
  itm(images: readonly ImageInput[], texts: string | readonly string[]): Promise<number[]>;
  async itm(image: ImageInput | readonly ImageInput[], text: string | readonly string[]): Promise<number | number[]> {
    return this.call(image, text, 'text', (images, rows) => this.pipeline.itm(zip(images, rows, (i, t) => ({ image: i, text: t })), {}, rowField('text', image)));
  }

  /** Masked LM: per `<mask>` of the text, the top `topK` fills (Hugging Face's fill-mask shape). Needs an MLM head. */
  fillMask(image: ImageInput, text: string, options?: { topK?: number }): Promise<FillMaskPrediction[][]>;
  fillMask(images: readonly ImageInput[], texts: string | readonly string[], options?: { topK?: number }): Promise<FillMaskPrediction[][][]>;
  async fillMask(image: ImageInput | readonly ImageInput[], text: string | readonly string[], options: { topK?: number } = {}): Promise<FillMaskPrediction[][] | FillMaskPrediction[][][]> {
    const topK = positiveInteger(options.topK ?? DEFAULT_TOP_K, 'topK');
    return this.call(image, text, 'text', (images, rows) => this.pipeline.fillMask(zip(images, rows, (i, t) => ({ image: i, text: t })), topK, {}, rowField('text', image)));
  }

  /**
   * L2-normalised ITC embeddings: `{text}`, `{image}`, or `{text, image}` (a pair's cross-modal
   * embedding, where the bundle has the head), or an array of them.
   */
  embed(item: EmbedItem): Promise<Float32Array>;
  embed(items: readonly EmbedItem[]): Promise<Float32Array[]>;
  async embed(items: EmbedItem | readonly EmbedItem[]): Promise<Float32Array | Float32Array[]> {
    this.checkOpen();
    const batch = Array.isArray(items);
    const list = (batch ? items : [items]) as readonly EmbedItem[];
    const loaded = await Promise.all(
      list.map(async (item, i) => {
        if (item === null || typeof item !== 'object' || (item.text === undefined && item.image === undefined)) {
          throw new BridgeTowerError('E_USAGE', `embed: item ${i} must be {text}, {image} or {text, image}`, { index: i });
        }
        const image = item.image === undefined ? undefined : await loadImage(item.image, batch ? `item ${i}'s image` : 'image');
        return image === undefined ? { text: item.text! } : item.text === undefined ? { image } : { text: item.text, image };
      }),
    );
    const out = await this.pipeline.embed(loaded, {}, batch ? (i) => `items[${i}].text` : 'text');
    return batch ? out : out[0]!;
  }

  /** A new, empty in-memory gallery whose images this model encodes; `search` ranks it. */
  createGallery(): MemoryGallery {
    return new MemoryGallery(async (images) => {
      this.checkOpen();
      this.pipeline.requireTask('itc');
      const loaded = await this.loadAll(images, 'gallery image');
      // The image stage alone: the ITC feature and the image-encoder output, both kept.
      const encodings = await this.stages.images(loaded, {});
      return encodings.map(({ itc, embeds }) => ({ itc: itc!, embeds }));
    });
  }

  /**
   * Text → gallery images, as the server's POST /search: ITC candidates (cosine / temperature),
   * the best `candidates` re-ranked by the ITM match logit; the best `k`.
   */
  async search(text: string, options: SearchCallOptions): Promise<SearchHit[]> {
    this.checkOpen();
    if (!(options?.gallery instanceof MemoryGallery)) throw new BridgeTowerError('E_USAGE', 'search: pass { gallery } made by model.createGallery()');
    const k = positiveInteger(options.k ?? 10, 'k');
    const candidates = positiveInteger(options.candidates ?? 128, 'candidates');
    return this.pipeline.search(text, { k, candidates, rerank: options.rerank ?? true, gallery: options.gallery }, {});
  }

  /** Stops the worker and releases the sessions; later calls are refused. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.runner.close();
  }

  /** The single-or-array convention of the (image, text) tasks: arrays in, arrays out. */
  private async call<R>(image: ImageInput | readonly ImageInput[], text: string | readonly string[], textName: string, run: (images: LoadedImage[], texts: string[]) => Promise<R[]>): Promise<R | R[]> {
    this.checkOpen();
    const batch = Array.isArray(image);
    if (!batch && typeof text !== 'string') throw new BridgeTowerError('E_USAGE', `one image takes one ${textName} string; pass an array of images for several`);
    const images = await this.loadAll(batch ? (image as ImageInput[]) : [image as ImageInput], 'image');
    const results = await run(images, texts(text, images.length, textName));
    return batch ? results : results[0]!;
  }

  private loadAll(images: readonly ImageInput[], what: string): Promise<LoadedImage[]> {
    return Promise.all(images.map((image, i) => loadImage(image, images.length > 1 ? `${what} ${i}` : what)));
  }

  private checkOpen(): void {
    if (this.disposed) throw new BridgeTowerError('E_USAGE', `model '${this.name}' was disposed: load it again with BridgeTower.load()`);
  }
}

/** One text for every image, or one per image. */
function texts(text: string | readonly string[], count: number, name: string): string[] {
  if (typeof text === 'string') return Array.from({ length: count }, () => text);
  if (!Array.isArray(text) || text.length !== count) {
    throw new BridgeTowerError('E_USAGE', `${count} images but ${Array.isArray(text) ? text.length : 'no'} ${name}s: pass one ${name} for all, or one per image`);
  }
  return [...text];
}

function zip<A, B, R>(as: readonly A[], bs: readonly B[], f: (a: A, b: B) => R): R[] {
  return as.map((a, i) => f(a, bs[i]!));
}

/** Tokenizer errors name `question` for a single call, `question[3]` for row 3 of an array call. */
function rowField(name: string, input: unknown): string | ((i: number) => string) {
  return Array.isArray(input) ? (i) => `${name}[${i}]` : name;
}

function positiveInteger(value: number, name: string): number {
  if (!(Number.isInteger(value) && value >= 1)) throw new BridgeTowerError('E_USAGE', `${name} must be a positive integer, got ${value}`);
  return value;
}
