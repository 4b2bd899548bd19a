import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TASK_NAMES, TASKS } from '../../bundle/tasks.js';
import { FINE_TUNE_TASK_NAMES, FINE_TUNE_TASKS, type FineTuneTask } from '../../train/tasks.js';
import { RAND_AUGMENT_OPS } from '../../train/data/randaugment.js';
import { arrayDataset, bytesImage, type Dataset } from '../../train/data/examples.js';
import { scorePredictions, type Predictions } from '../../train/evaluate/evaluate.js';
import { retrievalRecall } from '../../train/evaluate/metrics.js';
import { buildBundleGraph } from '../helpers/head-graphs.js';
import { tinyWeights } from '../helpers/tiny-checkpoints.js';

/**
 * The fine-tuning task table (train/tasks.ts) against the served-task table it names
 * (bundle/tasks.ts), the graphs a bundle ships, and what the rows point at. The demo architecture
 * has every head fine-tuning uses.
 */

const { arch, weights } = tinyWeights();
const image = bytesImage(new Uint8Array([1]));
const ref = { file: 'memory', index: 0, unit: 'row' as const };

/** A one-example data set with its label, and a prediction for it, per task. */
const LABELLED: { [T in FineTuneTask]: () => { dataset: Dataset<T>; predictions: Predictions } } = {
  vqa: () => ({
    dataset: arrayDataset('vqa', [{ task: 'vqa', ref, image, question: 'q', questionId: 1, labels: [0], scores: [1] }]),
    predictions: { task: 'vqa', examples: [{ index: 0, label: 0, score: 1 }] },
  }),
  snli: () => ({ dataset: arrayDataset('snli', [{ task: 'snli', ref, image, hypothesis: 'h', label: 2 }]), predictions: { task: 'snli', examples: [{ index: 0, label: 2, score: 1 }] } }),
  nlvr2: () => ({
    dataset: arrayDataset('nlvr2', [{ task: 'nlvr2', ref, left: image, right: image, sentence: 's', identifier: 'id', label: 1 }]),
    predictions: { task: 'nlvr2', examples: [{ index: 0, label: 1, score: 1 }] },
  }),
  irtr: () => ({
    dataset: arrayDataset('irtr', [{ task: 'irtr', ref, image, imageId: 'i', captions: ['c'] }]),
    predictions: {
      task: 'irtr',
      texts: [{ image: 0, caption: 0 }],
      imageToText: [[{ index: 0, score: 1 }]],
      textToImage: [[{ index: 0, score: 1 }]],
      recall: retrievalRecall({ rows: 1, cols: 1, data: Float32Array.of(1) }, [0]),
      topK: 1,
      reranked: 1,
    },
  }),
  pretrain: () => ({
    dataset: arrayDataset('pretrain', [{ task: 'pretrain', ref, image, imageId: 'i', caption: 'a red cube' }]),
    predictions: { task: 'pretrain', examples: [{ index: 0, itmLabel: 1, itmPredicted: 1, masked: [{ position: 2, label: 7, predicted: 7 }] }] },
  }),
};

