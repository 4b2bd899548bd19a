import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { isDemoBundle } from '../../bundle/bundle-folders.js';
import { openSafetensors, toFloat32 } from '../../bundle/safetensors/read-safetensors.js';
import { SERVED_TASKS, TASKS, type TaskName } from '../../bundle/tasks.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import type { EmbedInput, EntailmentResult, FillMaskPrediction, ImageEncoding, ModelInfo, ModelService, Nlvr2Result, RequestContext, SearchableGallery, SearchHit, VqaAnswer } from '../model-service.js';
import type { ServerOptions } from '../options.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import { Admission } from './admission.js';
import { DynamicBatcher } from './dynamic-batcher.js';
import { checkDeadline, DeadlineError } from './errors.js';
import { encodeImages, encodeTexts, fuse, fuseTextFeats, runHead, runTokenHead, type ImageEmbeds, type ModelDims, type TextEncoding } from '../../runtime/graph-batches.js';
import { fillMaskPredictions, maskPositions } from '../../runtime/fill-mask.js';
import { readLabels } from '../../bundle/labels.js';
import { GraphRunner } from '../../runtime/graph-runner.js';
import { ImageCache, imageHash } from './image-cache.js';
import { entailmentResult, itmProbability, nlvr2Result, rankDescending, vqaAnswers } from '../../runtime/task-results.js';

export type BundleServiceOptions = Pick<ServerOptions, 'device' | 'threads' | 'maxBatch' | 'maxDelayMs' | 'maxQueue' | 'cacheMb'> & {
  /** Where the runtime says which execution provider it uses (default: warnings to stderr). */
  log?: (level: 'info' | 'warn', message: string) => void;
};

/** One request's row of a head stage: its text and one image encoding per fusion pass (NLVR2: left, right). */
interface FusionItem {
  text: TextEncoding;
  images: readonly Float32Array[];
}

/** One request's row of a token-head stage (MLM): its text, its image, and the token positions the head reads. */
interface TokenItem {
  text: TextEncoding;
  image: Float32Array;
  positions: readonly number[];
}

/**
 * A bundle served on ONNX Runtime: one worker thread holds its sessions (GraphRunner); each stage
 * — text encoder, image encoder, and fusion + head per task — has its own DynamicBatcher, so that
 * concurrent requests share batches stage by stage, and a request only waits for the stages it
 * needs. Image encodings go through an LRU cache keyed by the image bytes' hash. Every request
 * passes admission (bounded queue) and carries its deadline into every stage.
 */
