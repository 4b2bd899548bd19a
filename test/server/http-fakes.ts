import { createHash } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { GraphPrecision } from '../../bundle/config.js';
import type { TaskName } from '../../bundle/tasks.js';
import type { Int8Weights } from '../../runtime/cpu-int8.js';
import { buildServer, type GalleryLike } from '../../server/app.js';
import type { ServerMetrics } from '../../server/metrics.js';
import { Gallery } from '../../server/gallery/gallery.js';
import { MemoryGalleryStore } from '../../server/gallery/memory-gallery-store.js';
import type { EmbedInput, EntailmentResult, FillMaskPrediction, ImageEncoding, ModelInfo, ModelService, Nlvr2Result, RequestContext, SearchableGallery, SearchHit, VqaAnswer } from '../../server/model-service.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../../server/options.js';

/** Every task the HTTP routes can ask for. */
export const ALL_TASKS: readonly TaskName[] = ['vqa', 'snli', 'nlvr2', 'itm', 'itc'];

export interface RecordedCall {
  method: string;
  input: unknown;
  ctx: RequestContext;
}

/**
 * A ModelService whose answers are simple functions of its inputs (so tests can tell that the
 * right inputs reached it, in the right order), which records every call, and whose next call can
 * be made to fail with any error.
 */
export class FakeModelService implements ModelService {
  readonly calls: RecordedCall[] = [];
  closed = false;
  private failure: unknown;
  private readonly readiness: Promise<void>;

  /** Sizes of the tiny test models, so that /info has something to report. */
  readonly info: ModelInfo;
  /** The precision variant it claims to serve (tests set it). */
  precision: GraphPrecision = 'fp32';
  int8Weights: Int8Weights | undefined;

  constructor(
    readonly name = 'fake',
    readonly tasks: readonly TaskName[] = ALL_TASKS,
    readonly isDemo = false,
    readiness: Promise<void> = Promise.resolve(),
  ) {
    this.readiness = readiness;
    this.info = { hiddenSize: 32, embeddingDim: 3, maxTextTokens: Object.fromEntries(tasks.map((task) => [task, 40])), imageSize: 64, weightsDtype: 'float32' };
  }

  /** The next call rejects with `error`. */
  failNextWith(error: unknown): void {
    this.failure = error;
  }

  ready(): Promise<void> {
    return this.readiness;
  }

  async vqa(input: { image: Uint8Array; question: string; topK: number }, ctx: RequestContext): Promise<VqaAnswer[]> {
    this.record('vqa', input, ctx);
    return Array.from({ length: input.topK }, (_, i) => ({ answer: `answer ${i} to ${input.question.length} chars`, score: 1 / (i + 2) }));
  }

  async entailment(input: { image: Uint8Array; hypothesis: string }, ctx: RequestContext): Promise<EntailmentResult> {
    this.record('entailment', input, ctx);
    return { label: 'neutral', scores: { entailment: 0.25, neutral: 0.5, contradiction: 0.25 } };
  }

  async nlvr2(input: { left: Uint8Array; right: Uint8Array; statement: string }, ctx: RequestContext): Promise<Nlvr2Result> {
    this.record('nlvr2', input, ctx);
    return { answer: input.left.byteLength > input.right.byteLength, score: 0.75 };
  }

  /** Score of a pair: the text's length in hundredths plus the image's byte count in thousandths. */
  async itm(input: { pairs: Array<{ image: Uint8Array; text: string }> }, ctx: RequestContext): Promise<number[]> {
    this.record('itm', input, ctx);
    return input.pairs.map((pair) => pair.text.length / 100 + pair.image.byteLength / 1000);
  }

  /** One list per `<mask>` of the text, k predictions each; token i of mask m scores 1 / (m + i + 2). */
  async fillMask(input: { image: Uint8Array; text: string; topK: number }, ctx: RequestContext): Promise<FillMaskPrediction[][]> {
    this.record('fillMask', input, ctx);
    const masks = input.text.split('<mask>').length - 1;
    return Array.from({ length: masks }, (_, m) =>
      Array.from({ length: input.topK }, (_, i) => ({ score: 1 / (m + i + 2), token: i, token_str: ` word${i}`, sequence: input.text.replace('<mask>', ` word${i}`) })),
    );
  }

