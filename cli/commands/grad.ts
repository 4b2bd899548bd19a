import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { BUNDLE_FILES } from '../../convert/bundle/bundle-config.js';
import { openSafetensors, readSafetensors } from '../../convert/safetensors/read-safetensors.js';
import { writeSafetensors, type SafetensorsTensor } from '../../convert/safetensors/write-safetensors.js';
import { buildTrainingGraph, computeGradients, type TrainingTask } from '../../train/training-graph.js';
import type { Command } from '../run-command.js';

const TASKS: readonly TrainingTask[] = ['vqa', 'snli'];

export const gradCommand: Command = {
  summary: 'loss and parameter gradients of a bundle on one batch (upstream training parity)',
  usage: `
Usage: bridgetower grad <bundle> --task vqa|snli --batch <batch.safetensors> --out <grads.safetensors>

Runs upstream's training forward (dropout off) and loss on one batch and writes 'loss', 'logits'
and 'grad.<parameter>' for every float parameter of the bundle (zeros where the loss does not
depend on it). The batch holds input_ids and attention_mask (int64 [batch, seq]), pixel_values
(float32 [batch, 3, S, S]) and, for vqa, targets (float32 [batch, labels]; or vqa_targets), for
snli, labels (int64 [batch]; or snli_labels).
Losses: vqa = binary_cross_entropy_with_logits(logits, targets) x num_labels; snli = cross_entropy.

Example:
  bridgetower grad models/vqa --task vqa --batch batch.safetensors --out grads.safetensors
`,
  options: { task: { type: 'string' }, batch: { type: 'string' }, out: { type: 'string' } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new BridgeTowerError('E_USAGE', 'expected <bundle>; see --help');
    const task = values.task as TrainingTask | undefined;
    if (!task || !TASKS.includes(task)) throw new BridgeTowerError('E_USAGE', `--task must be one of ${TASKS.join(', ')}`);
    if (!values.batch || !values.out) throw new BridgeTowerError('E_USAGE', '--batch and --out are required');
    const bundle = positionals[0]!;
    const training = buildTrainingGraph(bundle, task);
    const results = await computeGradients(training, readSafetensors(values.batch));
    const tensors: SafetensorsTensor[] = [];
    const add = (name: string, shape: readonly number[], data: Float32Array) =>
      tensors.push({ name, dtype: 'float32', shape: [...shape], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    add('loss', [], results.loss!.data as Float32Array);
    add('logits', results.logits!.dims, results.logits!.data as Float32Array);
    // Every float parameter of the bundle, zeros where the graph does not use it.
    const weights = openSafetensors(join(bundle, BUNDLE_FILES.weights));
    for (const [name, view] of weights.tensors) {
      if (view.dtype !== 'float32') continue;
      const g = results[`grad.${name}`];
      add(`grad.${name}`, view.shape, g ? (g.data as Float32Array) : new Float32Array(view.shape.reduce((a, d) => a * d, 1)));
    }
    writeSafetensors(values.out, tensors);
    process.stdout.write(`loss ${(results.loss!.data as Float32Array)[0]}\n${tensors.length - 2} gradients → ${values.out}\n`);
  },
};
