import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_FILES, type BundleConfig, type FineTuneProvenance, type PreprocessingConfig } from './config.js';
import { readLabels } from './labels.js';
import type { TaskName } from './tasks.js';

/**
 * What `bridgetower inspect <bundle>` shows beyond the architecture: what the bundle can answer
 * (tasks and their labels), how it reads its inputs (text length, image preprocessing), what it
 * ships (graphs, precision variants) and where it came from. Read from config.json, labels.json
 * and a listing of onnx/; no tensor or graph bytes are read.
 */
export interface BundleSummary {
  name: string;
  tasks: TaskSummary[];
  preprocessing: PreprocessingConfig;
  tokenizer: string | null;
  /** The graph files in onnx/ that config.json lists, with their sizes (a missing one has `bytes: null`). */
  graphs: Array<{ file: string; bytes: number | null }>;
  /** The initializer file the graphs share (onnx/model.safetensors), how it was written and its size. */
  graphWeights: { file: string; bytes: number | null; written_as: 'hard link' | 'copy' } | null;
  /** Files in onnx/ that config.json does not list (left by another tool, or by a newer bridgetower-node). */
  unlistedGraphFiles: string[];
  variants: VariantSummary[];
  provenance: {
    source_kind: string;
    sources: Array<{ file: string; bytes: number; sha256: string }>;
    converter: string;
    converted_at: string;
    ignored: number;
    image_size_resized_from?: number;
  };
  fine_tune?: FineTuneProvenance;
}

export interface TaskSummary {
  task: TaskName;
  head: string;
  /** Tokens per text, `<s>` and `</s>` included. */
  max_text_len: number;
  num_labels?: number;
  /** The label names stored in labels.json: their count and the first few, in class-id order. */
  labels?: { count: number; first: string[] };
}

/**
 * One precision the bundle's graphs exist in. Today every bundle has exactly one, its weight dtype
 * in onnx/; precision variants (e.g. int8 graphs) are listed here as further rows by
 * `listVariants`, the one place that knows where they live.
 */
export interface VariantSummary {
  precision: string;
  dir: string;
  files: number;
  bytes: number;
}

/** How many label names `inspect` prints per task. */
export const LABELS_SHOWN = 5;

export function summarizeBundle(dir: string, config: BundleConfig): BundleSummary {
  const labels = config.labels ? readLabels(dir, config.labels) : {};
  const tasks: TaskSummary[] = Object.entries(config.tasks).map(([task, spec]) => {
    const names = labels[task as TaskName];
    return {
      task: task as TaskName,
      head: spec.head,
      max_text_len: spec.max_text_len,
      ...(spec.num_labels !== undefined ? { num_labels: spec.num_labels } : {}),
      ...(names ? { labels: { count: names.length, first: names.slice(0, LABELS_SHOWN) } } : {}),
    };
  });
  const graphDir = join(dir, config.graphs?.dir ?? BUNDLE_FILES.onnxDir);
  const listed = config.graphs?.files ?? [];
  const graphs = listed.map((file) => ({ file, bytes: fileBytes(join(graphDir, file)) }));
  const onDisk = existsSync(graphDir) ? readdirSync(graphDir) : [];
  const { provenance } = config;
  return {
    name: config.name,
    tasks,
    preprocessing: config.preprocessing,
    tokenizer: config.tokenizer,
    graphs,
    graphWeights: config.graphs
      ? { file: `${config.graphs.dir}/${BUNDLE_FILES.weights}`, bytes: fileBytes(join(graphDir, BUNDLE_FILES.weights)), written_as: config.graphs.weights }
      : null,
    unlistedGraphFiles: onDisk.filter((f) => !listed.includes(f) && f !== BUNDLE_FILES.weights).sort(),
    variants: listVariants(dir, config),
    provenance: {
      source_kind: provenance.source_kind,
      sources: provenance.sources,
      converter: provenance.converter,
      converted_at: provenance.converted_at,
      ignored: provenance.ignored.length,
      ...(provenance.image_size_resized_from !== undefined ? { image_size_resized_from: provenance.image_size_resized_from } : {}),
    },
    ...(config.fine_tune ? { fine_tune: config.fine_tune } : {}),
  };
}

/**
 * The precisions the bundle's graphs exist in. The graphs config.json lists (onnx/) compute in the
 * weight dtype. Precision variants written next to them (another precision's graph folder) are
 * added here as further rows, so `inspect` shows them without changing.
 */
export function listVariants(dir: string, config: BundleConfig): VariantSummary[] {
  if (!config.graphs) return [];
  const graphDir = join(dir, config.graphs.dir);
  const files = config.graphs.files.filter((f) => existsSync(join(graphDir, f)));
  const bytes = [...files, BUNDLE_FILES.weights].reduce((sum, f) => sum + (fileBytes(join(graphDir, f)) ?? 0), 0);
  return [{ precision: config.weights.dtype, dir: config.graphs.dir, files: files.length, bytes }];
}

function fileBytes(path: string): number | null {
  return existsSync(path) ? statSync(path).size : null;
}
