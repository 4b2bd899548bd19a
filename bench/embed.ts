/**
 * Embedding throughput (issue #13): items/s of the bulk path (`bridgetower embed`'s `bulkEmbed`,
 * appending JSON Lines) and of `POST /v1/embeddings` over loopback, at batch 1 and batch 32, for
 * texts and for images, on a full-size BASE bundle (RoBERTa-base + CLIP ViT-B/16, 6 cross-modal
 * layers, ITC heads; random weights from bench/base-checkpoint.ts, nothing downloaded).
 *
 *   node --import tsx bench/embed.ts                       # 32 texts, 8 images, 2 rounds (≈ 7 min on a loaded 2-core machine)
 *   node --import tsx bench/embed.ts --texts 32 --images 8 --rounds 1 --image-size 224
 *   node --import tsx bench/embed.ts --keep                # leave bench/out/embed/bundle for a rerun
 *
 * One BundleService (max batch 32) serves both paths, so the bundle is loaded once (≈ 2.5 GB RSS)
 * and the two paths run the same sessions: the difference is the bulk loop vs HTTP + JSON + the
 * OpenAI route. Batch 1 = one item per `bulkEmbed` batch / per request (requests one after
 * another); batch 32 = 32 items per batch / per request (all of them when fewer: the table says). Every (kind, batch, path) mode runs once
 * per round, the modes strictly alternating, and the best round counts; the share of the cores
 * that other processes used meanwhile is printed with each figure (the machines are shared).
 */
import { mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { buildByteLevelDemoTokenizer } from '../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { buildServer } from '../server/app.js';
import { DEFAULT_SERVER_OPTIONS } from '../server/options.js';
import { BundleService } from '../server/scheduling/bundle-service.js';
import { bulkEmbed, type BulkItem } from '../cli/bulk-embed.js';
import { openEmbeddingOutput } from '../cli/embed-output/output-formats.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { timedWithContention } from './cpu-contention.js';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'out', 'embed');

const { values: args } = parseArgs({
  options: {
    texts: { type: 'string', default: '32' },
    images: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'image-size': { type: 'string', default: '288' },
    threads: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const count = (flag: string, text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} ${text}: give a positive integer`);
  return n;
};
const TEXTS = count('texts', args.texts!);
const IMAGES = count('images', args.images!);
const ROUNDS = count('rounds', args.rounds!);
const IMAGE_SIZE = count('image-size', args['image-size']!);
const BATCHES = [1, 32];

function machine(): string {
  const flags = new Set((readFileSync('/proc/cpuinfo', 'utf8').match(/\b(avx2|avx512f|avx512_vnni|avx_vnni)\b/g) ?? []));
  return `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, flags ${[...flags].sort().join(' ') || 'none of avx2/avx512f/avx512_vnni/avx_vnni'}, Node ${process.version}`;
}
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

/** A BASE bundle with ITC heads only (what retrieval embeddings need), converted once. */
async function prepareBundle(): Promise<string> {
  const bundle = join(outDir, `bundle-${IMAGE_SIZE}`);
  if (existsSync(join(bundle, 'config.json'))) return bundle;
  mkdirSync(outDir, { recursive: true });
  const arch = baseVqaArchitecture(IMAGE_SIZE);
  // Upstream's retrieval heads: 256-d ITC projections of the text CLS and the image CLS after ln_post.
  arch.heads = { itc: { dim: 256, image_source: 'vision_ln_post' } };
  const checkpoint = join(outDir, 'base-itc.ckpt');
  writeBaseCheckpoint(checkpoint, arch);
  const tokenizer = join(outDir, 'tokenizer.json');
  writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
  await convertCheckpoint({ checkpoint, out: bundle, tokenizer, force: true, name: 'base-itc-bench' });
  rmSync(checkpoint, { force: true });
  return bundle;
}

async function photos(n: number): Promise<Uint8Array[]> {
  const list: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const [w, h] = [480, 360];
    const pixels = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) pixels.set([(i * (k + 3)) % 256, ((i >> 5) * (k + 1)) % 256, (k * 37) % 256], i * 3);
    list.push(new Uint8Array(await sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer()));
  }
  return list;
}

const captions = (n: number) => Array.from({ length: n }, (_, i) => `a photograph of ${i} people walking a dog along the beach at sunset, number ${i}`);

async function main(): Promise<void> {
  process.stdout.write(`machine: ${machine()}\nload average at start: ${load()}\n`);
  const bundle = await prepareBundle();
  const service = await BundleService.open(bundle, { device: 'cpu', ...(args.threads ? { threads: Number(args.threads) } : {}), maxBatch: 32, maxDelayMs: 2, maxQueue: 256, cacheMb: 0 });
  const app = await buildServer({ ...DEFAULT_SERVER_OPTIONS, bundles: [], host: '127.0.0.1', port: 0, dataDir: join(outDir, 'data'), logger: false, maxBatch: 32 }, { services: [service] });
  const url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace(/\/$/, '');
  const texts = captions(TEXTS);
  const images = await photos(IMAGES);
  const imageDir = join(outDir, 'images');
  mkdirSync(imageDir, { recursive: true });
  images.forEach((bytes, i) => writeFileSync(join(imageDir, `${String(i).padStart(3, '0')}.jpg`), bytes));
  const items: Record<'text' | 'image', BulkItem[]> = {
    text: texts.map((text, i) => ({ id: `t${i}`, where: `text ${i}`, text })),
    image: images.map((_, i) => ({ id: `i${i}`, where: `image ${i}`, imagePath: join(imageDir, `${String(i).padStart(3, '0')}.jpg`) })),
  };
  const inputs: Record<'text' | 'image', unknown[]> = {
    text: texts,
    image: images.map((bytes) => ({ image: `data:image/jpeg;base64,${Buffer.from(bytes).toString('base64')}` })),
  };

  const bulk = async (kind: 'text' | 'image', batch: number) => {
    const out = join(outDir, `bulk-${kind}-${batch}.jsonl`);
    rmSync(out, { force: true });
    const output = await openEmbeddingOutput('jsonl', out);
    try {
      await bulkEmbed(service, items[kind], output, { batchSize: batch, skipped: [], ctx: () => ({ deadline: Number.POSITIVE_INFINITY }) });
    } finally {
      output.close();
    }
  };
  const http = async (kind: 'text' | 'image', batch: number) => {
    const all = inputs[kind];
    for (let start = 0; start < all.length; start += batch) {
      const response = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: service.name, input: all.slice(start, start + batch), encoding_format: 'float' }) });
      if (!response.ok) throw new Error(`/v1/embeddings answered ${response.status}: ${await response.text()}`);
      await response.json();
    }
  };

  // Warm-up: one of each kind through both paths (first-run allocations, JIT).
  await bulk('text', 32);
  await http('image', 1);
  const modes = (['text', 'image'] as const).flatMap((kind) => BATCHES.flatMap((batch) => (['bulk', 'http'] as const).map((path) => ({ kind, batch, path }))));
  const best = new Map<string, { ms: number; others: number }>();
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order each round so that neither path always runs first.
    for (const m of round % 2 ? [...modes].reverse() : modes) {
      const key = `${m.kind} ${m.batch} ${m.path}`;
      const { ms, othersShare } = await timedWithContention(() => (m.path === 'bulk' ? bulk(m.kind, m.batch) : http(m.kind, m.batch)));
      const prev = best.get(key);
      if (!prev || ms < prev.ms) best.set(key, { ms, others: othersShare });
      process.stdout.write(`round ${round + 1}: ${key.padEnd(16)} ${ms.toFixed(0)} ms, others used ${(othersShare * 100).toFixed(0)} % of the cores\n`);
    }
  }
  process.stdout.write(`\nload average at end: ${load()}\n\n| items | batch | path | items/s | vs batch 1 | others' CPU share |\n| --- | --- | --- | --- | --- | --- |\n`);
  for (const m of modes) {
    const n = m.kind === 'text' ? TEXTS : IMAGES;
    const r = best.get(`${m.kind} ${m.batch} ${m.path}`)!;
    const one = best.get(`${m.kind} 1 ${m.path}`)!;
    // A batch larger than the item count is one batch of all of them.
    process.stdout.write(`| ${n} ${m.kind}s | ${Math.min(m.batch, n)} | ${m.path === 'bulk' ? 'bulk CLI (bulkEmbed → jsonl)' : 'POST /v1/embeddings'} | ${((n * 1000) / r.ms).toFixed(2)} | ${(one.ms / r.ms).toFixed(2)}× | ${(r.others * 100).toFixed(0)} % |\n`);
  }
  process.stdout.write(`\npeak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB\n`);
  await app.close();
  await service.close();
  if (!args.keep) rmSync(outDir, { recursive: true, force: true });
}

await main();
