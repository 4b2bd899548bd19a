/**
 * Inference bench: a full-size BASE VQA bundle (random weights) on ONNX Runtime's CPU provider,
 * with graph optimizations off ('disabled', "plain") and on ('all', "optimized"), side by side in
 * one run (modes alternate, best of N). Also measures this machine's fp32 MatMul peak through ONNX
 * Runtime, so every model figure is also given as a fraction of what ORT's GEMM reaches here.
 *
 *   node --import tsx bench/infer.ts                          # VQA at 576 px and 384 px, batch 1 and 8
 *   node --import tsx bench/infer.ts --sizes 384 --batches 1 --reps 5
 *   node --import tsx bench/infer.ts --keep                   # keep checkpoint + bundles in bench/out/infer
 *   node --import tsx bench/infer.ts --fresh                  # rebuild them even if cached
 *   node --import tsx bench/infer.ts --precision fp32,int8 --bundle <dir>  # precision variants (bench/precision-variants.ts)
 *
 * Configurations: 576 px is BridgeTower_ftfpt_base_vqav2's resolution; 384 px is the resolution of
 * the SNLI-VE / NLVR2 / retrieval fine-tunes (same BASE shapes, the positional embedding resized by
 * convert-ckpt --image-size). Text is 40 random token ids, attention mask all ones.
 *
 * Each (graph, batch) case runs up to --reps times per mode but stops early once it has used
 * --budget-s seconds (both modes together): batch 8 at 576 px is ~3.8 TFLOP, tens of seconds.
 * The FLOP count is analytic: see bench/model-flops.ts for the formula.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { GraphBuilder } from '../models/ir/builder.js';
import { serializeModel } from '../models/ir/serialize.js';
import { openGraph } from '../runtime/session.js';
import { graphVariants } from '../bundle/graph-variants.js';
import { readBundleConfig } from '../bundle/config.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { timedWithContention } from './cpu-contention.js';
import { vqaFlopsPerSample, type ModelFlops } from './model-flops.js';
import { benchPrecisions, parsePrecisions } from './precision-variants.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHECKPOINT_SIZE = 576;
const FIRST_REAL_ID = 3; // <s>, <pad>, </s> are 0..2
type Mode = 'plain' | 'optimized';
type ModeSetup = { level: 'disabled' | 'all'; fusedGraphs: boolean };
const MODE_NAMES: Mode[] = ['plain', 'optimized'];
type Feeds = Record<string, ort.Tensor>;

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '576,384' },
    batches: { type: 'string', default: '1,8' },
    reps: { type: 'string', default: '3' },
    'budget-s': { type: 'string', default: '45' },
    'text-len': { type: 'string', default: '40' },
    keep: { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    // ort: ONNX Runtime optimizations off vs on (same graphs); fused: plain vs --optimize graphs (both 'all').
    compare: { type: 'string', default: 'ort' },
    // Precision variants instead of optimization modes: two or more of fp32, int8, fp16, the baseline first.
    precision: { type: 'string' },
    // With --precision: an existing bundle holding those variants (its image size is the only size).
    bundle: { type: 'string' },
  },
});

const COMPARISONS: Record<string, Record<Mode, ModeSetup>> = {
  ort: { plain: { level: 'disabled', fusedGraphs: false }, optimized: { level: 'all', fusedGraphs: false } },
  fused: { plain: { level: 'all', fusedGraphs: false }, optimized: { level: 'all', fusedGraphs: true } },
};
const LEGENDS: Record<string, string> = {
  ort: "plain = ONNX Runtime graphOptimizationLevel 'disabled', optimized = 'all' (the same graphs)",
  fused: "plain = the default graphs, optimized = the --optimize graphs (fused MultiHeadAttention); both with graphOptimizationLevel 'all'",
};
if (!COMPARISONS[args.compare!]) throw new Error(`--compare must be one of ${Object.keys(COMPARISONS).join(', ')}`);
const MODES: Record<Mode, ModeSetup> = COMPARISONS[args.compare!]!;

function positiveInts(flag: string, text: string): number[] {
  const list = text.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new BridgeTowerError('E_USAGE', `--${flag} '${text}' must be a comma-separated list of positive integers (e.g. --${flag} ${flag === 'sizes' ? '576,384' : '1,8'})`);
  }
  return list;
}

const sizes = positiveInts('sizes', args.sizes);
const batches = positiveInts('batches', args.batches);
const reps = positiveInts('reps', args.reps)[0]!;
const budgetS = positiveInts('budget-s', args['budget-s'])[0]!;
const textLen = positiveInts('text-len', args['text-len'])[0]!;
for (const size of sizes) {
  if (size % 16 !== 0) throw new BridgeTowerError('E_USAGE', `--sizes ${size} is not a multiple of the patch size 16 (try ${Math.round(size / 16) * 16})`);
}

const log = (line: string) => console.error(line);
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const share = (x: number) => (Number.isNaN(x) ? '?' : `${Math.round(100 * x)} %`);

// ---------------------------------------------------------------- MatMul peak

/** Best-of GFLOP/s of one [n,n]×[n,n] fp32 MatMul through ORT (default threads, as the model runs). */
async function matmulPeak(n = 2048, runs = 10): Promise<{ gflops: number; othersShare: number }> {
  const b = new GraphBuilder('matmul_peak', { lookup: () => undefined });
  const a = b.input('a', 'float32', [n, n]);
  const w = b.input('w', 'float32', [n, n]);
  b.output(b.op('MatMul', [a, w]), 'c', [n, n]);
  const session = await ort.InferenceSession.create(serializeModel(b.build()), { graphOptimizationLevel: 'all' });
  const data = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const feeds = { a: new ort.Tensor('float32', data, [n, n]), w: new ort.Tensor('float32', data, [n, n]) };
  await session.run(feeds);
  let best = { ms: Infinity, othersShare: NaN };
  for (let i = 0; i < runs; i++) {
    const run = await timedWithContention(() => session.run(feeds));
    if (run.ms < best.ms) best = run;
  }
  await session.release();
  return { gflops: (2 * n ** 3) / (best.ms / 1000) / 1e9, othersShare: best.othersShare };
}

