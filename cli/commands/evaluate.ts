import { evaluateBundle } from '../../train/evaluate/evaluate.js';
import { FINE_TUNE_TASKS } from '../../train/tasks.js';
import type { Command } from '../run-command.js';
import { stageProgress } from '../stage-progress.js';
import { EVALUATION_OPTIONS, EVALUATION_OPTIONS_USAGE, openEvaluationData, parseEvaluationArgs } from './evaluation-options.js';

export const evaluateCommand: Command = {
  summary: "score a bundle on labelled data with upstream's metrics (VQA score, accuracy, recall@K)",
  usage: `
Usage: bridgetower evaluate --bundle <dir> --task vqa|snli|nlvr2|irtr|pretrain --data <file> [options]

Runs the bundle's graphs over every example (eval preprocessing, the server's: no augmentation)
and prints upstream's metrics, in percent: vqa_score (VQAScore: the soft score of the argmax
answer), accuracy (SNLI-VE, NLVR2), and for irtr ir_r1/5/10 (text→image), tr_r1/5/10
(image→text), ir_mean, tr_mean, r_mean (ITC top-k re-ranked by the ITM match logit, max of
both directions); for pretrain mlm_accuracy and itm_accuracy (the masked captions and false-image
pairs drawn as in training, from a fixed stream). docs/evaluation.md defines each.

Options:${EVALUATION_OPTIONS_USAGE}

Examples:
  bridgetower evaluate --bundle bundles/vqa --task vqa --data vqav2_val.arrow
  bridgetower evaluate --bundle bundles/snli --task snli --data snli_ve_dev.jsonl --images flickr30k-images/
  bridgetower evaluate --bundle bundles/f30k --task irtr --data f30k_caption_karpathy_test.arrow --top-k 128 --json
  bridgetower evaluate --bundle bundles/pt-mine --task pretrain --data captions/dev.jsonl
`,
  options: EVALUATION_OPTIONS,
  async run({ values, positionals }) {
    const args = parseEvaluationArgs(values, positionals);
    const dataset = await openEvaluationData(args, true);
    const progress = stageProgress(!values.json);
    let result;
    try {
      result = await evaluateBundle(args.bundle, dataset, { ...args.options, onProgress: ({ stage, done, total }) => progress.update(stage, done, total) });
    } finally {
      progress.stop();
    }
    // Retrieval rankings say how many candidates were re-ranked.
    const topK = 'topK' in result.predictions ? { top_k: result.predictions.topK } : {};
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, bundle: args.bundle, task: result.task, data: args.data, count: result.count, ...topK, metrics: result.metrics }, null, 2)}\n`);
      return;
    }
    const width = Math.max(...Object.keys(result.metrics).map((name) => name.length));
    const what = FINE_TUNE_TASKS[result.task].counts;
    const lines = [
      `${result.task} on ${args.data}: ${result.count} ${what}${'top_k' in topK ? `, top-k ${topK.top_k}` : ''}`,
      ...Object.entries(result.metrics).map(([name, value]) => `  ${name.padEnd(width)}  ${value.toFixed(2)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
