import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BridgeTowerError, type ErrorCode } from '../../common/errors.js';
import { DTYPES, numel, type DType } from '../../bundle/tensors/dtype.js';
import { readTensorBytes, type TensorLayoutReason } from '../../bundle/tensors/read-tensor.js';
import type { CheckpointFile } from '../../bundle/tensors/tensor-view.js';
import { detectTorchFormat, openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import type { TorchCheckpointReason } from '../../convert/torch/checkpoint-reasons.js';
import type { ZipReason } from '../../convert/zip/zip-reader.js';
import {
  forbiddenGlobalPickle,
  PickleWriter,
  writeLegacyTorchCheckpoint,
  writeTorchCheckpoint,
  type TensorSpec,
  type TorchCheckpointSpec,
} from '../helpers/torch-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'torch-reader-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;

function write(spec: TorchCheckpointSpec): string {
  const path = join(dir, `${fileCount++}.ckpt`);
  writeTorchCheckpoint(path, spec);
  return path;
}

function readValues(checkpoint: CheckpointFile, name: string): Buffer {
  const fd = openSync(checkpoint.path, 'r');
  try {
    return readTensorBytes(fd, checkpoint.tensors.get(name)!);
  } finally {
    closeSync(fd);
  }
}

function f32(values: number[]): Buffer {
  return Buffer.from(new Float32Array(values).buffer);
}

function f32Values(bytes: Buffer): number[] {
  return Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
}

/** `fn` throws `code` whose details include `details` (a format error's `reason` among them). */
function expectError(fn: () => unknown, code: ErrorCode, details: { reason?: TorchCheckpointReason | ZipReason | TensorLayoutReason } & Record<string, unknown>): BridgeTowerError {
  let caught: unknown;
  assert.throws(fn, (err) => ((caught = err), true));
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  const actual = Object.fromEntries(Object.keys(details).map((key) => [key, caught instanceof BridgeTowerError ? caught.details[key] : undefined]));
  assert.deepEqual(actual, details, caught.message);
  return caught;
}

const ALL_DTYPES = Object.keys(DTYPES) as DType[];
const simple = (): TensorSpec[] => [{ name: 'w', dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) }];

test('every dtype round-trips through the writer with its shape and bytes', () => {
  const tensors = ALL_DTYPES.map((dtype, i) => {
    const shape = [i + 1, 3];
    return { name: `t.${dtype}`, dtype, shape, data: randomBytes(numel(shape) * DTYPES[dtype].bytes) };
  });
  const checkpoint = openTorchCheckpoint(write({ tensors }));
  assert.deepEqual([...checkpoint.tensors.keys()], tensors.map((t) => t.name));
  for (const t of tensors) {
    const view = checkpoint.tensors.get(t.name)!;
    assert.deepEqual([view.dtype, view.shape], [t.dtype, t.shape]);
    assert.deepEqual(readValues(checkpoint, t.name), t.data);
  }
});

test('scalars and empty tensors keep their shapes', () => {
  const checkpoint = openTorchCheckpoint(
    write({
      tensors: [
        { name: 'scalar', dtype: 'float64', shape: [], data: Buffer.from(new Float64Array([0.07]).buffer) },
        { name: 'empty', dtype: 'int64', shape: [0, 4], data: Buffer.alloc(0) },
      ],
    }),
  );
  assert.deepEqual(checkpoint.tensors.get('scalar')!.shape, []);
  assert.deepEqual(readValues(checkpoint, 'scalar').readDoubleLE(0), 0.07);
  assert.deepEqual(checkpoint.tensors.get('empty')!.shape, [0, 4]);
});

test('a transposed tensor reads in row-major order of its own shape', () => {
  // Storage holds the [2, 3] matrix 1..6; the tensor is its [3, 2] transpose.
  const checkpoint = openTorchCheckpoint(write({ tensors: [{ name: 't', dtype: 'float32', shape: [3, 2], strides: [1, 3], data: f32([1, 2, 3, 4, 5, 6]) }] }));
  assert.deepEqual(f32Values(readValues(checkpoint, 't')), [1, 4, 2, 5, 3, 6]);
});

test('a channels-last tensor reads in NCHW order', () => {
  // NHWC storage of a [1, 2, 2, 2] tensor: element (c, h, w) sits at h*4 + w*2 + c.
  const nhwc = [0, 100, 1, 101, 10, 110, 11, 111];
  const checkpoint = openTorchCheckpoint(write({ tensors: [{ name: 'conv', dtype: 'float32', shape: [1, 2, 2, 2], strides: [8, 1, 4, 2], data: f32(nhwc) }] }));
  assert.deepEqual(f32Values(readValues(checkpoint, 'conv')), [0, 1, 10, 11, 100, 101, 110, 111]);
});

