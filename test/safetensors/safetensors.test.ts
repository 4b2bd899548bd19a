import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { openSafetensors, readSafetensors, toFloat32, toFloat64Array, type SafetensorsReason } from '../../bundle/safetensors/read-safetensors.js';
import { SafetensorsWriter, writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { DTYPES, numel, type DType } from '../../bundle/tensors/dtype.js';
import {
  bfloat16BitsToFloat32,
  convertFloatBytes,
  float16BitsToFloat32,
  float32ToFloat16Bits,
} from '../../bundle/tensors/dtype-convert.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmpPath = () => join(dir, `t${counter++}.safetensors`);

/** Deterministic bytes, so a misplaced tensor shows up as a byte mismatch. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 17 + 7) & 0xff;
  return out;
}

/** A file with a hand-written header (a string is written verbatim) and `dataBytes` bytes of data. */
function rawFile(header: unknown, dataBytes: number, headerLength?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const path = tmpPath();
  writeFileSync(path, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
  return path;
}

/** openSafetensors refuses the file with E_SAFETENSORS, `details.reason` and the given details. */
function assertSafetensorsError(path: string, reason: SafetensorsReason, details: Record<string, unknown> = {}): void {
  assert.throws(
    () => openSafetensors(path),
    (err: unknown) => {
      assert.ok(err instanceof BridgeTowerError, String(err));
      assert.equal(err.code, 'E_SAFETENSORS', err.message);
      assert.deepEqual({ reason: err.details.reason, ...pick(err.details, Object.keys(details)) }, { reason, ...details }, err.message);
      return true;
    },
  );
}

function pick(record: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, record[key]]));
}

describe('round trip', () => {
  test('every dtype reads back with the same dtype, shape and bytes', () => {
    const dtypes = Object.keys(DTYPES) as DType[];
    const tensors = dtypes.map((dtype, i) => {
      const shape = [2, 3];
      return { name: `t.${dtype}`, dtype, shape, data: pattern(numel(shape) * DTYPES[dtype].bytes, i) };
    });
    const path = tmpPath();
    writeSafetensors(path, tensors);
    const back = readSafetensors(path);
    assert.deepEqual([...back.keys()], tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = back.get(t.name)!;
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      assert.ok(got.data.equals(t.data), `${t.name} bytes differ`);
    }
  });

  test('a 0-d tensor keeps its empty shape and holds one element', () => {
    const path = tmpPath();
    const data = Buffer.from(new Float32Array([2.1]).buffer);
    writeSafetensors(path, [{ name: 'logit_scale', dtype: 'float32', shape: [], data }]);
    const got = readSafetensors(path).get('logit_scale')!;
    assert.deepEqual(got.shape, []);
    assert.deepEqual([...toFloat32(got.dtype, got.data)], [Math.fround(2.1)]);
  });

  test('empty tensors take no bytes and read back empty', () => {
    const path = tmpPath();
    writeSafetensors(path, [
      { name: 'a', dtype: 'float32', shape: [0, 4], data: Buffer.alloc(0) },
      { name: 'b', dtype: 'int64', shape: [2], data: pattern(16, 1) },
      { name: 'c', dtype: 'float16', shape: [3, 0], data: Buffer.alloc(0) },
    ]);
    const back = readSafetensors(path);
    assert.deepEqual(back.get('a')!.shape, [0, 4]);
    assert.equal(back.get('a')!.data.length, 0);
    assert.equal(back.get('c')!.data.length, 0);
    assert.ok(back.get('b')!.data.equals(pattern(16, 1)));
  });

  test('string metadata is stored under __metadata__ and read back', () => {
    const path = tmpPath();
    writeSafetensors(path, [{ name: 'x', dtype: 'uint8', shape: [1], data: Buffer.from([5]) }], { format: 'pt', task: 'vqa' });
    assert.deepEqual(openSafetensors(path).metadata, { __metadata__: { format: 'pt', task: 'vqa' } });
  });

  test('the data region starts on an 8-byte boundary and the header is padded with spaces', () => {
    for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
      const path = tmpPath();
      writeSafetensors(path, [{ name, dtype: 'uint8', shape: [1], data: Buffer.from([1]) }]);
      const bytes = readFileSync(path);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      assert.equal((8 + headerLength) % 8, 0, `name '${name}'`);
      const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
      assert.match(header, /^\{.*\} *$/);
      assert.doesNotThrow(() => openSafetensors(path));
    }
  });
});

