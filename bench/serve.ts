/**
 * Serving bench (issue #5): the real HTTP server (`startServer`, Fastify + the dynamic batcher +
 * the image cache + the ONNX Runtime worker) on a full-size BASE VQA bundle at 384 px, driven
 * over loopback by real multipart `POST /vqa` requests from this process, against the same work
 * done directly on `openGraph` sessions (no HTTP, no batching, no worker).
 *
 *   node --import tsx bench/serve.ts                             # c = 1, 4, 16 with 3, 8, 16 requests
 *   node --import tsx bench/serve.ts --concurrency 1,4 --requests 4
 *   node --import tsx bench/serve.ts --bundle bundles/vqa-384 --keep
 *
 * What it measures, each server configuration in a fresh server:
 * - overhead: server (max-batch 1, cache off) vs direct sessions, one request at a time, the two
 *   interleaved (order swapping each round) on the same image and question;
 * - cached vs uncached: in one server (max-batch 8, cache 256 MB), a fresh image and the already
 *   encoded one, alternating;
 * - load: throughput and p50 / p99 latency at each concurrency, batching on / off (max-batch 8 / 1)
 *   × cache on / off (cache-mb 256 with one repeated image / cache-mb 0 with a distinct image per
 *   request), and the batch sizes each stage ran (`bridgetower_batch_size` from `GET /metrics`).
 *
 * The bundle: --bundle, else bench/out/infer/bundle-384 (bench/infer.ts --keep leaves it), else
 * one converted here from a generated BASE checkpoint. Bench bundles carry no tokenizer; a bundle
 * without one is served from a hard-linked copy under bench/out/serve with a small generated
 * byte-level BPE tokenizer whose merges make each word of the bench questions one token (so the
 * questions are ~10 tokens, as real VQA questions are under roberta-base). Random weights: the
 * answers are meaningless, the cost is the real model's. Everything under bench/out/serve is
 * removed at the end unless --keep.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { BridgeTowerError } from '../common/errors.js';
import { readBundleConfig, writeBundleConfig } from '../bundle/config.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { buildTokenizerJson, byteLevelAlphabet, ROBERTA_SPECIAL_TOKENS, serializeTokenizerJson } from '../bundle/tokenizer-json.js';
import { openGraph } from '../runtime/session.js';
import { BundlePreprocessor } from '../preprocess/bundle-preprocessor.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../server/options.js';
import { vqaAnswers } from '../runtime/task-results.js';
import { startServer, type RunningServer } from '../server/start.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { timedWithContention } from './cpu-contention.js';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'out', 'serve');
const DEFAULT_BUNDLE = join(here, 'out', 'infer', 'bundle-384');
const IMAGE_SIZE = 384;

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    bundle: { type: 'string' },
    concurrency: { type: 'string', default: '1,4,16' },
    // One number N: max(N, c) requests per level; a list: one count per concurrency level.
    requests: { type: 'string', default: '3,8,16' },
    // Interleaved rounds of the overhead and cached-vs-uncached comparisons.
    pairs: { type: 'string', default: '4' },
    keep: { type: 'boolean', default: false },
  },
});

function positiveInts(flag: string, text: string): number[] {
  const list = text.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new BridgeTowerError('E_USAGE', `--${flag} '${text}' must be a positive integer or a comma-separated list of them (e.g. --${flag} ${flag === 'concurrency' ? '1,4,16' : '3,8,16'})`);
  }
  return list;
}

const levels = positiveInts('concurrency', args.concurrency!);
const requestList = positiveInts('requests', args.requests!);
if (requestList.length !== 1 && requestList.length !== levels.length) {
  throw new BridgeTowerError('E_USAGE', `--requests '${args.requests}' lists ${requestList.length} counts for ${levels.length} concurrency levels: give one count per level, or one number for all`);
}
const requestsAt = levels.map((c, i) => (requestList.length === 1 ? Math.max(requestList[0]!, c) : requestList[i]!));
const pairs = positiveInts('pairs', args.pairs!)[0]!;

const log = (line: string) => console.error(line);
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '?');
const share = (x: number) => (Number.isNaN(x) ? '?' : `${Math.round(100 * x)} %`);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

// ---------------------------------------------------------------- bundle and tokenizer

/** ~10-token VQA questions (every word one token with the bench tokenizer; `?` its own). */
const QUESTIONS = [
  'What color is the car on the left side?',
  'How many people are standing near the table?',
  'Is there a dog sitting on the red sofa?',
  'What is the man holding in his right hand?',
  'Where is the woman with the blue umbrella going?',
  'What kind of animal is lying on the grass?',
  'Are the lights in the kitchen turned on now?',
  'Which sport is being played in this picture?',
];

