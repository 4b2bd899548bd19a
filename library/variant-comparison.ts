import { BridgeTowerError } from '../common/errors.js';
import type { GraphPrecision } from '../bundle/config.js';
import { graphVariants } from '../bundle/graph-variants.js';
import type { TaskName } from '../bundle/tasks.js';
import type { Int8Weights } from '../runtime/cpu-int8.js';
import { GraphRunner } from '../runtime/graph-runner.js';
import { graphSet } from '../runtime/graph-set.js';
import type { Device } from '../runtime/session.js';
import { BundleModel } from './bundle-model.js';
import { directStages } from './direct-stages.js';
import { loadImage, type ImageInput, type LoadedImage } from './image-input.js';
import { outputAgreement, type OutputAgreement } from './output-agreement.js';
import { TaskPipeline, type ModelStages } from './task-pipeline.js';

/** One input of a comparison: an image and a text (the question, hypothesis, statement or caption). */
export interface ComparisonExample {
  image: ImageInput;
  text: string;
}

export interface CompareOptions {
  device?: Device;
  threads?: number;
  /** Rows per graph run (default 8). */
  batchSize?: number;
  /** After each (variant, task) run: how many of `total` are done, and which. */
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface TaskComparison extends OutputAgreement {
  task: TaskName;
  /** What the rows are: `logits`, or for ITC each text's similarities to every image. */
  output: string;
}

export interface VariantComparison {
  precision: GraphPrecision;
  /** int8 only: the weight set this machine opened (runtime/cpu-int8.ts). */
  int8Weights?: Int8Weights;
  /** The variant's graph files and weights, from config.json. */
  bytes: number;
  tasks: TaskComparison[];
}

export interface ComparisonReport {
  bundle: string;
  name: string;
  reference: 'fp32';
  referenceBytes: number;
  examples: number;
  variants: VariantComparison[];
}

type Rows = Float32Array[];

/** What a task's run hands back: its rows, given the head logits the stages recorded. */
interface TaskOutput {
  output: string;
  /** `headLogits` / `tokenLogits`: what the task's head / token head returned, in call order. */
  run(pipeline: TaskPipeline<LoadedImage>, images: readonly LoadedImage[], texts: readonly string[], headLogits: (task: TaskName) => Rows, tokenLogits: (task: TaskName) => Rows): Promise<Rows>;
}

/**
 * A text with its middle word replaced by `<mask>` (one mask per text, so a fill-mask row is one
 * vocabulary's logits); a one-word text becomes `<mask>` alone.
 */
export function maskMiddleWord(text: string): string {
  const words = text.trim().split(/\s+/);
  words[Math.floor(words.length / 2)] = '<mask>';
  return words.join(' ');
}

/**
 * The output compared per task: the head's logits (what every answer is decoded from), and for ITC
 * the text → image similarity matrix (what retrieval ranks by). NLVR2 pairs each image with the
 * next. MLM: each text with its middle word masked, the vocabulary logits at that `<mask>`.
 */
const TASK_OUTPUTS: Partial<Record<TaskName, TaskOutput>> = {
  vqa: { output: 'logits', run: async (p, images, texts, logits) => (await p.vqa(images.map((image, i) => ({ image, question: texts[i]! })), 1, {}), logits('vqa')) },
  snli: { output: 'logits', run: async (p, images, texts, logits) => (await p.entailment(images.map((image, i) => ({ image, hypothesis: texts[i]! })), {}), logits('snli')) },
  nlvr2: {
    output: 'logits',
    run: async (p, images, texts, logits) => (await p.nlvr2(images.map((left, i) => ({ left, right: images[(i + 1) % images.length]!, statement: texts[i]! })), {}), logits('nlvr2')),
  },
  itm: { output: 'logits', run: async (p, images, texts, logits) => (await p.itm(images.map((image, i) => ({ image, text: texts[i]! })), {}), logits('itm')) },
  mlm: {
    output: 'vocabulary logits at a <mask>',
    run: async (p, images, texts, _head, tokens) => (await p.fillMask(images.map((image, i) => ({ image, text: maskMiddleWord(texts[i]!) })), 1, {}), tokens('mlm')),
  },
  itc: {
    output: 'text→image similarity',
    async run(p, images, texts) {
      const textEmbeds = await p.embed(texts.map((text) => ({ text })), {});
      const imageEmbeds = await p.embed(images.map((image) => ({ image })), {});
      // Both are L2-normalised: the dot product is the cosine retrieval ranks by.
      return textEmbeds.map((t) => Float32Array.from(imageEmbeds, (v) => v.reduce((sum, x, i) => sum + x * t[i]!, 0)));
    },
  },
};

/**
 * Runs every precision variant of a bundle on the same examples and compares each task's output
 * with the fp32 variant's (max abs diff, relative L2, top-1 agreement, top-5 overlap): how a user
 * decides, on their own checkpoint and data, whether int8 or fp16 is close enough. Variants run
 * one after another, each in its own runner, closed before the next opens.
 */
export async function compareVariants(bundleDir: string, examples: readonly ComparisonExample[], options: CompareOptions = {}): Promise<ComparisonReport> {
  const model = BundleModel.open(bundleDir);
  const variants = graphVariants(model.preprocessor.config);
  const precisions = Object.keys(variants) as GraphPrecision[];
  const add = 'convert the checkpoint again with --variants fp32,int8,fp16 (docs/precision.md)';
  if (precisions.length < 2) {
    throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has one graph variant (${precisions.join(', ') || 'none'}): there is nothing to compare; to add int8 and fp16 graphs, ${add}`, { available: precisions });
  }
  if (!variants.fp32) throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has no fp32 graphs to compare its ${precisions.join(', ')} graphs with; ${add}`, { available: precisions });
  if (examples.length === 0) throw new BridgeTowerError('E_USAGE', 'no examples to compare the variants on: give a data file with lines, or --synthetic N with N ≥ 1');
  const tasks = model.tasks.filter((task) => TASK_OUTPUTS[task] !== undefined);
  if (tasks.length === 0) throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has no task output to compare (its tasks: ${model.tasks.join(', ') || 'none'})`, { tasks: [...model.tasks] });

  const images = await Promise.all(examples.map((example, i) => loadImage(example.image, `example ${i + 1}`)));
  const texts = examples.map((example) => example.text);
  const order: GraphPrecision[] = ['fp32', ...precisions.filter((p) => p !== 'fp32')];
  const total = order.length * tasks.length;
  let done = 0;
  const outputs = new Map<GraphPrecision, { rows: Map<TaskName, Rows>; int8Weights?: Int8Weights }>();
  for (const precision of order) {
    const graphs = graphSet(bundleDir, precision);
    const runner = await GraphRunner.open(bundleDir, model.graphs, { device: options.device ?? 'cpu', graphs, ...(options.threads ? { threads: options.threads } : {}) });
    try {
      const { stages, headLogits, tokenLogits } = recordingStages(directStages(runner, model, options.batchSize ?? 8));
      const pipeline = new TaskPipeline(model, stages);
      const rows = new Map<TaskName, Rows>();
      for (const task of tasks) {
        rows.set(task, await TASK_OUTPUTS[task]!.run(pipeline, images, texts, headLogits, tokenLogits));
        options.onProgress?.(++done, total, `${precision} ${task}`);
      }
      outputs.set(precision, { rows, ...(graphs.int8Weights ? { int8Weights: graphs.int8Weights } : {}) });
    } finally {
      await runner.close();
    }
  }

  const reference = outputs.get('fp32')!.rows;
  return {
    bundle: bundleDir,
    name: model.name,
    reference: 'fp32',
    referenceBytes: variants.fp32.bytes,
    examples: examples.length,
    variants: order.slice(1).map((precision) => {
      const { rows, int8Weights } = outputs.get(precision)!;
      return {
        precision,
        ...(int8Weights ? { int8Weights } : {}),
        bytes: variants[precision]!.bytes,
        tasks: tasks.map((task) => ({ task, output: TASK_OUTPUTS[task]!.output, ...outputAgreement(reference.get(task)!, rows.get(task)!) })),
      };
    }),
  };
}

/** The stages, with each head's logits kept in call order per task (the pipeline decodes them; the comparison wants them raw). */
function recordingStages(stages: ModelStages<LoadedImage>): { stages: ModelStages<LoadedImage>; headLogits: (task: TaskName) => Rows; tokenLogits: (task: TaskName) => Rows } {
  const heads = new Map<TaskName, Rows>();
  const tokens = new Map<TaskName, Rows>();
  const keep = (into: Map<TaskName, Rows>, task: TaskName, logits: Rows) => into.set(task, [...(into.get(task) ?? []), ...logits]);
  return {
    stages: {
      ...stages,
      async head(task, items, ctx) {
        const logits = await stages.head(task, items, ctx);
        keep(heads, task, logits);
        return logits;
      },
      async tokenHead(task, items, ctx) {
        const logits = await stages.tokenHead(task, items, ctx);
        keep(tokens, task, logits);
        return logits;
      },
    },
    headLogits: (task) => heads.get(task) ?? [],
    tokenLogits: (task) => tokens.get(task) ?? [],
  };
}
