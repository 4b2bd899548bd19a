import { closeSync, openSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { isDemoBundle } from '../bundle/bundle-folders.js';
import { readLabels } from '../bundle/labels.js';
import { openSafetensors, toFloat32 } from '../bundle/safetensors/read-safetensors.js';
import { SERVED_TASKS, TASKS, type TaskName } from '../bundle/tasks.js';
import { readTensorBytes } from '../bundle/tensors/read-tensor.js';
import { BundlePreprocessor } from '../preprocess/bundle-preprocessor.js';
import type { ModelDims } from '../runtime/graph-batches.js';

/** What `GET /info` and `BridgeTower#info` say of a model: sizes a caller needs to know, read from its config. */
export interface ModelInfo {
  /** Hidden size of the cross-modal layers (and of the pooled features the heads read). */
  hiddenSize: number;
  /** Length of the normalized ITC embedding `/embed` answers; absent without ITC heads. */
  embeddingDim?: number;
  /** Tokens per text, `<s>` and `</s>` included, by task (longer texts are truncated). */
  maxTextTokens: Partial<Record<TaskName, number>>;
  /** Side of the square image the model sees, in pixels. */
  imageSize: number;
  /** dtype of the bundle's canonical weights (model.safetensors); the graphs' precision is the variant served. */
  weightsDtype: 'float32' | 'float16';
}

/**
 * Everything a running model needs to know of its bundle, read once from the folder: the tasks
 * it answers, the graphs that answer them, the packed tensors' sizes, labels and the ITC
 * temperature. The library's `BridgeTower` and the server's `BundleService` both start from
 * this one object, so they open the same graphs and refuse the same bundles.
 */
export class BundleModel {
  readonly name: string;
  readonly isDemo: boolean;
  readonly tasks: readonly TaskName[];
  readonly dims: ModelDims;
  readonly info: ModelInfo;
  readonly labels: Partial<Record<TaskName, string[]>>;
  /** ITC temperature (similarity / temperature is upstream's ITC score); undefined without ITC heads. */
  readonly temperature: number | undefined;
  /** Whether the bundle embeds image–text pairs (Hugging Face's itc_cross_modal_head). */
  readonly embedsPairs: boolean;
  /** Served tasks answered by fusion + a cls_feats head graph. */
  readonly fusionTasks: readonly TaskName[];
  /** Served tasks answered by fusion + a head on chosen text_feats rows (MLM). */
  readonly tokenTasks: readonly TaskName[];
  /** The graphs (`onnx/<name>.onnx`) the served tasks need, encoders first. */
  readonly graphs: readonly string[];

  private constructor(
    readonly bundleDir: string,
    readonly preprocessor: BundlePreprocessor,
  ) {
    const config = preprocessor.config;
    const arch = config.architecture;
    this.name = config.name || basename(bundleDir);
    this.isDemo = isDemoBundle(config);
    this.tasks = SERVED_TASKS.filter((task) => config.tasks[task] !== undefined);
    this.dims = {
      layers: arch.cross_modal.num_layers,
      hidden: arch.cross_modal.hidden_size,
      imageTokens: (arch.vision.image_size / arch.vision.patch_size) ** 2 + 1,
      imageSize: config.preprocessing.image_size,
    };
    this.info = {
      hiddenSize: arch.cross_modal.hidden_size,
      ...(arch.heads.itc ? { embeddingDim: arch.heads.itc.dim } : {}),
      maxTextTokens: Object.fromEntries(this.tasks.map((task) => [task, config.tasks[task]!.max_text_len])),
      imageSize: config.preprocessing.image_size,
      weightsDtype: config.weights.dtype,
    };
    this.labels = readLabels(bundleDir, config.labels);
    this.temperature = this.tasks.includes('itc') ? readTemperature(join(bundleDir, config.weights.file)) : undefined;
    this.embedsPairs = this.tasks.includes('itc') && arch.heads.itc_cross_modal !== undefined;
    this.fusionTasks = this.tasks.filter((task) => TASKS[task].headGraph !== undefined);
    this.tokenTasks = this.tasks.filter((task) => TASKS[task].tokenHeadGraph !== undefined);
    this.graphs = [
      'text_encoder',
      'image_encoder',
      ...(this.fusionTasks.length + this.tokenTasks.length > 0 || this.embedsPairs ? ['fusion'] : []),
      ...this.fusionTasks.map((task) => TASKS[task].headGraph!.name),
      ...this.tokenTasks.map((task) => TASKS[task].tokenHeadGraph!),
      ...(this.embedsPairs ? [PAIR_HEAD] : []),
    ];
  }

  /** Reads the bundle's config, tokenizer, labels and temperature; refuses a bundle that cannot encode text. */
  static open(bundleDir: string): BundleModel {
    const preprocessor = BundlePreprocessor.open(bundleDir);
    // Every task takes text: a bundle without a tokenizer is a deployment mistake, refused when
    // it is opened rather than answered with an error on every call.
    if (!preprocessor.config.tokenizer) {
      throw new BridgeTowerError(
        'E_BUNDLE',
        `bundle '${bundleDir}' has no tokenizer.json, so it cannot encode questions: convert it again with --tokenizer (roberta-base vocab.json + merges.txt, or a tokenizer.json)`,
        { bundle: bundleDir },
      );
    }
    return new BundleModel(bundleDir, preprocessor);
  }

  /** Whether the encoders also return normalized ITC features. */
  get withItc(): boolean {
    return this.tasks.includes('itc');
  }
}

/** The head graph that turns a pair's cls_feats into its joint embedding (models/bridgetower/graphs.ts). */
export const PAIR_HEAD = 'head_itc_cross';

/** The ITC temperature, read alone from the weights (never the whole, possibly 1 GB+, file). */
function readTemperature(weightsPath: string): number | undefined {
  const view = openSafetensors(weightsPath).tensors.get('temperature');
  if (!view) return undefined;
  const fd = openSync(weightsPath, 'r');
  try {
    return toFloat32(view.dtype, readTensorBytes(fd, view))[0];
  } finally {
    closeSync(fd);
  }
}
