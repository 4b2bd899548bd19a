import { BridgeTowerError } from '../common/errors.js';
import { readBundleConfig } from '../bundle/config.js';
import { readLabels } from '../bundle/labels.js';
import type { Dataset } from '../train/data/examples.js';
import { checkBundleHeads } from '../train/evaluate/evaluation-runtime.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from '../train/tasks.js';

/**
 * Checks the bundle has the task's heads, then opens the data as the task; VQA answers are
 * mapped to the bundle's answer labels (labels.json), the indices its head predicts. What
 * `bridgetower evaluate` / `predict` and the library's `evaluate()` read data with.
 */
export async function openEvaluationDataset(args: { bundle: string; task: FineTuneTask; data: string; images?: string }, requireLabels: boolean): Promise<Dataset> {
  const config = readBundleConfig(args.bundle);
  checkBundleHeads(args.bundle, config, args.task);
  const labelsFrom = FINE_TUNE_TASKS[args.task].labelsFrom;
  const labels = labelsFrom ? readLabels(args.bundle, config.labels)[labelsFrom] : undefined;
  // Loaded on first use: the readers pull in apache-arrow, which nothing else needs at start-up.
  const { openDataset } = await import('../train/data/open-dataset.js');
  const dataset = await openDataset(args.data, args.task, { ...(args.images ? { images: args.images } : {}), ...(labels ? { labels } : {}), requireLabels });
  if (dataset.task !== args.task) {
    throw new BridgeTowerError('E_DATA', `${args.data} was read as ${dataset.task} data, not ${args.task}: check --task`, { data: args.data });
  }
  return dataset;
}
