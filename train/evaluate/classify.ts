import { BridgeTowerError } from '../../common/errors.js';
import { sigmoid, softmax } from '../../runtime/task-results.js';
import { describeRow, type Dataset, type ExampleOf, type ImageSource } from '../data/examples.js';
import { evaluationHead, type EvaluationRuntime } from './evaluation-runtime.js';
import { argmax } from './metrics.js';

/** The tasks answered by a classifier head on the fusion's cls_feats. */
export type ClassifiedTask = 'vqa' | 'snli' | 'nlvr2';

/** One example's answer. */
export interface ClassPrediction {
  /** The example's index in the data set. */
  index: number;
  /** The argmax class: answer index (VQA), 0 contradiction / 1 neutral / 2 entailment, 0 False / 1 True. */
  label: number;
  /** σ(logit) for VQA (upstream trains it with BCE, as the server scores answers); softmax probability otherwise. */
  score: number;
}

interface Classifier<E> {
  text(example: E): string;
  /** One image per fusion pass of the head graph (bundle/tasks.ts): NLVR2's left, then right. */
  images(example: E): ImageSource[];
  score(logits: Float32Array, label: number): number;
}

const softmaxScore = (logits: Float32Array, label: number) => softmax(logits)[label]!;

/** Per task: the text, the images, the score. */
const CLASSIFIERS: { [T in ClassifiedTask]: Classifier<ExampleOf[T]> } = {
  vqa: { text: (e) => e.question, images: (e) => [e.image], score: (logits, label) => sigmoid(logits[label]!) },
  // SNLI-VE: the text is the hypothesis alone (upstream).
  snli: { text: (e) => e.hypothesis, images: (e) => [e.image], score: softmaxScore },
  nlvr2: { text: (e) => e.sentence, images: (e) => [e.left, e.right], score: softmaxScore },
};

/**
 * Runs the graphs over every example in batches of `batchSize`: text encoder, image encoder,
 * fusion per image, head; keeps the argmax and its score per example (not the logits: VQA has
 * 3129 per question).
 */
export async function classifyDataset<T extends ClassifiedTask>(
  runtime: EvaluationRuntime,
  dataset: Dataset<T>,
  batchSize: number,
  onBatch: (done: number) => void,
): Promise<ClassPrediction[]> {
  const classifier = CLASSIFIERS[dataset.task] as Classifier<ExampleOf[T]>;
  const { passes } = evaluationHead(dataset.task);
  const predictions: ClassPrediction[] = [];
  for (let start = 0; start < dataset.size; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, dataset.size - start) }, (_, b) => start + b);
    const examples = indices.map((i) => exampleAt(dataset, i));
    const texts = await runtime.encodeTexts(
      examples.map((e) => runtime.tokenize(classifier.text(e), e.ref)),
      false,
    );
    const inputs: Record<string, Float32Array> = {};
    for (const [i, pass] of passes.entries()) {
      const pixels = await Promise.all(examples.map((e) => runtime.pixels(classifier.images(e)[i]!, e.ref)));
      const images = await runtime.encodeImages(pixels, false);
      inputs[pass.input] = await runtime.fuse(examples.map((_, b) => ({ text: texts[b]!, image: images[b]!.embeds, tokenType: pass.tokenType })));
    }
    const logits = await runtime.head(inputs, examples.length);
    logits.forEach((row, b) => {
      const label = argmax(row);
      predictions.push({ index: indices[b]!, label, score: classifier.score(row, label) });
    });
    onBatch(start + examples.length);
  }
  return predictions;
}

/** Example `index`, checked to be of the data set's task (a reader bug or a mixed-up file otherwise). */
export function exampleAt<T extends Dataset['task']>(dataset: Dataset<T>, index: number): ExampleOf[T] {
  const example = dataset.get(index);
  if (example.task !== dataset.task) {
    throw new BridgeTowerError('E_DATA', `${describeRow(example.ref)} is a ${example.task} example, but ${dataset.source} was opened as ${dataset.task} data`, {
      row: describeRow(example.ref),
    });
  }
  return example;
}
