import { BridgeTowerError } from '../../common/errors.js';
import { sigmoid, softmax } from '../../runtime/task-results.js';
import { describeRow, type Dataset, type ExampleOf, type ImageSource } from '../data/examples.js';
import type { EvaluationRuntime } from './evaluation-runtime.js';
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

/** One fusion pass: which image, its image token type, and the head input its cls_feats feed. */
interface FusionSide<E> {
  image(example: E): ImageSource;
  tokenType: number;
  input: string;
}

interface Classifier<E> {
  text(example: E): string;
  sides: ReadonlyArray<FusionSide<E>>;
  score(logits: Float32Array, label: number): number;
}

const softmaxScore = (logits: Float32Array, label: number) => softmax(logits)[label]!;
const oneImage = { image: (e: { image: ImageSource }) => e.image, tokenType: 1, input: 'cls_feats' };

/** Per task: the text, the fusion passes (NLVR2: one per image, token types 1 and 2), the score. */
const CLASSIFIERS: { [T in ClassifiedTask]: Classifier<ExampleOf[T]> } = {
  vqa: { text: (e) => e.question, sides: [oneImage], score: (logits, label) => sigmoid(logits[label]!) },
  // SNLI-VE: the text is the hypothesis alone (upstream).
  snli: { text: (e) => e.hypothesis, sides: [oneImage], score: softmaxScore },
  nlvr2: {
    text: (e) => e.sentence,
    sides: [
      { image: (e) => e.left, tokenType: 1, input: 'cls_feats_left' },
      { image: (e) => e.right, tokenType: 2, input: 'cls_feats_right' },
    ],
    score: softmaxScore,
  },
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
  const predictions: ClassPrediction[] = [];
  for (let start = 0; start < dataset.size; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, dataset.size - start) }, (_, b) => start + b);
    const examples = indices.map((i) => exampleAt(dataset, i));
    const texts = await runtime.encodeTexts(
      examples.map((e) => runtime.tokenize(classifier.text(e), e.ref)),
      false,
    );
    const inputs: Record<string, Float32Array> = {};
    for (const side of classifier.sides) {
      const pixels = await Promise.all(examples.map((e) => runtime.pixels(side.image(e), e.ref)));
      const images = await runtime.encodeImages(pixels, false);
      inputs[side.input] = await runtime.fuse(examples.map((_, b) => ({ text: texts[b]!, image: images[b]!.embeds, tokenType: side.tokenType })));
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
