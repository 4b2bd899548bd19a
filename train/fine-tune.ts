import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { plural } from '../common/plural.js';
import { buildFolderAtomically } from '../bundle/atomic-dir.js';
import { assertReplaceable } from '../bundle/bundle-folders.js';
import { BUNDLE_FILES, readBundleConfig } from '../bundle/config.js';
import { BundlePreprocessor } from '../preprocess/bundle-preprocessor.js';
import { readLabels } from '../bundle/labels.js';
import { CHECKPOINTS_DIR, listCheckpoints, loadCheckpoint, pruneCheckpoints, readTrainerState, saveCheckpoint, updateTrainerState, type TrainerState } from './checkpoint.js';
import { collate, trainingItems, type CollateItem } from './data/collate.js';
import { describeRow, type Dataset } from './data/examples.js';
import { openDataset } from './data/open-dataset.js';
import { evaluateBundle } from './evaluate/evaluate.js';
import { FlatLayout } from './flat-parameters.js';
import { negativeNoise } from './gradient-step.js';
import { openStepRunner, optimizerInGraph, type OptimizerInGraphChoice } from './step-runner.js';
import { ADAMW_ENGINE_NAMES, type AdamWEngineName } from './optimizer/adamw-engines.js';
import { linearSchedule, lrFactor, totalOptimizerSteps } from './optimizer/schedule.js';
import type { Recipe } from './recipes.js';
import { Rng } from './rng.js';
import { writeTrainedBundle, type FineTuneProvenance } from './trained-bundle.js';
import { FINE_TUNE_TASK_NAMES, FINE_TUNE_TASKS, type FineTuneTask } from './tasks.js';
import { buildTrainingGraph } from './training-graph.js';
import { availableMemoryBytes, estimateTrainingMemory } from './memory-model.js';
import { chooseMemoryPlan, CPU_ARENA_CHOICES, RECOMPUTE_CHOICES, type CpuArenaChoice, type RecomputeChoice } from './memory-plan.js';
import type { TrainSubset } from './train-subsets.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { eventRecorder, LOG_FILE, type TrainEvent, type TrainEventBody } from './train-events.js';

export { LOG_FILE, type TrainEvent } from './train-events.js';
export type { CpuArenaChoice, RecomputeChoice } from './memory-plan.js';

/**
 * `bridgetower fine-tune`: upstream's fine-tuning loop on ONNX Runtime. Micro-batches of
 * `microBatchSize` accumulate (each gradient ÷ accumulation, as Lightning divides the loss) to
 * upstream's global batch; every accumulated gradient is one AdamW step at the scheduled learning
 * rate. Shuffling, augmentation, dropout and hard negatives draw from `Rng.derive(seed, …, epoch,
 * index)`, so a run resumed from a checkpoint continues exactly as an uninterrupted one.
 */