describe('fine-tuning task table', () => {
  it('lists every fine-tuning task once, in table order', () => {
    assert.deepEqual(FINE_TUNE_TASK_NAMES, Object.keys(FINE_TUNE_TASKS));
  });

  it("each task's heads are served-table tasks, and its evaluation head, text length and label source are among them", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const spec = FINE_TUNE_TASKS[task];
      assert.ok(spec.heads.length > 0, `${task} names no heads`);
      for (const head of spec.heads) assert.ok(TASK_NAMES.includes(head), `${task}: ${head} is not a row of bundle/tasks.ts`);
      assert.ok(spec.heads.includes(spec.evaluatedBy), `${task}: evaluated by ${spec.evaluatedBy}, which it does not require`);
      assert.ok(spec.heads.includes(spec.textLength), `${task}: text length of ${spec.textLength}, which it does not require`);
      if (spec.labelsFrom) assert.ok(spec.heads.includes(spec.labelsFrom), `${task}: labels of ${spec.labelsFrom}, which it does not require`);
    }
  });

  it("each task's evaluation head graph is in the graph table, and its logits are as wide as the task's label count", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const spec = FINE_TUNE_TASKS[task];
      const headGraph = TASKS[spec.evaluatedBy].headGraph;
      assert.ok(headGraph, `${task}: ${spec.evaluatedBy} has no head graph to evaluate with`);
      const graph = buildBundleGraph(headGraph.name, arch, weights);
      assert.ok(graph, `${task}: ${headGraph.name}.onnx is not in models/bridgetower/graphs.ts`);
      const logits = graph.outputs.find((output) => output.name === 'logits');
      assert.deepEqual(logits?.shape, ['batch', spec.labelCount(arch)], `${task}: ${headGraph.name} logits`);
    }
  });

  it("a task's label source is a bundle task whose label names the user supplies", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const from = FINE_TUNE_TASKS[task].labelsFrom;
      if (from) assert.equal(TASKS[from].labels.from, 'user', `${task} reads labels.json "${from}"`);
    }
  });

  it("the best-by metric of each recipe is one the task's evaluation reports", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const { dataset, predictions } = LABELLED[task]();
      const { metrics } = scorePredictions(dataset as Dataset, predictions);
      assert.ok(FINE_TUNE_TASKS[task].recipe.metric in metrics, `${task}: best by ${FINE_TUNE_TASKS[task].recipe.metric}, evaluation reports ${Object.keys(metrics).join(', ')}`);
    }
  });

  it("each task's Arrow reader is its own, and no file name belongs to two tasks (but pre-training's captions)", () => {
    // Pre-training reads caption files, COCO's Karpathy split among them, which retrieval reads too
    // (upstream pre-trains and fine-tunes on the same coco_caption_karpathy_* files).
    const shared = new Set(FINE_TUNE_TASKS.irtr.arrow.prefixes);
    const prefixes = FINE_TUNE_TASK_NAMES.flatMap((task) => FINE_TUNE_TASKS[task].arrow.prefixes.map((prefix) => ({ task, prefix })));
    for (const task of FINE_TUNE_TASK_NAMES) {
      const reader = FINE_TUNE_TASKS[task].arrow;
      assert.equal(reader.task, task);
      // Longest first: the file-name test stops at the first prefix that matches.
      reader.prefixes.forEach((prefix, i) => reader.prefixes.slice(i + 1).forEach((later) => assert.ok(!later.startsWith(prefix), `${task}: '${later}' after '${prefix}'`)));
    }
    for (const a of prefixes) {
      for (const b of prefixes) {
        const captions = [a.task, b.task].sort().join() === 'irtr,pretrain' && shared.has(a.prefix) && shared.has(b.prefix);
        if (a.task !== b.task && !captions) assert.ok(!a.prefix.startsWith(b.prefix), `'${a.prefix}' (${a.task}) starts with '${b.prefix}' (${b.task})`);
      }
    }
  });

  it("each task's augmentation uses a RandAugment policy the augmenter has", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const { randAugment } = FINE_TUNE_TASKS[task].augmentation;
      if (randAugment) assert.ok(RAND_AUGMENT_OPS[randAugment.policy], `${task}: unknown policy ${randAugment.policy}`);
    }
  });

  it('a minimum micro-batch is above one, and its refusal says the size', () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const min = FINE_TUNE_TASKS[task].minMicroBatch;
      if (!min) continue;
      assert.ok(Number.isInteger(min.size) && min.size > 1, `${task}: minimum micro-batch ${min.size}`);
      assert.match(min.why, new RegExp(`\\b${min.size}\\b`), `${task}: '${min.why}'`);
    }
  });

  it("a task's objective declares batch inputs beyond the common ones, each once", () => {
    for (const task of FINE_TUNE_TASK_NAMES) {
      const names = FINE_TUNE_TASKS[task].objective.extraInputs.map((input) => input.name);
      assert.equal(new Set(names).size, names.length, `${task}: ${names.join(', ')}`);
      for (const common of ['input_ids', 'attention_mask', 'pixel_values']) assert.ok(!names.includes(common), `${task} redeclares ${common}`);
    }
  });
});
