import type { TaskName } from '../../bundle/tasks.js';
import type { GraphPrecision } from '../../bundle/config.js';
import { BundleModel } from '../../library/bundle-model.js';
import { servedPrecision } from '../../library/precision.js';
import type { Int8Weights } from '../../runtime/cpu-int8.js';
import { STAGE_RUNS, type FusionItem, type TokenItem } from '../../library/stage-runs.js';
import { TaskPipeline, type ModelStages } from '../../library/task-pipeline.js';
import type { ImageEmbeds, TextEncoding } from '../../runtime/graph-batches.js';
import { GraphRunner } from '../../runtime/graph-runner.js';
import type { EmbedInput, EntailmentResult, FillMaskPrediction, ImageEncoding, ModelInfo, ModelService, Nlvr2Result, RequestContext, SearchableGallery, SearchHit, VqaAnswer } from '../model-service.js';
import type { ServerOptions } from '../options.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import { Admission } from './admission.js';
import { DynamicBatcher } from './dynamic-batcher.js';
import { checkDeadline, DeadlineError } from './errors.js';
import { ImageCache, imageHash } from './image-cache.js';

export type BundleServiceOptions = Pick<ServerOptions, 'device' | 'threads' | 'maxBatch' | 'maxDelayMs' | 'maxQueue' | 'cacheMb'> & Partial<Pick<ServerOptions, 'precision'>> & {
  /** Where the runtime says which execution provider it uses (default: warnings to stderr). */
  log?: (level: 'info' | 'warn', message: string) => void;
};

/**
 * A bundle served on ONNX Runtime: one worker thread holds its sessions (GraphRunner); each stage
 * — text encoder, image encoder, and fusion + head per task — has its own DynamicBatcher, so that
 * concurrent requests share batches stage by stage, and a request only waits for the stages it
 * needs. Image encodings go through an LRU cache keyed by the image bytes' hash. Every request
 * passes admission (bounded queue) and carries its deadline into every stage.
 *
 * The tasks themselves (tokenizing, which stages in which order, decoding logits) are the
 * library's TaskPipeline, the same code `BridgeTower` runs: this class only supplies batched,
 * cached stages and the request's admission and deadline.
 */