export interface FineTuneOptions extends Partial<Recipe>, Pick<RuntimeOptions, 'device' | 'threads'> {
  bundle: string;
  task: FineTuneTask;
  train: string;
  dev?: string;
  images?: string;
  devImages?: string;
  out: string;
  /** The trained bundle's name (default: the --out folder's name), stable across runs. */
  name?: string;
  force?: boolean;
  resume?: boolean;
  subset?: TrainSubset;
  /** Examples per graph run (memory); default min(8, batchSize). */
  microBatchSize?: number;
  /** Stop after this many optimizer steps (the schedule then spans them, like upstream's max_steps). */
  maxSteps?: number;
  /** Clip the accumulated gradient to this global L2 norm (off by default, like upstream). */
  clipGradNorm?: number;
  seed?: number;
  augment?: boolean;
  /** Save a checkpoint every N optimizer steps (and at each epoch end). */
  saveEvery?: number;
  /** Evaluate on `dev` every N optimizer steps (and at each epoch end). */
  evalEvery?: number;
  keepCheckpoints?: number;
  evalBatchSize?: number;
  /** Pre-training: the share of caption tokens picked for MLM (upstream's `mlm_prob`, 0.15). */
  mlmProbability?: number;
  /**
   * Activation recomputation per layer: 'auto' (default) turns it on, with a warning, when the
   * plain step's expected peak exceeds the memory available (train/memory-plan.ts).
   */
  recompute?: RecomputeChoice;
  /**
   * ONNX Runtime's CPU memory arena for the training sessions, 'off' by default: about 15 % less
   * memory; 'on' was 1.5× faster at micro-batch 8 and no faster at 2 (docs/PERFORMANCE.md).
   */
  cpuArena?: CpuArenaChoice;
  /**
   * The gradient accumulation and the AdamW update inside the training graph (train/in-graph-step.ts):
   * 'auto' (default) on for `device: 'cuda'` without clipping, off on the CPU.
   */
  optimizerInGraph?: OptimizerInGraphChoice;
  /**
   * The AdamW engine of the separate path (train/optimizer/adamw-engines.ts); default `native` when
   * its addon is built, else `wasm`, with a warning saying how to build it.
   */
  adamwEngine?: AdamWEngineName;
  /** Each event as it is appended to train-log.jsonl. */
  onEvent?: (event: TrainEvent) => void;
  /**
   * Aborted (the CLI does so on SIGTERM/SIGINT): the run stops before its next micro-batch, logs a
   * `stopped` event naming the checkpoint `--resume` continues from, and returns `stopped`.
   */
  signal?: AbortSignal;
}

export interface FineTuneResult {
  step: number;
  best?: TrainerState['best'];
  /** Set when `signal` stopped the run: the checkpoint `--resume` continues from (null: none yet). */
  stopped?: { checkpoint: { step: number; dir: string } | null };
}
export const BEST_DIR = 'best';
/** Where the final bundle is built inside the output folder before its files move up. */
const FINAL_STAGING = '.final';

