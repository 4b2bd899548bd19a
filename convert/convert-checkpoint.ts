import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BridgeTowerError, listSome } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { detectArchitecture } from './detect-architecture.js';
import { requiredTensors } from '../bundle/expected-tensors.js';
import { readTextConfigFile, type TextConfigFacts } from '../bundle/text-configs.js';
import { buildFolderAtomically } from '../bundle/atomic-dir.js';
import { BUNDLE_FILES, BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, writeBundleConfig, type BundleConfig, type BundleTaskConfig, type GraphPrecision, type PreprocessingConfig } from '../bundle/config.js';
import { defaultVariants } from '../bundle/graph-variants.js';
import { readHfPreprocessing } from './huggingface/read-hf-processor.js';
import { readHfFolderTokenizer } from './huggingface/read-hf-tokenizer.js';
import { writeWeights, type PlannedTensor } from './write-weights.js';
import { exportGraphs } from '../models/bridgetower/export-graphs.js';
import { checkLabelCount, loadLabels, writeBundleLabels } from '../bundle/labels.js';
import { resizePositionEmbedding } from './position-embedding.js';
import { openCheckpointSource, type CheckpointSource } from './sources/open-source.js';
import { CLIP_MEAN, CLIP_STD, RESIZE_MODES, TASKS, tasksOf, type TaskName } from '../bundle/tasks.js';
import { DTYPES, type DType } from '../bundle/tensors/dtype.js';
import { loadTokenizerSource, serializeTokenizerJson, type TokenizerJson } from '../bundle/tokenizer-json.js';

export interface ConvertOptions {
  /** A `.ckpt`, `pytorch_model.bin`, `.safetensors`, or a Hugging Face BridgeTower folder. */
  checkpoint: string;
  out: string;
  /** tokenizer.json, a folder with vocab.json + merges.txt, or `vocab.json,merges.txt` (default: a Hugging Face folder's own). */
  tokenizer?: string;
  /** VQA answer labels: a JSON list, an id2label object, or an HF config.json with id2label. */
  labels?: string;
  /** A RoBERTa config.json (or its facts) giving the text encoder's head count and LayerNorm eps. */
  textConfig?: string | TextConfigFacts;
  /** Resize the positional embedding for this input resolution (bicubic, as upstream). */
  imageSize?: number;
  dtype?: 'fp32' | 'fp16';
  /** Bundle name (default: the checkpoint's file name without extension). */
  name?: string;
  /** Replace an existing output folder. */
  force?: boolean;
  /** Write the ONNX graphs into `<out>/onnx/` (default true). */
  graphs?: boolean;
  /** Use ONNX Runtime's fused MultiHeadAttention kernel in the graphs. */
  optimize?: boolean;
  /** Graph precisions to write (default: the weights' own precision and int8; docs/onnx.md). */
  variants?: readonly GraphPrecision[];
  onProgress?: (done: number, total: number) => void;
}

export interface ConvertSummary {
  out: string;
  name: string;
  tasks: TaskName[];
  tensors: number;
  parameters: number;
  dtype: string;
  image_size: number;
  /** The graph precisions written (none with graphs: false). */
  variants: GraphPrecision[];
  sources: BundleConfig['provenance']['sources'];
  warnings: string[];
}

const OUTPUT_DTYPES = { fp32: 'float32', fp16: 'float16' } as const;

/** Whether graphs use fused attention unless told otherwise (see docs/PERFORMANCE.md for why). */
export const DEFAULT_OPTIMIZE = false;