/**
 * A RoBERTa-style byte-level BPE tokenizer: the specials and the 256 byte symbols, plus merges
 * that build every word of QUESTIONS (with its leading space, `Ġ`) left to right into one token.
 * Ids stay far below BASE's 50265 embeddings; other text falls back to one token per byte.
 */
function benchTokenizer(): string {
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  byteLevelAlphabet().forEach((symbol, i) => (vocab[symbol] = 4 + i));
  vocab['<mask>'] = 260;
  const merges: string[] = [];
  const seen = new Set<string>();
  const words = new Set(QUESTIONS.flatMap((q) => q.replace(/\?/g, '').split(' ').map((w, i) => (i === 0 ? w : `Ġ${w}`))));
  for (const word of words) {
    const chars = [...word];
    let prefix = chars[0]!;
    for (const next of chars.slice(1)) {
      const merge = `${prefix} ${next}`;
      prefix += next;
      if (seen.has(merge)) continue;
      seen.add(merge);
      merges.push(merge);
      if (vocab[prefix] === undefined) vocab[prefix] = Object.keys(vocab).length;
    }
  }
  if (ROBERTA_SPECIAL_TOKENS.some((t) => vocab[t] === undefined)) throw new Error('internal error: bench tokenizer lacks a special token');
  return serializeTokenizerJson(buildTokenizerJson(vocab, `#version: 0.2\n${merges.join('\n')}\n`));
}

/** Hard-links (copies across file systems) a file. */
function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

/** The bundle to serve, with a tokenizer (what this creates lies under bench/out/serve). */
async function prepareBundle(): Promise<{ dir: string; source: string; how: string }> {
  const servedDir = join(outDir, 'bundle-384');
  const source = args.bundle ?? DEFAULT_BUNDLE;
  if (args.bundle && !existsSync(join(args.bundle, 'config.json'))) {
    throw new BridgeTowerError('E_USAGE', `--bundle '${args.bundle}' is not a bundle (no config.json): give a bundle folder written by convert-ckpt`);
  }
  mkdirSync(outDir, { recursive: true });
  if (!existsSync(join(source, 'config.json'))) {
    // No bundle to reuse: write the BASE checkpoint and convert it at 384 px with the bench tokenizer.
    const checkpoint = join(outDir, 'base_vqa_random.ckpt');
    const tokenizer = join(outDir, 'tokenizer.json');
    writeFileSync(tokenizer, benchTokenizer());
    let started = performance.now();
    const bytes = writeBaseCheckpoint(checkpoint, baseVqaArchitecture(576));
    log(`wrote ${relative(process.cwd(), checkpoint)}: ${(bytes / 1e9).toFixed(2)} GB of tensors in ${seconds(performance.now() - started)} s`);
    started = performance.now();
    await convertCheckpoint({ checkpoint, out: servedDir, force: true, imageSize: IMAGE_SIZE, tokenizer });
    log(`converted to ${relative(process.cwd(), servedDir)} (${IMAGE_SIZE} px) in ${seconds(performance.now() - started)} s`);
    rmSync(checkpoint, { force: true });
    rmSync(tokenizer, { force: true });
    return { dir: servedDir, source: servedDir, how: `converted here from a generated BASE checkpoint (bench/base-checkpoint.ts) with --image-size ${IMAGE_SIZE}` };
  }
  const config = readBundleConfig(source);
  if (!config.tasks.vqa) throw new BridgeTowerError('E_USAGE', `bundle '${source}' has no VQA head (tasks: ${Object.keys(config.tasks).join(', ')}): give a VQA bundle`);
  if (config.preprocessing.image_size !== IMAGE_SIZE) log(`note: bundle '${source}' is at ${config.preprocessing.image_size} px, not ${IMAGE_SIZE}`);
  if (config.tokenizer) return { dir: source, source, how: 'served as is (it has a tokenizer)' };
  // Same weights and graphs, hard-linked, plus the bench tokenizer.
  rmSync(servedDir, { recursive: true, force: true });
  mkdirSync(join(servedDir, 'onnx'), { recursive: true });
  linkOrCopy(join(source, config.weights.file), join(servedDir, config.weights.file));
  const graphDir = config.graphs?.dir ?? 'onnx';
  for (const file of readdirSync(join(source, graphDir))) linkOrCopy(join(source, graphDir, file), join(servedDir, 'onnx', file));
  writeFileSync(join(servedDir, 'tokenizer.json'), benchTokenizer());
  if (config.labels) linkOrCopy(join(source, config.labels), join(servedDir, config.labels));
  writeBundleConfig(servedDir, { ...config, tokenizer: 'tokenizer.json' });
  return { dir: servedDir, source, how: 'reused; served from a hard-linked copy with the bench tokenizer added' };
}