export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const spec = FINE_TUNE_TASKS[options.task];
  const recipe: Recipe = { ...spec.recipe, ...definedOnly(options) };
  const seed = options.seed ?? 0;
  const subset = options.subset ?? 'all';
  const microBatch = options.microBatchSize ?? Math.min(8, recipe.batchSize);
  validate(options, recipe, microBatch);
  // A fresh run's --out is checked before the data and the sessions load: a refusal costs nothing.
  if (!options.resume) outputNeedsClearing(options.out, options.force === true);
  const emit = eventRecorder(options.out, options.onEvent);
  const name = bundleName(options);

  const config = readBundleConfig(options.bundle);
  const labels = spec.labelsFrom ? readLabels(options.bundle, config.labels)[spec.labelsFrom] : undefined;
  const train = await openDataset(options.train, options.task, { ...(options.images ? { images: options.images } : {}), ...(labels ? { labels } : {}) });
  const dev = options.dev ? await openDataset(options.dev, options.task, { ...(options.devImages ?? options.images ? { images: options.devImages ?? options.images } : {}), ...(labels ? { labels } : {}) }) : undefined;
  const items = trainingItems(train);
  if (items.length === 0) throw new BridgeTowerError('E_DATA', `${train.source} holds no training examples`);
  if (spec.minMicroBatch && microBatch < spec.minMicroBatch.size) throw new BridgeTowerError('E_USAGE', spec.minMicroBatch.why);

  const accumulation = Math.max(1, Math.floor(recipe.batchSize / microBatch));
  const microPerEpoch = Math.ceil(items.length / microBatch);
  // A global batch beyond the data: Lightning steps at each epoch end, so each epoch is one step
  // over all of it (upstream's formula would count 0 steps and train nothing).
  const batchExceedsData = recipe.batchSize > items.length;
  const totalSteps = options.maxSteps ?? (batchExceedsData ? recipe.epochs : totalOptimizerSteps(microPerEpoch, recipe.epochs, accumulation));
  const schedule = linearSchedule(Math.max(1, totalSteps), recipe.warmup);
  const fingerprint = {
    task: options.task, bundle: config.name, weights: config.provenance.sources.map((s) => s.sha256), train: train.source, examples: items.length,
    subset, microBatch, seed, augment: options.augment !== false, clipGradNorm: options.clipGradNorm ?? null, maxSteps: options.maxSteps ?? null, ...recipe,
    ...(options.mlmProbability !== undefined ? { mlmProbability: options.mlmProbability } : {}),
  };
  const mlmRate = options.mlmProbability !== undefined ? { mlmProbability: options.mlmProbability } : {};

  // The graph asked for; under 'auto' the plain one, whose modelled peak picks the memory plan
  // (then rebuilt recomputing if needed).
  const asked = { recompute: options.recompute ?? 'auto', cpuArena: options.cpuArena ?? 'off' } as const;
  const graphOptions = { train: subset, dropout: recipe.dropout };
  const first = buildTrainingGraph(options.bundle, options.task, asked.recompute === 'layers' ? { ...graphOptions, recompute: 'layers' as const } : graphOptions);
  const layout = new FlatLayout(first.parameters, recipe);
  const shape = { batch: microBatch, textLength: Math.min(UPSTREAM_TEXT_LENGTH, config.architecture.text.max_position_embeddings - 2), accumulation };
  const memory = chooseMemoryPlan(asked, estimateTrainingMemory(first, layout, shape), availableMemoryBytes(), shape);
  if (memory.warning) emit({ type: 'warning', message: memory.warning });
  const { recompute, cpuArena } = memory.plan;
  const training = recompute === first.recompute ? first : buildTrainingGraph(options.bundle, options.task, { ...graphOptions, recompute });
  // Recomputed gradients differ in the last bits: a resumed run must make the same choice (absent = none, as older checkpoints).
  // The arena changes no value: a run may resume with the other choice.
  if (recompute === 'layers') Object.assign(fingerprint, { recompute });
  // So may the in-graph accumulation (unless 1/accumulation is a power of two): the same rule.
  const inGraph = optimizerInGraph(options.optimizerInGraph ?? 'auto', options.device, options.clipGradNorm);
  if (inGraph) Object.assign(fingerprint, { optimizerInGraph: true });
  // Device and threads for every session the run opens (the dev evaluation's too); the arena choice for the training graphs only.
  const session = { ...(options.device ? { device: options.device } : {}), ...(options.threads ? { threads: options.threads } : {}) };
  const runner = await openStepRunner(training, layout, { accumulation, inGraph, ...(options.clipGradNorm ? { clipGradNorm: options.clipGradNorm } : {}), ...(options.adamwEngine ? { engine: options.adamwEngine } : {}), session: { ...session, cpuArena } });
  if (runner.engineFallback) emit({ type: 'warning', message: runner.engineFallback });
  const preprocessor = BundlePreprocessor.open(options.bundle);
  try {
    let params: Float32Array;
    let state: TrainerState;
    let pendingEval: string | undefined;
    if (options.resume) {
      const latest = listCheckpoints(options.out).at(-1);
      if (!latest) throw new BridgeTowerError('E_RESUME', `--resume: '${options.out}' holds no complete checkpoint (${join(options.out, 'checkpoints')}): drop --resume to start a new run there (with --force if the folder is not empty)`);
      const loaded = loadCheckpoint(latest.dir, layout);
      // Both sides' keys: a choice recorded only when it is not the default (recompute) still counts.
      const differences = [...new Set([...Object.keys(fingerprint), ...Object.keys(loaded.state.fingerprint)])].filter((k) => JSON.stringify((fingerprint as Record<string, unknown>)[k]) !== JSON.stringify(loaded.state.fingerprint[k]));
      if (differences.length) throw new BridgeTowerError('E_RESUME', `--resume: ${latest.dir} was saved by a different run (${differences.map((k) => `${k}: ${JSON.stringify(loaded.state.fingerprint[k])} then, ${JSON.stringify((fingerprint as Record<string, unknown>)[k])} now`).join('; ')})`);
      const { evalPending, ...rest } = loaded.state;
      ({ params } = loaded);
      state = rest;
      if (evalPending) {
        if (!dev) throw new BridgeTowerError('E_RESUME', `--resume: ${latest.dir} waits for its dev evaluation (the run stopped before it): pass the run's --dev again`);
        pendingEval = latest.dir;
      }
      runner.restore(loaded.m, loaded.v, state.step);
      emit({ type: 'resume', step: state.step, from: latest.dir });
    } else {
      prepareOutput(options.out, options.force === true);
      params = layout.readFromBundle(options.bundle);
      state = { format: 'bridgetower-train-state', version: 1, step: 0, epoch: 0, position: 0, samples: 0, fingerprint };
    }
    emit.ready();
    if (batchExceedsData) {
      emit({ type: 'warning', message: `the global batch (--batch-size ${recipe.batchSize}) is larger than the ${plural(items.length, 'training example')}: each epoch is one optimizer step over all of them (${plural(recipe.epochs, 'step')} in all); pass --batch-size ${items.length} or less for more steps` });
    }
    emit({ type: 'start', totalSteps, warmupSteps: schedule.warmupSteps, accumulation, microBatchesPerEpoch: microPerEpoch, step: state.step, examples: items.length, parameters: layout.total, memory: memory.plan });

    const provenance = (): FineTuneProvenance => ({ base_bundle: config.name, task: options.task, step: state.step, epoch: state.epoch, train: train.source, options: { subset, ...recipe, microBatch, seed } });
    const checkpoint = async (evalPending: boolean) => {
      const saved = evalPending ? { ...state, evalPending } : state;
      const dir = await saveCheckpoint(options.out, { name: `${name}-step${state.step}`, source: options.bundle, layout, params, m: runner.m, v: runner.v, state: saved, provenance: provenance() });
      const { kept, extra } = pruneCheckpoints(options.out, options.keepCheckpoints ?? 1, new Set(state.best ? [state.best.step] : []));
      emit({ type: 'checkpoint', step: state.step, dir, kept, keptForBest: extra[0] ?? null });
      return dir;
    };
    // Stopped between micro-batches: what ran since the latest checkpoint is redone by --resume.
    const stop = (signal: string): FineTuneResult => {
      const latest = listCheckpoints(options.out).at(-1);
      const checkpoint = latest ? { step: latest.step, dir: latest.dir } : null;
      emit({ type: 'stopped', step: state.step, signal, checkpoint });
      return { step: state.step, ...(state.best ? { best: state.best } : {}), stopped: { checkpoint } };
    };
    const evaluate = async (bundleDir: string) => {
      const result = await evaluateBundle(bundleDir, dev!, { ...(options.evalBatchSize ? { batchSize: options.evalBatchSize } : {}), ...mlmRate, ...session });
      const value = result.metrics[recipe.metric]!;
      const best = !state.best || value > state.best.value;
      if (best) {
        state.best = { metric: recipe.metric, value, step: state.step };
        await buildFolderAtomically(join(options.out, BEST_DIR), { overwrite: true }, async (dir) => writeTrainedBundle(dir, `${name}-best`, options.bundle, layout, params, { ...provenance(), metrics: result.metrics }));
      }
      // The checkpoint was saved before its evaluation: record that it happened (and any new best) there for --resume.
      const { evalPending: _done, ...saved } = readTrainerState(bundleDir);
      await updateTrainerState(bundleDir, { ...saved, ...(state.best ? { best: state.best } : {}) });
      // A new best releases the previous best's checkpoint: it was kept beyond --keep-checkpoints only as the best.
      if (best) pruneCheckpoints(options.out, options.keepCheckpoints ?? 1, new Set([state.best!.step]));
      emit({ type: 'eval', step: state.step, metrics: result.metrics, best });
    };

    // Killed between a checkpoint and its evaluation: evaluate it now (its weights are the ones loaded), so best/ sees every step.
    if (pendingEval) await evaluate(pendingEval);

    let stepLoss = 0;
    // The objective's scalar loss terms (graph outputs `report.<name>`), summed as the loss is.
    const termNames = FINE_TUNE_TASKS[options.task].objective.reports ?? [];
    const stepTerms = new Map<string, number>(termNames.map((name) => [name, 0]));
    let stepSamples = 0;
    let stepStarted = Date.now();
    while (state.epoch < recipe.epochs && state.step < totalSteps) {
      const order = Rng.derive(seed, 'shuffle', state.epoch).permutation(items.length);
      while (state.position < microPerEpoch && state.step < totalSteps) {
        if (options.signal?.aborted) return stop(String(options.signal.reason ?? 'abort'));
        const indices = order.slice(state.position * microBatch, (state.position + 1) * microBatch);
        const batch = await collate(options.task, indices.map((i) => items[i]!) as ReadonlyArray<CollateItem[typeof options.task]>, {
          preprocessor,
          numLabels: training.numLabels,
          ...(options.augment !== false ? { augment: { seed, epoch: state.epoch, indices } } : {}),
          // Read by pre-training only (masks, ITM labels, false images drawn from the training set).
          pretraining: { seed, epoch: state.epoch, indices, pool: train as Dataset<'pretrain'>, ...mlmRate },
        });
        const microIndex = state.epoch * microPerEpoch + state.position;
        const feeds = { ...batch.tensors, ...negativeNoise(training, batch.tensors, seed, microIndex) };
        // Lightning steps after `accumulation` micro-batches, and at the end of the epoch.
        const stepsHere = (state.position + 1) % accumulation === 0 || state.position + 1 === microPerEpoch;
        const factor = lrFactor(schedule, state.step);
        const out = await runner.microBatch(feeds, params, Rng.derive(seed, 'dropout', microIndex).nextUint32() >>> 1, stepsHere ? factor : undefined);
        if (!Number.isFinite(out.loss)) diverged(options, emit, state, `the loss is ${out.loss}`, indices.map((i) => items[i]!));
        stepLoss += out.loss / accumulation;
        for (const name of termNames) stepTerms.set(name, stepTerms.get(name)! + (out.reports.get(name)!.data as Float32Array)[0]! / accumulation);
        stepSamples += batch.size;
        state.position++;
        if (!out.stepped) continue;

        const { gradNorm } = out.stepped;
        if (!Number.isFinite(gradNorm)) diverged(options, emit, state, `the gradient norm is ${gradNorm}`, indices.map((i) => items[i]!));
        params = out.stepped.params;
        state.step++;
        state.samples += stepSamples;
        const seconds = (Date.now() - stepStarted) / 1000;
        const terms = termNames.length > 0 ? { terms: Object.fromEntries(stepTerms) } : {};
        const record = { step: state.step, epoch: state.epoch, loss: stepLoss, ...terms, lr: recipe.learningRate * factor, gradNorm, samplesPerSecond: stepSamples / Math.max(seconds, 1e-9), seconds };
        emit({ type: 'step', ...record });
        stepLoss = 0;
        for (const name of termNames) stepTerms.set(name, 0);
        stepSamples = 0;
        stepStarted = Date.now();

        const epochEnd = state.position === microPerEpoch;
        if (epochEnd) {
          state.epoch++;
          state.position = 0;
        }
        // Checkpoints record the next micro-batch to run, so a resumed run starts exactly there.
        const due = (every: number | undefined) => every !== undefined && state.step % every === 0;
        const last = state.step === totalSteps || state.epoch === recipe.epochs;
        const wantEval = dev !== undefined && (epochEnd || due(options.evalEvery) || last);
        if (epochEnd || due(options.saveEvery) || wantEval || last) {
          const dir = await checkpoint(wantEval);
          if (wantEval) await evaluate(dir);
        }
        if (epochEnd) break;
      }
    }
    await finalize(options.out, name, options.bundle, layout, params, provenance());
    emit({ type: 'done', step: state.step, out: options.out, best: state.best ?? null });
    return { step: state.step, ...(state.best ? { best: state.best } : {}) };
  } finally {
    await runner.release();
  }
}

