import { closeSync, existsSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadLabels } from '../../bundle/labels.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import type { CheckpointFile } from '../../bundle/tensors/tensor-view.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { loadTokenizerSource, serializeTokenizerJson } from '../../bundle/tokenizer-json.js';
import { openHuggingFaceRepo } from '../../convert/huggingface/read-hf-repo.js';
import { parseStoragePersistentId, StorageRef, toPlainValue, unpickle } from '../../convert/torch/pickle-allowlist.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { readSmallEntry, readZipDirectory } from '../../convert/zip/zip-reader.js';
import { decodeImage } from '../../preprocess/image.js';
import { TextTokenizer } from '../../preprocess/text.js';
import { readArrowExamples } from '../../train/data/open-dataset.js';
import { readJsonlExamples } from '../../train/data/jsonl.js';
import { HF_DIR } from '../helpers/shared-fixtures.js';
import { tinyPng, vqaColumns, writeArrow } from '../helpers/training-data.js';
import { writeLegacyTorchCheckpoint, writeTorchCheckpoint, type TensorSpec } from '../helpers/torch-writer.js';

/**
 * The readers the fuzz tests attack, one row each: where the seed inputs come from (the shared
 * fixtures, or tiny files generated here), the file name the reader expects, what else its folder
 * needs, and how to read a file *completely* (tensor bytes materialized, examples built, text
 * encoded), so that a bomb that only goes off when data is used is caught too.
 */
export interface FuzzTarget {
  readonly name: string;
  /** The name the input file gets in the case folder. */
  readonly file: string;
  /** Unmutated inputs, each a valid file for this reader. */
  seeds(scratch: string): Promise<Buffer[]>;
  /** Writes what the folder needs besides the input (images, linked weights). */
  setup?(dir: string): Promise<void> | void;
  /** Reads the input at `path` through the project's reader, using everything it returns. */
  read(path: string, dir: string): Promise<unknown> | unknown;
}

const LABELS = ['yes', 'no', 'red', 'blue'];
const f32 = (values: number[]) => Buffer.from(new Float32Array(values).buffer);
const TENSORS: TensorSpec[] = [
  { name: 'a.weight', dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
  { name: 'a.bias', dtype: 'float16', shape: [4], data: Buffer.alloc(8, 1) },
  { name: 'b.t', dtype: 'float32', shape: [3, 2], strides: [1, 3], shareStorageWith: 'a.weight' },
];
const HPARAMS = { epoch: 3, hyper_parameters: { config: { lr: 0.0001, name: 'vqa', sizes: [1, 2, 3], nested: { on: true, none: null } } } };

function materialize(file: CheckpointFile): number {
  const fd = openSync(file.path, 'r');
  try {
    let bytes = 0;
    for (const view of file.tensors.values()) bytes += readTensorBytes(fd, view).length;
    return bytes + JSON.stringify(file.metadata).length;
  } finally {
    closeSync(fd);
  }
}

function writeTo(scratch: string, name: string, write: (path: string) => void): Buffer {
  const path = join(scratch, name);
  write(path);
  return readFileSync(path);
}

/** A safetensors file by hand (8-byte header length, JSON header, data), independent of the project's writer. */
function safetensorsBytes(): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      __metadata__: { format: 'pt' },
      'a.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      'a.bias': { dtype: 'F16', shape: [4], data_offsets: [24, 32] },
    }),
  );
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header, f32([1, 2, 3, 4, 5, 6]), Buffer.alloc(8, 1)]);
}