// ---------------------------------------------------------------- bundles

const outDir = join(here, 'out', 'infer');
const checkpoint = join(outDir, 'base_vqa_random.ckpt');
const bundleDir = (size: number, fused = false) => join(outDir, `bundle-${size}${fused ? '-fused' : ''}`);

/** The bundle for `size` px, converted from the cached 576 px checkpoint unless already there. */
async function prepareBundle(size: number): Promise<BridgeTowerArchitecture> {
  const variants = [...new Set(MODE_NAMES.map((m) => MODES[m].fusedGraphs))];
  for (const fused of variants) {
    const dir = bundleDir(size, fused);
    const ready = () => existsSync(join(dir, 'onnx', 'vqa.onnx')) && existsSync(join(dir, 'config.json'));
    if (args.fresh || !ready()) {
      if (args.fresh || !existsSync(checkpoint)) {
        const started = performance.now();
        const bytes = writeBaseCheckpoint(checkpoint, baseVqaArchitecture(CHECKPOINT_SIZE));
        log(`wrote ${checkpoint}: ${(bytes / 1e9).toFixed(2)} GB of tensors in ${seconds(performance.now() - started)} s`);
      }
      const started = performance.now();
      await convertCheckpoint({ checkpoint, out: dir, force: true, imageSize: size, optimize: fused });
      log(`converted to ${dir} (${size} px${fused ? ', fused attention' : ''}) in ${seconds(performance.now() - started)} s`);
    } else {
      log(`reusing ${dir}`);
    }
  }
  return (JSON.parse(readFileSync(join(bundleDir(size), 'config.json'), 'utf8')) as { architecture: BridgeTowerArchitecture }).architecture;
}

// ---------------------------------------------------------------- inputs

function pseudoRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function modelInputs(arch: BridgeTowerArchitecture, batch: number): Feeds {
  const next = pseudoRandom(batch * 7 + arch.vision.image_size);
  const tokens = batch * textLen;
  const ids = BigInt64Array.from({ length: tokens }, () => BigInt(FIRST_REAL_ID + Math.floor(next() * (arch.text.vocab_size - FIRST_REAL_ID))));
  const size = arch.vision.image_size;
  const pixels = Float32Array.from({ length: batch * 3 * size * size }, () => (next() - 0.5) * 4);
  return {
    input_ids: new ort.Tensor('int64', ids, [batch, textLen]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(tokens).fill(1n), [batch, textLen]),
    pixel_values: new ort.Tensor('float32', pixels, [batch, 3, size, size]),
  };
}

// ---------------------------------------------------------------- timing

interface CaseResult {
  config: string;
  graph: string;
  batch: number;
  flops: number;
  best: Record<Mode, number>;
  /** Share of the cores other processes used during each mode's best run. */
  others: Record<Mode, number>;
  runs: number;
}

type Sessions = Record<Mode, Record<string, ort.InferenceSession>>;

/** Opens each graph in both modes; returns the sessions and the open time per mode (ms). */
async function openAll(size: number, graphs: string[]): Promise<{ sessions: Sessions; openMs: Record<Mode, number> }> {
  const sessions = { plain: {}, optimized: {} } as Sessions;
  const openMs = { plain: 0, optimized: 0 };
  for (const mode of MODE_NAMES) {
    for (const graph of graphs) {
      const started = performance.now();
      sessions[mode][graph] = (await openGraph(bundleDir(size, MODES[mode].fusedGraphs), graph, { optimization: MODES[mode].level })).session;
      openMs[mode] += performance.now() - started;
    }
  }
  return { sessions, openMs };
}

async function releaseAll(sessions: Sessions): Promise<void> {
  for (const mode of MODE_NAMES) for (const s of Object.values(sessions[mode])) await s.release();
}

/**
 * Runs `step` in both modes, alternating (the first mode of each round swaps, so neither always
 * follows the other), up to `reps` rounds or until the case has spent `budgetS`. Best time wins.
 */
async function timeBothModes(label: string, step: (mode: Mode) => Promise<unknown>): Promise<{ best: Record<Mode, number>; others: Record<Mode, number>; runs: number }> {
  const best = { plain: Infinity, optimized: Infinity };
  const others = { plain: NaN, optimized: NaN };
  const started = performance.now();
  let runs = 0;
  while (runs < reps) {
    const order = runs % 2 === 0 ? MODE_NAMES : [...MODE_NAMES].reverse();
    let roundMs = 0;
    for (const mode of order) {
      const run = await timedWithContention(() => step(mode));
      roundMs += run.ms;
      if (run.ms < best[mode]) [best[mode], others[mode]] = [run.ms, run.othersShare];
    }
    runs++;
    log(`  ${label} #${runs}: best plain ${seconds(best.plain)} s, optimized ${seconds(best.optimized)} s; others used ${share(others.plain)} / ${share(others.optimized)} of the cores`);
    if (performance.now() - started + roundMs > budgetS * 1000) break;
  }
  return { best, others, runs };
}

