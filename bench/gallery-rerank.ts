/**
 * Gallery re-ranking bench (issue #14): text search with ITM re-ranking of the ITC candidates,
 * on a full-size BASE retrieval bundle (bench/base-checkpoint.ts shapes with ITM + ITC heads,
 * random weights, converted here at 384 px), through the real `Gallery` + `BundleService`
 * path the /search route takes, at several `candidates` with the re-ranking cache hot (every
 * candidate's encoding cached) and cold (cache off: every candidate re-encoded from its image).
 *
 *   node --import tsx bench/gallery-rerank.ts                          # candidates 16,64,128; 1 query each
 *   node --import tsx bench/gallery-rerank.ts --candidates 16 --queries 1 --cache-dtype float16
 *
 * Bounded: the gallery holds max(candidates) images, filled once; hot and cold alternate per
 * query in one process (the machine is shared), smallest `candidates` first. Everything under
 * bench/out/gallery-rerank is removed at the end unless --keep.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { buildTokenizerJson, byteLevelAlphabet, serializeTokenizerJson } from '../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { Gallery } from '../server/gallery/gallery.js';
import { MemoryGalleryStore } from '../server/gallery/memory-gallery-store.js';
import { BundleService } from '../server/scheduling/bundle-service.js';
import { CACHE_STORAGES, type CacheStorage } from '../server/scheduling/image-cache.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'out', 'gallery-rerank');
const IMAGE_SIZE = 384;
const QUERY = 'two people sitting on a bench in a park';

const { values: args } = parseArgs({
  options: {
    candidates: { type: 'string', default: '16,64,128' },
    queries: { type: 'string', default: '1' },
    'cache-dtype': { type: 'string', default: 'float32' },
    threads: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const candidateCounts = String(args.candidates).split(',').map(Number).sort((a, b) => a - b);
const queries = Number(args.queries);
const cacheDtype = args['cache-dtype'] as CacheStorage;
if (!CACHE_STORAGES.includes(cacheDtype)) throw new Error(`--cache-dtype must be one of ${CACHE_STORAGES.join(', ')}`);

const log = (message: string): void => console.log(message);
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

/** A byte-level tokenizer whose merges make each word of the query one token, as roberta-base would. */
function benchTokenizer(): string {
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  byteLevelAlphabet().forEach((symbol, i) => (vocab[symbol] = 4 + i));
  vocab['<mask>'] = 260;
  const merges: string[] = [];
  for (const [i, word] of QUERY.split(' ').entries()) {
    let prefix = i === 0 ? '' : 'Ġ';
    for (const next of word) {
      if (prefix !== '') {
        const merge = `${prefix} ${next}`;
        if (!merges.includes(merge)) merges.push(merge);
      }
      prefix += next;
      vocab[prefix] ??= Object.keys(vocab).length;
    }
  }
  return serializeTokenizerJson(buildTokenizerJson(vocab, `#version: 0.2\n${merges.join('\n')}\n`));
}