function diverged(options: FineTuneOptions, emit: (body: TrainEventBody) => void, state: TrainerState, what: string, batch: ReadonlyArray<CollateItem[FineTuneTask]>): never {
  const latest = listCheckpoints(options.out).at(-1);
  const rows = batch.map((item) => describeItem(item)).slice(0, 8).join(', ');
  emit({ type: 'diverged', step: state.step, what });
  throw new BridgeTowerError('E_DIVERGED', `training diverged at step ${state.step + 1} (epoch ${state.epoch + 1}): ${what} on the batch of ${rows}. ${latest ? `The last good checkpoint is ${latest.dir} (resume with --resume after lowering --lr or setting --clip-grad-norm).` : 'No checkpoint was saved yet.'}`);
}

/** The row of a training item (a retrieval pair's row is its image's). */
function describeItem(item: CollateItem[FineTuneTask]): string {
  return describeRow('ref' in item ? item.ref : item.example.ref);
}


/**
 * A fresh run needs an empty (or absent) output folder; --force clears one, but only a bundle or an
 * earlier run's folder (`assertReplaceable`): never a folder of the user's own files.
 */
function prepareOutput(out: string, force: boolean): void {
  if (outputNeedsClearing(out, force)) rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
}

/** Whether --out holds something a fresh run must clear; throws unless --force may clear it. */
function outputNeedsClearing(out: string, force: boolean): boolean {
  if (!existsSync(out) || (statSync(out).isDirectory() && readdirSync(out).length === 0)) return false;
  if (!force) throw new BridgeTowerError('E_USAGE', `output '${out}' is not empty; pass --resume to continue its run, --force to start over, or choose another --out`);
  assertReplaceable(out, isFineTuneRun);
  return true;
}