test('tensors that share a storage get one StorageLocation and read from their own offsets', () => {
  const checkpoint = openTorchCheckpoint(
    write({
      tensors: [
        { name: 'fc.weight', dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
        { name: 'rank.weight', dtype: 'float32', shape: [1, 3], storageOffset: 3, shareStorageWith: 'fc.weight' },
      ],
    }),
  );
  const [fc, rank] = [checkpoint.tensors.get('fc.weight')!, checkpoint.tensors.get('rank.weight')!];
  assert.equal(rank.storage, fc.storage);
  assert.equal(rank.storageOffset, 3);
  assert.deepEqual(f32Values(readValues(checkpoint, 'rank.weight')), [4, 5, 6]);
});

test('records are found under whatever prefix the writer chose', () => {
  const checkpoint = openTorchCheckpoint(write({ tensors: simple(), prefix: 'my-model_v2' }));
  assert.deepEqual(f32Values(readValues(checkpoint, 'w')), [1, 2, 3, 4, 5, 6]);
});

test('ZIP64 end records and extra fields are read', () => {
  const checkpoint = openTorchCheckpoint(write({ tensors: simple(), zip64: true }));
  assert.deepEqual(f32Values(readValues(checkpoint, 'w')), [1, 2, 3, 4, 5, 6]);
});

test('a deflated data.pkl is inflated', () => {
  const checkpoint = openTorchCheckpoint(write({ tensors: simple(), deflate: ['data.pkl'] }));
  assert.deepEqual([...checkpoint.tensors.keys()], ['w']);
});

test('top-level items other than the state dict round-trip as plain metadata', () => {
  const extra = { epoch: 9, global_step: 1234, hyper_parameters: { config: { lr: 1e-5, tasks: ['vqa', 'snli'], load_path: '', resume: null, fp16: true, big: 2 ** 40, neg: -3 } } };
  const checkpoint = openTorchCheckpoint(write({ tensors: simple(), extra }));
  assert.deepEqual(checkpoint.metadata, extra);
});

test('Lightning, sacred and numpy values in hyper_parameters become plain JSON values', () => {
  // What pickle protocol 2 writes for AttributeDict(config=ReadOnlyDict(ns=Namespace(x=1), tags={'a'},
  // raw=b'\x00\xff', lr=numpy.float64(0.5))).
  const w = new PickleWriter().emptyDict().mark().str('state_dict').global('collections', 'OrderedDict').tuple(0).reduce();
  w.str('hyper_parameters').global('pytorch_lightning.utilities.parsing', 'AttributeDict').tuple(0).newobj().mark();
  w.str('config').global('sacred.config.custom_containers', 'ReadOnlyDict').emptyDict().mark();
  w.str('ns').global('argparse', 'Namespace').tuple(0).newobj().value({ x: 1 }).build();
  w.str('tags').global('__builtin__', 'set').value(['a']).tuple(1).reduce();
  w.str('raw').global('_codecs', 'encode').str('\u0000\u00ff').str('latin1').tuple(2).reduce();
  w.str('lr').global('numpy.core.multiarray', 'scalar');
  w.global('numpy', 'dtype').str('f8').bool(false).bool(true).tuple(3).reduce();
  w.mark().int(3).str('<').none().none().none().int(-1).int(-1).int(0).tupleFromMark().build();
  const half = Buffer.alloc(8);
  half.writeDoubleLE(0.5);
  w.global('_codecs', 'encode').str(half.toString('latin1')).str('latin1').tuple(2).reduce().tuple(2).reduce();
  w.setitems().tuple(1).reduce().setitems().setitems();
  const checkpoint = openTorchCheckpoint(write({ tensors: [], rawPickle: w.finish() }));
  assert.deepEqual(checkpoint.metadata, { hyper_parameters: { config: { ns: { x: 1 }, tags: ['a'], raw: 'AP8=', lr: 0.5 } } });
});

test('a top level made only of tensors is the state dict (pytorch_model.bin)', () => {
  const checkpoint = openTorchCheckpoint(write({ tensors: simple(), wrapInStateDict: false }));
  assert.deepEqual([...checkpoint.tensors.keys()], ['w']);
  assert.deepEqual(checkpoint.metadata, {});
});

test('legacy checkpoints are read, storage views included', () => {
  const path = join(dir, 'legacy.ckpt');
  writeLegacyTorchCheckpoint(path, {
    tensors: [
      { name: 'fc.weight', dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
      { name: 'rank.weight', dtype: 'float32', shape: [1, 3], storageOffset: 3, shareStorageWith: 'fc.weight' },
      { name: 'ids', dtype: 'int64', shape: [3], data: Buffer.from(new BigInt64Array([0n, 1n, 2n]).buffer) },
    ],
    extra: { epoch: 1 },
  });
  const checkpoint = openTorchCheckpoint(path);
  assert.equal(checkpoint.format, 'torch-legacy');
  assert.deepEqual(f32Values(readValues(checkpoint, 'rank.weight')), [4, 5, 6]);
  assert.deepEqual(f32Values(readValues(checkpoint, 'fc.weight')), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(readValues(checkpoint, 'ids'), Buffer.from(new BigInt64Array([0n, 1n, 2n]).buffer));
  assert.deepEqual(checkpoint.metadata, { epoch: 1 });
});

test('detectTorchFormat tells zip, legacy and other files apart from their first bytes', () => {
  assert.equal(detectTorchFormat(Buffer.from('PK\x03\x04rest', 'latin1')), 'torch-zip');
  assert.equal(detectTorchFormat(Buffer.from('80028a0a6cfc9c46f9206aa850192e80', 'hex')), 'torch-legacy');
  assert.equal(detectTorchFormat(Buffer.from('{"not": "torch"}')), undefined);
});

test('a truncated zip is an E_CHECKPOINT_FORMAT error saying so', () => {
  const path = write({ tensors: simple() });
  truncateSync(path, Math.floor(readFileSync(path).length / 2));
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'no_end_record' });
});

test('a corrupt central directory is an E_CHECKPOINT_FORMAT error naming the bad entry', () => {
  const path = write({ tensors: simple() });
  const bytes = readFileSync(path);
  const cdOffset = bytes.readUInt32LE(bytes.length - 22 + 16);
  bytes.writeUInt32LE(0xdeadbeef, cdOffset);
  writeFileSync(path, bytes);
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'bad_signature' });
});

