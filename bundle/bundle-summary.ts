import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_FILES, type BundleConfig, type FineTuneProvenance, type GraphPrecision, type PreprocessingConfig } from './config.js';
import { graphVariants } from './graph-variants.js';
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
  /** onnx/model.safetensors: the canonical weights beside the graphs (training graphs read them there), how it was written and its size. */
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
 * One precision the bundle's graphs exist in (bundle/graph-variants.ts): its folder, how many of
 * its graph files are on disk and the bytes of those and of its weights file; int8's u8-weight set
 * (for CPUs without VNNI) as `u8`. A bundle converted before variants existed has one row, its
 * weight dtype's graphs in onnx/.
 */
export interface VariantSummary {
  precision: GraphPrecision;
  dir: string;
  files: number;
  bytes: number;
  u8?: { dir: string; files: number; bytes: number };
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
    unlistedGraphFiles: onDisk.filter((f) => !listed.includes(f) && !knownGraphEntries(config).has(f)).sort(),
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

/** The precisions the bundle's graphs exist in, with sizes measured on disk. */
export function listVariants(dir: string, config: BundleConfig): VariantSummary[] {
  const measure = (set: { dir: string; files: readonly string[]; weights: string }) => {
    const files = set.files.filter((f) => existsSync(join(dir, set.dir, f)));
    const bytes = [...files, set.weights].reduce((sum, f) => sum + (fileBytes(join(dir, set.dir, f)) ?? 0), 0);
    return { dir: set.dir, files: files.length, bytes };
  };
  return Object.entries(graphVariants(config)).map(([precision, v]) => ({
    precision: precision as GraphPrecision,
    ...measure(v),
    ...(v.u8 ? { u8: measure(v.u8) } : {}),
  }));
}

/** What onnx/ may hold besides its listed graphs: the canonical weights link, variant weights files and variant folders. */
function knownGraphEntries(config: BundleConfig): Set<string> {
  const known = new Set<string>([BUNDLE_FILES.weights]);
  const graphsDir = config.graphs?.dir ?? BUNDLE_FILES.onnxDir;
  for (const v of Object.values(graphVariants(config))) {
    for (const set of [v, ...(v.u8 ? [v.u8] : [])]) {
      if (set.dir === graphsDir) known.add(set.weights);
      else if (set.dir.startsWith(`${graphsDir}/`)) known.add(set.dir.slice(graphsDir.length + 1).split('/')[0]!);
    }
  }
  return known;
}

function fileBytes(path: string): number | null {
  return existsSync(path) ? statSync(path).size : null;
}
