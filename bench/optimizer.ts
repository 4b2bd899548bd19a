/**
 * AdamW update bench: the engines of train/optimizer/adamw-engines.ts side by side on one flat
 * buffer set (param, grad, m, v) of `--millions` values, strictly alternated in one process
 * (round r runs every contender once, in rotated order), plus the SIMD kernel and the plain loop
 * split over worker threads (`--workers`, each a contiguous share of SharedArrayBuffer-backed
 * buffers). Reports wall time, this process's CPU time (workers included) and the effective
 * bandwidth of the update's minimum traffic (4 floats read, 3 written per value), with the share
 * of the cores other processes used meanwhile.
 *
 *   node --import tsx bench/optimizer.ts                          # 64 M values, 3 rounds
 *   node --import tsx bench/optimizer.ts --millions 340 --rounds 2   # BASE --trainable all (5.4 GB of buffers)
 *   node --import tsx bench/optimizer.ts --engines wasm,ort --workers 2 --json
 *   node --import tsx bench/optimizer.ts --engines native,wasm --native-threads 1,2   # the native engine on 1 and on 2 threads
 *
 * The native engine (its addon built: npm run build:native) splits the range over its own threads
 * (`--native-threads`, default 1 and every core), so it takes no part in the worker-thread split.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { BridgeTowerError } from '../common/errors.js';
import { stepScalars } from '../train/optimizer/adamw.js';
import { ADAMW_ENGINE_NAMES, ADAMW_ENGINES, type AdamWEngine, type AdamWEngineName } from '../train/optimizer/adamw-engines.js';
import { loadNativeAdamW } from '../train/optimizer/adamw-native.js';
import { timedWithContention } from './cpu-contention.js';

interface Buffers {
  param: Float32Array;
  grad: Float32Array;
  m: Float32Array;
  v: Float32Array;
}
type Shared = { [K in keyof Buffers]: SharedArrayBuffer };
const view = (s: Shared): Buffers => ({ param: new Float32Array(s.param), grad: new Float32Array(s.grad), m: new Float32Array(s.m), v: new Float32Array(s.v) });
const STEP = stepScalars(1e-5, 0.01, 3);

/** A worker: owns one engine, updates its [from, to) share of the shared buffers on request. */
async function workerMain(): Promise<void> {
  const { engine: name, shared, from, to } = workerData as { engine: AdamWEngineName; shared: Shared; from: number; to: number };
  const b = view(shared);
  const engine = await ADAMW_ENGINES[name].open({ threads: 1 });
  parentPort!.on('message', async () => {
    await engine.update(b.param, b.grad, b.m, b.v, from, to - from, STEP.stepSize, STEP.decayAlpha);
    parentPort!.postMessage('done');
  });
  parentPort!.postMessage('ready');
}