/** Everything a run writes into its output folder: the bundle's files, its log, checkpoints, best/, the staging folder. */
const RUN_ENTRIES: ReadonlySet<string> = new Set([...Object.values(BUNDLE_FILES), LOG_FILE, CHECKPOINTS_DIR, BEST_DIR, FINAL_STAGING]);
/** The hidden folders buildFolderAtomically leaves while it works (`.best.partial-…`). */
const PARTIAL_ENTRY = /^\..*\.partial-/;

/** An earlier run's folder, possibly stopped before it became a bundle: its log, and nothing a run does not write. */
function isFineTuneRun(dir: string): boolean {
  const entries = readdirSync(dir);
  return entries.includes(LOG_FILE) && entries.every((name) => RUN_ENTRIES.has(name) || PARTIAL_ENTRY.test(name));
}

/** The output folder becomes a bundle: built beside it, then its files moved in (config.json last). */
async function finalize(out: string, name: string, source: string, layout: FlatLayout, params: Float32Array, provenance: FineTuneProvenance): Promise<void> {
  const staging = join(out, FINAL_STAGING);
  await buildFolderAtomically(staging, { overwrite: true }, async (dir) => writeTrainedBundle(dir, name, source, layout, params, provenance));
  const names = readdirSync(staging).sort((a, b) => Number(a === 'config.json') - Number(b === 'config.json'));
  for (const name of names) {
    rmSync(join(out, name), { recursive: true, force: true });
    renameSync(join(staging, name), join(out, name));
  }
  rmSync(staging, { recursive: true, force: true });
}

