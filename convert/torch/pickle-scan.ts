import { BridgeTowerError } from '../../common/errors.js';

/**
 * Walks a pickle's opcode stream before pickleparser sees it, so that every length field is
 * checked against the bytes that remain and the position only ever moves forwards. pickleparser
 * trusts what it reads: a BINBYTES with a "negative" length (it reads the u32 as signed) moves its
 * position backwards, and it re-reads the same bytes forever. After this scan the parser is handed
 * exactly the bytes up to the STOP opcode, all of them known to be well formed.
 * Opcodes and argument layouts: CPython Lib/pickletools.py (protocols 0–5).
 */

/** At most this many opcodes per pickle: each builds at most a few objects, so memory stays bounded (~100 B each). */
export const MAX_PICKLE_OPCODES = 4_000_000;

type Argument =
  | { readonly kind: 'none' }
  | { readonly kind: 'fixed'; readonly bytes: number }
  | { readonly kind: 'lines'; readonly count: number }
  /** A little-endian unsigned length of `bytes` bytes, then that many payload bytes. */
  | { readonly kind: 'counted'; readonly bytes: 1 | 4 | 8; readonly text?: boolean };

const NONE: Argument = { kind: 'none' };
const fixed = (bytes: number): Argument => ({ kind: 'fixed', bytes });
const lines = (count: number): Argument => ({ kind: 'lines', count });
const counted = (bytes: 1 | 4 | 8, text = false): Argument => ({ kind: 'counted', bytes, text });

/** Opcode byte → its argument layout (pickletools' `opcodes` table); anything else is refused. */
const OPCODES: ReadonlyMap<number, Argument> = new Map(
  (
    [
      // No argument: stack and memo manipulation, containers, calls.
      ['(', NONE], ['.', NONE], ['0', NONE], ['1', NONE], ['2', NONE], ['N', NONE], [0x88, NONE], [0x89, NONE],
      [')', NONE], ['t', NONE], [0x85, NONE], [0x86, NONE], [0x87, NONE], [']', NONE], ['l', NONE], ['a', NONE],
      ['e', NONE], ['}', NONE], ['d', NONE], ['s', NONE], ['u', NONE], [0x8f, NONE], [0x91, NONE], [0x90, NONE],
      [0x93, NONE], ['o', NONE], [0x81, NONE], [0x92, NONE], ['Q', NONE], ['R', NONE], ['b', NONE], [0x94, NONE],
      [0x97, NONE], [0x98, NONE],
      // Fixed-size arguments.
      [0x80, fixed(1)], ['q', fixed(1)], ['h', fixed(1)], ['K', fixed(1)], [0x82, fixed(1)],
      ['M', fixed(2)], [0x83, fixed(2)],
      ['r', fixed(4)], ['j', fixed(4)], ['J', fixed(4)], [0x84, fixed(4)],
      ['G', fixed(8)], [0x95, fixed(8)],
      // Newline-terminated text (protocol 0).
      ['p', lines(1)], ['g', lines(1)], ['I', lines(1)], ['L', lines(1)], ['F', lines(1)], ['S', lines(1)],
      ['V', lines(1)], ['P', lines(1)], ['c', lines(2)], ['i', lines(2)],
      // Length-prefixed payloads: the length is checked against the bytes left before anything is read.
      ['C', counted(1)], [0x8c, counted(1, true)], ['U', counted(1, true)], [0x8a, counted(1)],
      ['X', counted(4, true)], ['T', counted(4, true)], [0x8b, counted(4)], ['B', counted(4)],
      [0x8d, counted(8, true)], [0x8e, counted(8)], [0x96, counted(8)],
    ] as const
  ).map(([op, argument]) => [typeof op === 'string' ? op.charCodeAt(0) : op, argument]),
);
const STOP = 0x2e;
const FRAME = 0x95;
const NEWLINE = 0x0a;

/**
 * pickleparser's BUILD merges a state dict with Object.assign and its DICT opcode assigns keys as
 * properties: this one key would replace an object's prototype, so a pickle naming it is refused.
 */
const PROTOTYPE_KEY = '__proto__';