/** `count` workers over equal shares; update() resolves when all are done. */
async function openWorkers(name: AdamWEngineName, shared: Shared, total: number, count: number): Promise<AdamWEngine & { n: number }> {
  const workers = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const from = Math.floor((total * i) / count / 4) * 4;
      const to = i === count - 1 ? total : Math.floor((total * (i + 1)) / count / 4) * 4;
      // Node 20 does not carry --import loaders into workers: the worker registers tsx itself.
      const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
      const worker = new Worker(boot, { eval: true, workerData: { engine: name, shared, from, to } });
      return new Promise<Worker>((resolve) => worker.once('message', () => resolve(worker)));
    }),
  );
  return {
    n: count,
    update: () => Promise.all(workers.map((w) => new Promise((resolve) => (w.once('message', resolve), w.postMessage('go'))))).then(() => undefined),
    release: async () => void (await Promise.all(workers.map((w) => w.terminate()))),
  };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      millions: { type: 'string', default: '64' },
      rounds: { type: 'string', default: '3' },
      // Without its addon the native engine is left out unless named (then its open() says how to build it).
      engines: { type: 'string', default: ADAMW_ENGINE_NAMES.filter((e) => e !== 'native' || !('reason' in loadNativeAdamW())).join(',') },
      workers: { type: 'string', default: String(Math.min(2, cpus().length)) },
      'ort-threads': { type: 'string' },
      'native-threads': { type: 'string', default: [...new Set([1, availableParallelism()])].join(',') },
      json: { type: 'boolean', default: false },
    },
  });
  const total = Math.round(Number(args.millions) * 1e6);
  const rounds = Number(args.rounds);
  const workerCount = Number(args.workers);
  if (!(total > 0) || !(rounds >= 1) || !(workerCount >= 0)) throw new BridgeTowerError('E_USAGE', '--millions, --rounds must be positive and --workers 0 or more');
  const engines = args.engines.split(',') as AdamWEngineName[];
  const unknown = engines.find((e) => !ADAMW_ENGINE_NAMES.includes(e));
  if (unknown) throw new BridgeTowerError('E_USAGE', `--engines: '${unknown}' is none of ${ADAMW_ENGINE_NAMES.join(', ')}`);

  const sab = () => new SharedArrayBuffer(workerCount > 1 ? 4 * total : 0);
  const shared: Shared = { param: sab(), grad: sab(), m: sab(), v: sab() };
  const fill = (b: Buffers) => {
    for (let i = 0; i < total; i++) {
      const x = Math.sin(i) * 1e-2;
      b.param[i] = x;
      b.grad[i] = x * 1e-3;
      // Every buffer written once, so no contender pays the first touch of a page.
      b.m[i] = x * 1e-4;
      b.v[i] = x * x * 1e-6;
    }
    return b;
  };
  // ONNX Runtime refuses tensors on a SharedArrayBuffer: the single-threaded contenders share
  // ordinary buffers, the workers their own shared copy (both the same values).
  const plain = fill({ param: new Float32Array(total), grad: new Float32Array(total), m: new Float32Array(total), v: new Float32Array(total) });
  if (workerCount > 1) fill(view(shared));
  const threads = args['ort-threads'] ? { threads: Number(args['ort-threads']) } : {};
  const contenders: { name: string; engine: AdamWEngine }[] = [];
  const nativeThreads = args['native-threads'].split(',').map(Number);
  if (nativeThreads.some((n) => !(Number.isInteger(n) && n >= 1))) throw new BridgeTowerError('E_USAGE', '--native-threads takes positive integers, e.g. 1,2');
  for (const name of engines) {
    if (name !== 'native') contenders.push({ name, engine: await ADAMW_ENGINES[name].open(threads) });
    else for (const n of nativeThreads) contenders.push({ name: `native ×${n} thread${n > 1 ? 's' : ''}`, engine: await ADAMW_ENGINES.native.open({ threads: n }) });
  }
  if (workerCount > 1) {
    for (const name of engines.filter((e) => e !== 'ort' && e !== 'native')) contenders.push({ name: `${name} ×${workerCount} workers`, engine: await openWorkers(name, shared, total, workerCount) });
  }

  const times = new Map(contenders.map((c) => [c.name, [] as { ms: number; cpuMs: number; othersShare: number }[]]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(k + r) % contenders.length]!;
      const cpu = process.cpuUsage();
      const t = await timedWithContention(async () => c.engine.update(plain.param, plain.grad, plain.m, plain.v, 0, total, STEP.stepSize, STEP.decayAlpha));
      const used = process.cpuUsage(cpu);
      times.get(c.name)!.push({ ms: t.ms, cpuMs: (used.user + used.system) / 1000, othersShare: t.othersShare });
      console.error(`round ${r + 1} ${c.name}: ${(t.ms / 1000).toFixed(3)} s`);
    }
  }
  for (const c of contenders) await c.engine.release();

  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const rows = contenders.map((c) => {
    const runs = times.get(c.name)!;
    const ms = median(runs.map((x) => x.ms));
    return { engine: c.name, medianMs: ms, minMs: Math.min(...runs.map((x) => x.ms)), cpuMs: median(runs.map((x) => x.cpuMs)), gbPerS: (28 * total) / (ms / 1000) / 1e9, othersShareMax: Math.max(...runs.map((x) => x.othersShare)) };
  });
  const flags = ['avx512f', 'avx512_vnni', 'avx_vnni', 'avx2', 'fma'].filter((f) => new RegExp(`\\b${f}\\b`).test(cpuinfo()));
  if (args.json) return console.log(JSON.stringify({ values: total, rounds, cpu: cpus()[0]?.model, cores: cpus().length, flags, native: nativeKernel().replace(/^; /, ''), rows }, null, 2));
  console.log(`AdamW update of ${(total / 1e6).toFixed(0)} M values, median of ${rounds} alternated rounds; ${cpus()[0]?.model} × ${cpus().length}, flags ${flags.join(' ')}${nativeKernel()}; worker threads use SharedArrayBuffer-backed buffers\n`);
  console.log('| engine | wall (median, min) | CPU time | effective bandwidth | others used (max) |\n| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.engine} | ${(r.medianMs / 1000).toFixed(2)} s, ${(r.minMs / 1000).toFixed(2)} s | ${(r.cpuMs / 1000).toFixed(2)} s | ${r.gbPerS.toFixed(1)} GB/s | ${Math.round(100 * r.othersShareMax)} % |`);
}

/** Which kernel the native engine runs here, for the heading. */
function nativeKernel(): string {
  const load = loadNativeAdamW();
  return 'reason' in load ? '; native addon not built' : `; native kernel ${load.kernels[0]}`;
}

function cpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

if (isMainThread) await main();
else await workerMain();
