/**
 * Fine-tuning bench: training steps of a full-size BASE VQA bundle (random weights) at 384 px,
 * micro-batch 8, text of 50 tokens, dropout 0.1, on ONNX Runtime's CPU provider, for each
 * `--train` subset, one after another in one run. A step is what train/fine-tune.ts does for one
 * micro-batch that is also an optimizer step: forward + backward, gradient accumulation into the
 * flat buffer, the gradient norm, the AdamW update (bench/train-subset.ts).
 *
 *   npm run bench:train                                   # --train all, cross-modal, heads; 2 timed steps each
 *   npm run bench:train -- --subsets all,heads --steps 3
 *   npm run bench:train -- --adamw-engine ort --adamw-chunk 16   # the reference AdamW graph over 16 M values a run (default chunk 4.19 M)
 *   npm run bench:train -- --compare-adamw                # also time one update with the ONNX Runtime reference engine
 *   npm run bench:train -- --memory-pattern --allocated-outputs   # the training session as it was before (step-2 growth)
 *   npm run bench:train -- --subsets all --batch 4 --recompute layers   # activation recomputation per layer
 *   npm run bench:train -- --batch 2 --gc                 # smaller micro-batch; collect garbage between steps
 *   npm run bench:train -- --subsets heads --batch 2 --dropout 0   # what the dropout masks cost
 *   npm run bench:train -- --json                         # the results as JSON instead of markdown
 *   npm run bench:train -- --keep                         # keep the bundle in bench/out/train for the next run
 *   npm run bench:train -- --bundle <dir>                 # any float32 bundle with a VQA head
 *
 * Each subset runs in a fresh child process (its own peak RSS; no heap left from the one before),
 * watched: a child whose RSS passes --max-rss-gb (default: the memory available at the start less
 * 2 GiB) is stopped and reported with what it measured so far. Bytes that would cross PCIe with
 * `--device cuda` are computed from the graphs' inputs and outputs, not measured: Node's binding
 * has no device-resident tensors, so every run feeds the trainable parameters from host memory and
 * returns the gradients to it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BridgeTowerError } from '../common/errors.js';
import { ADAMW_CHUNK, ADAMW_ENGINE_NAMES, defaultAdamWEngine, type AdamWEngineName } from '../train/optimizer/adamw-engines.js';
import { FINE_TUNE_TASKS } from '../train/tasks.js';
import { readBundleConfig } from '../bundle/config.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { TRAIN_SUBSETS, type TrainSubset } from '../train/train-subsets.js';
import { RECOMPUTE_MODES, type RecomputeMode } from '../train/training-graph.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { vqaFlopsPerSample } from './model-flops.js';
import { jsonReport, markdownReport, type Outcome, type RunContext } from './train-report.js';
import { measureSubset, type SubsetResult } from './train-subset.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHECKPOINT_SIZE = 576;

const { values: args } = parseArgs({
  options: {
    subsets: { type: 'string', default: 'all,cross-modal,heads' },
    steps: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '8' },
    'text-len': { type: 'string', default: '50' },
    dropout: { type: 'string', default: String(FINE_TUNE_TASKS.vqa.recipe.dropout) },
    size: { type: 'string', default: '384' },
    'budget-s': { type: 'string', default: '240' },
    threads: { type: 'string' },
    'pcie-gbps': { type: 'string', default: '25' },
    'adamw-chunk': { type: 'string', default: String(ADAMW_CHUNK / 1e6) },
    'adamw-engine': { type: 'string', default: defaultAdamWEngine().name },
    'compare-adamw': { type: 'boolean', default: false },
    'memory-pattern': { type: 'boolean', default: false },
    'allocated-outputs': { type: 'boolean', default: false },
    recompute: { type: 'string', default: 'none' },
    'max-rss-gb': { type: 'string' },
    bundle: { type: 'string' },
    keep: { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});

function positive(flag: string, text: string, integer = true): number {
  const n = Number(text);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new BridgeTowerError('E_USAGE', `--${flag} '${text}' must be a positive ${integer ? 'integer' : 'number'}`);
  return n;
}

const steps = positive('steps', args.steps);
const warmup = Number(args.warmup);
if (!Number.isInteger(warmup) || warmup < 0) throw new BridgeTowerError('E_USAGE', `--warmup '${args.warmup}' must be 0 or a positive integer`);
const batch = positive('batch', args.batch);
const textLength = positive('text-len', args['text-len']);
const size = positive('size', args.size);
if (size % 16 !== 0) throw new BridgeTowerError('E_USAGE', `--size ${size} is not a multiple of the patch size 16 (try ${Math.round(size / 16) * 16})`);
const budgetS = positive('budget-s', args['budget-s']);
const threads = args.threads === undefined ? undefined : positive('threads', args.threads);
const pcieGBps = positive('pcie-gbps', args['pcie-gbps'], false);
const adamwChunkM = positive('adamw-chunk', args['adamw-chunk'], false);
const adamwEngine = args['adamw-engine'] as AdamWEngineName;
if (!ADAMW_ENGINE_NAMES.includes(adamwEngine)) throw new BridgeTowerError('E_USAGE', `--adamw-engine '${adamwEngine}' must be one of ${ADAMW_ENGINE_NAMES.join(', ')}`);
const recompute = args.recompute as RecomputeMode;
if (!RECOMPUTE_MODES.includes(recompute)) throw new BridgeTowerError('E_USAGE', `--recompute '${recompute}' must be one of ${RECOMPUTE_MODES.join(', ')}`);
const sessionFlags = ['--recompute', recompute, ...(args['memory-pattern'] ? ['--memory-pattern'] : []), ...(args['allocated-outputs'] ? ['--allocated-outputs'] : []), ...(args['compare-adamw'] ? ['--compare-adamw'] : [])];
const dropout = Number(args.dropout);
if (!(dropout >= 0 && dropout < 1)) throw new BridgeTowerError('E_USAGE', `--dropout must be in [0, 1), got '${args.dropout}'`);
const subsets = args.subsets.split(',').map((s) => s.trim()) as TrainSubset[];
if (subsets.length === 0 || subsets.some((s) => !TRAIN_SUBSETS.includes(s))) throw new BridgeTowerError('E_USAGE', `--subsets '${args.subsets}': each must be one of ${TRAIN_SUBSETS.join(', ')}`);

const log = (line: string) => console.error(line);
const outDir = join(here, 'out', 'train');
const bundleDir = args.bundle ?? join(outDir, `bundle-${size}`);
const meminfoBytes = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) * 1024;
const rssBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

/** The bundle at `size` px, converted from a BASE checkpoint written at 576 px (as bench/infer.ts), unless cached. */
async function prepareBundle(): Promise<void> {
  if (args.bundle) return;
  if (!args.fresh && existsSync(join(bundleDir, 'config.json'))) return log(`reusing ${bundleDir}`);
  mkdirSync(outDir, { recursive: true });
  const checkpoint = join(outDir, 'base_vqa_random.ckpt');
  let started = performance.now();
  const bytes = writeBaseCheckpoint(checkpoint, baseVqaArchitecture(CHECKPOINT_SIZE));
  log(`wrote ${checkpoint}: ${(bytes / 1e9).toFixed(2)} GB of tensors in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  await convertCheckpoint({ checkpoint, out: bundleDir, force: true, imageSize: size, dtype: 'fp32' });
  rmSync(checkpoint);
  log(`converted to ${bundleDir} (${size} px, float32) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Runs one subset in a child process, keeping the last progress line it printed. The watchdog
 * stops the child (SIGKILL) when its RSS passes `maxRssBytes` or the machine's available memory
 * falls under 1 GiB: a subset too big for the machine ends as a reported failure, rather than the
 * kernel's OOM killer choosing among the processes of a shared machine.
 */
function runChild(subset: TrainSubset, maxRssBytes: number): Promise<Outcome> {
  const childArgs = ['--child', subset, '--bundle', bundleDir, '--steps', String(steps), '--warmup', String(warmup), '--batch', String(batch), '--text-len', String(textLength), '--budget-s', String(budgetS), '--adamw-chunk', String(adamwChunkM), '--adamw-engine', adamwEngine, ...sessionFlags, '--dropout', String(dropout), ...(args.gc ? ['--gc'] : []), ...(threads ? ['--threads', String(threads)] : [])];
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...childArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: SubsetResult | undefined;
  let pending = '';
  let stopped: string | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.trim()) last = JSON.parse(line) as SubsetResult;
  });
  const watchdog = setInterval(() => {
    try {
      const rss = rssBytes(child.pid!);
      const available = meminfoBytes('MemAvailable');
      if (rss > maxRssBytes || available < 2 ** 30) {
        stopped = `stopped by the bench at ${(rss / 1e9).toFixed(1)} GB RSS (limit ${(maxRssBytes / 1e9).toFixed(1)} GB; ${(available / 1e9).toFixed(1)} GB still available)`;
        child.kill('SIGKILL');
      }
    } catch {
      // the child has just exited
    }
  }, 100);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearInterval(watchdog);
      const failure = code === 0 ? undefined : (stopped ?? (signal ? `killed by ${signal}` : `exited with status ${code}`));
      if (failure) log(`[${subset}] ${failure}, after stage '${last?.stage ?? 'none'}'`);
      resolve({ subset, ...(last ? { result: last } : {}), ...(failure ? { failure } : {}) });
    });
  });
}