test('a file that is not a checkpoint is an E_CHECKPOINT_FORMAT error', () => {
  const path = join(dir, 'notes.txt');
  writeFileSync(path, 'just some text, no pickle here\n');
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'not_torch', path });
});

test('a missing file is an E_IO error', () => {
  expectError(() => openTorchCheckpoint(join(dir, 'absent.ckpt')), 'E_IO', { path: join(dir, 'absent.ckpt') });
});

test('a pickle that calls posix.system is refused with E_FORBIDDEN_GLOBAL naming it', () => {
  const path = write({ tensors: [], rawPickle: forbiddenGlobalPickle('touch /tmp/pwned') });
  expectError(() => openTorchCheckpoint(path), 'E_FORBIDDEN_GLOBAL', { reason: 'forbidden_global', global: 'posix.system' });
});

test('a pickle cannot alter an allowlisted global for later checkpoints', () => {
  // BUILD on the torch.FloatStorage marker would otherwise retype every later float32 storage.
  const hostile = new PickleWriter().global('torch', 'FloatStorage').value({ dtype: 'int64' }).build().finish();
  expectError(() => openTorchCheckpoint(write({ tensors: [], rawPickle: hostile })), 'E_CHECKPOINT_FORMAT', { reason: 'bad_pickle' });
  const checkpoint = openTorchCheckpoint(write({ tensors: simple() }));
  assert.equal(checkpoint.tensors.get('w')!.dtype, 'float32');
});

test('a tensor whose shape exceeds its storage is an E_TENSOR_LAYOUT error naming it', () => {
  const path = write({ tensors: [{ name: 'too.big', dtype: 'float32', shape: [3, 3], data: f32([1, 2, 3, 4]) }] });
  expectError(() => openTorchCheckpoint(path), 'E_TENSOR_LAYOUT', { reason: 'out_of_bounds', tensor: 'too.big', storageBytes: 16 });
});

test('a storage larger than its record is an E_CHECKPOINT_FORMAT error', () => {
  // Hand-written pickle declaring 100 elements for a 6-element record.
  const pickle = new PickleWriter().global('collections', 'OrderedDict').tuple(0).reduce().mark().str('w');
  pickle.global('torch._utils', '_rebuild_tensor_v2').mark().storageId('float32', '0', 100);
  pickle.int(0).ints([100]).ints([1]).bool(false).global('collections', 'OrderedDict').tuple(0).reduce().tupleFromMark().reduce().setitems();
  const path = write({ tensors: simple(), rawPickle: pickle.finish() });
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'storage_too_small', storage: '0' });
});

test('a zip without data.pkl is an E_CHECKPOINT_FORMAT error', () => {
  const path = write({ tensors: simple(), omit: ['data.pkl'] });
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'no_pickle' });
});

test('a deflated tensor storage is an E_CHECKPOINT_FORMAT error saying storages must be stored', () => {
  const path = write({ tensors: simple(), deflate: ['data/0'] });
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'compressed_storage', entry: 'archive/data/0' });
});

test('a big-endian byteorder record is an E_CHECKPOINT_FORMAT error', () => {
  const path = write({ tensors: simple(), byteorder: 'big' });
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'big_endian' });
});

test('a truncated legacy checkpoint is an E_CHECKPOINT_FORMAT error saying so', () => {
  const path = join(dir, 'legacy-truncated.ckpt');
  writeLegacyTorchCheckpoint(path, { tensors: simple() });
  truncateSync(path, readFileSync(path).length - 4);
  expectError(() => openTorchCheckpoint(path), 'E_CHECKPOINT_FORMAT', { reason: 'truncated' });
});