/** End to end (`vqa.onnx`) and the split graphs, every batch, for one bundle. */
async function benchConfig(config: string, size: number, arch: BridgeTowerArchitecture, results: CaseResult[], opens: string[]): Promise<void> {
  const perSample = vqaFlopsPerSample(arch, textLen);

  const e2e = await openAll(size, ['vqa']);
  opens.push(`| ${config} | vqa.onnx | ${seconds(e2e.openMs.plain)} | ${seconds(e2e.openMs.optimized)} |`);
  for (const batch of batches) {
    const feeds = modelInputs(arch, batch);
    const timed = await timeBothModes(`${config} vqa.onnx batch ${batch}`, (mode) => e2e.sessions[mode].vqa!.run(feeds));
    results.push({ config, graph: 'vqa.onnx (end to end)', batch, flops: batch * perSample.total, ...timed });
  }
  await releaseAll(e2e.sessions);

  const splitGraphs = ['text_encoder', 'image_encoder', 'fusion', 'head_vqa'];
  const split = await openAll(size, splitGraphs);
  opens.push(`| ${config} | ${splitGraphs.map((g) => `${g}.onnx`).join(' + ')} | ${seconds(split.openMs.plain)} | ${seconds(split.openMs.optimized)} |`);
  for (const batch of batches) {
    const { input_ids, attention_mask, pixel_values } = modelInputs(arch, batch);
    const s = split.sessions;
    // The fusion inputs come from one optimized encoder run; both modes then time the same work.
    const { text_embeds } = await s.optimized.text_encoder!.run({ input_ids: input_ids!, attention_mask: attention_mask! });
    const { image_embeds } = await s.optimized.image_encoder!.run({ pixel_values: pixel_values! });
    const fusionFeeds = { text_embeds: text_embeds!, image_embeds: image_embeds!, attention_mask: attention_mask!, image_token_type: new ort.Tensor('int64', new BigInt64Array(batch).fill(1n), [batch]) };
    const parts: Array<[string, number, (mode: Mode) => Promise<unknown>]> = [
      ['text_encoder.onnx', perSample.text, (mode) => s[mode].text_encoder!.run({ input_ids: input_ids!, attention_mask: attention_mask! })],
      ['image_encoder.onnx', perSample.image, (mode) => s[mode].image_encoder!.run({ pixel_values: pixel_values! })],
      ['fusion.onnx + head_vqa.onnx', perSample.fusion + perSample.head, async (mode) => {
        const { cls_feats } = await s[mode].fusion!.run(fusionFeeds);
        return s[mode].head_vqa!.run({ cls_feats: cls_feats! });
      }],
    ];
    for (const [graph, flops, step] of parts) {
      const timed = await timeBothModes(`${config} ${graph} batch ${batch}`, step);
      results.push({ config, graph, batch, flops: batch * flops, ...timed });
    }
  }
  await releaseAll(split.sessions);
}

// ---------------------------------------------------------------- profile