export class BundleService implements ModelService {
  readonly name: string;
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly embedsPairs: boolean;
  readonly info: ModelInfo;
  readonly precision: GraphPrecision;
  readonly int8Weights: Int8Weights | undefined;
  readonly cache: ImageCache;
  private readonly pipeline: TaskPipeline<Uint8Array>;
  private readonly admission: Admission;
  private readonly runner: Promise<GraphRunner>;
  private readonly loaded: Promise<void>;
  private readonly textBatcher: DynamicBatcher<BigInt64Array, TextEncoding>;
  private readonly imageBatcher: DynamicBatcher<Float32Array, ImageEmbeds>;
  /** Fusion + head, one stage per served task with a head graph. */
  private readonly headBatchers: Partial<Record<TaskName, DynamicBatcher<FusionItem, Float32Array>>> = {};
  /** Fusion (image token type 1) + head_itc_cross: pair embeddings, with Hugging Face's cross-modal ITC head. */
  private readonly pairBatcher: DynamicBatcher<FusionItem, Float32Array> | undefined;
  /** Fusion + a head on chosen text_feats rows, one stage per served task with a token head graph. */
  private readonly tokenHeadBatchers: Partial<Record<TaskName, DynamicBatcher<TokenItem, Float32Array>>> = {};
  /** Images being encoded now, by hash: a concurrent request for the same image waits for that one. */
  private readonly encoding = new Map<string, Promise<ImageEncoding>>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly bundleDir: string,
    private readonly model: BundleModel,
    options: BundleServiceOptions,
    private readonly metrics: RuntimeMetrics,
  ) {
    this.name = model.name;
    this.isDemo = model.isDemo;
    this.tasks = model.tasks;
    this.info = model.info;
    this.embedsPairs = model.embedsPairs;
    this.cache = ImageCache.fromMegabytes(options.cacheMb, metrics);
    this.admission = new Admission(options.maxQueue, metrics);

    const log = options.log ?? ((level, message) => level === 'warn' && process.stderr.write(`${message}\n`));
    // Chosen here, before the worker starts: /info says it while the sessions still load.
    const served = servedPrecision(bundleDir, model.preprocessor.config, options.precision, options.device);
    this.precision = served.precision;
    this.int8Weights = served.graphs.int8Weights;
    log(served.graphs.int8MaySaturate ? 'warn' : 'info', `bundle '${this.name}': ${served.summary}`);
    this.runner = GraphRunner.open(bundleDir, model.graphs, { device: options.device, graphs: served.graphs, ...(options.threads ? { threads: options.threads } : {}), warn: (message) => log('warn', message) });
    this.loaded = this.runner.then((runner) => {
      metrics.executionProvider(this.name, runner.provider, runner.fellBack);
      metrics.graphPrecision(this.name, this.precision, this.int8Weights);
      if (!runner.fellBack) log('info', `bundle '${this.name}': ONNX Runtime sessions on ${runner.provider}`);
    });
    this.loaded.catch(() => {}); // surfaced by ready() and by every request

    const batcher = <I, O>(stage: string, run: (runner: GraphRunner, items: I[]) => Promise<O[]>) =>
      new DynamicBatcher<I, O>({ stage, model: this.name, maxBatch: options.maxBatch, maxDelayMs: options.maxDelayMs, metrics, run: async (items) => run(await this.runner, items) });
    this.textBatcher = batcher('text_encoder', (runner, rows) => STAGE_RUNS.texts(runner, model, rows));
    this.imageBatcher = batcher('image_encoder', (runner, pixels) => STAGE_RUNS.images(runner, model, pixels));
    for (const task of model.fusionTasks) this.headBatchers[task] = batcher(`fusion_${task}`, (runner, items: FusionItem[]) => STAGE_RUNS.head(runner, model, task, items));
    this.pairBatcher = model.embedsPairs ? batcher('fusion_pair', (runner, items: FusionItem[]) => STAGE_RUNS.pair(runner, model, items)) : undefined;
    for (const task of model.tokenTasks) this.tokenHeadBatchers[task] = batcher(`fusion_${task}`, (runner, items: TokenItem[]) => STAGE_RUNS.tokenHead(runner, model, task, items));

    // Each row of a call joins its stage's batch alone: rows of concurrent requests share graph runs.
    const submitEach = <I, O>(stage: DynamicBatcher<I, O> | undefined, rows: readonly I[], deadline: number | undefined) =>
      Promise.all(rows.map((row) => stage!.submit(row, deadline ?? Number.POSITIVE_INFINITY)));
    const stages: ModelStages<Uint8Array> = {
      texts: (rows, ctx) => submitEach(this.textBatcher, rows, ctx.deadline),
      images: (images, ctx) => Promise.all(images.map((bytes) => this.encodeImageCached(bytes, ctx as RequestContext))),
      head: (task, items, ctx) => submitEach(this.headBatchers[task], items, ctx.deadline),
      pair: (items, ctx) => submitEach(this.pairBatcher, items, ctx.deadline),
      tokenHead: (task, items, ctx) => submitEach(this.tokenHeadBatchers[task], items, ctx.deadline),
    };
    this.pipeline = new TaskPipeline(model, stages);
  }

  /** Reads the bundle's config, tokenizer and labels now; the sessions load in a worker until ready() resolves. */
  static create(bundleDir: string, options: BundleServiceOptions, metrics: RuntimeMetrics = NO_METRICS): BundleService {
    return new BundleService(bundleDir, BundleModel.open(bundleDir), options, metrics);
  }

  /** create(), then waits until every session is loaded and warmed up. */
  static async open(bundleDir: string, options: BundleServiceOptions, metrics: RuntimeMetrics = NO_METRICS): Promise<BundleService> {
    const service = BundleService.create(bundleDir, options, metrics);
    try {
      await service.ready();
    } catch (error) {
      await service.close().catch(() => {});
      throw error;
    }
    return service;
  }

  ready(): Promise<void> {
    return this.loaded;
  }

  /** Requests admitted and not yet answered. */
  get queueDepth(): number {
    return this.admission.depth;
  }

  vqa(input: { image: Uint8Array; question: string; topK: number }, ctx: RequestContext): Promise<VqaAnswer[]> {
    return this.request('vqa', ctx, async () => (await this.pipeline.vqa([input], input.topK, ctx))[0]!);
  }

  entailment(input: { image: Uint8Array; hypothesis: string }, ctx: RequestContext): Promise<EntailmentResult> {
    return this.request('snli', ctx, async () => (await this.pipeline.entailment([input], ctx))[0]!);
  }

  nlvr2(input: { left: Uint8Array; right: Uint8Array; statement: string }, ctx: RequestContext): Promise<Nlvr2Result> {
    return this.request('nlvr2', ctx, async () => (await this.pipeline.nlvr2([input], ctx))[0]!);
  }

  itm(input: { pairs: Array<{ image: Uint8Array; text: string }> }, ctx: RequestContext): Promise<number[]> {
    return this.request('itm', ctx, () => this.pipeline.itm(input.pairs, ctx));
  }

  fillMask(input: { image: Uint8Array; text: string; topK: number }, ctx: RequestContext): Promise<FillMaskPrediction[][]> {
    return this.request('mlm', ctx, async () => (await this.pipeline.fillMask([input], input.topK, ctx))[0]!);
  }

  embedText(text: string, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.pipeline.embed([{ text }], ctx))[0]!);
  }

  embedImage(image: Uint8Array, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.pipeline.embed([{ image }], ctx))[0]!);
  }

  embed(items: readonly EmbedInput[], ctx: RequestContext): Promise<Float32Array[]> {
    return this.request('itc', ctx, () => this.pipeline.embed(items, ctx));
  }

  countTokens(text: string): number {
    return this.pipeline.countTokens(text);
  }

  encodeImage(image: Uint8Array, ctx: RequestContext): Promise<ImageEncoding> {
    return this.request(undefined, ctx, () => this.encodeImageCached(image, ctx));
  }

  /** Upstream's retrieval: the library's TaskPipeline#search over the server's gallery. */
  search(input: { text: string; k: number; candidates: number; rerank: boolean; gallery: SearchableGallery }, ctx: RequestContext): Promise<SearchHit[]> {
    return this.request('itc', ctx, () => this.pipeline.search(input.text, input, ctx));
  }

  /** Refuses new requests, answers the admitted ones, then stops the stages and the worker. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.admission.close();
      const batchers = [this.textBatcher, this.imageBatcher, ...Object.values(this.headBatchers), ...Object.values(this.tokenHeadBatchers), ...(this.pairBatcher ? [this.pairBatcher] : [])];
      await Promise.all(batchers.map((b) => b.close()));
      const runner = await this.runner.catch(() => undefined);
      await runner?.close();
    })();
    return this.closing;
  }

  /** Admission, the task check and the deadline around one request's work. */
  private request<T>(task: TaskName | undefined, ctx: RequestContext, work: () => Promise<T>): Promise<T> {
    return this.admission.run(async () => {
      if (task) this.pipeline.requireTask(task);
      checkDeadline(ctx.deadline, 'the request started');
      await this.loaded;
      return work();
    });
  }

  /** The image's encoding from the cache, from a concurrent request's encoding of it, or from the image encoder. */
  private async encodeImageCached(bytes: Uint8Array, ctx: RequestContext): Promise<ImageEncoding> {
    const hash = imageHash(bytes);
    const cached = this.cache.get(hash);
    if (cached) return cached;
    const shared = this.encoding.get(hash);
    if (shared) {
      try {
        return await shared;
      } catch (error) {
        // Another request's deadline is not this one's: encode it ourselves.
        if (!(error instanceof DeadlineError)) throw error;
      }
    }
    const work = (async () => {
      const pixels = await this.model.preprocessor.pixelValues(bytes);
      const { embeds, itc } = await this.imageBatcher.submit(pixels, ctx.deadline);
      const encoding: ImageEncoding = { hash, embeds, ...(itc ? { itc } : {}) };
      this.cache.set(encoding);
      return encoding;
    })();
    this.encoding.set(hash, work);
    try {
      return await work;
    } finally {
      if (this.encoding.get(hash) === work) this.encoding.delete(hash);
    }
  }
}
