import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { unpickle } from '../../convert/torch/pickle-allowlist.js';
import { MAX_PICKLE_DEPTH } from '../../convert/torch/unpickled-graph.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { openInChild } from '../helpers/open-in-child.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeTorchCheckpoint } from '../helpers/torch-writer.js';
import { childTimeoutMs } from '../helpers/child-timeout.js';

// Hostile pickles (issue #11): each was a hang, a memory bomb or an untyped crash before the
// opcode scan (convert/torch/pickle-scan.ts) and the graph check (convert/torch/unpickled-graph.ts).

const PROTO2 = Buffer.from([0x80, 0x02]);
const STOP = Buffer.from('.');
const pickle = (...parts: (Buffer | string | number[])[]): Buffer =>
  Buffer.concat([PROTO2, ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))), STOP]);
const u32 = (n: number): number[] => [...Buffer.from(new Uint32Array([n >>> 0]).buffer)];
const u64 = (n: bigint): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return [...b];
};
const shortUnicode = (s: string): number[] => [0x8c, s.length, ...Buffer.from(s, 'latin1')];

function refusal(fn: () => unknown): BridgeTowerError {
  let caught: unknown;
  assert.throws(fn, (err) => ((caught = err), true));
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String((caught as Error)?.stack ?? caught)}`);
  return caught;
}

const read = (bytes: Buffer) => unpickle(bytes, { label: 'test.pkl', persistentLoad: () => assert.fail('no storages here') });

test('a checkpoint whose BINBYTES has a negative length is refused at once instead of re-reading its bytes forever', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'loop.ckpt');
  // BINBYTES with length 0xfffffffb: pickleparser reads it as -5 and steps back onto the same opcode.
  writeTorchCheckpoint(path, { tensors: [], rawPickle: pickle([0x42, ...u32(-5)]) });
  assert.ok(statSync(path).size < 1024, 'a few hundred bytes are enough');
  const child = openInChild(path, { timeoutMs: childTimeoutMs(18_000) });
  assert.notEqual(child.outcome, 'timeout', 'the reader loops on a negative BINBYTES length');
  assert.deepEqual([child.outcome, child.code, child.reason], ['typed', 'E_CHECKPOINT_FORMAT', 'pickle_truncated'], child.message ?? child.stderr);
});

test('every length-prefixed opcode whose length reaches past the pickle is refused as truncated', () => {
  const cases: Record<string, number[]> = {
    'BINBYTES (u32, "negative")': [0x42, ...u32(0x80000000)],
    'BINUNICODE (u32)': [0x58, ...u32(1000), 0x61],
    'BINSTRING (u32)': [0x54, ...u32(0xffffffff)],
    'SHORT_BINBYTES (u8)': [0x43, 200, 1, 2],
    'SHORT_BINUNICODE (u8)': [0x8c, 9, 0x61],
    'LONG1 (u8)': [0x8a, 50, 1],
    'LONG4 (u32)': [0x8b, ...u32(1 << 30)],
    'BINBYTES8 (u64)': [0x8e, ...u64(1n << 62n)],
    'BINUNICODE8 (u64)': [0x8d, ...u64(0xffffffffffffffffn)],
    'BYTEARRAY8 (u64)': [0x96, ...u64(40n)],
    'FRAME (u64)': [0x95, ...u64(1n << 40n)],
    'LONG_BINPUT cut off': [0x4e, 0x72, 1, 0],
  };
  for (const [name, body] of Object.entries(cases)) {
    // No STOP appended after a cut-off argument: the pickle simply ends there.
    const bytes = Buffer.concat([PROTO2, Buffer.from(body)]);
    const error = refusal(() => read(bytes));
    assert.equal(error.code, 'E_CHECKPOINT_FORMAT', name);
    assert.equal(error.details.reason, 'pickle_truncated', `${name}: ${error.message}`);
  }
});

test('an opcode outside the pickle protocols is refused by name and offset', () => {
  const error = refusal(() => read(pickle([0x4e, 0xff])));
  assert.equal(error.details.reason, 'pickle_unknown_opcode');
  assert.match(error.message, /0xff at byte 3/);
});

test('metadata nested 20,000 levels deep is refused as too deep, not a stack overflow', (t) => {
  // NONE, then TUPLE1 20,000 times: ((((None,),),),…) — the parser's stack never grows, the nesting does.
  const deep = pickle([0x4e, ...new Array<number>(20_000).fill(0x85)]);
  assert.equal(refusal(() => read(deep)).details.reason, 'pickle_too_deep');

  const path = join(tempDir(t), 'deep.ckpt');
  writeTorchCheckpoint(path, {
    tensors: [],
    rawPickle: pickle([0x7d], shortUnicode('hyper_parameters'), [0x4e, ...new Array<number>(20_000).fill(0x85)], [0x73]),
  });
  const error = refusal(() => openTorchCheckpoint(path));
  assert.deepEqual([error.code, error.details.reason], ['E_CHECKPOINT_FORMAT', 'pickle_too_deep'], error.message);
});

test(`nesting up to ${MAX_PICKLE_DEPTH} levels still reads`, () => {
  const value = read(pickle([0x4e, ...new Array<number>(MAX_PICKLE_DEPTH - 1).fill(0x85)]));
  let depth = 0;
  for (let v: unknown = value; Array.isArray(v); v = v[0]) depth++;
  assert.equal(depth, MAX_PICKLE_DEPTH - 1);
});

test('a list shared twice per level (2^60 values once written out) is refused before it is expanded', () => {
  // NONE, then (DUP, TUPLE2) 60 times: 121 bytes whose metadata would hold 2^60 values.
  const bomb = pickle([0x4e, ...new Array<number>(60).fill(0).flatMap(() => [0x32, 0x86])]);
  assert.equal(refusal(() => read(bomb)).details.reason, 'pickle_too_many_values');
});

test("a BUILD that gives a list a '__proto__' key is refused", () => {
  // EMPTY_LIST, EMPTY_DICT, '__proto__' → None, SETITEM, BUILD: Object.assign would replace the list's prototype.
  const error = refusal(() => read(pickle([0x5d, 0x7d], shortUnicode('__proto__'), [0x4e, 0x73, 0x62])));
  assert.deepEqual([error.code, error.details.reason], ['E_CHECKPOINT_FORMAT', 'pickle_prototype_key']);
});

test("a BUILD that shadows a list's own method, or a protocol-0 DICT that shadows Map.get, is refused", () => {
  const shadowMap = pickle([0x5d, 0x7d], shortUnicode('map'), [0x4b, 1, 0x73, 0x62]);
  assert.equal(refusal(() => read(shadowMap)).details.reason, 'pickle_tampered_object');
  // MARK 'get' 1 DICT: pickleparser sets dict['get'] = 1 on the Map; a reader's top.get(...) would then throw a TypeError.
  const shadowGet = pickle([0x28], shortUnicode('get'), [0x4b, 1, 0x64]);
  assert.equal(refusal(() => read(shadowGet)).details.reason, 'pickle_tampered_object');
});

test('a plain pickle of containers still reads as before', () => {
  // {'a': [1, 2], 'b': (None, True)}
  const value = read(pickle([0x7d, 0x28], shortUnicode('a'), [0x5d, 0x28, 0x4b, 1, 0x4b, 2, 0x65], shortUnicode('b'), [0x4e, 0x88, 0x86, 0x75]));
  assert.deepEqual(value, new Map<unknown, unknown>([['a', [1, 2]], ['b', [null, true]]]));
});

test("pickleparser's precision warning for a huge integer never reaches the console", (t) => {
  const warnings: unknown[][] = [];
  t.mock.method(console, 'warn', (...args: unknown[]) => void warnings.push(args));
  // LONG1 with 8 bytes: 2^63 - 1, beyond Number.MAX_SAFE_INTEGER.
  const value = read(pickle([0x8a, 8, ...u64(0x7fffffffffffffffn)]));
  assert.equal(typeof value, 'number');
  assert.deepEqual(warnings, []);
});
