import assert from 'node:assert/strict';
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { PyFloat } from '../../convert/torch/pickle-writer.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { STATE_DICT, storageFromBytes, writeTorchCheckpoint, type TorchStorage } from '../../convert/torch/write-torch-checkpoint.js';
import { readSmallEntry, readZipDirectory } from '../../convert/zip/zip-reader.js';
import { tempDir } from '../helpers/temp-dir.js';

const f32 = (values: number[]) => Buffer.from(new Float32Array(values).buffer);

function zipOf(path: string) {
  const fd = openSync(path, 'r');
  try {
    return { zip: readZipDirectory(fd, fstatSync(fd).size, path), bytes: readFileSync(path) };
  } finally {
    closeSync(fd);
  }
}

/** The opcodes torch/_weights_only_unpickler.py accepts that a protocol-2 torch.save pickle can hold, with their argument sizes. */
const WEIGHTS_ONLY_OPCODES: Record<number, [string, (b: Buffer, at: number) => number]> = {
  0x80: ['PROTO', () => 1], 0x2e: ['STOP', () => 0], 0x28: ['MARK', () => 0], 0x52: ['REDUCE', () => 0], 0x62: ['BUILD', () => 0],
  0x7d: ['EMPTY_DICT', () => 0], 0x75: ['SETITEMS', () => 0], 0x5d: ['EMPTY_LIST', () => 0], 0x65: ['APPENDS', () => 0],
  0x29: ['EMPTY_TUPLE', () => 0], 0x74: ['TUPLE', () => 0], 0x85: ['TUPLE1', () => 0], 0x86: ['TUPLE2', () => 0], 0x87: ['TUPLE3', () => 0],
  0x4e: ['NONE', () => 0], 0x88: ['NEWTRUE', () => 0], 0x89: ['NEWFALSE', () => 0], 0x51: ['BINPERSID', () => 0],
  0x4b: ['BININT1', () => 1], 0x4d: ['BININT2', () => 2], 0x4a: ['BININT', () => 4], 0x47: ['BINFLOAT', () => 8],
  0x8a: ['LONG1', (b, at) => 1 + b[at]!], 0x58: ['BINUNICODE', (b, at) => 4 + b.readUInt32LE(at)],
  0x63: ['GLOBAL', (b, at) => { const first = b.indexOf(0x0a, at); return b.indexOf(0x0a, first + 1) + 1 - at; }],
};

function opcodes(pickle: Buffer): Array<{ op: string; arg: Buffer }> {
  const out: Array<{ op: string; arg: Buffer }> = [];
  for (let at = 0; at < pickle.length; ) {
    const entry = WEIGHTS_ONLY_OPCODES[pickle[at]!];
    assert.ok(entry, `opcode 0x${pickle[at]!.toString(16)} at ${at} is not one torch.load(weights_only=True) accepts`);
    const size = entry[1](pickle, at + 1);
    out.push({ op: entry[0], arg: pickle.subarray(at + 1, at + 1 + size) });
    at += 1 + size;
  }
  return out;
}

function lightning(storage: TorchStorage) {
  return {
    tensors: [{ name: 'w', storage, shape: [2, 2] }],
    top: { epoch: 3, global_step: 7, 'pytorch-lightning_version': '1.5.10', state_dict: STATE_DICT, hyper_parameters: { config: { lr: new PyFloat(1), steps: 1 } } },
  } as const;
}

test('records are stored, 64-byte aligned and in torch.save order, each followed by a data descriptor', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  writeTorchCheckpoint(path, {
    tensors: [
      { name: 'a', storage: storageFromBytes('float32', f32([1, 2, 3])), shape: [3] },
      { name: 'b', storage: storageFromBytes('int64', Buffer.alloc(16)), shape: [1, 2] },
    ],
  });
  const { zip, bytes } = zipOf(path);
  assert.deepEqual(zip.entries.map((e) => e.name), ['archive/data.pkl', 'archive/byteorder', 'archive/data/0', 'archive/data/1', 'archive/version', 'archive/.data/serialization_id']);
  for (const e of zip.entries) {
    assert.equal(e.method, 0, `${e.name} is stored`);
    assert.equal(e.dataOffset % 64, 0, `${e.name} data is 64-byte aligned`);
    assert.equal(bytes.readUInt16LE(e.localHeaderOffset + 6), 0x0808, `${e.name}: data-descriptor and UTF-8 flags, as torch's miniz`);
    const descriptor = e.dataOffset + e.compressedSize;
    assert.equal(bytes.readUInt32LE(descriptor), 0x08074b50, `${e.name}: data descriptor follows the data`);
    assert.equal(bytes.readUInt32LE(descriptor + 4), crc32(bytes.subarray(e.dataOffset, descriptor)) >>> 0, `${e.name}: CRC-32`);
    assert.equal(e.crc32, crc32(bytes.subarray(e.dataOffset, descriptor)) >>> 0);
  }
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  const record = (name: string) => readSmallEntry(fd, zip.byName.get(`archive/${name}`)!, path).toString('latin1');
  assert.equal(record('byteorder'), 'little');
  assert.equal(record('version'), '3\n');
  assert.match(record('.data/serialization_id'), /^\d{40}$/);
  // torch.load's mmap path trusts .format_version to compute offsets from miniz's own layout: never promised.
  assert.equal(zip.byName.has('archive/.format_version'), false);
});