async function vqaArrow(scratch: string, format: 'file' | 'stream'): Promise<Buffer> {
  const { columns } = await vqaColumns();
  return writeTo(scratch, `vqa-${format}.arrow`, (path) => writeArrow(path, columns, { format }));
}

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'pickle',
    file: 'data.pkl',
    async seeds(scratch) {
      const ckpt = writeTo(scratch, 'p.ckpt', (path) => writeTorchCheckpoint(path, { tensors: TENSORS, extra: HPARAMS }));
      const path = join(scratch, 'p.ckpt');
      const fd = openSync(path, 'r');
      try {
        const zip = readZipDirectory(fd, ckpt.length, path);
        return [readSmallEntry(fd, zip.entries.find((e) => e.name.endsWith('data.pkl'))!, path)];
      } finally {
        closeSync(fd);
      }
    },
    read(path) {
      const value = unpickle(readFileSync(path), {
        label: path,
        persistentLoad: (pid) => {
          const id = parseStoragePersistentId(pid, path);
          return new StorageRef(id.key, id.key, id.storageClass.dtype, 0, id.numel);
        },
      });
      return JSON.stringify(toPlainValue(value));
    },
  },
  {
    name: 'zip',
    file: 'archive.ckpt',
    seeds: async (scratch) => [writeTo(scratch, 'z.ckpt', (path) => writeTorchCheckpoint(path, { tensors: TENSORS, deflate: ['data.pkl', 'byteorder'] }))],
    read(path) {
      const fd = openSync(path, 'r');
      try {
        const zip = readZipDirectory(fd, readFileSync(path).length, path);
        return zip.entries.reduce((sum, entry) => sum + readSmallEntry(fd, entry, path).length, 0);
      } finally {
        closeSync(fd);
      }
    },
  },
  {
    name: 'torch-zip',
    file: 'model.ckpt',
    seeds: async (scratch) => [
      writeTo(scratch, 'lightning.ckpt', (path) => writeTorchCheckpoint(path, { tensors: TENSORS, extra: HPARAMS })),
      writeTo(scratch, 'plain.bin', (path) => writeTorchCheckpoint(path, { tensors: TENSORS, wrapInStateDict: false, zip64: true })),
    ],
    read: (path) => materialize(openTorchCheckpoint(path)),
  },
  {
    name: 'legacy',
    file: 'legacy.ckpt',
    seeds: async (scratch) => [writeTo(scratch, 'legacy.ckpt', (path) => writeLegacyTorchCheckpoint(path, { tensors: TENSORS, extra: HPARAMS }))],
    read: (path) => materialize(openTorchCheckpoint(path)),
  },
  {
    name: 'safetensors',
    file: 'model.safetensors',
    seeds: async () => [safetensorsBytes()],
    read: (path) => materialize(openSafetensors(path)),
  },
  {
    name: 'hf-folder',
    file: 'config.json',
    seeds: async () => (existsSync(join(HF_DIR, 'itm', 'config.json')) ? [readFileSync(join(HF_DIR, 'itm', 'config.json'))] : []),
    setup: (dir) => symlinkSync(join(HF_DIR, 'itm', 'model.safetensors'), join(dir, 'model.safetensors')),
    read: (_path, dir) => openHuggingFaceRepo(dir).tensors.size,
  },
  {
    name: 'tokenizer',
    file: 'tokenizer.json',
    seeds: async () => (existsSync(join(HF_DIR, 'itm', 'tokenizer.json')) ? [readFileSync(join(HF_DIR, 'itm', 'tokenizer.json'))] : []),
    read(path) {
      const ids = TextTokenizer.fromFile(path).encode('a photo of two cats <mask> on a sofa', 40).ids;
      return serializeTokenizerJson(loadTokenizerSource(path)).length + ids.length;
    },
  },
  {
    name: 'labels',
    file: 'labels.json',
    seeds: async () => [
      Buffer.from(JSON.stringify(LABELS)),
      Buffer.from('{"id2label": {"0": "no", "1": "yes", "2": "maybe"}, "model_type": "bridgetower"}'),
      Buffer.from('{"0": "contradiction", "1": "neutral", "2": "entailment"}'),
    ],
    read: (path) => loadLabels(path),
  },
  {
    name: 'arrow',
    file: 'vqav2_train.arrow',
    seeds: async (scratch) => [await vqaArrow(scratch, 'file'), await vqaArrow(scratch, 'stream')],
    async read(path) {
      const examples = readArrowExamples(path, 'vqa', { labels: LABELS });
      for (const example of examples) await example.image.bytes();
      return examples.length;
    },
  },
  {
    name: 'jsonl',
    file: 'train.jsonl',
    seeds: async () => [
      Buffer.from(
        [
          { image: 'a.png', question: 'colour?', question_id: 7, answers: ['red', 'red', 'blue', 'red'] },
          { image: 'a.png', question: 'yes?', answer: 'yes' },
          { image: 'a.png', question: 'explicit?', labels: ['no', 3], scores: [0.6, 0.3] },
        ]
          .map((line) => JSON.stringify(line))
          .join('\n'),
      ),
    ],
    setup: async (dir) => writeFileSync(join(dir, 'a.png'), await tinyPng(1)),
    read: (path) => readJsonlExamples(path, 'vqa', { labels: LABELS }).length,
  },
  {
    name: 'image',
    file: 'image.bin',
    seeds: async () => {
      const raw = Buffer.alloc(16 * 12 * 3, 90);
      const image = () => sharp(raw, { raw: { width: 16, height: 12, channels: 3 } });
      return [Buffer.from(await tinyPng(3, 16, 12)), await image().jpeg().toBuffer(), await image().webp().toBuffer(), await image().gif().toBuffer()];
    },
    read: async (path) => (await decodeImage(readFileSync(path))).width,
  },
];