/** `convert-ckpt`: a checkpoint in, a complete bundle folder out — or nothing at all on failure. */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertSummary> {
  const source = openCheckpointSource(options.checkpoint);
  const textConfig = typeof options.textConfig === 'string' ? readTextConfigFile(options.textConfig) : options.textConfig;
  const shapes = new Map([...source.tensors].map(([name, t]) => [name, t.view.shape] as const));
  const { architecture, warnings } = detectArchitecture(shapes, {
    ...(source.hparams ? { hparams: source.hparams } : {}),
    ...(source.hfConfig ? { hfConfig: source.hfConfig } : {}),
    ...(textConfig ? { textConfig } : {}),
  });
  checkRequiredTensors(architecture, shapes);

  const outputDtype: DType = OUTPUT_DTYPES[options.dtype ?? 'fp32'];
  const resizedFrom = architecture.vision.image_size;
  const plan = planTensors(source, architecture, outputDtype, options.imageSize);
  const tasks = tasksOf(architecture);
  if (tasks.length === 0) warnings.push('the checkpoint has no task head (VQA, SNLI-VE, NLVR2, ITM, ITC or MLM): only the encoders can run');
  const labels = resolveLabels(architecture, options.labels, warnings);
  const hfFolder = source.kind === 'huggingface-repo' ? source.path : undefined;
  const tokenizer = resolveTokenizer(options.tokenizer, hfFolder, tasks.length > 0, warnings);
  if (tokenizer) {
    const maxId = tokenizerMaxId(tokenizer);
    // A mismatch is kept as a loud warning rather than an error: texts whose tokens all fall
    // inside the vocabulary still work, and any other text is refused when it is encoded.
    if (maxId >= architecture.text.vocab_size) {
      warnings.push(
        `the tokenizer produces ids up to ${maxId} but the text encoder has only ${architecture.text.vocab_size} word embeddings: ` +
          'it is probably not this model\'s tokenizer, and texts with ids past the vocabulary will be refused',
      );
    }
  }
  const preprocessing = hfFolder ? hfPreprocessing(hfFolder, architecture, options.imageSize !== undefined && architecture.vision.image_size !== resizedFrom, warnings) : undefined;

  const name = options.name ?? basename(options.checkpoint).replace(/\.(ckpt|bin|safetensors|pt|pth)$/, '');
  const sourceFiles = source.files.map((f) => ({ path: f.path, size: f.fileSize }));
  const totalBytes = sourceFiles.reduce((sum, f) => sum + f.size, 0);

  return buildFolderAtomically(options.out, { overwrite: options.force ?? false }, async (dir) => {
    const written = await writeWeights(join(dir, BUNDLE_FILES.weights), plan, sourceFiles, (done) => options.onProgress?.(done, totalBytes));
    const config: BundleConfig = {
      format: BUNDLE_FORMAT,
      format_version: BUNDLE_FORMAT_VERSION,
      name,
      architecture,
      tasks: taskConfigs(architecture, tasks, source.hparams, labels),
      preprocessing: preprocessing ?? {
        image_size: architecture.vision.image_size,
        resize: resizeMode(source.hparams, architecture),
        resample: 'bicubic',
        rescale_factor: 1 / 255,
        mean: [...CLIP_MEAN],
        std: [...CLIP_STD],
      },
      tokenizer: tokenizer ? BUNDLE_FILES.tokenizer : null,
      labels: Object.keys(labels).length > 0 ? BUNDLE_FILES.labels : null,
      weights: { file: BUNDLE_FILES.weights, dtype: outputDtype as 'float32' | 'float16', tensors: plan.length, parameters: written.parameters },
      provenance: {
        source_kind: source.kind,
        sources: written.sources,
        converter: `bridgetower-node ${VERSION}`,
        converted_at: new Date().toISOString(),
        ...(architecture.vision.image_size !== resizedFrom ? { image_size_resized_from: resizedFrom } : {}),
        ignored: [...source.ignored],
        ...(source.hparams ? { upstream_config: source.hparams } : {}),
        ...(source.hfConfigFile ? { hf_config: source.hfConfigFile } : {}),
      },
      warnings,
    };
    if (options.graphs !== false) {
      const optimized = options.optimize ?? DEFAULT_OPTIMIZE;
      // `--dtype fp16` weights compute as the fp16 variant; float32 ones as fp32.
      const weightPrecision: GraphPrecision = options.dtype ?? 'fp32';
      const exported = exportGraphs(dir, architecture, BUNDLE_FILES.weights, {
        producerVersion: VERSION,
        features: { fusedAttention: optimized },
        weightPrecision,
        variants: options.variants ?? defaultVariants(weightPrecision),
      });
      config.graphs = { dir: exported.dir, files: exported.graphs.map((g) => g.file), weights: exported.linked ? 'hard link' : 'copy', optimized, variants: exported.variants };
      if (!exported.linked) warnings.push('the file system cannot hard-link: onnx/model.safetensors is a copy of the weights (twice the space)');
    }
    writeBundleConfig(dir, config);
    if (tokenizer) writeFileSync(join(dir, BUNDLE_FILES.tokenizer), serializeTokenizerJson(tokenizer));
    if (Object.keys(labels).length > 0) writeBundleLabels(dir, labels);
    return {
      out: options.out,
      name,
      tasks,
      tensors: plan.length,
      parameters: written.parameters,
      dtype: outputDtype,
      image_size: architecture.vision.image_size,
      variants: Object.keys(config.graphs?.variants ?? {}) as GraphPrecision[],
      sources: written.sources,
      warnings,
    };
  });
}

