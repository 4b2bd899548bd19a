import { existsSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { plural } from '../../common/plural.js';
import { fineTune, type CpuArenaChoice, type FineTuneOptions, type RecomputeChoice } from '../../train/fine-tune.js';
import type { OptimizerInGraphChoice } from '../../train/step-runner.js';
import type { AdamWEngineName } from '../../train/optimizer/adamw-engines.js';
import { FINE_TUNE_TASK_NAMES, FINE_TUNE_TASKS, type FineTuneTask } from '../../train/tasks.js';
import { TRAIN_SUBSETS, type TrainSubset } from '../../train/train-subsets.js';
import type { Command } from '../run-command.js';
import { trainProgress } from '../train-progress.js';

const num = (n: number) => (n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential() : String(n));
const recipeTable = FINE_TUNE_TASK_NAMES.map((t) => {
  const r = FINE_TUNE_TASKS[t].recipe;
  return `  ${t.padEnd(8)} lr ${num(r.learningRate)}, head ×${r.lrMultHead}, cross-modal ×${r.lrMultCrossModal}, warmup ${r.warmup}, batch ${r.batchSize}, ${r.epochs} epochs, best by ${r.metric}`;
}).join('\n');

/** Numeric flags → option names, with their parser. */
const NUMBERS: ReadonlyArray<[flag: string, key: keyof FineTuneOptions]> = [
  ['lr', 'learningRate'],
  ['weight-decay', 'weightDecay'],
  ['lr-mult-head', 'lrMultHead'],
  ['lr-mult-cross-modal', 'lrMultCrossModal'],
  ['warmup', 'warmup'],
  ['batch-size', 'batchSize'],
  ['micro-batch-size', 'microBatchSize'],
  ['epochs', 'epochs'],
  ['max-steps', 'maxSteps'],
  ['dropout', 'dropout'],
  ['clip-grad-norm', 'clipGradNorm'],
  ['seed', 'seed'],
  ['save-every', 'saveEvery'],
  ['eval-every', 'evalEvery'],
  ['keep-checkpoints', 'keepCheckpoints'],
  ['eval-batch-size', 'evalBatchSize'],
  ['threads', 'threads'],
  ['mlm-probability', 'mlmProbability'],
];

/** Where a stopped run stands and the command that continues it (the shell exit status is 128 + signal). */
function stoppedMessage(out: string, step: number, checkpoint: { step: number; dir: string } | null, signal: string): string {
  return checkpoint
    ? `fine-tune: stopped by ${signal} after step ${step}; the latest checkpoint is ${checkpoint.dir} (step ${checkpoint.step}): run the same command with --resume (instead of --force) to continue from there`
    : `fine-tune: stopped by ${signal} after step ${step}, before the first checkpoint: nothing to resume in ${out}; start over with --force (--save-every N checkpoints sooner)`;
}

export const fineTuneCommand: Command = {
  summary: "fine-tune a bundle on VQA, SNLI-VE, NLVR2 or retrieval data, or continue pre-training (MLM + ITM) on captions, with upstream's recipe; writes a new bundle",
  usage: `
Usage: bridgetower fine-tune --bundle <dir> --task vqa|snli|nlvr2|irtr|pretrain --train <data> [--dev <data>] --out <dir> [options]

Trains on ONNX Runtime with upstream's losses, AdamW (transformers 4.17) over its six parameter
groups, linear warmup then linear decay per optimizer step, dropout 0.1, and training-time
augmentation. Data: ViLT-style .arrow files (or a folder of them) or JSON Lines with an image
folder (docs/training-data.md). <out> becomes a bundle that serve, evaluate and export-ckpt take;
it also holds checkpoints/ (the latest, each a complete bundle + optimizer state), best/ (the best
dev checkpoint) and train-log.jsonl. --task pretrain continues pre-training a bundle with MLM and
ITM heads on image-caption data (docs/pretrain.md): the heads are kept, the result serves
/fill-mask and /itm and fine-tunes like a released pre-trained checkpoint.

Options:
  --trainable all|cross-modal|heads  parameters to update (default all, like upstream); also
                               accepted as a second --train value (--train heads)
  --dev <data>                 evaluate every epoch (and every --eval-every steps); keep best/
  --eval-batch-size N          examples per graph run while evaluating on --dev
  --images <dir>, --dev-images <dir>  JSON Lines image folders (default: the file's folder)
  --lr, --weight-decay, --lr-mult-head, --lr-mult-cross-modal, --warmup (fraction or steps),
  --batch-size (global, upstream's), --epochs, --dropout   override the task recipe (below)
  --micro-batch-size N         examples per graph run; gradients accumulate to --batch-size
                               (default min(8, batch size))
  --max-steps N                stop after N optimizer steps (the schedule spans them)
  --clip-grad-norm X           clip the global gradient norm (off by default, like upstream)
  --recompute auto|layers|none recompute each layer's activations in the backward pass (less
                               memory); auto (default) does, with a warning, when the plain
                               step's expected peak exceeds the memory available
  --cpu-arena off|on           ONNX Runtime's CPU memory arena for the training sessions
                               (default off: about 15 % less memory; full-size BASE at
                               micro-batch 8 peaks at 16.5 GB off, 19.0 GB on, where on was 1.5×
                               faster; at micro-batch 2 on was no faster)
  --optimizer-in-graph auto|on|off  accumulate the gradients and run the AdamW update inside the
                               training graph (fewer bytes to and from a GPU per step); auto
                               (default) is on for --device cuda, off on the CPU and with
                               --clip-grad-norm (which on refuses)
  --seed N                     shuffling, augmentation, dropout, negatives and pre-training's
                               masks and false images (default 0)
  --no-augment                 eval preprocessing for training images too
  --mlm-probability P          pretrain: share of caption tokens masked for MLM (upstream's mlm_prob,
                               default 0.15; also used for the --dev scores)
  --save-every N               checkpoint every N steps (always at each epoch end)
  --keep-checkpoints N         keep the N newest checkpoints (default 1); with --dev the best dev
                               step's checkpoint is kept in addition (so up to N + 1), and best/
                               is a separate bundle
  --name <name>                the trained bundle's name (default: the --out folder's name; its
                               checkpoints are <name>-step<N>, its best dev bundle <name>-best)
  --resume                     continue the run in --out from its latest checkpoint, bit-identically
  --force                      clear a non-empty --out and start over (only a bundle or an earlier run's folder)
  --device cpu|cuda            execution provider (default cpu)
  --threads N                  ONNX Runtime intra-op threads (small models run faster on 1); also
                               the native AdamW engine's threads (default: every core)
  --adamw-engine native|wasm|ort|js  the optimizer's engine (default native when its addon is built,
                               else wasm with a warning: npm run build:native; docs/fine-tune.md)
  --json                       events as JSON Lines on stdout instead of a progress bar

Task recipes (upstream's scripts; docs/fine-tune.md):
${recipeTable}

Examples:
  bridgetower fine-tune --bundle bundles/pt-base --task snli --train snli_ve_train.arrow --dev snli_ve_dev.arrow --out bundles/snli-ft
  bridgetower fine-tune --bundle bundles/vqa --task vqa --train my-vqa/train.jsonl --dev my-vqa/dev.jsonl --out bundles/my-vqa --trainable heads --batch-size 64 --epochs 3
  bridgetower fine-tune --bundle bundles/vqa --task vqa --train my-vqa/train.jsonl --out bundles/my-vqa --resume
  bridgetower fine-tune --bundle bundles/pt-base --task pretrain --train captions/train.jsonl --dev captions/dev.jsonl --out bundles/pt-mine --batch-size 256 --max-steps 2000
`,
  options: {
    bundle: { type: 'string' },
    task: { type: 'string' },
    train: { type: 'string', multiple: true },
    trainable: { type: 'string' },
    dev: { type: 'string' },
    images: { type: 'string' },
    'dev-images': { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    force: { type: 'boolean' },
    resume: { type: 'boolean' },
    'no-augment': { type: 'boolean' },
    device: { type: 'string' },
    recompute: { type: 'string' },
    'cpu-arena': { type: 'string' },
    'optimizer-in-graph': { type: 'string' },
    'adamw-engine': { type: 'string' },
    json: { type: 'boolean' },
    ...Object.fromEntries(NUMBERS.map(([flag]) => [flag, { type: 'string' as const }])),
  },
  async run({ values }) {
    const task = values.task as FineTuneTask | undefined;
    if (!task || !FINE_TUNE_TASK_NAMES.includes(task)) throw new BridgeTowerError('E_USAGE', `--task must be one of ${FINE_TUNE_TASK_NAMES.join(', ')}`);
    if (!values.bundle || !values.out) throw new BridgeTowerError('E_USAGE', '--bundle and --out are required; see --help');
    // `--train` names the data; a value that is a subset name and no file selects the parameters.
    const trainValues = (values.train as string[] | undefined) ?? [];
    const subsets = trainValues.filter((v) => (TRAIN_SUBSETS as readonly string[]).includes(v) && !existsSync(v));
    const data = trainValues.filter((v) => !subsets.includes(v));
    if (data.length !== 1) throw new BridgeTowerError('E_USAGE', `--train needs exactly one data file or folder, got ${data.length ? data.join(', ') : 'none'}`);
    const subset = (values.trainable ?? subsets[0] ?? 'all') as TrainSubset;
    if (!TRAIN_SUBSETS.includes(subset) || subsets.length > 1 || (values.trainable && subsets.length)) {
      throw new BridgeTowerError('E_USAGE', `choose the trainable parameters once, as one of ${TRAIN_SUBSETS.join(', ')}`);
    }
    const device = (values.device ?? 'cpu') as 'cpu' | 'cuda';
    if (device !== 'cpu' && device !== 'cuda') throw new BridgeTowerError('E_USAGE', `--device must be cpu or cuda, got '${values.device}'`);
    const options: FineTuneOptions = {
      bundle: values.bundle,
      task,
      train: data[0]!,
      out: values.out,
      ...(values.name !== undefined ? { name: values.name } : {}),
      subset,
      device,
      ...(values.dev ? { dev: values.dev } : {}),
      ...(values.images ? { images: values.images } : {}),
      ...(values['dev-images'] ? { devImages: values['dev-images'] } : {}),
      ...(values.force ? { force: true } : {}),
      ...(values.resume ? { resume: true } : {}),
      ...(values['no-augment'] ? { augment: false } : {}),
      ...(values.recompute !== undefined ? { recompute: values.recompute as RecomputeChoice } : {}),
      ...(values['cpu-arena'] !== undefined ? { cpuArena: values['cpu-arena'] as CpuArenaChoice } : {}),
      ...(values['optimizer-in-graph'] !== undefined ? { optimizerInGraph: values['optimizer-in-graph'] as OptimizerInGraphChoice } : {}),
      ...(values['adamw-engine'] !== undefined ? { adamwEngine: values['adamw-engine'] as AdamWEngineName } : {}),
    };
    for (const [flag, key] of NUMBERS) {
      const raw = values[flag] as string | undefined;
      if (raw === undefined) continue;
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new BridgeTowerError('E_USAGE', `--${flag} must be a number, got '${raw}'`);
      (options as unknown as Record<string, number>)[key] = n;
    }
    if (options.force && options.resume) throw new BridgeTowerError('E_USAGE', '--force and --resume contradict each other');
    const progress = trainProgress(!values.json);
    options.onEvent = (e) => {
      progress.event(e);
      if (values.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    };
    // SIGTERM (a scheduler, Ctrl-C) stops the run between micro-batches; a second signal kills it.
    const stopping = new AbortController();
    options.signal = stopping.signal;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping.signal.aborted) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
      stopping.abort(signal);
    };
    process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
    try {
      const result = await fineTune(options);
      if (result.stopped) {
        progress.stop();
        process.stderr.write(`${stoppedMessage(values.out, result.step, result.stopped.checkpoint, String(stopping.signal.reason))}\n`);
        return stopping.signal.reason === 'SIGINT' ? 130 : 143;
      }
      if (!values.json) {
        const best = result.best ? `; best dev ${result.best.metric} ${result.best.value.toFixed(2)} at step ${result.best.step} → ${values.out}/best` : '';
        process.stdout.write(`fine-tuned ${plural(result.step, 'step')} → ${values.out}${best}\n`);
      }
      return 0;
    } finally {
      process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
      progress.stop();
    }
  },
};