describe('streaming writer', () => {
  const entries = [
    { name: 'first', dtype: 'float32' as const, shape: [2] },
    { name: 'second', dtype: 'int8' as const, shape: [3] },
  ];

  test('tensors written in the declared order make a valid file', () => {
    const path = tmpPath();
    const writer = new SafetensorsWriter(path, entries);
    writer.write('first', pattern(8, 0));
    writer.write('second', pattern(3, 1));
    writer.close();
    assert.ok(readSafetensors(path).get('second')!.data.equals(pattern(3, 1)));
  });

  test('a tensor written out of order is refused, naming the expected one', () => {
    const writer = new SafetensorsWriter(tmpPath(), entries);
    assert.throws(() => writer.write('second', pattern(3, 1)), /'second' written out of order.*'first'/);
    writer.abort();
  });

  test('a tensor with the wrong byte length is refused with both lengths', () => {
    const writer = new SafetensorsWriter(tmpPath(), entries);
    assert.throws(() => writer.write('first', pattern(7, 0)), /got 7 bytes.*needs 8/);
    writer.abort();
  });

  test('closing before every tensor is written is refused, naming the first missing one', () => {
    const writer = new SafetensorsWriter(tmpPath(), entries);
    writer.write('first', pattern(8, 0));
    assert.throws(() => writer.close(), /1 declared tensors unwritten.*'second'/);
    writer.abort();
  });

  test('abort closes and deletes the partial file', () => {
    const path = tmpPath();
    const writer = new SafetensorsWriter(path, entries);
    writer.write('first', pattern(8, 0));
    assert.ok(existsSync(path));
    writer.abort();
    assert.ok(!existsSync(path));
  });

  test('a failed writeSafetensors leaves no file behind', () => {
    const path = tmpPath();
    assert.throws(() => writeSafetensors(path, [{ name: 'x', dtype: 'float32', shape: [2], data: Buffer.alloc(4) }]), BridgeTowerError);
    assert.ok(!existsSync(path));
  });

  test('a tensor declared twice is refused before anything is written', () => {
    const path = tmpPath();
    assert.throws(() => new SafetensorsWriter(path, [entries[0]!, entries[0]!]), /'first' is declared twice/);
    assert.ok(!existsSync(path));
  });
});

describe('float16 conversion (round-to-nearest-even, as torch .half())', () => {
  const cases: Array<[string, number, number]> = [
    ['1/3', 1 / 3, 0x3555],
    ['0.1', 0.1, 0x2e66],
    ['1', 1, 0x3c00],
    ['65504 (largest half)', 65504, 0x7bff],
    ['65519 (rounds down to 65504)', 65519, 0x7bff],
    ['65520 (halfway to 65536: rounds to inf)', 65520, 0x7c00],
    ['1e6', 1e6, 0x7c00],
    ['-inf', -Infinity, 0xfc00],
    ['1 + 2^-11 (halfway: ties to even 1)', 1 + 2 ** -11, 0x3c00],
    ['1 + 3·2^-11 (halfway: ties to even 1 + 2^-9)', 1 + 3 * 2 ** -11, 0x3c02],
    ['2^-14 (smallest normal)', 2 ** -14, 0x0400],
    ['2^-24 (smallest subnormal)', 2 ** -24, 0x0001],
    ['2^-25 (halfway to 0: ties to even 0)', 2 ** -25, 0x0000],
    ['3·2^-25 (halfway: ties to even 2·2^-24)', 3 * 2 ** -25, 0x0002],
    ['just above 2^-25 (rounds up)', Math.fround(2 ** -25 * (1 + 2 ** -20)), 0x0001],
    ['1023.5·2^-24 (subnormal rounds up to the smallest normal)', 1023.5 * 2 ** -24, 0x0400],
    ['1e-10 (underflows to 0)', 1e-10, 0x0000],
    ['-0', -0, 0x8000],
    ['-2^-24', -(2 ** -24), 0x8001],
    ['NaN (quiet NaN, as torch)', NaN, 0x7e00],
  ];
  for (const [label, value, bits] of cases) {
    test(`${label} encodes as 0x${bits.toString(16).padStart(4, '0')}`, () => {
      assert.equal(float32ToFloat16Bits(value), bits);
    });
  }

  test('every finite half value survives half → float32 → half unchanged', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      assert.equal(float32ToFloat16Bits(float16BitsToFloat32(bits)), bits);
    }
  });

  test('half bits decode to their exact values', () => {
    assert.equal(float16BitsToFloat32(0x3555), 0.333251953125);
    assert.equal(float16BitsToFloat32(0x0001), 2 ** -24);
    assert.equal(float16BitsToFloat32(0x7c00), Infinity);
    assert.ok(Object.is(float16BitsToFloat32(0x8000), -0));
    assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
  });

  test('float32 bytes convert to float16 bytes and back within half precision', () => {
    const values = new Float32Array([1 / 3, -2.5, 65504, 0]);
    const half = convertFloatBytes('float32', 'float16', Buffer.from(values.buffer));
    assert.equal(half.length, 8);
    assert.deepEqual([...toFloat32('float16', half)], [0.333251953125, -2.5, 65504, 0]);
  });
});

