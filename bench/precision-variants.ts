/**
 * `bench/infer.ts --precision fp32,int8`: the same BASE VQA graphs in two or more precision
 * variants, strictly alternated in one process (each round runs every variant once, the order
 * rotating every round), best of N per (size, batch). Prints each variant's time and its ratio to
 * the first variant's, the weight bytes of each (graphs + weights file, from config.json), the
 * session open time and the resident memory each variant's sessions added.
 *
 *   node --import tsx bench/infer.ts --precision fp32,int8 --bundle bundles/vqa-base     # a bundle converted with --variants
 *   node --import tsx bench/infer.ts --precision fp32,fp16 --sizes 384 --batches 1 --reps 3
 *
 * Without --bundle, infer.ts builds the random-weight BASE bundle per size; the fp16 variant is
 * added by converting the same checkpoint with --dtype fp16 (what convert --variants writes);
 * int8 needs a bundle converted with --variants int8 (--bundle).
 */
import { cpus, totalmem } from 'node:os';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { GRAPH_PRECISIONS, readBundleConfig, type GraphPrecision } from '../bundle/config.js';
import { graphVariants } from '../bundle/graph-variants.js';
import { readCpuFlags } from '../runtime/cpu-int8.js';
import { graphSet } from '../runtime/graph-set.js';
import { openGraphIn } from '../runtime/session.js';
import { timedWithContention } from './cpu-contention.js';

type Feeds = Record<string, ort.Tensor>;

export interface PrecisionBenchOptions {
  precisions: GraphPrecision[];
  /** One bundle per configuration: its folder and architecture (built or given). */
  configs: Array<{ name: string; dir: string; arch: BridgeTowerArchitecture }>;
  batches: number[];
  reps: number;
  budgetS: number;
  inputs: (arch: BridgeTowerArchitecture, batch: number) => Feeds;
  log: (line: string) => void;
  command: string;
}

/** `--precision` as a list of two or more known precisions, the first the baseline of the ratios. */
export function parsePrecisions(text: string): GraphPrecision[] {
  const list = text.split(',').map((s) => s.trim()) as GraphPrecision[];
  const unknown = list.filter((p) => !GRAPH_PRECISIONS.includes(p));
  if (list.length < 2 || unknown.length > 0 || new Set(list).size !== list.length) {
    throw new BridgeTowerError('E_USAGE', `--precision '${text}' must list two or more of ${GRAPH_PRECISIONS.join(', ')}, each once, the baseline first (e.g. --precision fp32,int8)`);
  }
  return list;
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);
const share = (x: number) => (Number.isNaN(x) ? '?' : `${Math.round(100 * x)} %`);
const mib = (bytes: number) => `${fmt(bytes / 2 ** 20)} MiB`;

interface Row {
  config: string;
  batch: number;
  best: Map<GraphPrecision, { ms: number; others: number }>;
  runs: number;
}

export async function benchPrecisions(o: PrecisionBenchOptions): Promise<string> {
  const started = performance.now();
  const rows: Row[] = [];
  const sizes: string[] = [];
  for (const config of o.configs) {
    const variants = graphVariants(readBundleConfig(config.dir));
    const missing = o.precisions.filter((p) => !variants[p]);
    if (missing.length > 0) {
      throw new BridgeTowerError('E_USAGE', `bundle '${config.dir}' has no ${missing.join(', ')} graphs (it has ${Object.keys(variants).join(', ')}): convert it with --variants ${o.precisions.join(',')} and pass it with --bundle`);
    }
    const sessions = new Map<GraphPrecision, ort.InferenceSession>();
    for (const precision of o.precisions) {
      const set = graphSet(config.dir, precision);
      const rss = process.memoryUsage().rss;
      const opening = performance.now();
      sessions.set(precision, (await openGraphIn(set, config.dir, 'vqa')).session);
      const openS = (performance.now() - opening) / 1000;
      const added = process.memoryUsage().rss - rss;
      sizes.push(`| ${config.name} | ${precision}${set.int8Weights ? ` (${set.int8Weights})` : ''} | ${mib(variants[precision]!.bytes)} | ${fmt(variants[precision]!.bytes / variants[o.precisions[0]!]!.bytes, 2)}× | ${fmt(openS, 1)} | ${mib(added)} |`);
      o.log(`${config.name}: opened ${precision} vqa.onnx in ${fmt(openS, 1)} s (${set.int8Reason ?? set.dir})`);
    }
    for (const batch of o.batches) {
      const feeds = o.inputs(config.arch, batch);
      const best = new Map(o.precisions.map((p) => [p, { ms: Infinity, others: NaN }]));
      const caseStarted = performance.now();
      let runs = 0;
      while (runs < o.reps) {
        // Rotate the order every round: no variant always runs right after another.
        const order = o.precisions.map((_, i) => o.precisions[(i + runs) % o.precisions.length]!);
        let roundMs = 0;
        for (const precision of order) {
          const run = await timedWithContention(() => sessions.get(precision)!.run(feeds));
          roundMs += run.ms;
          if (run.ms < best.get(precision)!.ms) best.set(precision, { ms: run.ms, others: run.othersShare });
        }
        runs++;
        o.log(`  ${config.name} batch ${batch} #${runs}: ${o.precisions.map((p) => `${p} ${fmt(best.get(p)!.ms)} ms`).join(', ')}`);
        if (performance.now() - caseStarted + roundMs > o.budgetS * 1000) break;
      }
      rows.push({ config: config.name, batch, best, runs });
    }
    for (const session of sessions.values()) await session.release();
  }

  const [base, ...others] = o.precisions as [GraphPrecision, ...GraphPrecision[]];
  const cpu = cpus();
  const flags = cpuFlags();
  return [
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30)} GiB, CPU flags ${flags}, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? '?'} (CPU provider, default intra-op threads), ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `\`${o.command}\` (wall ${fmt((performance.now() - started) / 1000)} s), \`vqa.onnx\` end to end, best of up to ${o.reps} strictly alternated runs per variant (fewer where a case would pass ${o.budgetS} s):`,
    '',
    `| config | batch | ${o.precisions.map((p) => `${p} ms`).join(' | ')} | ${others.map((p) => `${p} / ${base}`).join(' | ')} | runs | CPU used by others |`,
    `| --- | --- | ${o.precisions.map(() => '---').join(' | ')} | ${others.map(() => '---').join(' | ')} | --- | --- |`,
    ...rows.map(
      (r) =>
        `| ${r.config} | ${r.batch} | ${o.precisions.map((p) => fmt(r.best.get(p)!.ms)).join(' | ')} | ${others.map((p) => `${fmt(r.best.get(p)!.ms / r.best.get(base)!.ms, 2)}×`).join(' | ')} | ${r.runs} | ${o.precisions.map((p) => share(r.best.get(p)!.others)).join(' / ')} |`,
    ),
    '',
    'Weights (graph files + weights file, as config.json records them), session open time, and the resident memory opening the session added:',
    '',
    '| config | variant | weight bytes | vs first | open s | RSS added |',
    '| --- | --- | --- | --- | --- | --- |',
    ...sizes,
    '',
  ].join('\n');
}

/** The CPU flags that decide the int8 kernels (runtime/cpu-int8.ts), as /proc/cpuinfo names them. */
function cpuFlags(): string {
  const flags = readCpuFlags();
  if (!flags) return 'unknown (no /proc/cpuinfo)';
  const shown = ['avx512_vnni', 'avx_vnni', 'avx512f', 'avx2'].filter((f) => flags.has(f));
  return shown.length ? shown.join(' ') : 'none of avx2, avx512f, avx512_vnni, avx_vnni';
}