/**
 * Checks the pickle that starts at `start` in `bytes` and returns the offset just past its STOP
 * opcode. Errors are E_CHECKPOINT_FORMAT with `details.reason`: 'pickle_truncated' (the bytes end
 * before STOP, or a length reaches past them), 'pickle_unknown_opcode', 'pickle_too_many_opcodes',
 * 'pickle_prototype_key'.
 */
export function scanPickle(bytes: Uint8Array, start: number, label: string): number {
  const fail = (reason: string, why: string, details: Record<string, unknown> = {}): never => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${label}: not a readable pickle: ${why}`, { path: label, reason, ...details });
  };
  const end = bytes.length;
  const need = (at: number, count: number, what: string): void => {
    if (count > end - at) {
      fail('pickle_truncated', `${what} at byte ${at} needs ${count} bytes, but only ${end - at} remain: the pickle is truncated or corrupt`, {
        offset: at,
      });
    }
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = start;
  for (let count = 0; ; count++) {
    if (count >= MAX_PICKLE_OPCODES) {
      fail('pickle_too_many_opcodes', `more than ${MAX_PICKLE_OPCODES} opcodes; a checkpoint pickle holds far fewer (its data lies in storages)`);
    }
    need(p, 1, 'an opcode');
    const at = p;
    const opcode = bytes[p++]!;
    const argument = OPCODES.get(opcode);
    if (!argument) return fail('pickle_unknown_opcode', `unknown opcode 0x${opcode.toString(16).padStart(2, '0')} at byte ${at}`, { offset: at });
    if (opcode === STOP) return p;
    switch (argument.kind) {
      case 'none':
        break;
      case 'fixed':
        need(p, argument.bytes, `opcode 0x${opcode.toString(16)}`);
        // A frame only announces the length of what follows; it must not claim more than is there.
        if (opcode === FRAME) need(p + 8, readLength(view, p, 8), 'a frame');
        p += argument.bytes;
        break;
      case 'lines':
        for (let i = 0; i < argument.count; i++) {
          const newline = bytes.indexOf(NEWLINE, p);
          if (newline < 0) fail('pickle_truncated', `the text argument of opcode '${String.fromCharCode(opcode)}' at byte ${at} has no end of line`, { offset: at });
          if (isPrototypeKey(bytes.subarray(p, newline), true)) refusePrototypeKey(fail, at);
          p = newline + 1;
        }
        break;
      case 'counted': {
        need(p, argument.bytes, `the length of opcode 0x${opcode.toString(16)}`);
        const length = readLength(view, p, argument.bytes);
        p += argument.bytes;
        need(p, length, `the payload of opcode 0x${opcode.toString(16)} (at byte ${at})`);
        if (argument.text && isPrototypeKey(bytes.subarray(p, p + length), false)) refusePrototypeKey(fail, at);
        p += length;
        break;
      }
    }
  }
}

/** Unsigned little endian, as CPython reads every pickle length; a u64 beyond 2^53 is simply too long. */
function readLength(view: DataView, at: number, bytes: 1 | 4 | 8): number {
  if (bytes === 1) return view.getUint8(at);
  if (bytes === 4) return view.getUint32(at, true);
  const value = view.getBigUint64(at, true);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

const PROTOTYPE_KEY_BYTES = Buffer.from(PROTOTYPE_KEY, 'latin1');

/** The key itself, or (protocol-0 text) quoted as STRING writes it. */
function isPrototypeKey(payload: Uint8Array, quotedForm: boolean): boolean {
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (text.equals(PROTOTYPE_KEY_BYTES)) return true;
  return quotedForm && text.length === PROTOTYPE_KEY.length + 2 && text.subarray(1, -1).equals(PROTOTYPE_KEY_BYTES);
}

function refusePrototypeKey(fail: (reason: string, why: string, details?: Record<string, unknown>) => never, at: number): never {
  return fail(
    'pickle_prototype_key',
    `the string '${PROTOTYPE_KEY}' at byte ${at} is refused: as a dict key or attribute name it would alter JavaScript objects ` +
      '(no checkpoint needs it; re-save the checkpoint without it)',
    { offset: at },
  );
}
