import { BridgeTowerError } from '../../common/errors.js';
import type { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { decodeImage, normalizeToChw, type ImageLimits } from '../../preprocess/image.js';
import { Rng } from '../rng.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from '../tasks.js';
import { augmentImage } from './augment.js';
import { rowError } from './data-error.js';
import type { Dataset, ExampleOf, ImageSource, Nlvr2Example, PretrainExample, RetrievalExample, RowRef, SnliExample, VqaExample } from './examples.js';
import { pretrainTensors, type PretrainSampling } from './pretrain-batch.js';

/**
 * Examples → the graph's batch inputs (names as `train/objectives.ts` declares them):
 * `input_ids` / `attention_mask` int64 [B, L] padded to the batch's longest text, `pixel_values`
 * float32 [B, 3, S, S] (+ `pixel_values_right` for NLVR2), `targets` float32 [B, labels] (VQA
 * soft scores) or `labels` int64 [B] (SNLI-VE, NLVR2). Without `augment`, images take the
 * bundle's eval path (`BundlePreprocessor.pixelValues`, what `serve` computes); with it, the
 * training augmentation, then the same normalization.
 *
 * Retrieval trains on (image, caption) pairs, upstream's index (`index_mapper`: every caption
 * with its image), so its items are `RetrievalPair`s; `retrievalPairs` lists them.
 */

export interface BatchTensor {
  dtype: 'int64' | 'float32';
  dims: number[];
  data: BigInt64Array | Float32Array;
}

export interface Batch {
  size: number;
  tensors: Record<string, BatchTensor>;
}

/** One caption of a retrieval example, with its image. */
export interface RetrievalPair {
  example: RetrievalExample;
  captionIndex: number;
}

/** What `collate` takes per task. */
export interface CollateItem {
  vqa: VqaExample;
  snli: SnliExample;
  nlvr2: Nlvr2Example;
  irtr: RetrievalPair;
  pretrain: PretrainExample;
}

export interface CollateOptions {
  preprocessor: BundlePreprocessor;
  /** VQA: columns of `targets`; default the bundle's `tasks.vqa.num_labels`. */
  numLabels?: number;
  /**
   * Training augmentation: item i draws from `Rng.derive(seed, 'augment', epoch, indices[i])`
   * (an NLVR2 right image from `…, indices[i], 1`), so a batch's pixels depend on which examples
   * it holds, never on batch composition or order.
   */
  augment?: { seed: number; epoch: number; indices: readonly number[] };
  /** Decoder limits for the augmentation path (the eval path uses the preprocessor's own). */
  imageLimits?: Partial<ImageLimits>;
  /** Pre-training: the streams of its masks, ITM labels and false images (train/data/pretrain-batch.ts). */
  pretraining?: PretrainSampling;
}

/** What a fine-tuning epoch iterates over for the data set's task (retrieval: every caption with its image). */
export function trainingItems<T extends FineTuneTask>(dataset: Dataset<T>): Array<CollateItem[T]> {
  return (ITEM_VIEWS[dataset.task] as unknown as ItemView<T>).trainingItems(dataset);
}

/** Every (image, caption) pair of a retrieval dataset, image by image: upstream's training index. */
export function retrievalPairs(dataset: Dataset<'irtr'>): RetrievalPair[] {
  const pairs: RetrievalPair[] = [];
  for (let i = 0; i < dataset.size; i++) {
    const example = dataset.get(i);
    example.captions.forEach((_, captionIndex) => pairs.push({ example, captionIndex }));
  }
  return pairs;
}

/** Per task: the training items of a data set, and the text, images (left first), row and targets of a batch's items. */
interface ItemView<T extends FineTuneTask, I = CollateItem[T]> {
  /** What one epoch iterates over: the examples, or (retrieval) every caption with its image. */
  trainingItems(dataset: Dataset<T>): I[];
  text(item: I): string;
  images(item: I): ImageSource[];
  ref(item: I): RowRef;
  /**
   * The target tensors (`targets` / `labels`), or none (unlabelled data; retrieval's targets are
   * the pairing itself); pre-training's are drawn from the text and image tensors already built.
   */
  targets(items: readonly I[], options: CollateOptions, built: Readonly<Record<string, BatchTensor>>): Record<string, BatchTensor> | Promise<Record<string, BatchTensor>>;
}

/** SNLI-VE / NLVR2: `labels` when the examples have them. */
const classTargets = (examples: ReadonlyArray<SnliExample | Nlvr2Example>): Record<string, BatchTensor> => {
  const labels = classLabels(examples.map((e) => e.ref), examples.map((e) => e.label));
  return labels ? { labels } : {};
};

/** Every example of the data set, in order. */
const everyExample = <T extends FineTuneTask>(dataset: Dataset<T>): Array<ExampleOf[T]> => Array.from({ length: dataset.size }, (_, i) => dataset.get(i));

const ITEM_VIEWS: { readonly [T in FineTuneTask]: ItemView<T> } = {
  vqa: {
    trainingItems: everyExample,
    text: (e) => e.question,
    images: (e) => [e.image],
    ref: (e) => e.ref,
    targets(examples, options) {
      const numLabels = options.numLabels ?? options.preprocessor.config.tasks.vqa?.num_labels;
      if (numLabels === undefined) throw new BridgeTowerError('E_USAGE', 'collate: VQA targets need numLabels (the bundle has no vqa task with num_labels)');
      return { targets: vqaTargets(examples, numLabels) };
    },
  },
  snli: { trainingItems: everyExample, text: (e) => e.hypothesis, images: (e) => [e.image], ref: (e) => e.ref, targets: classTargets },
  nlvr2: { trainingItems: everyExample, text: (e) => e.sentence, images: (e) => [e.left, e.right], ref: (e) => e.ref, targets: classTargets },
  irtr: { trainingItems: retrievalPairs, text: (p) => p.example.captions[p.captionIndex]!, images: (p) => [p.example.image], ref: (p) => p.example.ref, targets: () => ({}) },
  pretrain: {
    trainingItems: everyExample,
    text: (e) => e.caption,
    images: (e) => [e.image],
    ref: (e) => e.ref,
    targets(_, options, built) {
      if (!options.pretraining) throw new BridgeTowerError('E_INTERNAL', 'collate: pre-training batches need the pretraining sampling option');
      const { preprocessor } = options;
      return pretrainTensors(built, {
        maskId: preprocessor.maskTokenId(),
        vocabSize: preprocessor.config.architecture.text.vocab_size,
        sampling: options.pretraining,
        pixels: (source, ref, row) => pixels(source, ref, 0, 'pretrain', row, options),
      });
    },
  },
};

const PIXEL_NAMES = ['pixel_values', 'pixel_values_right'] as const;

/** One image → [3, S, S]: eval preprocessing, or augmentation then the same normalization. */
async function pixels(source: ImageSource, ref: RowRef, side: number, task: FineTuneTask, i: number, options: CollateOptions): Promise<Float32Array> {
  try {
    const bytes = await source.bytes();
    const augment = FINE_TUNE_TASKS[task].trainTransform === 'eval' ? undefined : options.augment;
    if (!augment) return await options.preprocessor.pixelValues(bytes);
    const config = options.preprocessor.config.preprocessing;
    const rng = side === 0 ? Rng.derive(augment.seed, 'augment', augment.epoch, augment.indices[i]!) : Rng.derive(augment.seed, 'augment', augment.epoch, augment.indices[i]!, side);
    const image = await decodeImage(bytes, options.imageLimits ?? {});
    return normalizeToChw(augmentImage(image, { size: config.image_size, ...FINE_TUNE_TASKS[task].augmentation }, rng), config);
  } catch (error) {
    if (error instanceof BridgeTowerError && error.code === 'E_DATA') throw error;
    const cause = error instanceof BridgeTowerError ? error.code : (error as NodeJS.ErrnoException).code ?? 'error';
    throw rowError(ref, `image ${source.describe}: ${(error as Error).message}`, { cause, image: source.describe });
  }
}

function int64(values: readonly number[], dims: number[]): BatchTensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

/** SNLI-VE / NLVR2 class labels: all or none (prediction data has none). */
function classLabels(refs: readonly RowRef[], labels: ReadonlyArray<number | undefined>): BatchTensor | undefined {
  const missing = labels.findIndex((l) => l === undefined);
  if (missing < 0) return int64(labels as number[], [labels.length]);
  const present = labels.findIndex((l) => l !== undefined);
  if (present >= 0) throw rowError(refs[missing]!, 'has no label but other examples of its batch do: label every example of training and evaluation data');
  return undefined;
}

/** VQA soft targets as a dense [B, labels] matrix. */
function vqaTargets(examples: readonly VqaExample[], numLabels: number): BatchTensor {
  const data = new Float32Array(examples.length * numLabels);
  examples.forEach((example, b) => {
    example.labels.forEach((label, k) => {
      if (!(Number.isInteger(label) && label >= 0 && label < numLabels)) {
        throw rowError(example.ref, `label ${label} is out of range (0..${numLabels - 1}): the VQA head has ${numLabels} answer labels`, { label });
      }
      data[b * numLabels + label] = example.scores[k]!;
    });
  });
  return { dtype: 'float32', dims: [examples.length, numLabels], data };
}

export async function collate<T extends FineTuneTask>(task: T, items: ReadonlyArray<CollateItem[T]>, options: CollateOptions): Promise<Batch> {
  if (items.length === 0) throw new BridgeTowerError('E_USAGE', 'collate needs at least one example');
  if (options.augment && options.augment.indices.length !== items.length) {
    throw new BridgeTowerError('E_USAGE', `collate: augment.indices has ${options.augment.indices.length} entries for ${items.length} examples`);
  }
  const view = ITEM_VIEWS[task] as unknown as ItemView<T>;
  const size = items.length;
  const encoded = options.preprocessor.encodeTexts(items.map((item) => view.text(item)), FINE_TUNE_TASKS[task].textLength);
  const tensors: Record<string, BatchTensor> = {
    input_ids: { dtype: 'int64', dims: [...encoded.dims], data: encoded.inputIds },
    attention_mask: { dtype: 'int64', dims: [...encoded.dims], data: encoded.attentionMask },
  };

  const side = options.preprocessor.config.preprocessing.image_size;
  const plane = 3 * side * side;
  const perItem = items.map((item) => view.images(item));
  const images = await Promise.all(perItem.flatMap((sources, i) => sources.map((source, s) => pixels(source, view.ref(items[i]!), s, task, i, options))));
  perItem[0]!.forEach((_, s) => {
    const data = new Float32Array(size * plane);
    for (let i = 0; i < size; i++) data.set(images[i * perItem[0]!.length + s]!, i * plane);
    tensors[PIXEL_NAMES[s]!] = { dtype: 'float32', dims: [size, 3, side, side], data };
  });

  Object.assign(tensors, await view.targets(items, options, tensors));
  return { size, tensors };
}
