import type { BundleConfig } from '../../bundle/config.js';
import { TASKS, type FusionPass } from '../../bundle/tasks.js';
import { BridgeTowerError } from '../../common/errors.js';
import type { RuntimeOptions } from '../../runtime/session.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { encodeImages, encodeTexts, fuse, runHead, type FusionRow, type ImageEmbeds, type ModelDims, type TextEncoding } from '../../runtime/graph-batches.js';
import { GraphRunner } from '../../runtime/graph-runner.js';
import { describeRow, type ImageSource, type RowRef } from '../data/examples.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from '../tasks.js';

/** Device and threads of the evaluation sessions; a CUDA fallback is reported through `warn` (hours of evaluation should not run on the wrong device unnoticed). */
export type { RuntimeOptions } from '../../runtime/session.js';

/** The head graph that scores a task's evaluation (its row's `evaluatedBy`), with the fusion passes that feed it. */
export function evaluationHead(task: FineTuneTask): { name: string; passes: readonly FusionPass[] } {
  return TASKS[FINE_TUNE_TASKS[task].evaluatedBy].headGraph!;
}

/**
 * A bundle's split graphs opened for evaluation. The packing into graph batches is the server's
 * (runtime/graph-batches.ts) and so is the preprocessing (BundlePreprocessor), so evaluation
 * scores exactly what `serve` answers; what it leaves out is the server's request batching, image
 * cache and deadlines, since evaluation builds its own batches. The sessions live in a worker
 * thread (GraphRunner), so a progress bar keeps drawing while a batch runs.
 */
export class EvaluationRuntime {
  private constructor(
    readonly bundleDir: string,
    readonly task: FineTuneTask,
    readonly preprocessor: BundlePreprocessor,
    readonly dims: ModelDims,
    private readonly runner: GraphRunner,
  ) {}

  /** Checks that the bundle has the task's heads, then opens its encoders, fusion and head. */
  static async open(bundleDir: string, task: FineTuneTask, options: RuntimeOptions = {}): Promise<EvaluationRuntime> {
    const preprocessor = BundlePreprocessor.open(bundleDir);
    const config = preprocessor.config;
    checkBundleHeads(bundleDir, config, task);
    const arch = config.architecture;
    const dims: ModelDims = {
      layers: arch.cross_modal.num_layers,
      hidden: arch.cross_modal.hidden_size,
      imageTokens: (arch.vision.image_size / arch.vision.patch_size) ** 2 + 1,
      imageSize: config.preprocessing.image_size,
    };
    const graphs = ['text_encoder', 'image_encoder', 'fusion', evaluationHead(task).name];
    const runner = await GraphRunner.open(bundleDir, graphs, options);
    return new EvaluationRuntime(bundleDir, task, preprocessor, dims, runner);
  }

  get config(): BundleConfig {
    return this.preprocessor.config;
  }

  /** One text's token ids, alone (its own length), truncated to the task's max_text_len. */
  tokenize(text: string, ref: RowRef): BigInt64Array {
    try {
      return this.preprocessor.encodeTexts([text], FINE_TUNE_TASKS[this.task].textLength).inputIds;
    } catch (error) {
      throw rowError(ref, undefined, error);
    }
  }

  /** One image's pixel values, by the eval transform (no augmentation). */
  async pixels(image: ImageSource, ref: RowRef): Promise<Float32Array> {
    try {
      return await this.preprocessor.pixelValues(await image.bytes());
    } catch (error) {
      throw rowError(ref, image, error);
    }
  }

  encodeTexts(rows: readonly BigInt64Array[], withItc: boolean): Promise<TextEncoding[]> {
    return encodeTexts(this.runner, rows, this.dims, withItc);
  }

  encodeImages(pixels: readonly Float32Array[], withItc: boolean): Promise<ImageEmbeds[]> {
    return encodeImages(this.runner, pixels, this.dims, withItc);
  }

  /** The cross-modal encoder on (text, image, token type) rows: cls_feats [B, 2H]. */
  fuse(rows: readonly FusionRow[]): Promise<Float32Array> {
    return fuse(this.runner, rows, this.dims);
  }

  /** The task's head graph on cls_feats inputs; logits per row. */
  head(inputs: Record<string, Float32Array>, batch: number): Promise<Float32Array[]> {
    return runHead(this.runner, evaluationHead(this.task).name, inputs, batch);
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}

/** Refuses a bundle without the task's heads (the CLI calls it before reading possibly large data). */
export function checkBundleHeads(bundleDir: string, config: BundleConfig, task: FineTuneTask): void {
  const needs = FINE_TUNE_TASKS[task];
  const missing = needs.heads.filter((t) => config.tasks[t] === undefined);
  if (missing.length > 0) {
    const has = Object.keys(config.tasks).join(', ') || 'no task';
    throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has no ${missing.join(' or ')} head (it has ${has}), so it cannot be evaluated on ${task}: use ${needs.hint}`, {
      bundle: bundleDir,
      task,
      missing,
    });
  }
}

/**
 * A failure to preprocess one example names the row (and the image), keeping the error's code
 * (E_IMAGE_DECODE stays E_IMAGE_DECODE); anything else (a missing image file) is a data error.
 */
function rowError(ref: RowRef, image: ImageSource | undefined, error: unknown): BridgeTowerError {
  const where = `${describeRow(ref)}${image ? ` (image ${image.describe})` : ''}`;
  if (error instanceof BridgeTowerError) return new BridgeTowerError(error.code, `${where}: ${error.message}`, { ...error.details, row: describeRow(ref) });
  return new BridgeTowerError('E_DATA', `${where}: ${error instanceof Error ? error.message : String(error)}`, { row: describeRow(ref) });
}
