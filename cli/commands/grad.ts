import { BridgeTowerError } from '../../common/errors.js';
import { openSafetensors, readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { writeSafetensors, type SafetensorsTensor } from '../../bundle/safetensors/write-safetensors.js';
import { BUNDLE_FILES } from '../../bundle/config.js';
import { FINE_TUNE_TASK_NAMES, type FineTuneTask } from '../../train/tasks.js';
import { batchFromRaw, computeGradients } from '../../train/gradient-step.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { join } from 'node:path';
import type { Command } from '../run-command.js';

export const gradCommand: Command = {
  summary: 'loss and parameter gradients of a bundle on one batch (upstream training parity)',
  usage: `
Usage: bridgetower grad <bundle> --task vqa|snli|nlvr2|irtr|pretrain --batch <batch.safetensors> --out <grads.safetensors>

Runs upstream's training forward (dropout off) and loss on one batch and writes 'loss', 'logits'
and 'grad.<parameter>' for every float parameter of the bundle (zeros where the loss does not
depend on it). No update is applied. The batch holds:
  input_ids, attention_mask   int64 [batch, seq]
  pixel_values                float32 [batch, 3, S, S]
  pixel_values_right          float32 [batch, 3, S, S]        (nlvr2: the right image; or pixel_values_2)
  targets                     float32 [batch, labels]          (vqa; or vqa_targets)
  labels                      int64 [batch]                    (snli, nlvr2; or snli_labels / nlvr2_labels)
  negative_noise_i2t/_t2i     float32 [batch, batch] in (0, 1) (irtr, optional: hard-negative draws;
                                                                drawn from --seed when absent)
  mlm_input_ids, mlm_labels   int64 [batch, seq]               (pretrain: masked ids; original id at
                                                                masked positions, -100 elsewhere)
  false_pixel_values          float32 [batch, 3, S, S]        (pretrain: the false images)
  itm_labels                  int64 [batch]                    (pretrain: 1 true image, 0 false image)
  (pretrain also takes train_pt.safetensors' names: batch.text_ids, batch.text_ids_mlm, ...)
Losses: vqa = binary_cross_entropy_with_logits(logits, targets) x num_labels; snli, nlvr2 =
cross_entropy; irtr = ITC (symmetric) + ITM on positives and sampled hard negatives; pretrain =
MLM cross-entropy at the masked positions + ITM cross-entropy (also written: mlm_loss, itm_loss).

Example:
  bridgetower grad bundles/vqa --task vqa --batch batch.safetensors --out grads.safetensors
`,
  options: { task: { type: 'string' }, batch: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new BridgeTowerError('E_USAGE', 'expected <bundle>; see --help');
    const task = values.task as FineTuneTask | undefined;
    if (!task || !FINE_TUNE_TASK_NAMES.includes(task)) throw new BridgeTowerError('E_USAGE', `--task must be one of ${FINE_TUNE_TASK_NAMES.join(', ')}`);
    if (!values.batch || !values.out) throw new BridgeTowerError('E_USAGE', '--batch and --out are required');
    const seed = values.seed === undefined ? 0 : Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new BridgeTowerError('E_USAGE', `--seed must be a non-negative integer, got '${values.seed}'`);
    const bundle = positionals[0]!;
    const training = buildTrainingGraph(bundle, task);
    const results = await computeGradients(training, bundle, batchFromRaw(readSafetensors(values.batch)), { noiseSeed: seed });
    const tensors: SafetensorsTensor[] = [];
    const add = (name: string, shape: readonly number[], data: Float32Array) =>
      tensors.push({ name, dtype: 'float32', shape: [...shape], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    add('loss', [], Float32Array.of(results.loss));
    add('logits', results.logits.dims, results.logits.data as Float32Array);
    // The objective's reported terms (pretrain: mlm_loss, itm_loss, and the masked rows' logits).
    for (const [name, tensor] of results.reports) add(name, tensor.dims, tensor.data as Float32Array);
    // Every float parameter of the bundle, zeros where the graph does not use it.
    const weights = openSafetensors(join(bundle, BUNDLE_FILES.weights));
    for (const [name, view] of weights.tensors) {
      if (view.dtype !== 'float32') continue;
      add(`grad.${name}`, view.shape, results.gradients.get(name) ?? new Float32Array(view.shape.reduce((a, d) => a * d, 1)));
    }
    writeSafetensors(values.out, tensors);
    process.stdout.write(`loss ${results.loss}\n${tensors.length - 2 - results.reports.size} gradients → ${values.out}\n`);
  },
};
