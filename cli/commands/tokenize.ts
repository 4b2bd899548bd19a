import { BridgeTowerError } from '../../common/errors.js';
import { TASKS, type TaskName } from '../../bundle/tasks.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import type { Command } from '../run-command.js';

export const tokenizeCommand: Command = {
  summary: "print the token ids and attention mask a bundle's model would get for some texts",
  usage: `
Usage: bridgetower tokenize <bundle> [--task vqa|snli|nlvr2|itm|itc|mlm] <text>...

The same code path as the server: RoBERTa byte-level BPE, <s> … </s>, truncated to the task's
length (upstream: 50 tokens, 40 for retrieval), padded with <pad> = 1 to the longest text.
Prints JSON: {"input_ids": [[…]], "attention_mask": [[…]], "max_length": n}.

Example:
  bridgetower tokenize bundles/vqa --task vqa "What color is the cat?" "How many dogs are there?"
`,
  options: { task: { type: 'string' } },
  async run({ values, positionals }) {
    const [bundle, ...texts] = positionals;
    if (!bundle || texts.length === 0) throw new BridgeTowerError('E_USAGE', 'expected <bundle> and at least one text; see --help');
    const task = parseTask(values.task);
    const pre = BundlePreprocessor.open(bundle);
    const batch = pre.encodeTexts(texts, task);
    const [rows, columns] = batch.dims;
    const matrix = (data: BigInt64Array) => Array.from({ length: rows }, (_, r) => Array.from(data.subarray(r * columns, (r + 1) * columns), Number));
    process.stdout.write(`${JSON.stringify({ input_ids: matrix(batch.inputIds), attention_mask: matrix(batch.attentionMask), max_length: pre.maxTextLength(task) })}\n`);
  },
};

export function parseTask(task: string | undefined): TaskName | undefined {
  if (task === undefined) return undefined;
  if (!(task in TASKS)) throw new BridgeTowerError('E_USAGE', `--task must be one of ${Object.keys(TASKS).join(', ')}, got '${task}'`);
  return task as TaskName;
}