  async embedText(text: string, ctx: RequestContext): Promise<Float32Array> {
    this.record('embedText', text, ctx);
    return Float32Array.from([text.length, 0.5, -0.25]);
  }

  async embedImage(image: Uint8Array, ctx: RequestContext): Promise<Float32Array> {
    this.record('embedImage', image, ctx);
    return Float32Array.from([image.byteLength, -0.5, 0.25]);
  }

  /** Tests of single-modal bundles set it to false. */
  embedsPairs = true;

  /** Text: [length, 0.5, -0.25]; image: [bytes, -0.5, 0.25]; pair: [length, bytes, 1]. */
  async embed(items: readonly EmbedInput[], ctx: RequestContext): Promise<Float32Array[]> {
    this.record('embed', items, ctx);
    return items.map((item) =>
      item.image === undefined ? Float32Array.from([item.text.length, 0.5, -0.25])
      : item.text === undefined ? Float32Array.from([item.image.byteLength, -0.5, 0.25])
      : Float32Array.from([item.text.length, item.image.byteLength, 1]),
    );
  }

  /** One token per character plus `<s>` and `</s>`. */
  countTokens(text: string): number {
    return text.length + 2;
  }

  async encodeImage(image: Uint8Array, ctx: RequestContext): Promise<ImageEncoding> {
    this.record('encodeImage', image, ctx);
    return { hash: createHash('sha256').update(image).digest('hex'), itc: Float32Array.from([image.byteLength]), embeds: Float32Array.from([1, 2, 3]) };
  }

  /** Ranks the gallery by its images' byte counts (the 1-d itc value encodeImage stored), largest first; score = itc / 10. */
  async search(input: { text: string; k: number; candidates: number; rerank: boolean; gallery: SearchableGallery }, ctx: RequestContext): Promise<SearchHit[]> {
    this.record('search', input, ctx);
    const found = await input.gallery.nearest(Float32Array.from([1]), input.rerank ? input.candidates : input.k);
    return found.map(({ id, similarity }) => ({ id, itc: similarity, score: input.rerank ? similarity / 10 : similarity })).slice(0, input.k);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private record(method: string, input: unknown, ctx: RequestContext): void {
    this.calls.push({ method, input, ctx });
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
  }
}

/** A gallery kept in memory, as servers of injected services get. */
export function memoryGallery(bundle = 'fake'): Promise<Gallery> {
  return Gallery.open(new MemoryGalleryStore(bundle), { cacheMb: 16 });
}

/** Server options for tests: defaults, quiet, no bundles (services are injected). */
export function testOptions(overrides: Partial<ServerOptions> = {}): ServerOptions {
  return { ...DEFAULT_SERVER_OPTIONS, bundles: [], logger: false, ...overrides };
}

/** A server over fake services, closed when the test ends. */
export async function fakeServer(
  t: Pick<TestContext, 'after'>,
  options: { services?: ModelService[]; gallery?: GalleryLike; metrics?: ServerMetrics; server?: Partial<ServerOptions> } = {},
): Promise<{ app: FastifyInstance; service: FakeModelService; gallery: GalleryLike }> {
  const service = new FakeModelService();
  const gallery = options.gallery ?? (await memoryGallery());
  const app = await buildServer(testOptions(options.server), { services: options.services ?? [service], gallery, ...(options.metrics ? { metrics: options.metrics } : {}) });
  t.after(() => app.close());
  return { app, service, gallery };
}

/** Some bytes standing for an image (the fake service never decodes them). */
export function fakeImage(size = 10, seed = 1): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed) % 256));
}

/** A multipart/form-data body, serialized by the platform's own FormData. */
export async function multipart(fields: Array<[string, string | { bytes: Uint8Array; filename?: string; type?: string }]>): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [name, value] of fields) {
    if (typeof value === 'string') form.append(name, value);
    else form.append(name, new Blob([value.bytes], { type: value.type ?? 'image/png' }), value.filename ?? 'image.png');
  }
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return { payload: Buffer.from(await request.arrayBuffer()), headers: { 'content-type': request.headers.get('content-type')! } };
}