test('the pickle holds only opcodes and globals torch.load(weights_only=True) accepts', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  writeTorchCheckpoint(path, lightning(storageFromBytes('float16', Buffer.alloc(8))));
  const { zip } = zipOf(path);
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  const ops = opcodes(readSmallEntry(fd, zip.byName.get('archive/data.pkl')!, path));
  const globals = new Set(ops.filter((o) => o.op === 'GLOBAL').map((o) => o.arg.toString('latin1').trim().replace('\n', '.')));
  assert.deepEqual([...globals].sort(), ['collections.OrderedDict', 'torch.HalfStorage', 'torch._utils._rebuild_tensor_v2']);
  assert.equal(ops.at(-1)!.op, 'STOP');
});

test('a value marked as a Python float is pickled as a float even when integral', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  writeTorchCheckpoint(path, lightning(storageFromBytes('float32', Buffer.alloc(16))));
  const { zip } = zipOf(path);
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  const ops = opcodes(readSmallEntry(fd, zip.byName.get('archive/data.pkl')!, path));
  const after = (key: string) => ops[ops.findIndex((o) => o.op === 'BINUNICODE' && o.arg.subarray(4).toString() === key) + 1]!.op;
  assert.equal(after('lr'), 'BINFLOAT');
  assert.equal(after('steps'), 'BININT1');
});

test('a Lightning checkpoint reads back with its tensors, dtypes and metadata in order', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  writeTorchCheckpoint(path, lightning(storageFromBytes('float32', f32([1, 2, 3, 4]))));
  const checkpoint = openTorchCheckpoint(path);
  assert.deepEqual(Object.keys(checkpoint.metadata), ['epoch', 'global_step', 'pytorch-lightning_version', 'hyper_parameters']);
  assert.deepEqual(checkpoint.metadata.hyper_parameters, { config: { lr: 1, steps: 1 } });
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  assert.deepEqual(readTensorBytes(fd, checkpoint.tensors.get('w')!), f32([1, 2, 3, 4]));
});

test('storages stream in chunks of any size and keep their bytes', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  const values = f32(Array.from({ length: 1000 }, (_, i) => i));
  const chunked: TorchStorage = {
    dtype: 'float32',
    byteLength: values.length,
    write: (sink) => {
      for (let at = 0; at < values.length; at += 333) sink(values.subarray(at, Math.min(values.length, at + 333)));
    },
  };
  writeTorchCheckpoint(path, { tensors: [{ name: 'v', storage: chunked, shape: [1000] }] });
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  assert.deepEqual(readTensorBytes(fd, openTorchCheckpoint(path).tensors.get('v')!), values);
});

test('a storage whose source delivers the wrong number of bytes fails and leaves no file', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  const short: TorchStorage = { dtype: 'float32', byteLength: 16, write: (sink) => sink(Buffer.alloc(12)) };
  assert.throws(() => writeTorchCheckpoint(path, { tensors: [{ name: 'w', storage: short, shape: [4] }] }), (e: any) => e.code === 'E_IO' && /declared as 16 bytes.*gave 12/.test(e.message));
  assert.equal(existsSync(path), false);
});

test('a view that does not fit its storage is refused before anything is written', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  const storage = storageFromBytes('float32', f32([1, 2, 3, 4]));
  assert.throws(() => writeTorchCheckpoint(path, { tensors: [{ name: 'w', storage, shape: [3, 3] }] }), (e: any) => e.code === 'E_TENSOR_LAYOUT' && e.details.reason === 'out_of_bounds' && e.details.tensor === 'w');
  assert.equal(existsSync(path), false);
});

test('tensors that share a storage get one record and keep their offsets', (t) => {
  const path = join(tempDir(t), 'a.ckpt');
  const storage = storageFromBytes('float32', f32([1, 2, 3, 4, 5, 6]));
  const keys = writeTorchCheckpoint(path, {
    tensors: [
      { name: 'fc', storage, shape: [2, 3] },
      { name: 'rank', storage, shape: [1, 3], storageOffset: 3 },
    ],
  });
  assert.deepEqual([...keys], [['fc', '0'], ['rank', '0']]);
  const checkpoint = openTorchCheckpoint(path);
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  assert.deepEqual(readTensorBytes(fd, checkpoint.tensors.get('rank')!), f32([4, 5, 6]));
});