describe('decoding other float dtypes', () => {
  test('bfloat16 decodes as the top half of a float32', () => {
    assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(bfloat16BitsToFloat32(0xc040), -3);
    const bytes = Buffer.from([0x80, 0x3f, 0x40, 0xc0]);
    assert.deepEqual([...toFloat32('bfloat16', bytes)], [1, -3]);
  });

  test('float64 decodes exactly to float64 and rounds to nearest in float32', () => {
    const bytes = Buffer.from(new Float64Array([0.1, -1e300]).buffer);
    assert.deepEqual([...toFloat64Array('float64', bytes)], [0.1, -1e300]);
    assert.deepEqual([...toFloat32('float64', bytes)], [Math.fround(0.1), -Infinity]);
  });

  test('decoding works on a buffer at an odd offset', () => {
    const backing = Buffer.alloc(9);
    backing.writeFloatLE(1.5, 1);
    backing.writeFloatLE(-2, 5);
    assert.deepEqual([...toFloat32('float32', backing.subarray(1))], [1.5, -2]);
  });
});

describe('malformed files fail with E_SAFETENSORS', () => {
  const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  test('a file shorter than the 8-byte length prefix', () => {
    const path = tmpPath();
    writeFileSync(path, Buffer.from([1, 2, 3]));
    assertSafetensorsError(path, 'truncated', { fileSize: 3 });
  });

  test('a header length above the 100 MB limit', () => {
    assertSafetensorsError(rawFile(good, 8, 1n << 40n), 'header_too_large', { headerLength: '1099511627776' });
  });

  test('a header length that runs past the end of the file', () => {
    assertSafetensorsError(rawFile(good, 0, 5000n), 'truncated', { headerLength: 5000 });
  });

  test('a header that is not valid JSON', () => {
    assertSafetensorsError(rawFile('{"w": {"dtype": "F32",', 0), 'header_not_json');
  });

  test('a header that is not UTF-8', () => {
    const path = tmpPath();
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(3n);
    writeFileSync(path, Buffer.concat([prefix, Buffer.from([0x7b, 0xff, 0x7d])]));
    assertSafetensorsError(path, 'header_not_utf8');
  });

  test('truncated data names the tensor that runs past the end', () => {
    assertSafetensorsError(rawFile(good, 5), 'truncated', { tensor: 'w', end: 8, dataLength: 5 });
  });

  test('trailing bytes after the last tensor', () => {
    assertSafetensorsError(rawFile(good, 12), 'trailing_bytes', { tensor: 'w', end: 8, dataLength: 12 });
  });

  test('overlapping data offsets name both tensors', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    assertSafetensorsError(rawFile(header, 12), 'overlap', { tensor: 'b', neighbour: 'a', data_offsets: [4, 12] });
  });

  test('a gap between tensors names both tensors', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } };
    assertSafetensorsError(rawFile(header, 20), 'gap', { tensor: 'b', neighbour: 'a', data_offsets: [12, 20] });
  });

  test('a gap before the first tensor has no neighbour', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    assertSafetensorsError(rawFile(header, 12), 'gap', { tensor: 'a', neighbour: null });
  });

  test('data offsets that do not match shape × dtype size', () => {
    const header = { w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } };
    assertSafetensorsError(rawFile(header, 8), 'size_mismatch', { tensor: 'w', expectedBytes: 12 });
  });

  test('an unknown dtype is named with the supported ones', () => {
    const header = { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } };
    assertSafetensorsError(rawFile(header, 2), 'bad_dtype', { tensor: 'w', dtype: 'F8_E4M3' });
  });

  test('a negative or fractional shape', () => {
    const header = { w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } };
    assertSafetensorsError(rawFile(header, 8), 'bad_shape', { tensor: 'w', shape: [2, -1] });
  });

  test('a tensor name that appears twice', () => {
    const text = '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    assertSafetensorsError(rawFile(text, 2), 'duplicate_key', { duplicates: ['w'] });
  });

  test('metadata values that are not strings', () => {
    const header = { __metadata__: { epoch: 3 }, ...good };
    assertSafetensorsError(rawFile(header, 8), 'bad_metadata', { key: 'epoch' });
  });
});

describe('shared fixtures', () => {
  const tiny = ['expected_vqa.safetensors', 'expected_vqa_fp16.safetensors', 'expected_pt.safetensors', 'inputs.safetensors'];
  for (const name of tiny) {
    test(`bridgetower-tiny/${name} opens and every tensor reads`, (t) => {
      const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', name);
      if (!path) return;
      const tensors = readSafetensors(path);
      assert.ok(tensors.size > 0);
      for (const [tensorName, { dtype, shape, data }] of tensors) {
        assert.equal(data.length, numel(shape) * DTYPES[dtype].bytes, tensorName);
      }
    });
  }
  for (const model of ['itm', 'mlm', 'contrastive']) {
    test(`bridgetower-hf/${model}/model.safetensors opens and its floats decode`, (t) => {
      const path = sharedFixture(t, 'fixtures', 'bridgetower-hf', model, 'model.safetensors');
      if (!path) return;
      const tensors = readSafetensors(path);
      for (const { dtype, data } of tensors.values()) {
        if (DTYPES[dtype].isFloat) assert.ok(toFloat32(dtype, data).every(Number.isFinite));
      }
    });
  }
});
