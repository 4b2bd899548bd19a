import { BridgeTowerError } from '../../common/errors.js';
import { predictToFile } from '../../train/evaluate/predict.js';
import type { Command } from '../run-command.js';
import { stageProgress } from '../stage-progress.js';
import { EVALUATION_OPTIONS, EVALUATION_OPTIONS_USAGE, openEvaluationData, parseEvaluationArgs } from './evaluation-options.js';

export const predictCommand: Command = {
  summary: "write a bundle's predictions on (test) data: the EvalAI submission JSON for VQA",
  usage: `
Usage: bridgetower predict --bundle <dir> --task vqa|snli|nlvr2|irtr|pretrain --data <file> --out <file> [options]

Runs the bundle over every example (labels are not needed) and writes, atomically:
  vqa    EvalAI's VQAv2 submission: [{"question_id": 262148000, "answer": "yes"}, ...], the answers
         being the bundle's labels.json strings
  snli   JSON Lines: {"index", "row", "label": "entailment", "label_id": 2, "score"}
  nlvr2  JSON Lines: {"index", "identifier", "prediction": "True", "label_id": 1, "score"}
  irtr   JSON Lines: per image {"query": "image", "image_id", "texts": [{"image_id", "caption", "score"}]},
         then per caption {"query": "text", "image_id", "caption", "images": [{"image_id", "score"}]},
         each the 10 best by the re-ranked score
  pretrain  JSON Lines: {"index", "image_id", "caption", "itm_label", "itm_predicted",
         "masked": [{"position", "label", "predicted"}]} (token ids; masks and pairs as in training)
docs/evaluation.md describes each field.

Options:${EVALUATION_OPTIONS_USAGE}
  --out <file>           where to write the predictions

Examples:
  bridgetower predict --bundle bundles/vqa --task vqa --data vqav2_test.arrow --out vqa_test_submission.json
  bridgetower predict --bundle bundles/nlvr2 --task nlvr2 --data nlvr2_test1.jsonl --images nlvr2/images --out nlvr2.jsonl
`,
  options: { ...EVALUATION_OPTIONS, out: { type: 'string' } },
  async run({ values, positionals }) {
    const args = parseEvaluationArgs(values, positionals);
    if (!values.out) throw new BridgeTowerError('E_USAGE', '--out is required; see --help');
    const dataset = await openEvaluationData(args, false);
    const progress = stageProgress(!values.json);
    let written;
    try {
      written = await predictToFile(args.bundle, dataset, values.out, { ...args.options, onProgress: ({ stage, done, total }) => progress.update(stage, done, total) });
    } finally {
      progress.stop();
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, bundle: args.bundle, task: args.task, data: args.data, out: values.out, format: written.format, records: written.records }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${written.records} ${written.format === 'evalai' ? 'answers (EvalAI submission)' : 'predictions (JSON Lines)'} → ${values.out}\n`);
  },
};
