/**
 * A small seeded mutator for fuzz tests: the same seed gives the same mutations on every machine,
 * so a failing case is replayed from its seed alone. Mutations are the ones that break binary
 * readers: bit flips, truncation, spliced and deleted chunks, and length or count fields set to
 * the values that overflow (0, -1, 2^31, 2^32 - 1, the file size and nearby).
 */

// The demo bundle's mulberry32: one seeded generator for the whole project's fixtures.
export { seededRandom } from '../../convert/demo/random-weights.js';

type Random = () => number;
const int = (rnd: Random, n: number): number => Math.floor(rnd() * n);

/** Values that overflow counts and lengths, for a field of `bytes` bytes in a file of `size` bytes. */
function hostileValue(rnd: Random, bytes: 1 | 2 | 4 | 8, size: number): bigint {
  const max = (1n << BigInt(bytes * 8)) - 1n;
  const choices = [0n, 1n, max, max >> 1n, (max >> 1n) + 1n, BigInt(size), BigInt(size + 1), BigInt(Math.max(0, size - 1)), BigInt(size * 2), 1n << 31n, 1n << 32n, 1n << 40n];
  return choices[int(rnd, choices.length)]! & max;
}

function writeLE(bytes: Buffer, at: number, width: 1 | 2 | 4 | 8, value: bigint): void {
  for (let i = 0; i < width; i++) bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}

export const MUTATIONS = {
  bitFlip(input: Buffer, rnd: Random): Buffer {
    const out = Buffer.from(input);
    const flips = 1 + int(rnd, 4);
    for (let i = 0; i < flips && out.length > 0; i++) out[int(rnd, out.length)]! ^= 1 << int(rnd, 8);
    return out;
  },
  randomByte(input: Buffer, rnd: Random): Buffer {
    const out = Buffer.from(input);
    if (out.length > 0) out[int(rnd, out.length)] = [0x00, 0xff, 0x7f, 0x80, int(rnd, 256)][int(rnd, 5)]!;
    return out;
  },
  truncate(input: Buffer, rnd: Random): Buffer {
    return input.subarray(0, int(rnd, input.length));
  },
  deleteChunk(input: Buffer, rnd: Random): Buffer {
    const at = int(rnd, input.length);
    const length = 1 + int(rnd, Math.min(64, input.length - at));
    return Buffer.concat([input.subarray(0, at), input.subarray(at + length)]);
  },
  /** Copies a chunk of the input elsewhere into it (duplicated records, repeated opcodes). */
  spliceChunk(input: Buffer, rnd: Random): Buffer {
    const from = int(rnd, input.length);
    const chunk = input.subarray(from, from + 1 + int(rnd, 64));
    const at = int(rnd, input.length + 1);
    return Buffer.concat([input.subarray(0, at), chunk, input.subarray(at)]);
  },
  /** Overwrites a 1-, 2-, 4- or 8-byte little-endian field with a hostile length or count. */
  lengthField(input: Buffer, rnd: Random): Buffer {
    const width = ([1, 2, 4, 8] as const)[int(rnd, 4)]!;
    if (input.length < width) return Buffer.from(input);
    const out = Buffer.from(input);
    writeLE(out, int(rnd, input.length - width + 1), width, hostileValue(rnd, width, input.length));
    return out;
  },
  /** A field that already holds a small count (1..4096) multiplied into a huge one: the likeliest real count. */
  hugeCount(input: Buffer, rnd: Random): Buffer {
    const out = Buffer.from(input);
    for (let tries = 0; tries < 32 && out.length >= 4; tries++) {
      const at = int(rnd, out.length - 3);
      const value = out.readUInt32LE(at);
      if (value >= 1 && value <= 4096) {
        out.writeUInt32LE([0xffffffff, 0x7fffffff, 0x80000000, value * 65536][int(rnd, 4)]! >>> 0, at);
        return out;
      }
    }
    return MUTATIONS.lengthField(input, rnd);
  },
} satisfies Record<string, (input: Buffer, rnd: Random) => Buffer>;

export type MutationName = keyof typeof MUTATIONS;
const NAMES = Object.keys(MUTATIONS) as MutationName[];

/** One to three mutations in a row, chosen by `rnd`; returns the bytes and what was done. */
export function mutate(input: Buffer, rnd: Random): { bytes: Buffer; steps: MutationName[] } {
  let bytes = input;
  const steps: MutationName[] = [];
  const count = 1 + int(rnd, 3);
  for (let i = 0; i < count; i++) {
    const name = NAMES[int(rnd, NAMES.length)]!;
    steps.push(name);
    bytes = MUTATIONS[name](bytes, rnd);
  }
  return { bytes, steps };
}