/**
 * `--tokenizer` when given; else a Hugging Face folder's own files (tokenizer.json, or vocab.json +
 * merges.txt); else none, with a warning when the bundle has a task that needs text.
 */
function resolveTokenizer(given: string | undefined, hfFolder: string | undefined, needed: boolean, warnings: string[]): TokenizerJson | undefined {
  if (given) return loadTokenizerSource(given);
  const found = hfFolder ? readHfFolderTokenizer(hfFolder) : undefined;
  if (found && 'tokenizer' in found) return found.tokenizer;
  if (needed) {
    const why = found ? `no --tokenizer given and ${found.missing}` : 'no --tokenizer given';
    warnings.push(`${why}: the bundle cannot encode text until a tokenizer.json is added (roberta-base vocab.json + merges.txt)`);
  }
  return undefined;
}

/** An HF folder's preprocessor_config.json as the bundle's preprocessing (BridgeTowerImageProcessor). */
function hfPreprocessing(dir: string, arch: BridgeTowerArchitecture, resized: boolean, warnings: string[]): PreprocessingConfig {
  const read = readHfPreprocessing(dir, arch.vision.image_size, resized);
  warnings.push(...read.warnings);
  return read.preprocessing;
}

/**
 * One output tensor per state-dict entry, under its canonical name. Float tensors take the output
 * dtype; integer buffers keep theirs. `--image-size` resizes the positional embedding and updates
 * the architecture in place.
 */
function planTensors(source: CheckpointSource, arch: BridgeTowerArchitecture, dtype: DType, imageSize?: number): PlannedTensor[] {
  const plan: PlannedTensor[] = [];
  const resize = imageSize === undefined || imageSize === arch.vision.image_size ? undefined : positionResize(arch, imageSize);
  for (const [name, tensor] of source.tensors) {
    const floating = DTYPES[tensor.view.dtype].isFloat;
    const base = { name, source: tensor, dtype: floating ? dtype : tensor.view.dtype, shape: tensor.view.shape };
    plan.push(resize && name === 'vit_model.visual.positional_embedding' ? { ...base, shape: resize.shape, reshape: resize.apply } : base);
  }
  return plan;
}

function positionResize(arch: BridgeTowerArchitecture, imageSize: number) {
  const patch = arch.vision.patch_size;
  if (!Number.isInteger(imageSize) || imageSize <= 0 || imageSize % patch !== 0) {
    throw new BridgeTowerError('E_USAGE', `--image-size ${imageSize} must be a positive multiple of the patch size ${patch} (e.g. ${Math.max(1, Math.round(imageSize / patch)) * patch})`);
  }
  const fromGrid = arch.vision.image_size / patch;
  const toGrid = imageSize / patch;
  const width = arch.vision.width;
  arch.vision.image_size = imageSize;
  return {
    shape: [toGrid * toGrid + 1, width],
    apply: (values: Float32Array) => resizePositionEmbedding(values, fromGrid * fromGrid + 1, width, fromGrid, toGrid),
  };
}

