/**
 * Producer-side bench of the precision variants (issue #12), on a full-size BASE VQA bundle with
 * random weights (bench/base-checkpoint.ts) at one resolution:
 *
 *   1. conversion time with `--variants fp32,int8` (every kernel-layout and int8 tensor prepared once);
 *   2. session start-up and peak memory (VmHWM of a fresh process that opens vqa.onnx and runs it
 *      once at batch 1) for the graphs as they were before kernel-layout weights (Transpose of the
 *      canonical tensor in the graph, rebuilt here), the fp32 graphs and the int8 graphs, strictly
 *      alternated over `--rounds`;
 *   3. fp32 vs int8 vqa.onnx in one process, batch by batch, strictly alternated, median of `--reps`;
 *   4. one Linear layer, per-row (the int8 graphs' MatMulInteger path) vs per-tensor com.microsoft
 *      DynamicQuantizeMatMul vs fp32 MatMul, on tiny-to-medium shapes, alternated.
 *
 *   node --import tsx bench/precision-graphs.ts                       # 384 px, batches 1 and 8
 *   node --import tsx bench/precision-graphs.ts --size 576 --batches 1 --reps 3
 *   node --import tsx bench/precision-graphs.ts --only micro          # just 4 (seconds)
 *
 * Every figure comes with the share of the CPU other processes used meanwhile (bench/cpu-contention.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { readBundleConfig } from '../bundle/config.js';
import { writeSafetensors } from '../bundle/safetensors/write-safetensors.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { GRAPHS } from '../models/bridgetower/graphs.js';
import { GraphBuilder } from '../models/ir/builder.js';
import { GraphWeightSet } from '../models/ir/graph-weights.js';
import { quantizeWeightMatMuls } from '../models/ir/quantize-int8.js';
import { serializeModel } from '../models/ir/serialize.js';
import { safetensorsWeightSource } from '../models/ir/weights.js';
import { linear } from '../models/layers/basic.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { timedWithContention } from './cpu-contention.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '384' },
    batches: { type: 'string', default: '1,8' },
    reps: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string' },
    open: { type: 'string' },
    keep: { type: 'boolean' },
  },
});

type Feeds = Record<string, ort.Tensor>;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const pct = (share: number) => `${Math.round(share * 100)} %`;

function vqaInputs(size: number, batch: number): Feeds {
  let state = 7 * batch + size;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const ids = BigInt64Array.from({ length: batch * 40 }, () => BigInt(3 + Math.floor(next() * 50000)));
  return {
    input_ids: new ort.Tensor('int64', ids, [batch, 40]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * 40).fill(1n), [batch, 40]),
    pixel_values: new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * size * size }, () => (next() - 0.5) * 4), [batch, 3, size, size]),
  };
}

// -------------------------------------------------------- child: open one graph, run once, report

if (args.open) {
  const size = Number(args.size);
  const started = performance.now();
  const session = await ort.InferenceSession.create(args.open, { graphOptimizationLevel: 'all' });
  const openMs = performance.now() - started;
  const runStarted = performance.now();
  await session.run(vqaInputs(size, 1));
  const runMs = performance.now() - runStarted;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
  process.stdout.write(JSON.stringify({ openMs, runMs, peakBytes: Number(hwm) * 1024 }));
  process.exit(0);
}

const flags = ['avx512_vnni', 'avx_vnni', 'avx2'].filter((f) => new RegExp(`\\b${f}\\b`).test(readFileSync('/proc/cpuinfo', 'utf8')));
const report: string[] = [`CPU: ${cpus()[0]?.model} × ${cpus().length}, flags: ${flags.join(', ') || 'none of avx512_vnni/avx_vnni/avx2'}; onnxruntime-node ${ort.env.versions.common}`];
const log = (line: string) => {
  report.push(line);
  process.stderr.write(`${line}\n`);
};

// -------------------------------------------------------- 4: one Linear, per-row vs per-tensor vs fp32

async function micro(): Promise<void> {
  const dir = join(here, 'out', 'precision-micro');
  mkdirSync(dir, { recursive: true });
  log('\nOne Linear layer (x [M, K] · Wᵀ + b), median ms of 20 alternated runs:\n\n| M×K→N | fp32 MatMul | per-row (int8 graphs) | per-tensor DynamicQuantizeMatMul | per-row / fp32 | per-tensor / fp32 | others |\n| --- | --- | --- | --- | --- | --- | --- |');
  for (const [m, k, n] of [[40, 64, 64], [40, 768, 768], [577, 768, 768], [577, 768, 3072], [4616, 768, 768]] as const) {
    let seed = m * 31 + n;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1;
    const canonical = join(dir, `w-${m}-${k}-${n}.safetensors`);
    writeSafetensors(canonical, [
      { name: 'w.weight', dtype: 'float32', shape: [n, k], data: new Uint8Array(Float32Array.from({ length: n * k }, rand).buffer) },
      { name: 'w.bias', dtype: 'float32', shape: [n], data: new Uint8Array(Float32Array.from({ length: n }, rand).buffer) },
    ]);
    const files: Record<string, string> = {};
    for (const kind of ['fp32', 'rowwise', 'tensorwise'] as const) {
      const sub = join(dir, kind);
      mkdirSync(sub, { recursive: true });
      const weights = new GraphWeightSet(canonical, `w-${m}-${k}-${n}.safetensors`, 'float32');
      const b = new GraphBuilder(kind, weights);
      const x = b.input('x', 'float32', [m, k]);
      if (kind === 'tensorwise') {
        const w = b.scope('w');
        b.output(b.op('DynamicQuantizeMatMul', [x, w.weight('weight#kernel#s8'), w.weight('weight#kernel#scale'), undefined, w.weight('bias')]), 'y', [m, n]);
      } else {
        b.output(linear(b.scope('w'), x), 'y', [m, n]);
      }
      let graph = b.build();
      if (kind === 'rowwise') graph = quantizeWeightMatMuls(graph, { weights, weightType: 's8' });
      const placed = weights.write(join(sub, `w-${m}-${k}-${n}.safetensors`), [graph]);
      files[kind] = join(sub, `linear-${m}-${k}-${n}.onnx`);
      writeFileSync(files[kind]!, serializeModel(placed.graphs[0]!));
    }
    const sessions = Object.fromEntries(await Promise.all(Object.entries(files).map(async ([kind, f]) => [kind, await ort.InferenceSession.create(f, { graphOptimizationLevel: 'all' })] as const)));
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: m * k }, rand), [m, k]) };
    const times: Record<string, number[]> = { fp32: [], rowwise: [], tensorwise: [] };
    const others: number[] = [];
    for (const s of Object.values(sessions)) await s.run(feeds);
    for (let i = 0; i < 20; i++) {
      for (const kind of i % 2 ? (['tensorwise', 'rowwise', 'fp32'] as const) : (['fp32', 'rowwise', 'tensorwise'] as const)) {
        const run = await timedWithContention(() => sessions[kind]!.run(feeds));
        times[kind]!.push(run.ms);
        others.push(run.othersShare);
      }
    }
    const [f, r, t] = [median(times.fp32!), median(times.rowwise!), median(times.tensorwise!)];
    log(`| ${m}×${k}→${n} | ${f.toFixed(3)} | ${r.toFixed(3)} | ${t.toFixed(3)} | ${(r / f).toFixed(2)} | ${(t / f).toFixed(2)} | ${pct(median(others))} |`);
    for (const s of Object.values(sessions)) await s.release();
  }
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
}

// -------------------------------------------------------- 1–3: the BASE bundle

async function base(): Promise<void> {
  const size = Number(args.size);
  const dir = join(here, 'out', 'precision');
  mkdirSync(dir, { recursive: true });
  const checkpoint = join(dir, 'base_vqa_random.ckpt');
  const bundle = join(dir, `bundle-${size}`);
  if (!existsSync(checkpoint)) writeBaseCheckpoint(checkpoint, baseVqaArchitecture(576));
  let started = performance.now();
  await convertCheckpoint({ checkpoint, out: bundle, force: true, imageSize: size, variants: ['fp32', 'int8'] });
  log(`\nconvert --variants fp32,int8 of BASE VQA at ${size} px: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const config = readBundleConfig(bundle);
  const variants = config.graphs!.variants!;
  log(`weights + graphs on disk: fp32 ${mb(variants.fp32!.bytes)}, int8 ${mb(variants.int8!.bytes)} (${(variants.int8!.bytes / variants.fp32!.bytes).toFixed(2)}× fp32), int8-u8 ${mb(variants.int8!.u8!.bytes)}`);

  // The graphs as they were before kernel-layout weights: built on the canonical tensors (the
  // training graphs' weight source), so each weight goes through a Transpose (CLIP's through Split).
  started = performance.now();
  const onnxDir = join(bundle, 'onnx');
  const spec = GRAPHS.find((g) => g.file === 'vqa.onnx')!;
  const b = new GraphBuilder('vqa', safetensorsWeightSource(join(onnxDir, 'model.safetensors'), onnxDir));
  spec.build(b, { arch: config.architecture, dtype: 'float32' });
  const legacy = join(onnxDir, 'transpose-layout-vqa.onnx');
  writeFileSync(legacy, serializeModel(b.build(spec.description)));
  log(`(rebuilt the Transpose-layout vqa.onnx in ${((performance.now() - started) / 1000).toFixed(1)} s)`);

  const contenders = { 'fp32, Transpose layout (before)': legacy, 'fp32, kernel layout': join(onnxDir, 'vqa.onnx'), int8: join(bundle, 'onnx', 'int8', 'vqa.onnx') };
  const opened: Record<string, Array<{ openMs: number; runMs: number; peakBytes: number }>> = {};
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [name, file] of Object.entries(contenders)) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--open', file, '--size', String(size)], { encoding: 'utf8' });
      (opened[name] ??= []).push(JSON.parse(out));
    }
  }
  log(`\nvqa.onnx at ${size} px in a fresh process, median of ${args.rounds} alternated rounds:\n\n| graphs | session create s | first run (batch 1) s | peak RSS |\n| --- | --- | --- | --- |`);
  for (const [name, runs] of Object.entries(opened)) {
    log(`| ${name} | ${(median(runs.map((r) => r.openMs)) / 1000).toFixed(2)} | ${(median(runs.map((r) => r.runMs)) / 1000).toFixed(2)} | ${mb(median(runs.map((r) => r.peakBytes)))} |`);
  }
  rmSync(legacy);

  const sessions = {
    fp32: await ort.InferenceSession.create(contenders['fp32, kernel layout'], { graphOptimizationLevel: 'all' }),
    int8: await ort.InferenceSession.create(contenders.int8, { graphOptimizationLevel: 'all' }),
  };
  log(`\nvqa.onnx fp32 vs int8 in one process, strictly alternated, median of ${args.reps}:\n\n| batch | fp32 s | int8 s | int8 / fp32 | others (CPU share) |\n| --- | --- | --- | --- | --- |`);
  for (const batch of args.batches!.split(',').map(Number)) {
    const feeds = vqaInputs(size, batch);
    for (const s of Object.values(sessions)) await s.run(feeds);
    const times = { fp32: [] as number[], int8: [] as number[] };
    const others: number[] = [];
    for (let i = 0; i < Number(args.reps); i++) {
      for (const name of i % 2 ? (['int8', 'fp32'] as const) : (['fp32', 'int8'] as const)) {
        const run = await timedWithContention(() => sessions[name].run(feeds));
        times[name].push(run.ms);
        others.push(run.othersShare);
      }
    }
    const [f, q] = [median(times.fp32), median(times.int8)];
    log(`| ${batch} | ${(f / 1000).toFixed(2)} | ${(q / 1000).toFixed(2)} | ${(q / f).toFixed(2)} | ${pct(median(others))} |`);
  }
  for (const s of Object.values(sessions)) await s.release();
  if (!args.keep) rmSync(bundle, { recursive: true, force: true });
}

const wall = performance.now();
if (args.only !== 'base') await micro();
if (args.only !== 'micro') await base();
log(`\n\`node --import tsx bench/precision-graphs.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\`, wall ${((performance.now() - wall) / 1000).toFixed(0)} s`);
process.stdout.write(`${report.join('\n')}\n`);