/**
 * The same name on every run into the same folder (galleries are keyed by it): --name, else the
 * output folder's name; its checkpoints are `<name>-step<N>`, its best dev bundle `<name>-best`.
 */
function bundleName(options: FineTuneOptions): string {
  const name = options.name ?? basename(resolve(options.out));
  if (name.trim() === '') throw new BridgeTowerError('E_USAGE', `--out '${options.out}' gives no bundle name: pass --name <name>`);
  return name;
}

function definedOnly(options: FineTuneOptions): Partial<Recipe> {
  const keys: Array<keyof Recipe> = ['learningRate', 'weightDecay', 'lrMultHead', 'lrMultCrossModal', 'warmup', 'batchSize', 'epochs', 'dropout', 'metric'];
  return Object.fromEntries(keys.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
}

function validate(options: FineTuneOptions, recipe: Recipe, microBatch: number): void {
  const positiveInt = (name: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new BridgeTowerError('E_USAGE', `${name} must be a positive integer, got ${v}`);
  };
  positiveInt('--batch-size', recipe.batchSize);
  positiveInt('--micro-batch-size', microBatch);
  positiveInt('--epochs', recipe.epochs);
  positiveInt('--max-steps', options.maxSteps);
  positiveInt('--save-every', options.saveEvery);
  positiveInt('--eval-every', options.evalEvery);
  positiveInt('--keep-checkpoints', options.keepCheckpoints);
  if (options.adamwEngine !== undefined && !ADAMW_ENGINE_NAMES.includes(options.adamwEngine)) {
    throw new BridgeTowerError('E_USAGE', `--adamw-engine must be one of ${ADAMW_ENGINE_NAMES.join(', ')}, got '${options.adamwEngine}'`);
  }
  if (!(recipe.learningRate > 0)) throw new BridgeTowerError('E_USAGE', `--lr must be positive, got ${recipe.learningRate}`);
  if (!(recipe.weightDecay >= 0)) throw new BridgeTowerError('E_USAGE', `--weight-decay must be ≥ 0, got ${recipe.weightDecay}`);
  if (!(recipe.warmup >= 0)) throw new BridgeTowerError('E_USAGE', `--warmup must be ≥ 0 (a fraction of the steps, or a step count ≥ 1), got ${recipe.warmup}`);
  if (!(recipe.dropout >= 0 && recipe.dropout < 1)) throw new BridgeTowerError('E_USAGE', `--dropout must be in [0, 1), got ${recipe.dropout}`);
  if (options.mlmProbability !== undefined && !(options.mlmProbability > 0 && options.mlmProbability <= 1)) throw new BridgeTowerError('E_USAGE', `--mlm-probability must be in (0, 1], got ${options.mlmProbability}`);
  if (options.mlmProbability !== undefined && !masksCaptions(options.task)) {
    const withMlm = FINE_TUNE_TASK_NAMES.filter(masksCaptions).map((t) => `--task ${t}`).join(', ');
    throw new BridgeTowerError('E_USAGE', `--mlm-probability masks captions for ${withMlm}; ${options.task} has no MLM objective`);
  }
  if (options.recompute !== undefined && !RECOMPUTE_CHOICES.includes(options.recompute)) throw new BridgeTowerError('E_USAGE', `--recompute must be one of ${RECOMPUTE_CHOICES.join(', ')}, got '${options.recompute}'`);
  if (options.cpuArena !== undefined && !CPU_ARENA_CHOICES.includes(options.cpuArena)) throw new BridgeTowerError('E_USAGE', `--cpu-arena must be one of ${CPU_ARENA_CHOICES.join(', ')}, got '${options.cpuArena}'`);
  if (options.optimizerInGraph !== undefined) optimizerInGraph(options.optimizerInGraph, options.device, options.clipGradNorm);
  if (options.clipGradNorm !== undefined && !(options.clipGradNorm > 0)) throw new BridgeTowerError('E_USAGE', `--clip-grad-norm must be positive, got ${options.clipGradNorm}`);
  if (microBatch > recipe.batchSize) throw new BridgeTowerError('E_USAGE', `--micro-batch-size ${microBatch} exceeds --batch-size ${recipe.batchSize}`);
}

/** Whether the task's objective reads masked captions (an `mlm_input_ids` batch input), so `--mlm-probability` applies. */
function masksCaptions(task: FineTuneTask): boolean {
  return FINE_TUNE_TASKS[task].objective.extraInputs.some((input) => input.name === 'mlm_input_ids');
}

/** Upstream's caption length (max_text_len 50): the text length the memory estimate assumes. */
const UPSTREAM_TEXT_LENGTH = 50;
