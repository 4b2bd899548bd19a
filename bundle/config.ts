import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BridgeTowerError } from '../common/errors.js';
import { architectureSchema, headsSchema } from './architecture.js';
import { checkSchema, finiteNumber, flag, nonEmptyText, nonNegativeInt, parseWithSchema, positiveInt, positiveNumber, schemaError, text } from './schema-fields.js';
import { TASKS, type TaskName } from './tasks.js';

export const BUNDLE_FORMAT = 'bridgetower-bundle';
export const BUNDLE_FORMAT_VERSION = 1;

/** The file names inside a bundle folder. */
export const BUNDLE_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  tokenizer: 'tokenizer.json',
  labels: 'labels.json',
  onnxDir: 'onnx',
} as const;

/** The task names of bundle/tasks.ts, as a schema (an unknown task in config.json is an error). */
export const taskNameSchema = z.enum(Object.keys(TASKS) as [TaskName, ...TaskName[]]);

/**
 * Why a bundle's config.json was refused: `details.reason` of its E_BUNDLE errors (the schema's own
 * `unknown_field`, `missing_field` and `invalid_field` name the field in `details.field`).
 */
export type BundleConfigReason = 'unreadable' | 'not_json' | 'not_a_bundle' | 'format_too_new' | 'unknown_field' | 'missing_field' | 'invalid_field';

export const bundleTaskSchema = z.strictObject({
  /** Key into `architecture.heads`. */
  head: headsSchema.keyof(),
  /** Tokens per text, `<s>` and `</s>` included; longer texts are truncated as upstream does. */
  max_text_len: positiveInt(),
  num_labels: positiveInt().optional(),
  /** Whether `labels.json` holds this task's label names. */
  has_labels: flag().optional(),
});

/**
 * Hugging Face `BridgeTowerImageProcessor`'s settings (preprocessor_config.json, class defaults
 * filled in, `crop_size` unset read as `size` as transformers 4.x does), for `resize: 'hf_processor'`.
 * preprocess/hf-image-processor.ts applies them; the normalisation constants stay in the parent.
 */
export const hfProcessorSchema = z.strictObject({
  /** `size.shortest_edge`: the shorter side is resized to this, the longer capped at `int(1333 / 800 × s)`. */
  shortest_edge: positiveInt(),
  /** Both resized sides are floored to a multiple of this (32 in every released repo). */
  size_divisor: positiveInt(),
  /** `crop_size.shortest_edge`: the center crop's side, = image_size (the vision encoder's input). */
  crop_size: positiveInt(),
  do_resize: flag(),
  do_center_crop: flag(),
  do_rescale: flag(),
  do_normalize: flag(),
  /** Batch padding (0.0 after normalisation, marked in pixel_mask); a no-op after the center crop. */
  do_pad: flag(),
});

export const preprocessingSchema = z.strictObject({
  image_size: positiveInt(),
  /**
   * `square`: Resize((S, S), bicubic), upstream's eval transform; `shorter_side_center_crop`:
   * pre-training's; `hf_processor`: transformers' BridgeTowerImageProcessor with `hf_processor`'s settings.
   */
  resize: z.enum(['square', 'shorter_side_center_crop', 'hf_processor']),
  /** Present exactly when `resize` is `hf_processor`. */
  hf_processor: hfProcessorSchema.optional(),
  resample: z.literal('bicubic'),
  rescale_factor: positiveNumber(),
  mean: z.array(finiteNumber()).length(3),
  std: z.array(positiveNumber()).length(3),
});