async function main(): Promise<void> {
  if (args.child) {
    const options = { bundle: bundleDir, subset: args.child as TrainSubset, batch, textLength, warmup, steps, budgetS, adamwChunk: Math.round(adamwChunkM * 1e6), adamwEngine, compareAdamW: args['compare-adamw'] === true, memoryPattern: args['memory-pattern'] === true, allocatedOutputs: args['allocated-outputs'] === true, recompute, collectBetweenSteps: args.gc === true, dropout, ...(threads ? { threads } : {}) };
    await measureSubset(options, (partial) => process.stdout.write(`${JSON.stringify(partial)}\n`));
    return;
  }
  const started = performance.now();
  const loadAverage = loadavg();
  const maxRssBytes = args['max-rss-gb'] ? positive('max-rss-gb', args['max-rss-gb'], false) * 1e9 : meminfoBytes('MemAvailable') - 2 * 2 ** 30;
  await prepareBundle();
  const config = readBundleConfig(bundleDir);
  if (!config.architecture.heads.vqa) throw new BridgeTowerError('E_USAGE', `--bundle ${bundleDir} has no VQA head (the bench trains VQA)`);
  const outcomes: Outcome[] = [];
  for (const subset of subsets) outcomes.push(await runChild(subset, maxRssBytes));
  const context: RunContext = {
    command: `node --import tsx bench/train.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    wallMs: performance.now() - started,
    loadAverage,
    batch,
    imageSize: config.architecture.vision.image_size,
    flops: vqaFlopsPerSample(config.architecture, textLength),
    warmup,
    steps,
    budgetS,
    ...(threads ? { threads } : {}),
    pcieGBps,
    dropout,
    adamwChunk: adamwChunkM,
    maxRssBytes,
  };
  console.log(args.json ? jsonReport(outcomes, context) : markdownReport(outcomes, context));
  if (!args.keep && !args.bundle) rmSync(outDir, { recursive: true, force: true });
}

await main();