/** BASE shapes (RoBERTa-base + CLIP ViT-B/16, 6 cross-modal layers) with the retrieval heads of BridgeTower_ftfpt_base_irtr. */
async function prepareBundle(): Promise<string> {
  const dir = join(outDir, 'bundle-384');
  if (existsSync(join(dir, 'config.json'))) return dir;
  mkdirSync(outDir, { recursive: true });
  const base = baseVqaArchitecture(576);
  const arch = { ...base, heads: { itm: { input_size: 2 * 768 }, itc: { dim: 256, image_source: 'vision_ln_post' as const } } };
  const checkpoint = join(outDir, 'base_irtr_random.ckpt');
  const tokenizer = join(outDir, 'tokenizer.json');
  writeFileSync(tokenizer, benchTokenizer());
  let started = performance.now();
  const bytes = writeBaseCheckpoint(checkpoint, arch);
  log(`wrote a BASE ITM+ITC checkpoint: ${(bytes / 1e9).toFixed(2)} GB of tensors in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  await convertCheckpoint({ checkpoint, out: dir, force: true, imageSize: IMAGE_SIZE, tokenizer });
  log(`converted at ${IMAGE_SIZE} px in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  rmSync(checkpoint, { force: true });
  return dir;
}

/** A 640×480 photo-like JPEG, distinct per seed. */
async function photo(seed: number): Promise<Uint8Array> {
  const width = 640;
  const height = 480;
  const raw = new Uint8Array(width * height * 3);
  let state = seed * 2654435761 + 1;
  for (let i = 0; i < raw.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const x = (i / 3) % width;
    raw[i] = (128 + 100 * Math.sin(x / (20 + (seed % 17)) + seed + (i % 3)) + ((state >>> 27) - 16)) & 0xff;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const flags = [...new Set(readFileSync('/proc/cpuinfo', 'utf8').match(/\b(avx2|avx512f|avx512_vnni|avx_vnni)\b/g) ?? [])].sort();
log(`# bench/gallery-rerank.ts — ${cpus()[0]?.model ?? 'unknown CPU'} (${flags.join(' ')}), ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; load ${load()}`);
const bundle = await prepareBundle();
const threads = args.threads === undefined ? {} : { threads: Number(args.threads) };
const service = await BundleService.open(bundle, { device: 'cpu', maxBatch: 8, maxDelayMs: 1, maxQueue: 1024, cacheMb: 0, ...threads });
const FAR = { deadline: Date.now() + 6 * 3600_000 };
const size = Math.max(...candidateCounts);

// Hot: a cache big enough for every item, filled by the PUTs. Cold: no cache, so every candidate is re-encoded.
const hot = await Gallery.open(new MemoryGalleryStore('bench'), { cacheMb: 16 * 1024, cacheStorage: cacheDtype });
const cold = await Gallery.open(new MemoryGalleryStore('bench'), { cacheMb: 0 });
let started = performance.now();
for (let i = 0; i < size; i++) {
  const image = await photo(i + 1);
  const encoding = await service.encodeImage(image, FAR);
  await hot.put({ id: `img-${i}`, image, encoding });
  await cold.put({ id: `img-${i}`, image, encoding });
}
const fillS = (performance.now() - started) / 1000;
log(`gallery of ${size} BASE images at ${IMAGE_SIZE} px filled in ${fillS.toFixed(1)} s (${((fillS * 1000) / size).toFixed(0)} ms per image encoded); load ${load()}; cache ${cacheDtype}`);

log(`\n| candidates | cache | p50 per search | per candidate | reencoded | queries | load after |`);
log('| --- | --- | --- | --- | --- | --- | --- |');
for (const candidates of candidateCounts) {
  const times = { hot: [] as number[], cold: [] as number[] };
  const reencoded = { hot: 0, cold: 0 };
  for (let q = 0; q < queries; q++) {
    // Alternated, the order swapped every query.
    for (const which of q % 2 === 0 ? (['hot', 'cold'] as const) : (['cold', 'hot'] as const)) {
      const gallery = which === 'hot' ? hot : cold;
      const session = gallery.session((bytes) => service.encodeImage(bytes, FAR));
      const t = performance.now();
      const hits = await service.search({ text: QUERY, k: 10, candidates, rerank: true, gallery: session }, FAR);
      times[which].push(performance.now() - t);
      reencoded[which] = session.reencoded;
      if (hits.length !== Math.min(10, candidates)) throw new Error(`internal error: ${hits.length} hits`);
    }
  }
  for (const which of ['hot', 'cold'] as const) {
    const p50 = median(times[which]);
    log(`| ${candidates} | ${which} | ${(p50 / 1000).toFixed(2)} s | ${(p50 / candidates).toFixed(0)} ms | ${reencoded[which]} | ${queries} | ${load()} |`);
  }
}
log(`\nprocess RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`);
await hot.close();
await cold.close();
await service.close();
if (!args.keep) rmSync(outDir, { recursive: true, force: true });