export const sourceFileSchema = z.strictObject({
  file: text(),
  bytes: nonNegativeInt(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected 64 lowercase hex digits' }),
});

/** What train/trained-bundle.ts records about the fine-tune that produced a bundle. */
export const fineTuneSchema = z.strictObject({
  /** `name` of the bundle that was fine-tuned. */
  base_bundle: text(),
  /** The fine-tuning task (train/data/examples.ts `FineTuneTask`: vqa, snli, nlvr2, irtr). */
  task: nonEmptyText(),
  step: nonNegativeInt(),
  epoch: nonNegativeInt(),
  /** Where the training data came from. */
  train: text(),
  /** The run's recipe and options, as the trainer resolved them (their keys follow train/recipes). */
  options: z.record(z.string(), z.unknown()),
  /** Dev metrics of the evaluation that picked this bundle; a metric of no examples is NaN, written as null. */
  metrics: z.record(z.string(), finiteNumber().nullable()).optional(),
});

/** The precisions a bundle's graphs can be written in (convert --variants). */
export const GRAPH_PRECISIONS = ['fp32', 'int8', 'fp16'] as const;
export type GraphPrecision = (typeof GRAPH_PRECISIONS)[number];
export const graphPrecisionSchema = z.enum(GRAPH_PRECISIONS);

/** One set of graph files: a folder of the bundle, its graphs and the safetensors file their initializers are read from. */
const graphFileSetSchema = z.strictObject({
  /** Relative to the bundle folder, e.g. `onnx`, `onnx/int8`, `onnx/fp16`. */
  dir: nonEmptyText(),
  /** Graph file names in `dir`, the same names in every variant. */
  files: z.array(nonEmptyText()),
  /** The safetensors file (relative to `dir`) holding the graphs' initializers. */
  weights: nonEmptyText(),
  /** Bytes of the graph files and their weights file together. */
  bytes: nonNegativeInt(),
});

export const graphVariantSchema = graphFileSetSchema.extend({
  /**
   * int8 only: the same graphs with unsigned (u8) weights, for CPUs without AVX-512-VNNI / AVX-VNNI,
   * where ONNX Runtime's u8×s8 AVX2 kernel can saturate (runtime picks it by the CPU's flags).
   */
  u8: graphFileSetSchema.optional(),
});
export type GraphVariant = z.infer<typeof graphVariantSchema>;

export const bundleConfigSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  format_version: positiveInt().max(BUNDLE_FORMAT_VERSION),
  name: text(),
  architecture: architectureSchema,
  tasks: z.partialRecord(taskNameSchema, bundleTaskSchema),
  preprocessing: preprocessingSchema,
  tokenizer: text().nullable(),
  labels: text().nullable(),
  weights: z.strictObject({ file: nonEmptyText(), dtype: z.enum(['float32', 'float16']), tensors: nonNegativeInt(), parameters: nonNegativeInt() }),
  /** The ONNX graphs in `onnx/` (their initializers live in `onnx/model.safetensors`, a hard link to the weights). */
  graphs: z
    .strictObject({
      dir: nonEmptyText(),
      files: z.array(nonEmptyText()),
      weights: z.enum(['hard link', 'copy']),
      optimized: flag(),
      /**
       * Precision variants of the same graphs (bundle/graph-variants.ts); absent in bundles written
       * before variants existed, which hold one variant: `dir`/`files` at the weights' dtype.
       */
      variants: z.partialRecord(graphPrecisionSchema, graphVariantSchema).optional(),
    })
    .optional(),
  provenance: z.strictObject({
    source_kind: text(),
    sources: z.array(sourceFileSchema),
    converter: text(),
    converted_at: text(),
    /** Image size the positional embedding had before `--image-size` resized it. */
    image_size_resized_from: positiveInt().optional(),
    /** Source entries not carried over, with the reason. */
    ignored: z.array(z.strictObject({ name: text(), reason: text() })),
    /** Upstream's full sacred config, when the checkpoint carried it (kept as the checkpoint had it). */
    upstream_config: z.record(z.string(), z.unknown()).optional(),
    /** The source's Hugging Face config.json as it was, when the checkpoint was an HF folder (export-hf keeps its extra fields). */
    hf_config: z.record(z.string(), z.unknown()).optional(),
  }),
  warnings: z.array(text()),
  /** Present when `fine-tune` wrote the bundle. */
  fine_tune: fineTuneSchema.optional(),
});

export type BundleTaskConfig = z.infer<typeof bundleTaskSchema>;
export type PreprocessingConfig = z.infer<typeof preprocessingSchema>;
export type HfProcessorSettings = z.infer<typeof hfProcessorSchema>;
export type SourceFileRecord = z.infer<typeof sourceFileSchema>;
export type FineTuneProvenance = z.infer<typeof fineTuneSchema>;
export type BundleConfig = z.infer<typeof bundleConfigSchema>;

const READ_REMEDY = 'the bundle is damaged or was not written by bridgetower-node: convert the checkpoint again';

/** Reads and checks a bundle's config.json; the error names the file, the field and what it should hold. */
export function readBundleConfig(dir: string): BundleConfig {
  const path = join(dir, BUNDLE_FILES.config);
  const json = readConfigJson(dir, path);
  return parseWithSchema(bundleConfigSchema, json, 'E_BUNDLE', path, READ_REMEDY);
}

/** Whether `dir` holds a config.json that says it is a bundle (valid or not: reading it tells). */
export function claimsToBeBundle(dir: string): boolean {
  try {
    readConfigJson(dir, join(dir, BUNDLE_FILES.config));
    return true;
  } catch (error) {
    return error instanceof BridgeTowerError && error.details.reason === 'format_too_new';
  }
}

/**
 * Writes `config` as `<dir>/config.json` after checking exactly the JSON that will be on disk
 * against the schema, so no writer can leave a config that the readers refuse.
 */
export function writeBundleConfig(dir: string, config: BundleConfig): void {
  const path = join(dir, BUNDLE_FILES.config);
  const serialized = `${JSON.stringify(config, null, 2)}\n`;
  const checked = checkSchema(bundleConfigSchema, JSON.parse(serialized));
  if (!checked.ok) {
    throw schemaError('E_INTERNAL', path, checked.problems, 'bridgetower-node built an invalid bundle config (a bug): nothing was written; please report it with the command');
  }
  writeFileSync(path, serialized);
}

/** The JSON of config.json, once its `format` and `format_version` say this version can read it. */
function readConfigJson(dir: string, path: string): unknown {
  let json: unknown;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new BridgeTowerError('E_BUNDLE', `'${dir}' is not a bundle: cannot read ${path} (${(error as Error).message})`, { path, reason: 'unreadable' });
  }
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BridgeTowerError('E_BUNDLE', `'${dir}' is not a bundle: cannot read ${path} (${(error as Error).message})`, { path, reason: 'not_json' });
  }
  const { format, format_version: version } = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  if (format !== BUNDLE_FORMAT) {
    throw new BridgeTowerError('E_BUNDLE', `${path} is not a bridgetower bundle config (format is ${JSON.stringify(format)})`, { path, reason: 'not_a_bundle' });
  }
  // Before the schema: a newer format may add fields, and the remedy is an upgrade, not a re-conversion.
  if (typeof version === 'number' && version > BUNDLE_FORMAT_VERSION) {
    throw new BridgeTowerError('E_BUNDLE', `${path} has format_version ${version}; this bridgetower-node reads up to ${BUNDLE_FORMAT_VERSION}: upgrade bridgetower-node`, {
      path,
      reason: 'format_too_new',
    });
  }
  return json;
}
