import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { BridgeTowerError } from '../../common/errors.js';
import { fmaFloat, resizePositionEmbedding } from '../../convert/position-embedding.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * Reads the F32 tensors of a safetensors file. Deliberately minimal and local: the project's real
 * reader lives in convert/, and this test must not depend on the code it helps to check.
 */
function readF32Tensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__' || entry.dtype !== 'F32') continue;
    const [begin, end] = entry.data_offsets;
    const raw = bytes.subarray(8 + headerLength + begin, 8 + headerLength + end);
    // Copy: the slice of a Node Buffer need not be 4-byte aligned.
    tensors.set(name, { shape: entry.shape, data: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)) });
  }
  return tensors;
}

function maxAbsDifference(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Deterministic values in [-1, 1), so the tests need no fixture. */
function pseudoRandomTable(rows: number, width: number, seed: number): Float32Array {
  const table = new Float32Array(rows * width);
  let state = seed;
  for (let i = 0; i < table.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    table[i] = state / 2 ** 31 - 1;
  }
  return table;
}

/**
 * PyTorch evaluates the cubic weights in float; their cancellation error (up to ~2e-7 each, 16 taps)
 * puts its output up to ~1e-6 away from exact arithmetic on values of magnitude 1 — by design, since
 * upstream's numbers are the target. The reference checks layout and formula, not those last bits.
 */
const FLOAT_WEIGHT_TOLERANCE = 4e-6;

/**
 * Textbook bicubic resize in double precision, written independently of the module (2-D weight
 * products, clamped taps): the float32 kernel must stay within float rounding of it.
 */
function referenceResize(table: Float32Array, width: number, from: number, to: number): Float64Array {
  const A = -0.75;
  const kernel = (d: number): number => {
    const x = Math.abs(d);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0;
  };
  const taps = (o: number): Array<[number, number]> => {
    const src = (o + 0.5) * (from / to) - 0.5;
    const base = Math.floor(src);
    return [-1, 0, 1, 2].map((d) => [Math.min(Math.max(base + d, 0), from - 1), kernel(src - (base + d))]);
  };
  const out = new Float64Array((to * to + 1) * width);
  for (let c = 0; c < width; c++) out[c] = table[c]!;
  for (let oy = 0; oy < to; oy++) {
    for (let ox = 0; ox < to; ox++) {
      for (const [y, wy] of taps(oy)) {
        for (const [x, wx] of taps(ox)) {
          for (let c = 0; c < width; c++) out[(1 + oy * to + ox) * width + c]! += wy * wx * table[(1 + y * from + x) * width + c]!;
        }
      }
    }
  }
  return out;
}

test('resizing the 2x2 grid of pt_res32 to 3x3 reproduces upstream adapt_position_encoding bit for bit', (t) => {
  const path = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'expected_pt_res32_at48.safetensors');
  if (!path) return;
  const tensors = readF32Tensors(path);
  const before = tensors.get('positional_embedding_res32');
  const after = tensors.get('positional_embedding_at48');
  assert.ok(before && after, 'the fixture holds positional_embedding_res32 and positional_embedding_at48');
  assert.deepEqual(before.shape, [5, 128]);
  assert.deepEqual(after.shape, [10, 128]);

  const resized = resizePositionEmbedding(before.data, 5, 128, 2, 3);
  assert.equal(maxAbsDifference(resized, after.data), 0);
});

test('the class-token row is copied unchanged', () => {
  const table = pseudoRandomTable(17, 8, 1);
  const resized = resizePositionEmbedding(table, 17, 8, 4, 6);
  assert.deepEqual(resized.subarray(0, 8), table.subarray(0, 8));
});

test('resizing to the same grid returns the table unchanged', () => {
  const table = pseudoRandomTable(50, 16, 2);
  assert.deepEqual(resizePositionEmbedding(table, 50, 16, 7, 7), table);
});

test('upscaling 4x4 to 7x7 stays within float rounding of a double-precision bicubic reference', () => {
  const table = pseudoRandomTable(17, 32, 3);
  const resized = resizePositionEmbedding(table, 17, 32, 4, 7);
  assert.equal(resized.length, 50 * 32);
  assert.ok(maxAbsDifference(resized, referenceResize(table, 32, 4, 7)) < FLOAT_WEIGHT_TOLERANCE);
});

test('downscaling 6x6 to 4x4 samples without antialiasing, within float rounding of the reference', () => {
  const table = pseudoRandomTable(37, 32, 4);
  const resized = resizePositionEmbedding(table, 37, 32, 6, 4);
  assert.equal(resized.length, 17 * 32);
  assert.ok(maxAbsDifference(resized, referenceResize(table, 32, 6, 4)) < FLOAT_WEIGHT_TOLERANCE);
});

test('the grid is laid out row-major: a ramp along x stays constant along y', () => {
  const from = 3;
  const table = new Float32Array((from * from + 1) * 1);
  for (let y = 0; y < from; y++) for (let x = 0; x < from; x++) table[1 + y * from + x] = x;
  const to = 5;
  const resized = resizePositionEmbedding(table, 10, 1, from, to);
  for (let x = 0; x < to; x++) {
    const column = Array.from({ length: to }, (_, y) => resized[1 + y * to + x]);
    // Constant up to float rounding: the y weights sum to 1 only within a few ulp.
    assert.ok(column.every((v) => Math.abs(v! - column[0]!) < 1e-6), `column ${x} is constant: ${column.join(', ')}`);
  }
  assert.ok(resized[1]! < resized[to]!, 'values grow along x');
});

test('a row count that does not match the grid is rejected with the expected count', () => {
  const table = pseudoRandomTable(10, 4, 5);
  assert.throws(
    () => resizePositionEmbedding(table, 10, 4, 4, 6),
    (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_ARCHITECTURE' && /needs 17 rows, the table has 10/.test(error.message),
  );
});

test('a table whose length is not tokens x width is rejected', () => {
  assert.throws(
    () => resizePositionEmbedding(new Float32Array(39), 10, 4, 3, 4),
    (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_ARCHITECTURE' && /need 40 values, the table holds 39/.test(error.message),
  );
});

test('a grid size that is not a positive integer is rejected', () => {
  assert.throws(
    () => resizePositionEmbedding(new Float32Array(40), 10, 4, 3, 0),
    (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_ARCHITECTURE' && /toGrid must be a positive integer/.test(error.message),
  );
});

test('the float32 fused multiply-add rounds once, even where the double sum lands on a float midpoint', () => {
  const a = Math.fround(1 + 2 ** -12);
  // a*a = 1 + 2^-11 + 2^-24: exactly halfway between two floats, so ties-to-even applies …
  assert.equal(fmaFloat(a, a, 0), 1 + 2 ** -11);
  // … unless a tiny addend (lost in the double sum) tips it upward.
  assert.equal(fmaFloat(a, a, 2 ** -60), 1 + 2 ** -11 + 2 ** -23);
  assert.equal(fmaFloat(a, a, -(2 ** -60)), 1 + 2 ** -11);
  // Separate rounding of the product would lose the 2^-24 term entirely.
  assert.equal(fmaFloat(a, a, -1), 2 ** -11 + 2 ** -24);
});
