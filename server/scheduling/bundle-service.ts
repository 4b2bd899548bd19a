import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { isDemoBundle } from '../../bundle/bundle-folders.js';
import { openSafetensors, toFloat32 } from '../../bundle/safetensors/read-safetensors.js';
import { SERVED_TASKS, TASKS, type TaskName } from '../../bundle/tasks.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import type { EntailmentResult, ImageEncoding, ModelInfo, ModelService, Nlvr2Result, RequestContext, SearchHit, VqaAnswer } from '../model-service.js';
import type { ServerOptions } from '../options.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import { Admission } from './admission.js';
import { DynamicBatcher } from './dynamic-batcher.js';
import { checkDeadline, DeadlineError } from './errors.js';
import { encodeImages, encodeTexts, fuse, runHead, type ImageEmbeds, type ModelDims, type TextEncoding } from '../../runtime/graph-batches.js';
import { readLabels } from '../../bundle/labels.js';
import { GraphRunner } from '../../runtime/graph-runner.js';
import { ImageCache, imageHash } from './image-cache.js';
import { dot, entailmentResult, itmProbability, nlvr2Result, rankDescending, vqaAnswers } from '../../runtime/task-results.js';

export type BundleServiceOptions = Pick<ServerOptions, 'device' | 'threads' | 'maxBatch' | 'maxDelayMs' | 'maxQueue' | 'cacheMb'> & {
  /** Where the runtime says which execution provider it uses (default: warnings to stderr). */
  log?: (level: 'info' | 'warn', message: string) => void;
};

/** One request's row of a head stage: its text and one image encoding per fusion pass (NLVR2: left, right). */
interface FusionItem {
  text: TextEncoding;
  images: readonly Float32Array[];
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

    const fusionTasks = this.tasks.filter((task) => TASKS[task].headGraph !== undefined);
    const graphs = ['text_encoder', 'image_encoder', ...(fusionTasks.length > 0 ? ['fusion'] : []), ...fusionTasks.map((task) => TASKS[task].headGraph!.name)];
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
      const logits = await this.runFusionHead('vqa', input.question, [input.image], ctx);
      return vqaAnswers(logits, this.labels.vqa, input.topK);
    });
  }

  entailment(input: { image: Uint8Array; hypothesis: string }, ctx: RequestContext): Promise<EntailmentResult> {
    return this.request('snli', ctx, async () => entailmentResult(await this.runFusionHead('snli', input.hypothesis, [input.image], ctx)));
  }

  nlvr2(input: { left: Uint8Array; right: Uint8Array; statement: string }, ctx: RequestContext): Promise<Nlvr2Result> {
    return this.request('nlvr2', ctx, async () => nlvr2Result(await this.runFusionHead('nlvr2', input.statement, [input.left, input.right], ctx)));
  }

  itm(input: { pairs: Array<{ image: Uint8Array; text: string }> }, ctx: RequestContext): Promise<number[]> {
    return this.request('itm', ctx, () => Promise.all(input.pairs.map(async (pair) => itmProbability(await this.runFusionHead('itm', pair.text, [pair.image], ctx)))));
  }

  embedText(text: string, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.encodeText(text, 'itc', ctx)).itc!);
  }

  embedImage(image: Uint8Array, ctx: RequestContext): Promise<Float32Array> {
    return this.request('itc', ctx, async () => (await this.encodeImageCached(image, ctx)).itc!);
  }

  encodeImage(image: Uint8Array, ctx: RequestContext): Promise<ImageEncoding> {
    return this.request(undefined, ctx, () => this.encodeImageCached(image, ctx));
  }

  /** Upstream's retrieval (irtr_itm_itc): ITC candidates re-ranked by the ITM match logit. */
  search(
    input: { text: string; k: number; candidates: number; gallery: ReadonlyArray<{ id: string; encoding: ImageEncoding }> },
    ctx: RequestContext,
  ): Promise<SearchHit[]> {
    return this.request('itc', ctx, async () => {
      this.requireTask('itm');
      if (this.temperature === undefined) throw new BridgeTowerError('E_BUNDLE', `bundle '${this.name}' has ITC heads but its weights hold no 'temperature': convert it again`);
      const text = await this.encodeText(input.text, 'itc', ctx);
      // Checked here, not in the ITM batch: a bad item must not fail other requests' rows.
      input.gallery.forEach(({ id, encoding }) => this.checkEncoding(id, encoding, text.itc!.length));
      const itc = input.gallery.map(({ encoding }) => dot(text.itc!, encoding.itc!) / this.temperature!);
      const candidates = rankDescending(itc).slice(0, Math.max(0, Math.floor(input.candidates)));
      const matchLogits = await Promise.all(candidates.map(async (i) => (await this.headBatchers.itm!.submit({ text, images: [input.gallery[i]!.encoding.embeds] }, ctx.deadline))[1]!));
      return rankDescending(matchLogits)
        .slice(0, Math.max(0, Math.floor(input.k)))
        .map((r) => ({ id: input.gallery[candidates[r]!]!.id, score: matchLogits[r]!, itc: itc[candidates[r]!]! }));
    });
  }

  /** Refuses new requests, answers the admitted ones, then stops the stages and the worker. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.admission.close();
      const batchers = [this.textBatcher, this.imageBatcher, ...Object.values(this.headBatchers)];
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

  /** A gallery encoding must come from a bundle of this one's shape (ITC dim, L × N × H). */
  private checkEncoding(id: string, encoding: ImageEncoding, itcDim: number): void {
    const { layers: L, imageTokens: N, hidden: H } = this.dims;
    const problem =
      !encoding.itc ? 'no ITC feature'
      : encoding.itc.length !== itcDim ? `an ITC feature of ${encoding.itc.length} values, not ${itcDim}`
      : encoding.embeds.length !== L * N * H ? `embeddings of ${encoding.embeds.length} values, not L×N×H = ${L}×${N}×${H}`
      : undefined;
    if (problem) throw new BridgeTowerError('E_USAGE', `gallery item '${id}' has ${problem}: it was encoded by another bundle; encode it again with '${this.name}'`, { id });
  }

  /** The task's logits for one text and its images (one per fusion pass), encoded concurrently. */
  private async runFusionHead(task: TaskName, text: string, images: readonly Uint8Array[], ctx: RequestContext): Promise<Float32Array> {
    const [encodedText, encodedImages] = await Promise.all([this.encodeText(text, task, ctx), Promise.all(images.map((image) => this.encodeImageCached(image, ctx)))]);
    return this.headBatchers[task]!.submit({ text: encodedText, images: encodedImages.map((e) => e.embeds) }, ctx.deadline);
  }

  /** Tokenizes alone (own length, truncated to the task's max_text_len), then joins a text-encoder batch. */
  private encodeText(text: string, task: TaskName, ctx: RequestContext): Promise<TextEncoding> {
    const { inputIds } = this.preprocessor.encodeTexts([text], task);
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
