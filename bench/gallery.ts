/**
 * Gallery bench (issue #14): candidate search over a synthetic gallery of BASE-shaped ITC
 * features (256-d, unit length), exact scan against the HNSW index (server/gallery/vector-index.ts).
 *
 *   node --import tsx bench/gallery.ts                          # 1,000,000 vectors, top-128 (an hour+ of HNSW build on a shared 2-core machine)
 *   node --import tsx bench/gallery.ts --n 200000 --queries 100 --ef 256,384,512,768
 *   node --import tsx bench/gallery.ts --exact-only --queries 50   # 1M exact scan and memory, no graph
 *
 * The vectors: a mixture of --clusters Gaussian clusters on the unit sphere (real image features
 * cluster by content; uniform random vectors are the worst case for any graph index and are not
 * what a gallery holds), each point center + noise, normalized. Queries are fresh draws of the
 * same mixture. Recall@k: the share of the exact top-k ids the index returns, averaged.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg as osLoadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_INDEX_OPTIONS, VectorIndex } from '../server/gallery/vector-index.js';
import { itcMixture, recallOf } from '../test/helpers/itc-mixture.js';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    dim: { type: 'string', default: '256' },
    k: { type: 'string', default: '128' },
    queries: { type: 'string', default: '200' },
    clusters: { type: 'string', default: '2000' },
    noise: { type: 'string', default: '0.6' },
    // The server's defaults (DEFAULT_INDEX_OPTIONS).
    m: { type: 'string', default: String(DEFAULT_INDEX_OPTIONS.m) },
    'ef-construction': { type: 'string', default: String(DEFAULT_INDEX_OPTIONS.efConstruction) },
    /** Comma-separated: every ef is measured on the same graph and queries. */
    ef: { type: 'string', default: '256,384,512,768' },
    /** Only the exact scan (no HNSW build): the 1M-item figures a loaded machine can still afford. */
    'exact-only': { type: 'boolean', default: false },
  },
});

const num = (name: keyof typeof args): number => Number(args[name]);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function latency(label: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  return `${label.padEnd(34)} p50 ${percentile(sorted, 50).toFixed(2).padStart(8)} ms   p99 ${percentile(sorted, 99).toFixed(2).padStart(8)} ms   (${samples.length} queries)`;
}

async function itcBench(): Promise<void> {
  const n = num('n');
  const dim = num('dim');
  const k = num('k');
  const efs = args['exact-only'] ? [] : String(args.ef).split(',').map(Number);
  const draw = itcMixture(dim, num('clusters'), num('noise'), 7);
  console.log(`\n## ITC candidate search: ${n.toLocaleString('en')} × ${dim}-d, top-${k}, ${num('clusters')} clusters, noise ${num('noise')}`);
  console.log(`HNSW M=${num('m')} efConstruction=${num('ef-construction')}; ef swept over ${efs.join(', ')}; load ${loadavg()}`);

  const exactOnly = args['exact-only'] === true;
  const index = new VectorIndex(dim, { annThreshold: exactOnly ? Infinity : n, m: num('m'), efConstruction: num('ef-construction') });
  let start = performance.now();
  for (let i = 0; i < n - 1; i++) index.upsert(`img-${i}`, draw());
  const loadS = (performance.now() - start) / 1000;
  start = performance.now();
  const cpuStart = process.cpuUsage();
  index.upsert(`img-${n - 1}`, draw()); // the threshold: the background build starts
  let lastReport = start;
  const progress = setInterval(() => {
    const now = performance.now();
    if (now - lastReport > 60_000) {
      lastReport = now;
      console.log(`  … building HNSW, ${((now - start) / 1000).toFixed(0)} s so far, load ${loadavg()}`);
    }
  }, 5_000);
  await index.whenBuilt();
  clearInterval(progress);
  const buildS = (performance.now() - start) / 1000;
  // CPU time, unlike wall time, hardly depends on what else the shared machine runs: what to extrapolate from.
  const cpu = process.cpuUsage(cpuStart);
  const buildCpuS = (cpu.user + cpu.system) / 1e6;
  if (exactOnly) console.log(`flat load ${loadS.toFixed(1)} s; no HNSW graph (--exact-only); load ${loadavg()}`);
  else console.log(`flat load ${loadS.toFixed(1)} s; HNSW build ${buildS.toFixed(1)} s (${((buildS * 1e6) / n).toFixed(0)} µs per vector, single thread; CPU ${buildCpuS.toFixed(1)} s = ${((buildCpuS * 1e6) / n).toFixed(0)} µs per vector); load ${loadavg()}`);

  // Contenders strictly alternated per query (the machine is shared): exact, then every ef, the
  // order rotated each query so no contender always runs first after the exact scan.
  const queries = Array.from({ length: num('queries') }, draw);
  const exact: number[] = [];
  const ann = efs.map(() => [] as number[]);
  const recall = efs.map(() => 0);
  for (const [q, query] of queries.entries()) {
    let t = performance.now();
    const truth = index.exactNearest(query, k);
    exact.push(performance.now() - t);
    for (let j = 0; j < efs.length; j++) {
      const e = (j + q) % efs.length;
      t = performance.now();
      const found = index.approximateNearest(query, k, efs[e]);
      ann[e]!.push(performance.now() - t);
      recall[e]! += recallOf(truth, found);
    }
  }
  const exactP50 = percentile([...exact].sort((a, b) => a - b), 50);
  console.log(latency('exact scan', exact));
  for (const [e, ef] of efs.entries()) {
    const p50 = percentile([...ann[e]!].sort((a, b) => a - b), 50);
    console.log(`${latency(`HNSW ef ${ef}`, ann[e]!)}   recall@${k} ${(recall[e]! / queries.length).toFixed(4)}   ${(exactP50 / p50).toFixed(1)}× faster than exact at p50`);
  }
  console.log(`process RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB; load ${loadavg()}`);
}

function loadavg(): string {
  return osLoadavg().map((x) => x.toFixed(2)).join(' ');
}

const flags = [...new Set(readFileSync('/proc/cpuinfo', 'utf8').match(/\b(avx2|avx512f|avx512_vnni|avx_vnni)\b/g) ?? [])].sort();
console.log(`# bench/gallery.ts — ${cpus()[0]?.model ?? 'unknown CPU'} (${flags.join(' ')}), ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
await itcBench();
