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
 *   npm run bench:train -- --subsets all --batch 8 --cpu-arena   # ONNX Runtime's CPU arena on (training's default is off: its effect on the peak and the time)
 *   (--no-cpu-arena, the arena off, is the default; accepted for the older commands)
 *   npm run bench:train -- --subsets all --batch 4 --recompute layers   # activation recomputation per layer
 *   npm run bench:train -- --batch 2 --gc                 # smaller micro-batch; collect garbage between steps
 *   npm run bench:train -- --subsets heads --batch 2 --dropout 0   # what the dropout masks cost
 *   npm run bench:train -- --json                         # the results as JSON instead of markdown
 *   npm run bench:train -- --keep                         # keep the bundle in bench/out/train for the next run
 *   npm run bench:train -- --bundle <dir>                 # any float32 bundle with a VQA head
 *   npm run bench:train -- --pytorch /usr/bin/python3 --batch 2 --rounds 2   # beside the PyTorch anchor, alternated
 *
 * Each subset runs in a fresh child process (its own peak RSS; no heap left from the one before),
 * watched: a child whose RSS passes --max-rss-gb (default: the memory available at the start less
 * 2 GiB) is stopped and reported with what it measured so far. Bytes that would cross PCIe with
 * `--device cuda` are computed from the graphs' inputs and outputs, not measured: Node's binding
 * has no CUDA-resident tensors, so every run feeds the trainable parameters from host memory and
 * returns the gradients to it.
 *
 * `--pytorch <python>` runs the PyTorch anchor (bench/pytorch/train_step.py: the same step on a
 * torch.nn BridgeTower verified against upstream's fixtures) strictly alternated with the Node
 * child of `--subsets all`, `--rounds` times (PyTorch, Node, PyTorch, Node, …), under the same
 * watchdog, and prints both with their ratios (bench/train-anchor.ts).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { BridgeTowerError } from '../common/errors.js';
import { ADAMW_CHUNK, ADAMW_ENGINE_NAMES, defaultAdamWEngine, type AdamWEngineName } from '../train/optimizer/adamw-engines.js';
import { FINE_TUNE_TASKS } from '../train/tasks.js';
import { readBundleConfig } from '../bundle/config.js';
import { convertCheckpoint } from '../convert/convert-checkpoint.js';
import { TRAIN_SUBSETS, type TrainSubset } from '../train/train-subsets.js';
import { RECOMPUTE_MODES, type RecomputeMode } from '../train/training-graph.js';
import { baseVqaArchitecture, writeBaseCheckpoint } from './base-checkpoint.js';
import { vqaFlopsPerSample } from './model-flops.js';
import { anchorJson, anchorMarkdown, runPytorchAnchor, type Round } from './train-anchor.js';
import { jsonReport, markdownReport, type Outcome, type RunContext } from './train-report.js';
import { measureSubset, type SubsetResult } from './train-subset.js';
import { meminfoBytes, runWatchedChild } from './watched-child.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHECKPOINT_SIZE = 576;
/** Without --pytorch every subset runs; with it, the default means `all` (what the anchor trains). */
const DEFAULT_SUBSETS = 'all,cross-modal,heads';

const { values: args } = parseArgs({
  options: {
    subsets: { type: 'string', default: DEFAULT_SUBSETS },
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
    'cpu-arena': { type: 'boolean', default: false },
    // The default since the arena went off for training: kept so the older commands in docs/PERFORMANCE.md run as written.
    'no-cpu-arena': { type: 'boolean', default: false },
    'allocated-outputs': { type: 'boolean', default: false },
    recompute: { type: 'string', default: 'none' },
    'max-rss-gb': { type: 'string' },
    bundle: { type: 'string' },
    keep: { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    pytorch: { type: 'string' },
    rounds: { type: 'string', default: '1' },
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
if (args['cpu-arena'] && args['no-cpu-arena']) throw new BridgeTowerError('E_USAGE', '--cpu-arena and --no-cpu-arena contradict each other (the arena is off unless --cpu-arena)');
const sessionFlags = ['--recompute', recompute, ...(args['memory-pattern'] ? ['--memory-pattern'] : []), ...(args['cpu-arena'] ? ['--cpu-arena'] : []), ...(args['allocated-outputs'] ? ['--allocated-outputs'] : []), ...(args['compare-adamw'] ? ['--compare-adamw'] : [])];
const dropout = Number(args.dropout);
if (!(dropout >= 0 && dropout < 1)) throw new BridgeTowerError('E_USAGE', `--dropout must be in [0, 1), got '${args.dropout}'`);
const subsets = args.subsets.split(',').map((s) => s.trim()) as TrainSubset[];
if (subsets.length === 0 || subsets.some((s) => !TRAIN_SUBSETS.includes(s))) throw new BridgeTowerError('E_USAGE', `--subsets '${args.subsets}': each must be one of ${TRAIN_SUBSETS.join(', ')}`);
const rounds = positive('rounds', args.rounds);
// The anchor trains every parameter (upstream's recipe): it is compared with `--subsets all` only.
if (args.pytorch && args.subsets !== 'all' && args.subsets !== DEFAULT_SUBSETS) throw new BridgeTowerError('E_USAGE', `--pytorch compares with --subsets all only (the anchor trains every parameter), got --subsets '${args.subsets}'`);

const log = (line: string) => console.error(line);
const outDir = join(here, 'out', 'train');
const bundleDir = args.bundle ?? join(outDir, `bundle-${size}`);

/** What bench/pytorch/train_step.py builds (BASE VQA): a --bundle compared with it must have the same shapes. */
const ANCHOR_SHAPES: [string, (a: BridgeTowerArchitecture) => unknown][] = [
  ['text.hidden_size', (a) => a.text.hidden_size],
  ['text.num_layers', (a) => a.text.num_layers],
  ['text.vocab_size', (a) => a.text.vocab_size],
  ['vision.width', (a) => a.vision.width],
  ['vision.num_layers', (a) => a.vision.num_layers],
  ['vision.patch_size', (a) => a.vision.patch_size],
  ['cross_modal.num_layers', (a) => a.cross_modal.num_layers],
  ['heads.vqa.num_labels', (a) => a.heads.vqa?.num_labels],
  ['heads.vqa.hidden_size', (a) => a.heads.vqa?.hidden_size],
];

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

/** Runs one subset in a watched child process (bench/watched-child.ts), keeping the last progress line it printed. */
async function runChild(subset: TrainSubset, maxRssBytes: number): Promise<Outcome> {
  const childArgs = ['--child', subset, '--bundle', bundleDir, '--steps', String(steps), '--warmup', String(warmup), '--batch', String(batch), '--text-len', String(textLength), '--budget-s', String(budgetS), '--adamw-chunk', String(adamwChunkM), '--adamw-engine', adamwEngine, ...sessionFlags, '--dropout', String(dropout), ...(args.gc ? ['--gc'] : []), ...(threads ? ['--threads', String(threads)] : [])];
  const { last, failure } = await runWatchedChild<SubsetResult>(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...childArgs], maxRssBytes);
  if (failure) log(`[${subset}] ${failure}, after stage '${last?.stage ?? 'none'}'`);
  return { subset, ...(last ? { result: last } : {}), ...(failure ? { failure } : {}) };
}

/** `--pytorch`: PyTorch child, then Node child, `--rounds` times; both and their ratios. */
async function runAlternated(python: string, imageSize: number, maxRssBytes: number, command: string, loadAverage: number[]): Promise<void> {
  const done: Round[] = [];
  for (let r = 1; r <= rounds; r++) {
    log(`round ${r}/${rounds}: PyTorch anchor (${python})`);
    const pytorch = await runPytorchAnchor({ python, batch, size: imageSize, textLength, warmup, steps, dropout, ...(threads ? { threads } : {}) }, maxRssBytes);
    if (pytorch.failure) log(`[pytorch] ${pytorch.failure}, after stage '${pytorch.last?.stage ?? 'none'}'`);
    log(`round ${r}/${rounds}: bridgetower-node, --subsets all`);
    done.push({ pytorch, node: await runChild('all', maxRssBytes) });
  }
  const header = `\`${command}\`: micro-batch ${batch}, ${imageSize} px, ${textLength} tokens, dropout ${dropout}, ${warmup} warm-up + ${steps} timed steps per run, ${threads ?? 'default'} threads; load average at the start ${loadAverage.map((x) => x.toFixed(2)).join(', ')}`;
  console.log(args.json ? anchorJson(done, { command, batch, imageSize, textLength, dropout, warmup, steps, threads, loadAverage }) : anchorMarkdown(done, header));
}

async function main(): Promise<void> {
  if (args.child) {
    const options = { bundle: bundleDir, subset: args.child as TrainSubset, batch, textLength, warmup, steps, budgetS, adamwChunk: Math.round(adamwChunkM * 1e6), adamwEngine, compareAdamW: args['compare-adamw'] === true, memoryPattern: args['memory-pattern'] === true, cpuArena: args['cpu-arena'] === true, allocatedOutputs: args['allocated-outputs'] === true, recompute, collectBetweenSteps: args.gc === true, dropout, ...(threads ? { threads } : {}) };
    await measureSubset(options, (partial) => process.stdout.write(`${JSON.stringify(partial)}\n`));
    return;
  }
  const started = performance.now();
  const loadAverage = loadavg();
  const maxRssBytes = args['max-rss-gb'] ? positive('max-rss-gb', args['max-rss-gb'], false) * 1e9 : meminfoBytes('MemAvailable') - 2 * 2 ** 30;
  await prepareBundle();
  const config = readBundleConfig(bundleDir);
  if (!config.architecture.heads.vqa) throw new BridgeTowerError('E_USAGE', `--bundle ${bundleDir} has no VQA head (the bench trains VQA)`);
  const command = `node --import tsx bench/train.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  if (args.pytorch) {
    const mismatch = ANCHOR_SHAPES.filter(([, read]) => read(config.architecture) !== read(baseVqaArchitecture())).map(([name]) => name);
    if (mismatch.length) throw new BridgeTowerError('E_USAGE', `--pytorch: the anchor is BASE VQA; --bundle ${bundleDir} differs in ${mismatch.join(', ')} (use a BASE VQA bundle, or none)`);
    await runAlternated(args.pytorch, config.architecture.vision.image_size, maxRssBytes, command, loadAverage);
    if (!args.keep && !args.bundle) rmSync(outDir, { recursive: true, force: true });
    return;
  }
  const outcomes: Outcome[] = [];
  for (const subset of subsets) outcomes.push(await runChild(subset, maxRssBytes));
  const context: RunContext = {
    command,
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
