import { BridgeTowerError } from '../../common/errors.js';
import { openEvaluationDataset } from '../../library/evaluation-data.js';
import type { Dataset } from '../../train/data/examples.js';
import type { EvaluationOptions } from '../../train/evaluate/evaluate.js';
import { FINE_TUNE_TASK_NAMES, type FineTuneTask } from '../../train/tasks.js';
import { commandPrecision, PRECISION_OPTION, precisionUsage } from '../precision-option.js';
import type { Command } from '../run-command.js';

/** The options `evaluate` and `predict` share, parsed and checked once. */

export const EVALUATION_OPTIONS: Command['options'] = {
  bundle: { type: 'string' },
  task: { type: 'string' },
  data: { type: 'string' },
  images: { type: 'string' },
  'batch-size': { type: 'string' },
  'top-k': { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  ...PRECISION_OPTION,
  json: { type: 'boolean' },
};

export const EVALUATION_OPTIONS_USAGE = `
  --bundle <dir>         the bundle to run (a converted or fine-tuned one)
  --task <task>          vqa | snli | nlvr2 | irtr (image-text retrieval)
  --data <file>          Arrow IPC (.arrow), JSON Lines (.jsonl) or a folder of Arrow files; docs/training-data.md has the schemas
  --images <dir>         the image folder JSON Lines paths are relative to (Arrow files carry their images)
  --batch-size <n>       examples per graph run (default 32)
  --top-k <k>            irtr: ITC candidates re-ranked by ITM per image and per text
                         (default 256 when the data file name says coco, else 128, as upstream's k_test)
  --threads <n>          ONNX Runtime intra-op threads (default: one per core)
  --device cpu|cuda      where the sessions run (default cpu)
${precisionUsage(24)}
  --json                 print a machine-readable result instead of text`;

export interface EvaluationArgs {
  bundle: string;
  task: FineTuneTask;
  data: string;
  images?: string;
  options: EvaluationOptions;
}

export function parseEvaluationArgs(values: Record<string, any>, positionals: string[]): EvaluationArgs {
  if (positionals.length > 0) throw new BridgeTowerError('E_USAGE', `unexpected argument '${positionals[0]}': name the bundle with --bundle; see --help`);
  for (const required of ['bundle', 'task', 'data'] as const) {
    if (!values[required]) throw new BridgeTowerError('E_USAGE', `--${required} is required; see --help`);
  }
  const task = values.task as FineTuneTask;
  if (!FINE_TUNE_TASK_NAMES.includes(task)) throw new BridgeTowerError('E_USAGE', `--task must be one of ${FINE_TUNE_TASK_NAMES.join(', ')}, got '${values.task}'`);
  const device = values.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new BridgeTowerError('E_USAGE', `--device must be cpu or cuda, got '${device}'`);
  const options: EvaluationOptions = { device, precision: commandPrecision(values.bundle, values.precision, device) };
  const batchSize = positiveInteger(values, 'batch-size');
  const topK = positiveInteger(values, 'top-k');
  const threads = positiveInteger(values, 'threads');
  if (batchSize !== undefined) options.batchSize = batchSize;
  if (topK !== undefined) options.topK = topK;
  if (threads !== undefined) options.threads = threads;
  return { bundle: values.bundle, task, data: values.data, ...(values.images ? { images: values.images } : {}), options };
}

/** The library's reader (library/evaluation-data.ts): the CLI and `evaluate()` read data alike. */
export function openEvaluationData(args: EvaluationArgs, requireLabels: boolean): Promise<Dataset> {
  return openEvaluationDataset(args, requireLabels);
}

function positiveInteger(values: Record<string, any>, name: string): number | undefined {
  if (values[name] === undefined) return undefined;
  const n = Number(values[name]);
  if (!(Number.isInteger(n) && n > 0)) throw new BridgeTowerError('E_USAGE', `--${name} must be a positive integer, got '${values[name]}'`);
  return n;
}