export class BundleService implements ModelService {
  readonly name: string;
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly embedsPairs: boolean;
  readonly info: ModelInfo;
  readonly cache: ImageCache;
  private readonly admission: Admission;
  private readonly dims: ModelDims;
  private readonly labels: Partial<Record<TaskName, string[]>>;
  private readonly temperature: number | undefined;
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
    private readonly preprocessor: BundlePreprocessor,
    options: BundleServiceOptions,
    private readonly metrics: RuntimeMetrics,
  ) {
    const config = preprocessor.config;
    const arch = config.architecture;
    this.name = config.name || basename(bundleDir);
    this.isDemo = isDemoBundle(config);
    this.tasks = SERVED_TASKS.filter((task) => config.tasks[task] !== undefined);
    this.dims = {
      layers: arch.cross_modal.num_layers,
      hidden: arch.cross_modal.hidden_size,
      imageTokens: (arch.vision.image_size / arch.vision.patch_size) ** 2 + 1,
      imageSize: config.preprocessing.image_size,
    };
    this.info = {
      hiddenSize: arch.cross_modal.hidden_size,
      ...(arch.heads.itc ? { embeddingDim: arch.heads.itc.dim } : {}),
      maxTextTokens: Object.fromEntries(this.tasks.map((task) => [task, config.tasks[task]!.max_text_len])),
      imageSize: config.preprocessing.image_size,
      precision: config.weights.dtype,
    };
    this.labels = readLabels(bundleDir, config.labels);
    this.temperature = this.tasks.includes('itc') ? readTemperature(join(bundleDir, config.weights.file)) : undefined;
    this.cache = ImageCache.fromMegabytes(options.cacheMb, metrics);
    this.admission = new Admission(options.maxQueue, metrics);

    this.embedsPairs = this.tasks.includes('itc') && arch.heads.itc_cross_modal !== undefined;
    const fusionTasks = this.tasks.filter((task) => TASKS[task].headGraph !== undefined);
    const tokenTasks = this.tasks.filter((task) => TASKS[task].tokenHeadGraph !== undefined);
    const graphs = [
      'text_encoder',
      'image_encoder',
      ...(fusionTasks.length + tokenTasks.length > 0 || this.embedsPairs ? ['fusion'] : []),
      ...fusionTasks.map((task) => TASKS[task].headGraph!.name),
      ...tokenTasks.map((task) => TASKS[task].tokenHeadGraph!),
      ...(this.embedsPairs ? [PAIR_HEAD] : []),
    ];
    const log = options.log ?? ((level, message) => level === 'warn' && process.stderr.write(`${message}\n`));
    this.runner = GraphRunner.open(bundleDir, graphs, { device: options.device, ...(options.threads ? { threads: options.threads } : {}), warn: (message) => log('warn', message) });
    this.loaded = this.runner.then((runner) => {
      metrics.executionProvider(this.name, runner.provider, runner.fellBack);
      if (!runner.fellBack) log('info', `bundle '${this.name}': ONNX Runtime sessions on ${runner.provider}`);
    });
    this.loaded.catch(() => {}); // surfaced by ready() and by every request

    const withItc = this.tasks.includes('itc');
    const batcher = <I, O>(stage: string, run: (runner: GraphRunner, items: I[]) => Promise<O[]>) =>
      new DynamicBatcher<I, O>({ stage, model: this.name, maxBatch: options.maxBatch, maxDelayMs: options.maxDelayMs, metrics, run: async (items) => run(await this.runner, items) });
    this.textBatcher = batcher('text_encoder', (runner, rows) => encodeTexts(runner, rows, this.dims, withItc));
    this.imageBatcher = batcher('image_encoder', (runner, images) => encodeImages(runner, images, this.dims, withItc));
    // The same text fused with each pass's image (NLVR2: token type 1 left, 2 right), then the head.
    for (const task of fusionTasks) {
      const { name, passes } = TASKS[task].headGraph!;
      this.headBatchers[task] = batcher(`fusion_${task}`, async (runner, items: FusionItem[]) => {
        const inputs: Record<string, Float32Array> = {};
        for (const [i, pass] of passes.entries()) {
          inputs[pass.input] = await fuse(runner, items.map((item) => ({ text: item.text, image: item.images[i]!, tokenType: pass.tokenType })), this.dims);
        }
        return runHead(runner, name, inputs, items.length);
      });
    }
    this.pairBatcher = this.embedsPairs
      ? batcher('fusion_pair', async (runner, items: FusionItem[]) => {
          const cls = await fuse(runner, items.map((item) => ({ text: item.text, image: item.images[0]!, tokenType: 1 })), this.dims);
          return runHead(runner, PAIR_HEAD, { cls_feats: cls }, items.length, 'cross_embeds');
        })
      : undefined;
    // upstream compute_mlm: the text fused with its image (token type 1), the head on the asked rows only.
    for (const task of tokenTasks) {
      const graph = TASKS[task].tokenHeadGraph!;
      this.tokenHeadBatchers[task] = batcher(`fusion_${task}`, async (runner, items: TokenItem[]) => {
        const feats = await fuseTextFeats(runner, items.map((item) => ({ text: item.text, image: item.image, tokenType: 1 })), this.dims);
        return runTokenHead(runner, graph, items.map((item, i) => ({ feats: feats[i]!, positions: item.positions })), this.dims.hidden);
      });
    }
  }

  /** Reads the bundle's config, tokenizer and labels now; the sessions load in a worker until ready() resolves. */
  static create(bundleDir: string, options: BundleServiceOptions, metrics: RuntimeMetrics = NO_METRICS): BundleService {
    const preprocessor = BundlePreprocessor.open(bundleDir);
    // Every route takes text: a bundle without a tokenizer is a deployment mistake, refused at
    // start-up rather than answered with an error on every request.
    if (!preprocessor.config.tokenizer) {
      throw new BridgeTowerError(
        'E_BUNDLE',
        `bundle '${bundleDir}' has no tokenizer.json, so it cannot encode questions: convert it again with --tokenizer (roberta-base vocab.json + merges.txt, or a tokenizer.json)`,
        { bundle: bundleDir },
      );
    }
    return new BundleService(bundleDir, preprocessor, options, metrics);
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
    return this.request('vqa', ctx, async () => {
      const logits = await this.runFusionHead('vqa', 'question', input.question, [input.image], ctx);
      return vqaAnswers(logits, this.labels.vqa, input.topK);
    });
  }

  entailment(input: { image: Uint8Array; hypothesis: string }, ctx: RequestContext): Promise<EntailmentResult> {
    return this.request('snli', ctx, async () => entailmentResult(await this.runFusionHead('snli', 'hypothesis', input.hypothesis, [input.image], ctx)));
  }

  nlvr2(input: { left: Uint8Array; right: Uint8Array; statement: string }, ctx: RequestContext): Promise<Nlvr2Result> {
    return this.request('nlvr2', ctx, async () => nlvr2Result(await this.runFusionHead('nlvr2', 'statement', input.statement, [input.left, input.right], ctx)));
  }

  itm(input: { pairs: Array<{ image: Uint8Array; text: string }> }, ctx: RequestContext): Promise<number[]> {
    return this.request('itm', ctx, () => Promise.all(input.pairs.map(async (pair) => itmProbability(await this.runFusionHead('itm', 'text', pair.text, [pair.image], ctx)))));
  }

  fillMask(input: { image: Uint8Array; text: string; topK: number }, ctx: RequestContext): Promise<FillMaskPrediction[][]> {
    return this.request('mlm', ctx, async () => {
      const { inputIds } = this.preprocessor.encodeTexts([input.text], 'mlm');
      const ids = Array.from(inputIds, Number);
      const positions = maskPositions(ids, this.preprocessor.maskTokenId(), this.preprocessor.maxTextLength('mlm'));
      const [text, image] = await Promise.all([this.textBatcher.submit(inputIds, ctx.deadline), this.encodeImageCached(input.image, ctx)]);
      const logits = await this.tokenHeadBatchers.mlm!.submit({ text, image: image.embeds, positions }, ctx.deadline);
      return fillMaskPredictions(logits, ids, positions, input.topK, (tokens, options) => this.preprocessor.decode(tokens, options));
    });
  }

  embedText(text: string, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.encodeText(text, 'itc', 'text', ctx)).itc!);
  }

  embedImage(image: Uint8Array, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.encodeImageCached(image, ctx)).itc!);
  }

  embed(items: readonly EmbedInput[], ctx: RequestContext): Promise<Float32Array[]> {
    return this.request('itc', ctx, async () => {
      const pairAt = items.findIndex((item) => item.text !== undefined && item.image !== undefined);
      if (pairAt >= 0 && !this.pairBatcher) {
        throw new BridgeTowerError(
          'E_USAGE',
          `item ${pairAt} is an image–text pair, but bundle '${this.name}' has no itc_cross_modal_head to embed pairs with (only Hugging Face BridgeTowerForContrastiveLearning checkpoints, such as bridgetower-large-itm-mlm-itc, have one): embed the text and the image separately, or use such a bundle`,
          { index: pairAt },
        );
      }
      return Promise.all(items.map((item) => this.embedOne(item, ctx)));
    });
  }

  private async embedOne(item: EmbedInput, ctx: RequestContext): Promise<Float32Array> {
    if (item.image === undefined) return (await this.encodeText(item.text, 'itc', 'text', ctx)).itc!;
    if (item.text === undefined) return (await this.encodeImageCached(item.image, ctx)).itc!;
    const [text, image] = await Promise.all([this.encodeText(item.text, 'itc', 'text', ctx), this.encodeImageCached(item.image, ctx)]);
    return this.pairBatcher!.submit({ text, images: [image.embeds] }, ctx.deadline);
  }

  countTokens(text: string): number {
    const { inputIds } = this.preprocessor.encodeTexts([text], 'itc');
    return inputIds.length;
  }

  encodeImage(image: Uint8Array, ctx: RequestContext): Promise<ImageEncoding> {
    return this.request(undefined, ctx, () => this.encodeImageCached(image, ctx));
  }

  /**
   * Upstream's retrieval (irtr_itm_itc): ITC candidates (cosine / temperature) re-ranked by the
   * ITM match logit; ITC alone when `rerank` is false or the bundle has no ITM head.
   */
  search(input: { text: string; k: number; candidates: number; rerank: boolean; gallery: SearchableGallery }, ctx: RequestContext): Promise<SearchHit[]> {
    return this.request('itc', ctx, async () => {
      if (this.temperature === undefined) throw new BridgeTowerError('E_BUNDLE', `bundle '${this.name}' has ITC heads but its weights hold no 'temperature': convert it again`);
      const text = await this.encodeText(input.text, 'itc', 'text', ctx);
      const k = Math.max(0, Math.floor(input.k));
      const rerank = input.rerank && this.tasks.includes('itm');
      const found = await input.gallery.nearest(text.itc!, rerank ? Math.max(1, Math.floor(input.candidates)) : k);
      const candidates = found.map(({ id, similarity }) => ({ id, itc: similarity / this.temperature! }));
      if (!rerank) return candidates.slice(0, k).map((c) => ({ ...c, score: c.itc }));
      const scored = await Promise.all(
        candidates.map(async (candidate) => {
          const embeds = await input.gallery.embeds(candidate.id);
          if (!embeds) return undefined; // deleted since it was found
          // Checked here, not in the ITM batch: a bad item must not fail other requests' rows.
          this.checkEmbeds(candidate.id, embeds);
          const logits = await this.headBatchers.itm!.submit({ text, images: [embeds] }, ctx.deadline);
          return { ...candidate, score: logits[1]! };
        }),
      );
      const hits = scored.filter((hit): hit is SearchHit => hit !== undefined);
      return rankDescending(hits.map((hit) => hit.score))
        .slice(0, k)
        .map((r) => hits[r]!);
    });
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
      if (task) this.requireTask(task);
      checkDeadline(ctx.deadline, 'the request started');
      await this.loaded;
      return work();
    });
  }

  private requireTask(task: TaskName): void {
    if (!this.tasks.includes(task)) {
      throw new BridgeTowerError('E_USAGE', `bundle '${this.name}' has no ${task} head (it serves ${this.tasks.join(', ') || 'no task'}): use a bundle converted from a ${task} checkpoint`, { task });
    }
  }

  /** A gallery item's encoding must come from a bundle of this one's shape (L × N × H). */
  private checkEmbeds(id: string, embeds: Float32Array): void {
    const { layers: L, imageTokens: N, hidden: H } = this.dims;
    if (embeds.length !== L * N * H) {
      throw new BridgeTowerError('E_USAGE', `gallery item '${id}' has embeddings of ${embeds.length} values, not L×N×H = ${L}×${N}×${H}: it was encoded by another bundle; encode it again with '${this.name}'`, { id });
    }
  }

  /** The task's logits for one text and its images (one per fusion pass), encoded concurrently. */
  private async runFusionHead(task: TaskName, field: string, text: string, images: readonly Uint8Array[], ctx: RequestContext): Promise<Float32Array> {
    const [encodedText, encodedImages] = await Promise.all([this.encodeText(text, task, field, ctx), Promise.all(images.map((image) => this.encodeImageCached(image, ctx)))]);
    return this.headBatchers[task]!.submit({ text: encodedText, images: encodedImages.map((e) => e.embeds) }, ctx.deadline);
  }

  /** Tokenizes alone (own length, truncated to the task's max_text_len), then joins a text-encoder batch; errors name the request's `field`. */
  private encodeText(text: string, task: TaskName, field: string, ctx: RequestContext): Promise<TextEncoding> {
    const { inputIds } = this.preprocessor.encodeTexts([text], task, () => field);
    return this.textBatcher.submit(inputIds, ctx.deadline);
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
      const pixels = await this.preprocessor.pixelValues(bytes);
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

/** The head graph that turns a pair's cls_feats into its joint embedding (models/bridgetower/graphs.ts). */
const PAIR_HEAD = 'head_itc_cross';

/** The ITC temperature, read alone from the weights (never the whole, possibly 1 GB+, file). */
function readTemperature(weightsPath: string): number | undefined {
  const view = openSafetensors(weightsPath).tensors.get('temperature');
  if (!view) return undefined;
  const fd = openSync(weightsPath, 'r');
  try {
    return toFloat32(view.dtype, readTensorBytes(fd, view))[0];
  } finally {
    closeSync(fd);
  }
}