interface OpTime {
  nodes: number;
  ms: number;
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/**
 * Runs `vqa.onnx` (batch 1) twice with ORT's profiler in one mode and sums kernel time per op
 * type over the second run: where the time goes, and which ops the optimizer fused (op types such
 * as FusedMatMul, BiasGelu, SkipLayerNormalization appear only when it did).
 */
async function profileOps(size: number, arch: BridgeTowerArchitecture, mode: Mode): Promise<Map<string, OpTime>> {
  const prefix = join(outDir, `profile-${mode}`);
  const session = await ort.InferenceSession.create(join(bundleDir(size, MODES[mode].fusedGraphs), 'onnx', 'vqa.onnx'), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: MODES[mode].level,
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  const feeds = modelInputs(arch, 1);
  await session.run(feeds);
  await session.run(feeds);
  session.endProfiling();
  await session.release();
  const file = readdirSync(outDir)
    .filter((f) => f.startsWith(`profile-${mode}`) && f.endsWith('.json'))
    .map((f) => join(outDir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!file) throw new Error(`internal error: ORT wrote no profile for prefix ${prefix}`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  rmSync(file);
  const lastRun = events.filter((e) => e.name === 'model_run').reduce((a, e) => Math.max(a, e.ts), 0);
  const byOp = new Map<string, OpTime>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < lastRun) continue;
    const op = e.args?.op_name ?? '?';
    const entry = byOp.get(op) ?? { nodes: 0, ms: 0 };
    entry.nodes++;
    entry.ms += e.dur / 1000;
    byOp.set(op, entry);
  }
  return byOp;
}

// ---------------------------------------------------------------- report

const fmt = (n: number, digits = 0) => n.toFixed(digits);
const pct = (flops: number, ms: number, peak: number) => `${fmt((100 * flops) / (ms / 1000) / (peak * 1e9), 1)} %`;

function resultTable(rows: CaseResult[], peak: number): string[] {
  const lines = [
    '| graph | batch | GFLOP | plain ms | optimized ms | plain / optimized | plain samples/s | optimized samples/s | plain % of peak | optimized % of peak | runs | CPU used by others |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const { plain, optimized } = r.best;
    lines.push(
      `| ${r.graph} | ${r.batch} | ${fmt(r.flops / 1e9, 1)} | ${fmt(plain)} | ${fmt(optimized)} | ${fmt(plain / optimized, 2)}× | ${fmt((r.batch * 1000) / plain, 2)} | ${fmt((r.batch * 1000) / optimized, 2)} | ${pct(r.flops, plain, peak)} | ${pct(r.flops, optimized, peak)} | ${r.runs} | ${share(r.others.plain)} / ${share(r.others.optimized)} |`,
    );
  }
  return lines;
}

function profileTable(plain: Map<string, OpTime>, optimized: Map<string, OpTime>): string[] {
  const total = (m: Map<string, OpTime>) => [...m.values()].reduce((s, e) => s + e.ms, 0);
  const share = (m: Map<string, OpTime>, op: string) => (m.get(op)?.ms ?? 0) / total(m);
  const ops = [...new Set([...plain.keys(), ...optimized.keys()])].sort((a, b) => Math.max(share(optimized, b), share(plain, b)) - Math.max(share(optimized, a), share(plain, a)));
  // Op types under 0.5 % of kernel time in both modes share one row.
  const shown = ops.filter((op) => Math.max(share(plain, op), share(optimized, op)) >= 0.005);
  const rest = (m: Map<string, OpTime>) => ops.filter((op) => !shown.includes(op) && m.has(op)).reduce((s, op) => ({ nodes: s.nodes + m.get(op)!.nodes, ms: s.ms + m.get(op)!.ms }), { nodes: 0, ms: 0 });
  const cell = (m: Map<string, OpTime>, e: OpTime | undefined) => (e && e.nodes > 0 ? `${e.nodes} | ${fmt(e.ms)} | ${fmt((100 * e.ms) / total(m), 1)} %` : '– | – | –');
  const count = (m: Map<string, OpTime>) => [...m.values()].reduce((s, e) => s + e.nodes, 0);
  return [
    '| op type | plain nodes | plain ms | plain share | optimized nodes | optimized ms | optimized share |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...shown.map((op) => `| ${op} | ${cell(plain, plain.get(op))} | ${cell(optimized, optimized.get(op))} |`),
    `| ${ops.length - shown.length} other op types | ${cell(plain, rest(plain))} | ${cell(optimized, rest(optimized))} |`,
    `| **all kernels** | ${count(plain)} | ${fmt(total(plain))} | 100 % | ${count(optimized)} | ${fmt(total(optimized))} | 100 % |`,
  ];
}

function flopsLine(config: string, f: ModelFlops): string {
  const g = (n: number) => fmt(n / 1e9, n < 1e9 ? 2 : 1);
  return `- ${config}: T = ${f.textTokens} text tokens, N = ${f.imageTokens} image tokens → ${g(f.total)} GFLOP per sample (text encoder ${g(f.text)}, image encoder ${g(f.image)}, fusion ${g(f.fusion)}, VQA head ${g(f.head)})`;
}

// ---------------------------------------------------------------- main

const configName = (size: number) => (size === CHECKPOINT_SIZE ? `VQA ${size} px` : `${size} px`);
const configTitle = (size: number) => (size === CHECKPOINT_SIZE ? `VQA at ${size} px (VQAv2 fine-tune resolution)` : size === 384 ? '384 px (the SNLI-VE, NLVR2 and retrieval resolution; same BASE shapes)' : `${size} px`);

/**
 * --precision: the variants of each size's bundle (or of --bundle), alternated. Without --bundle,
 * infer.ts's BASE bundle is converted again with --variants when it lacks a precision asked for.
 */
async function mainPrecisions(): Promise<void> {
  const precisions = parsePrecisions(args.precision!);
  mkdirSync(outDir, { recursive: true });
  const configs = [];
  if (args.bundle) {
    const arch = (JSON.parse(readFileSync(join(args.bundle, 'config.json'), 'utf8')) as { architecture: BridgeTowerArchitecture }).architecture;
    configs.push({ name: `${arch.vision.image_size} px`, dir: args.bundle, arch });
  } else {
    for (const size of sizes) {
      const arch = await prepareBundle(size);
      const dir = bundleDir(size);
      const has = graphVariants(readBundleConfig(dir));
      const missing = precisions.filter((p) => !has[p]);
      if (missing.length > 0) {
        // The default conversion writes fp32 + int8: converted again with every variant asked for.
        const started = performance.now();
        await convertCheckpoint({ checkpoint, out: dir, force: true, imageSize: size, variants: [...new Set(['fp32' as const, ...precisions])] });
        log(`converted ${dir} again with ${missing.join(', ')} in ${seconds(performance.now() - started)} s`);
      }
      configs.push({ name: configName(size), dir, arch });
    }
  }
  const command = `node --import tsx bench/infer.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  console.log(await benchPrecisions({ precisions, configs, batches, reps, budgetS, inputs: modelInputs, log, command }));
  if (!args.keep && !args.bundle) rmSync(outDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const wallStarted = performance.now();
  mkdirSync(outDir, { recursive: true });
  // The peak is measured before, between and after the model runs; the best is the peak.
  const peaks: Array<{ gflops: number; othersShare: number }> = [];
  const measurePeak = async () => {
    peaks.push(await matmulPeak());
    log(`fp32 MatMul 2048³ through ORT: ${fmt(peaks.at(-1)!.gflops, 1)} GFLOP/s (others used ${share(peaks.at(-1)!.othersShare)} of the cores)`);
  };
  await measurePeak();

  const results: CaseResult[] = [];
  const opens: string[] = [];
  const archs = new Map<number, BridgeTowerArchitecture>();
  for (const size of sizes) archs.set(size, await prepareBundle(size));
  for (const size of sizes) {
    await benchConfig(configName(size), size, archs.get(size)!, results, opens);
    await measurePeak();
  }

  let profile: string[] = [];
  if (!args['no-profile']) {
    const size = Math.min(...sizes);
    const byMode = { plain: await profileOps(size, archs.get(size)!, 'plain'), optimized: await profileOps(size, archs.get(size)!, 'optimized') };
    profile = [`ORT profile of one \`vqa.onnx\` run, ${configName(size)}, batch 1 (kernel time summed per op type; sequential executor):`, '', ...profileTable(byMode.plain, byMode.optimized)];
  }
  await measurePeak();
  const peak = Math.max(...peaks.map((p) => p.gflops));