// ---------------------------------------------------------------- images

/** A 640×480 photo-like JPEG (gradients + grain, as bench/preprocess.ts), distinct per seed. */
async function photo(seed: number): Promise<Uint8Array> {
  const width = 640;
  const height = 480;
  const raw = new Uint8Array(width * height * 3);
  let state = seed * 2654435761 + 1;
  const fx = 25 + (seed % 23);
  const fy = 17 + ((seed * 7) % 19);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const grain = (state >>> 27) - 16;
      const at = (y * width + x) * 3;
      raw[at] = Math.max(0, Math.min(255, 128 + 100 * Math.sin(x / fx + seed) * Math.cos(y / fy) + grain));
      raw[at + 1] = Math.max(0, Math.min(255, ((x + 37 * seed) % width) * (255 / width) + grain));
      raw[at + 2] = Math.max(0, Math.min(255, ((y + 53 * seed) % height) * (255 / height) + grain));
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** Distinct images, generated before any timing. */
class ImagePool {
  private next = 0;
  private constructor(private readonly images: Uint8Array[]) {}
  static async create(count: number): Promise<ImagePool> {
    const images: Uint8Array[] = [];
    for (let i = 0; i < count; i++) images.push(await photo(i + 1));
    return new ImagePool(images);
  }
  get meanBytes(): number {
    return this.images.reduce((s, b) => s + b.length, 0) / this.images.length;
  }
  /** A never-used image. */
  fresh(): Uint8Array {
    const image = this.images[this.next++];
    if (!image) throw new Error(`internal error: the image pool (${this.images.length}) ran out`);
    return image;
  }
}

// ---------------------------------------------------------------- HTTP client

interface VqaCall {
  image: Uint8Array;
  question: string;
}

/** One multipart `POST /vqa`; resolves with the wall time (ms) from send to parsed answer. */
async function postVqa(url: string, call: VqaCall): Promise<number> {
  const started = performance.now();
  const form = new FormData();
  form.append('image', new Blob([call.image], { type: 'image/jpeg' }), 'image.jpg');
  form.append('question', call.question);
  form.append('top_k', '5');
  const response = await fetch(`${url}/vqa`, { method: 'POST', body: form });
  const body = (await response.json()) as { answers?: unknown[]; error?: { code: string; message: string } };
  const ms = performance.now() - started;
  if (response.status !== 200 || !Array.isArray(body.answers) || body.answers.length !== 5) {
    throw new Error(`POST /vqa answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return ms;
}

interface LoadResult {
  latencies: number[];
  wallMs: number;
  othersShare: number;
}

/** `calls` sent by `concurrency` clients, each sending its next request as soon as its last is answered. */
async function runLoad(url: string, concurrency: number, calls: VqaCall[]): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const client = async () => {
    while (next < calls.length) latencies.push(await postVqa(url, calls[next++]!));
  };
  const { ms, othersShare } = await timedWithContention(() => Promise.all(Array.from({ length: Math.min(concurrency, calls.length) }, client)));
  return { latencies, wallMs: ms, othersShare };
}

/** Nearest-rank percentile (with ≤ 16 samples, p99 is the slowest). */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const median = (values: readonly number[]) => percentile(values, 50);

// ---------------------------------------------------------------- /metrics

/** Per stage: cumulative bucket counts by upper bound, plus sum and count. */
type BatchHistogram = Map<string, { buckets: Map<number, number>; sum: number; count: number }>;

async function scrape(url: string): Promise<{ batches: BatchHistogram; hits: number; misses: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const batches: BatchHistogram = new Map();
  let hits = 0;
  let misses = 0;
  for (const line of text.split('\n')) {
    const m = /^(bridgetower_batch_size_(?:bucket|sum|count)|bridgetower_image_cache_(?:hits|misses)_total)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labelText = '', valueText] = m;
    const value = Number(valueText);
    if (name === 'bridgetower_image_cache_hits_total') hits = value;
    else if (name === 'bridgetower_image_cache_misses_total') misses = value;
    else {
      const labels = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
      const stage = labels.stage!;
      const entry = batches.get(stage) ?? { buckets: new Map(), sum: 0, count: 0 };
      batches.set(stage, entry);
      if (name!.endsWith('_bucket')) entry.buckets.set(labels.le === '+Inf' ? Infinity : Number(labels.le), value);
      else if (name!.endsWith('_sum')) entry.sum = value;
      else entry.count = value;
    }
  }
  return { batches, hits, misses };
}

interface StageBatches {
  stage: string;
  batches: number;
  mean: number;
  /** Batches by size range: 1, 2, 3–4, 5–8, > 8. */
  ranges: number[];
}

const RANGE_BOUNDS = [1, 2, 4, 8, Infinity];
const RANGE_NAMES = ['1', '2', '3–4', '5–8', '> 8'];

function diffBatches(before: BatchHistogram, after: BatchHistogram): StageBatches[] {
  const out: StageBatches[] = [];
  for (const [stage, a] of after) {
    const b = before.get(stage);
    const count = a.count - (b?.count ?? 0);
    if (count === 0) continue;
    const cumulative = RANGE_BOUNDS.map((le) => (a.buckets.get(le) ?? 0) - (b?.buckets.get(le) ?? 0));
    out.push({ stage, batches: count, mean: (a.sum - (b?.sum ?? 0)) / count, ranges: cumulative.map((c, i) => c - (i === 0 ? 0 : cumulative[i - 1]!)) });
  }
  const order = ['text_encoder', 'image_encoder', 'fusion_vqa'];
  return out.sort((x, y) => order.indexOf(x.stage) - order.indexOf(y.stage));
}

// ---------------------------------------------------------------- direct sessions

/** The server's work for one VQA request, on this thread's sessions: no HTTP, no batcher, no worker. */
class DirectVqa {
  private constructor(
    private readonly preprocessor: BundlePreprocessor,
    private readonly sessions: Record<'text_encoder' | 'image_encoder' | 'fusion' | 'head_vqa', ort.InferenceSession>,
  ) {}

  static async open(bundleDir: string): Promise<DirectVqa> {
    const open = async (graph: string) => (await openGraph(bundleDir, graph)).session;
    return new DirectVqa(BundlePreprocessor.open(bundleDir), {
      text_encoder: await open('text_encoder'),
      image_encoder: await open('image_encoder'),
      fusion: await open('fusion'),
      head_vqa: await open('head_vqa'),
    });
  }

  async vqa(call: VqaCall): Promise<number> {
    const started = performance.now();
    const s = this.sessions;
    const { inputIds, attentionMask, dims } = this.preprocessor.encodeTexts([call.question], 'vqa');
    const pixels = await this.preprocessor.pixelValues(call.image);
    const size = this.preprocessor.config.preprocessing.image_size;
    const mask = new ort.Tensor('int64', attentionMask, dims);
    const { text_embeds } = await s.text_encoder.run({ input_ids: new ort.Tensor('int64', inputIds, dims), attention_mask: mask }, ['text_embeds']);
    const { image_embeds } = await s.image_encoder.run({ pixel_values: new ort.Tensor('float32', pixels, [1, 3, size, size]) }, ['image_embeds']);
    const { cls_feats } = await s.fusion.run({ text_embeds: text_embeds!, attention_mask: mask, image_embeds: image_embeds!, image_token_type: new ort.Tensor('int64', new BigInt64Array([1n]), [1]) }, ['cls_feats']);
    const { logits } = await s.head_vqa.run({ cls_feats: cls_feats! }, ['logits']);
    const answers = vqaAnswers(logits!.data as Float32Array, undefined, 5);
    const ms = performance.now() - started;
    if (answers.length !== 5) throw new Error('internal error: the direct run gave no answers');
    return ms;
  }

  async close(): Promise<void> {
    for (const session of Object.values(this.sessions)) await session.release();
  }
}

// ---------------------------------------------------------------- server

interface ServerConfig {
  maxBatch: number;
  cacheMb: number;
}

async function serve(bundleDir: string, config: ServerConfig): Promise<{ server: RunningServer; openMs: number }> {
  const options: ServerOptions = {
    ...DEFAULT_SERVER_OPTIONS,
    bundles: [bundleDir],
    host: '127.0.0.1',
    port: 0,
    logger: false,
    maxBatch: config.maxBatch,
    cacheMb: config.cacheMb,
    // The bench measures latency under load: no request may be dropped for lateness or refused.
    requestTimeoutMs: 600_000,
    maxQueue: 1024,
    dataDir: join(outDir, 'data'),
  };
  const started = performance.now();
  const server = await startServer(options);
  return { server, openMs: performance.now() - started };
}

const label = (c: ServerConfig) => `max-batch ${c.maxBatch}, cache-mb ${c.cacheMb}`;

// ---------------------------------------------------------------- main

interface LoadRow {
  config: ServerConfig;
  images: 'distinct (uncached)' | 'one, cached';
  concurrency: number;
  requests: number;
  result: LoadResult;
  stages: StageBatches[];
  hits: number;
  misses: number;
}

async function main(): Promise<void> {
  const wallStarted = performance.now();
  const bundle = await prepareBundle();
  const bundleConfig = readBundleConfig(bundle.dir);
  const preprocessor = BundlePreprocessor.open(bundle.dir);
  const tokens = QUESTIONS.map((q) => preprocessor.encodeTexts([q], 'vqa').dims[1]);
  log(`bundle ${relative(process.cwd(), bundle.dir)} (${bundle.how}); questions of ${Math.min(...tokens)}–${Math.max(...tokens)} tokens with <s> and </s>`);

  const uncachedPerSweep = requestsAt.reduce((a, b) => a + b, 0) + 1;
  const pool = await ImagePool.create(2 * uncachedPerSweep + 2 * pairs + 5);
  log(`generated the images: 640×480 JPEG, ${fmt(pool.meanBytes / 1024)} KiB on average`);
  const question = (i: number) => QUESTIONS[i % QUESTIONS.length]!;
  const opens: string[] = [];
  const loadRows: LoadRow[] = [];

  /** One concurrency sweep on a running server, scraping the batch histogram around each level. */
  const sweep = async (url: string, config: ServerConfig, cachedImage: Uint8Array | undefined) => {
    for (const [i, concurrency] of levels.entries()) {
      const n = requestsAt[i]!;
      const calls = Array.from({ length: n }, (_, k) => ({ image: cachedImage ?? pool.fresh(), question: question(k) }));
      const before = await scrape(url);
      const result = await runLoad(url, concurrency, calls);
      const after = await scrape(url);
      const row: LoadRow = {
        config,
        images: cachedImage ? 'one, cached' : 'distinct (uncached)',
        concurrency,
        requests: n,
        result,
        stages: diffBatches(before.batches, after.batches),
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
      };
      loadRows.push(row);
      log(
        `  ${label(config)}, ${row.images}, c=${concurrency}: ${n} requests in ${seconds(result.wallMs)} s, p50 ${fmt(median(result.latencies))} ms, p99 ${fmt(percentile(result.latencies, 99))} ms; others used ${share(result.othersShare)} of the cores`,
      );
    }
  };

  // 1. Overhead: server (no batching, no cache) vs direct sessions, interleaved; then its sweep.
  const plain: ServerConfig = { maxBatch: 1, cacheMb: 0 };
  const overhead = { server: [] as number[], direct: [] as number[], serverOthers: [] as number[], directOthers: [] as number[] };
  {
    const { server, openMs } = await serve(bundle.dir, plain);
    opens.push(`${label(plain)}: ${seconds(openMs)} s`);
    log(`server (${label(plain)}) on ${server.url}, ready in ${seconds(openMs)} s`);
    try {
      const started = performance.now();
      const direct = await DirectVqa.open(bundle.dir);
      opens.push(`direct sessions (text_encoder + image_encoder + fusion + head_vqa, no warm-up run): ${seconds(performance.now() - started)} s`);
      try {
        // Two warm-up requests each (not counted): the first runs of fresh sessions grow their arenas.
        for (let i = 0; i < 2; i++) {
          const warm = { image: pool.fresh(), question: question(i) };
          await postVqa(server.url, warm);
          await direct.vqa(warm);
        }
        for (let round = 0; round < pairs; round++) {
          const call = { image: pool.fresh(), question: question(round) };
          const modes = round % 2 === 0 ? (['server', 'direct'] as const) : (['direct', 'server'] as const);
          for (const mode of modes) {
            let ms = 0;
            const { othersShare } = await timedWithContention(async () => (ms = mode === 'server' ? await postVqa(server.url, call) : await direct.vqa(call)));
            overhead[mode].push(ms);
            overhead[mode === 'server' ? 'serverOthers' : 'directOthers'].push(othersShare);
          }
          log(`  overhead round ${round + 1}: server ${fmt(overhead.server.at(-1)!)} ms, direct ${fmt(overhead.direct.at(-1)!)} ms`);
        }
      } finally {
        await direct.close();
      }
      await sweep(server.url, plain, undefined);
    } finally {
      await server.stop();
    }
  }

  // 2. Batching on, cache off: distinct images.
  const batched: ServerConfig = { maxBatch: 8, cacheMb: 0 };
  {
    const { server, openMs } = await serve(bundle.dir, batched);
    opens.push(`${label(batched)}: ${seconds(openMs)} s`);
    try {
      await postVqa(server.url, { image: pool.fresh(), question: question(1) });
      await sweep(server.url, batched, undefined);
    } finally {
      await server.stop();
    }
  }

  // 3. Batching on, cache on: cached vs uncached alternating, then the sweep on one cached image.
  const cachedImage = pool.fresh();
  const cacheRatio = { uncached: [] as number[], cached: [] as number[], uncachedOthers: [] as number[], cachedOthers: [] as number[] };
  for (const config of [{ maxBatch: 8, cacheMb: 256 }, { maxBatch: 1, cacheMb: 256 }] as ServerConfig[]) {
    const { server, openMs } = await serve(bundle.dir, config);
    opens.push(`${label(config)}: ${seconds(openMs)} s`);
    try {
      await postVqa(server.url, { image: cachedImage, question: question(2) }); // encodes and caches it
      if (config.maxBatch === 8) {
        for (let round = 0; round < pairs; round++) {
          const modes = round % 2 === 0 ? (['uncached', 'cached'] as const) : (['cached', 'uncached'] as const);
          for (const mode of modes) {
            let ms = 0;
            const call = { image: mode === 'cached' ? cachedImage : pool.fresh(), question: question(round + 3) };
            const { othersShare } = await timedWithContention(async () => (ms = await postVqa(server.url, call)));
            cacheRatio[mode].push(ms);
            cacheRatio[mode === 'cached' ? 'cachedOthers' : 'uncachedOthers'].push(othersShare);
          }
          log(`  cache round ${round + 1}: uncached ${fmt(cacheRatio.uncached.at(-1)!)} ms, cached ${fmt(cacheRatio.cached.at(-1)!)} ms`);
        }
      }
      await sweep(server.url, config, cachedImage);
    } finally {
      await server.stop();
    }
  }

  // ---------------------------------------------------------------- report
  const wallS = (performance.now() - wallStarted) / 1000;
  const cpu = cpus();
  const best = (v: number[]) => Math.min(...v);
  const overheadBest = best(overhead.server) / best(overhead.direct) - 1;
  const overheadMedian = median(overhead.server) / median(overhead.direct) - 1;
  const ratioBest = best(cacheRatio.cached) / best(cacheRatio.uncached);
  const ratioMedian = median(cacheRatio.cached) / median(cacheRatio.uncached);
  const at = (v: number[], o: number[]) => o[v.indexOf(best(v))]!;
  const pctSigned = (x: number) => `${x >= 0 ? '+' : '−'}${fmt(Math.abs(100 * x), 1)} %`;
  const argv = process.argv.slice(2);

  const out = [
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30)} GiB, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? '?'} (CPU provider, default intra-op threads), ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `\`node --import tsx bench/serve.ts${argv.length > 0 ? ` ${argv.join(' ')}` : ''}\` (wall ${fmt(wallS)} s):`,
    '',
    `- Bundle: full-size BASE VQA (BridgeTower_ftfpt_base_vqav2's shapes, random weights) at ${bundleConfig.preprocessing.image_size} px, ${relative(process.cwd(), bundle.source)} (${bundle.how}).`,
    `- Requests: multipart \`POST /vqa\` (top_k 5) over loopback from the server's own process (fetch), each a 640×480 JPEG (${fmt(pool.meanBytes / 1024)} KiB on average) and a question of ${Math.min(...tokens)}–${Math.max(...tokens)} tokens (with <s> and </s>). Every server is fresh, warmed by one request not counted (the overhead comparison: two on each path); request timeout and queue limit raised so that nothing is dropped.`,
    `- Sessions opened (ready to answer, warm-up runs included): ${opens.join('; ')}.`,
    `- "CPU used by others": share of the cores other processes used meanwhile (the machine is shared; above ~10 % is contended).`,
    '',
    `Server overhead: one request at a time, server (${label(plain)}) vs the same preprocessing + text_encoder + image_encoder + fusion + head_vqa on \`openGraph\` sessions in this thread, ${pairs} interleaved rounds on the same image and question, order swapping each round:`,
    '',
    '| path | runs | best ms | median ms | all ms | CPU used by others (best run) |',
    '| --- | --- | --- | --- | --- | --- |',
    `| HTTP server | ${overhead.server.length} | ${fmt(best(overhead.server))} | ${fmt(median(overhead.server))} | ${overhead.server.map((v) => fmt(v)).join(', ')} | ${share(at(overhead.server, overhead.serverOthers))} |`,
    `| direct sessions | ${overhead.direct.length} | ${fmt(best(overhead.direct))} | ${fmt(median(overhead.direct))} | ${overhead.direct.map((v) => fmt(v)).join(', ')} | ${share(at(overhead.direct, overhead.directOthers))} |`,
    `| **overhead** (server / direct − 1) | | ${pctSigned(overheadBest)} | ${pctSigned(overheadMedian)} | | |`,
    '',
    `Cached vs uncached image, one request at a time, in one server (max-batch 8, cache-mb 256), ${pairs} alternating rounds (uncached: a new image each time; cached: the image already encoded):`,
    '',
    '| image | runs | best ms | median ms | all ms | CPU used by others (best run) |',
    '| --- | --- | --- | --- | --- | --- |',
    `| uncached | ${cacheRatio.uncached.length} | ${fmt(best(cacheRatio.uncached))} | ${fmt(median(cacheRatio.uncached))} | ${cacheRatio.uncached.map((v) => fmt(v)).join(', ')} | ${share(at(cacheRatio.uncached, cacheRatio.uncachedOthers))} |`,
    `| cached | ${cacheRatio.cached.length} | ${fmt(best(cacheRatio.cached))} | ${fmt(median(cacheRatio.cached))} | ${cacheRatio.cached.map((v) => fmt(v)).join(', ')} | ${share(at(cacheRatio.cached, cacheRatio.cachedOthers))} |`,
    `| **cached / uncached** | | ${fmt(ratioBest, 2)}× | ${fmt(ratioMedian, 2)}× | | |`,
    '',
    `Load: each concurrency level's requests sent by that many clients, each sending its next request when its last is answered; throughput = requests / wall time of the level; p50 / p99 are nearest-rank over the level's requests (with ≤ 16 requests, p99 is the slowest). Cache off: a distinct image per request; cache on: one image, encoded before the level (every request a hit). Mean batch: items per batch the image encoder / the fusion + head ran (\`bridgetower_batch_size\`):`,
    '',
    '| max-batch | cache-mb | images | concurrency | requests | req/s | p50 ms | p99 ms | mean batch image enc. / fusion | cache hits / misses | CPU used by others |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...[...loadRows]
      .sort((a, b) => a.config.cacheMb - b.config.cacheMb || b.config.maxBatch - a.config.maxBatch || a.concurrency - b.concurrency)
      .map((r) => {
        const mean = (stage: string) => {
          const s = r.stages.find((x) => x.stage === stage);
          return s ? fmt(s.mean, 1) : '–';
        };
        return `| ${r.config.maxBatch} | ${r.config.cacheMb} | ${r.images} | ${r.concurrency} | ${r.requests} | ${fmt((1000 * r.requests) / r.result.wallMs, 2)} | ${fmt(median(r.result.latencies))} | ${fmt(percentile(r.result.latencies, 99))} | ${mean('image_encoder')} / ${mean('fusion_vqa')} | ${r.hits} / ${r.misses} | ${share(r.result.othersShare)} |`;
      }),
    '',
    `Batch sizes per stage under concurrency (\`GET /metrics\`, \`bridgetower_batch_size\`, counted over each level; the histogram's buckets are 1, 2, 4, 8, so sizes are given by range):`,
    '',
    `| max-batch | cache-mb | concurrency | stage | batches | ${RANGE_NAMES.slice(0, 4).map((n) => `size ${n}`).join(' | ')} | mean size |`,
    `| --- | --- | --- | --- | --- | ${RANGE_NAMES.slice(0, 4).map(() => '---').join(' | ')} | --- |`,
    ...loadRows
      .filter((r) => r.concurrency > 1)
      .sort((a, b) => a.config.cacheMb - b.config.cacheMb || b.config.maxBatch - a.config.maxBatch || a.concurrency - b.concurrency)
      .flatMap((r) => r.stages.map((s) => `| ${r.config.maxBatch} | ${r.config.cacheMb} | ${r.concurrency} | ${s.stage} | ${s.batches} | ${s.ranges.slice(0, 4).join(' | ')} | ${fmt(s.mean, 2)} |`)),
    '',
    'Against the goals of issue #5:',
    '',
    `- **Server overhead ≤ 5 % of model time: ${overheadMedian <= 0.05 && overheadBest <= 0.05 ? 'met' : overheadMedian <= 0.05 || overheadBest <= 0.05 ? 'met on one of best / median' : 'not met'}** — ${pctSigned(overheadBest)} (best of ${pairs}), ${pctSigned(overheadMedian)} (median), ${label(plain)}, concurrency 1.`,
    `- **VQA with a cached image ≤ 0.3× the uncached latency: ${ratioMedian <= 0.3 && ratioBest <= 0.3 ? 'met' : ratioMedian <= 0.3 || ratioBest <= 0.3 ? 'met on one of best / median' : 'not met'}** — ${fmt(ratioBest, 2)}× (best), ${fmt(ratioMedian, 2)}× (median).`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

try {
  await main();
} finally {
  if (!args.keep) rmSync(outDir, { recursive: true, force: true });
  else log(`kept ${relative(process.cwd(), outDir)}`);
}