function resolveLabels(arch: BridgeTowerArchitecture, labelsPath: string | undefined, warnings: string[]): Partial<Record<TaskName, readonly string[]>> {
  const labels: Partial<Record<TaskName, readonly string[]>> = {};
  for (const task of tasksOf(arch)) {
    const source = TASKS[task].labels;
    if (source.from === 'fixed') labels[task] = source.names;
  }
  if (labelsPath) {
    if (!arch.heads.vqa) throw new BridgeTowerError('E_LABELS', '--labels names VQA answers, but this checkpoint has no vqa_classifier');
    const vqa = loadLabels(labelsPath);
    checkLabelCount(vqa, arch.heads.vqa.num_labels, 'vqa_classifier');
    labels.vqa = vqa;
  } else if (arch.heads.vqa) {
    warnings.push(`no --labels given: VQA answers will be reported as label indices 0..${arch.heads.vqa.num_labels - 1} (pass the VQAv2 answer list)`);
  }
  return labels;
}

function taskConfigs(
  arch: BridgeTowerArchitecture,
  tasks: readonly TaskName[],
  hparams: Record<string, unknown> | undefined,
  labels: Partial<Record<TaskName, readonly string[]>>,
): Partial<Record<TaskName, BundleTaskConfig>> {
  // Upstream truncates to `max_text_len` of the run; positions cap it at max_position_embeddings − 2.
  const positionLimit = arch.text.max_position_embeddings - 2;
  const stated = typeof hparams?.max_text_len === 'number' ? hparams.max_text_len : undefined;
  const configs: Partial<Record<TaskName, BundleTaskConfig>> = {};
  for (const task of tasks) {
    const spec = TASKS[task];
    const head = arch.heads[spec.head] as { num_labels?: number } | undefined;
    configs[task] = {
      head: spec.head,
      max_text_len: Math.min(stated ?? spec.maxTextLen, positionLimit),
      ...(head?.num_labels !== undefined ? { num_labels: head.num_labels, has_labels: labels[task] !== undefined } : {}),
    };
  }
  return configs;
}

function resizeMode(hparams: Record<string, unknown> | undefined, arch: BridgeTowerArchitecture): 'square' | 'shorter_side_center_crop' {
  const keys = hparams?.val_transform_keys;
  const first = Array.isArray(keys) && typeof keys[0] === 'string' ? keys[0] : undefined;
  if (first && RESIZE_MODES[first]) return RESIZE_MODES[first];
  const fineTuned = arch.heads.vqa || arch.heads.snli || arch.heads.nlvr2 || arch.heads.itc;
  return fineTuned ? 'square' : 'shorter_side_center_crop';
}

/** Every tensor the forward pass reads must be present with upstream's shape; all problems at once. */
export function checkRequiredTensors(arch: BridgeTowerArchitecture, shapes: ReadonlyMap<string, readonly number[]>): void {
  const expected = requiredTensors(arch);
  const missing = expected.filter((t) => !shapes.has(t.name)).map((t) => t.name);
  if (missing.length > 0) {
    throw new BridgeTowerError('E_MISSING_TENSOR', `the checkpoint lacks ${missing.length} tensor(s) its architecture needs: ${listSome(missing)}`, { missing });
  }
  const misShaped = expected
    .filter((t) => shapes.get(t.name)!.join(',') !== t.shape.join(','))
    .map((t) => `${t.name} is [${shapes.get(t.name)!.join(', ')}], expected [${t.shape.join(', ')}]`);
  if (misShaped.length > 0) {
    throw new BridgeTowerError('E_ARCHITECTURE', `${misShaped.length} tensor(s) do not have the shape the architecture implies: ${listSome(misShaped, 6)}`, { misShaped });
  }
}

/** The largest id a tokenizer.json can emit: its vocabulary's and its added tokens'. */
function tokenizerMaxId(tokenizer: TokenizerJson): number {
  const model = tokenizer.model as { vocab?: Record<string, number> } | undefined;
  const added = (tokenizer.added_tokens as Array<{ id: number }> | undefined) ?? [];
  return Math.max(-1, ...Object.values(model?.vocab ?? {}), ...added.map((t) => t.id));
}