  const cpu = cpus();
  const out = [
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30)} GiB, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? '?'} (CPU provider, default intra-op threads), ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `\`node --import tsx bench/infer.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\` (wall ${fmt((performance.now() - wallStarted) / 1000)} s):`,
    '',
    `- fp32 MatMul peak through ORT ([2048, 2048] × [2048, 2048], best of 10, measured before, between and after the model runs): ${peaks.map((p) => `${fmt(p.gflops, 1)} (others ${share(p.othersShare)})`).join(', ')} GFLOP/s; % of peak below uses the best, ${fmt(peak, 1)}.`,
    ...sizes.map((size) => flopsLine(configName(size), vqaFlopsPerSample(archs.get(size)!, textLen))),
    `- ${LEGENDS[args.compare!]}; best of up to ${reps} alternating runs per mode, fewer where a case would exceed ${budgetS} s. "CPU used by others": share of the cores other processes used during the best plain / optimized run (the machine is shared; figures above ~10 % are contended).`,
    '',
  ];
  for (const size of sizes) {
    out.push(`${configTitle(size)}:`, '', ...resultTable(results.filter((r) => r.config === configName(size)), peak), '');
  }
  out.push('Session open (load + optimize), seconds:', '', '| config | graphs | plain s | optimized s |', '| --- | --- | --- | --- |', ...opens, '');
  if (profile.length > 0) out.push(...profile, '');
  console.log(out.join('\n'));
  if (!args.keep) rmSync(outDir, { recursive: true, force: true });
}

await (args.precision ? mainPrecisions() : main());
