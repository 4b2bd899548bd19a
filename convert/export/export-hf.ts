import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRequiredTensors } from '../convert-checkpoint.js';
import { buildFolderAtomically } from '../../bundle/atomic-dir.js';
import { readBundleConfig } from '../../bundle/config.js';
import { readLabels } from '../../bundle/labels.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { SafetensorsWriter } from '../../bundle/safetensors/write-safetensors.js';
import { DTYPES, numel, type DType } from '../../bundle/tensors/dtype.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { loadTokenizerSource } from '../../bundle/tokenizer-json.js';
import { chooseHfClass, type HeadName, type HfClassName } from './hf-classes.js';
import { checkHfExpressible, hfConfigFor, hfSemanticWarnings } from './hf-config.js';
import { HEAD_FILE, headFileMetadata } from './hf-head-file.js';
import { maxTextLength, preprocessorConfigFor, tokenizerFilesFor, type HfTextFile } from './hf-processor-files.js';
import { planHfStateDict, type HfEntry } from './hf-state-dict.js';
import { invertTransform } from './inverse-transform.js';
import { pythonJsonDumps } from './python-json.js';
import { floatDtypeOf, type Reported } from './upstream-state-dict.js';

/**
 * `export-hf`: a bundle in, a folder out that transformers loads with
 * `BridgeTower<Class>.from_pretrained(folder)` — config.json in HF's schema, model.safetensors under
 * HF names, the tokenizer and image-processor files — plus, for heads HF has no class for, a head
 * file (docs/export-hf.md). The folder appears only once complete.
 */

export interface ExportHfOptions {
  /** A bundle folder (what `convert` or `fine-tune` wrote). */
  bundle: string;
  /** The folder to write. */
  out: string;
  /** Replace an existing folder. */
  force?: boolean;
  /** The transformers class to export for; default: the first in HF_CLASSES the bundle fills. */
  hfClass?: HfClassName;
}

export interface ExportHfSummary {
  out: string;
  bundle: string;
  /** What `architectures` in config.json names: `<class>.from_pretrained(out)` loads the folder. */
  hf_class: HfClassName;
  dtype: DType;
  /** Tensors in model.safetensors. */
  tensors: number;
  files: string[];
  /** Heads written to the head file instead of model.safetensors, with the file's name. */
  head_file: { file: string; heads: HeadName[]; tensors: number } | null;
  /** Bundle tensors transformers has no parameter for. */
  left_out: Reported[];
  /** config.json values of the source HF config (when the bundle came from one) changed to match the bundle. */
  config_changes: string[];
  warnings: string[];
}

const MODEL_FILE = 'model.safetensors';
/** save_pretrained's metadata; transformers refuses a safetensors file without a known format. */
const MODEL_METADATA = { format: 'pt' } as const;

export async function exportHuggingFace(options: ExportHfOptions): Promise<ExportHfSummary> {
  const bundle = readBundleConfig(options.bundle);
  const arch = bundle.architecture;
  const weightsPath = join(options.bundle, bundle.weights.file);
  const weights = openSafetensors(weightsPath);
  // HF's schema first: an inexpressible option is the real obstacle, whatever else is missing.
  checkHfExpressible(arch);
  checkRequiredTensors(arch, new Map([...weights.tensors].map(([name, view]) => [name, view.shape] as const)));
  const dtype = floatDtypeOf(weights.tensors);
  const hfClass = chooseHfClass(arch, options.hfClass);
  const plan = planHfStateDict(weights.tensors, arch, hfClass);
  const { config, changes } = hfConfigFor(bundle, hfClass, dtype);
  const warnings = hfSemanticWarnings(arch, hfClass, bundle);
  const textFiles: HfTextFile[] = [{ name: 'config.json', text: `${pythonJsonDumps(config)}\n` }, preprocessorConfigFor(bundle)];
  if (bundle.tokenizer) {
    const path = join(options.bundle, bundle.tokenizer);
    textFiles.push(...tokenizerFilesFor(readFileSync(path, 'utf8'), loadTokenizerSource(path), maxTextLength(bundle)));
  } else {
    warnings.push('the bundle has no tokenizer: the folder has no tokenizer files, so BridgeTowerProcessor.from_pretrained cannot load it (AutoTokenizer of roberta-base can stand in if the vocabulary is roberta-base’s)');
  }
  if (arch.cross_modal.token_types > 2) {
    warnings.push(
      `token_type_embeddings has ${arch.cross_modal.token_types} rows (NLVR2's right image is row 2): model.safetensors holds HF's 2, ${HEAD_FILE} the whole table`,
    );
  }
  const labels = readLabels(options.bundle, bundle.labels);

  return buildFolderAtomically(options.out, { overwrite: options.force ?? false, replaceable: isHfBridgeTowerFolder }, async (dir) => {
    const fd = openSync(weightsPath, 'r');
    try {
      writeEntries(fd, join(dir, MODEL_FILE), plan.model, MODEL_METADATA);
      if (plan.headFile.length > 0) writeEntries(fd, join(dir, HEAD_FILE), plan.headFile, headFileMetadata(arch, plan.headFileHeads, labels));
    } finally {
      closeSync(fd);
    }
    for (const file of textFiles) writeFileSync(join(dir, file.name), file.text);
    return {
      out: options.out,
      bundle: options.bundle,
      hf_class: hfClass,
      dtype,
      tensors: plan.model.length,
      files: [MODEL_FILE, ...(plan.headFile.length > 0 ? [HEAD_FILE] : []), ...textFiles.map((f) => f.name)].sort(),
      head_file: plan.headFile.length > 0 ? { file: HEAD_FILE, heads: plan.headFileHeads, tensors: plan.headFile.length } : null,
      left_out: plan.leftOut,
      config_changes: changes,
      warnings,
    };
  });
}

/** One tensor at a time from the bundle's weights into a streaming safetensors writer. */
function writeEntries(fd: number, path: string, entries: readonly HfEntry[], metadata: Readonly<Record<string, string>>): void {
  const writer = new SafetensorsWriter(path, entries.map((e) => ({ name: e.name, dtype: e.view.dtype, shape: e.shape })), metadata);
  try {
    for (const entry of entries) writer.write(entry.name, entryBytes(fd, entry));
    writer.close();
  } catch (error) {
    writer.abort();
    throw error;
  }
}

function entryBytes(fd: number, entry: HfEntry): Buffer {
  let bytes = readTensorBytes(fd, entry.view);
  if (entry.rows !== undefined) bytes = bytes.subarray(0, numel(entry.shape) * DTYPES[entry.view.dtype].bytes);
  return entry.transform ? invertTransform(entry.transform, entry.view.dtype, bytes) : bytes;
}

/**
 * Whether `dir` holds a Hugging Face BridgeTower folder (its config.json says `model_type:
 * "bridgetower"`): what an earlier export-hf wrote, so `--force` may replace it.
 */
function isHfBridgeTowerFolder(dir: string): boolean {
  try {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown } | null;
    return config?.model_type === 'bridgetower';
  } catch {
    return false;
  }
}
