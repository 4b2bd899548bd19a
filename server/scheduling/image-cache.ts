import { createHash } from 'node:crypto';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../bundle/tensors/dtype-convert.js';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import type { ImageEncoding } from '../model-service.js';

/** Bookkeeping per entry beyond its arrays (key, Map node, objects): small next to [L, N, H] floats. */
const ENTRY_OVERHEAD_BYTES = 256;

/** How a cache holds the [L, N, H] embeddings: as computed, or as IEEE half (half the bytes). */
export const CACHE_STORAGES = ['float32', 'float16'] as const;
export type CacheStorage = (typeof CACHE_STORAGES)[number];

/** An entry as held: the embeddings in the storage's array type. */
interface HeldEncoding {
  hash: string;
  itc?: Float32Array;
  embeds: Float32Array | Uint16Array;
}

/** half bits → float32, all 65,536 of them: decoding an entry is one lookup per value. */
let halfTable: Float32Array | undefined;

/**
 * The storages, as a table: how an encoding is packed on `set` and unpacked on `get`. float16
 * rounds to nearest even (as torch's `.half()`); it is for the gallery's re-ranking cache, where
 * ITM logits from half-stored embeddings stay within 1e-3 of float32's (tested:
 * test/server/gallery-cache-fp16.test.ts). The ITC feature stays float32: it is small.
 */
const STORAGES: Record<CacheStorage, { bytes: number; pack(embeds: Float32Array): HeldEncoding['embeds']; unpack(held: HeldEncoding['embeds']): Float32Array }> = {
  float32: { bytes: 4, pack: (embeds) => embeds, unpack: (held) => held as Float32Array },
  float16: {
    bytes: 2,
    pack(embeds) {
      const half = new Uint16Array(embeds.length);
      for (let i = 0; i < embeds.length; i++) half[i] = float32ToFloat16Bits(embeds[i]!);
      return half;
    },
    unpack(held) {
      halfTable ??= Float32Array.from({ length: 65536 }, (_, bits) => float16BitsToFloat32(bits));
      const table = halfTable;
      const out = new Float32Array(held.length);
      for (let i = 0; i < held.length; i++) out[i] = table[held[i]!]!;
      return out;
    },
  },
};

/** The cache key of an image: sha256 of its encoded bytes, hex. */
export function imageHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes an encoding holds in memory, stored as `storage`. */
export function encodingBytes(encoding: ImageEncoding | HeldEncoding, storage: CacheStorage = 'float32'): number {
  return encoding.embeds.length * STORAGES[storage].bytes + (encoding.itc?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES;
}

/**
 * Least-recently-used image encodings within a byte budget. Keyed by the hash of the *encoded*
 * bytes, so a second question about the same upload skips decoding, resizing and the vision
 * encoder (the dominant cost: 1297 tokens per image at 576 px against ~50 per text). One entry is
 * L × N × H floats (≈ 24 MB for BASE at 576 px), so the budget is in bytes, not entries.
 * A Map iterates in insertion order: re-inserting on each hit keeps the oldest use first.
 */
export class ImageCache {
  private readonly entries = new Map<string, HeldEncoding>();
  private used = 0;
  private hitCount = 0;
  private missCount = 0;

  constructor(
    /** Byte budget; 0 disables the cache. */
    readonly budgetBytes: number,
    private readonly metrics: RuntimeMetrics = NO_METRICS,
    readonly storage: CacheStorage = 'float32',
  ) {}

  static fromMegabytes(cacheMb: number, metrics?: RuntimeMetrics, storage?: CacheStorage): ImageCache {
    return new ImageCache(Math.max(0, Math.floor(cacheMb * 1024 * 1024)), metrics, storage);
  }

  /** The encoding for `hash`, marked as just used; undefined (a miss) when absent. */
  get(hash: string): ImageEncoding | undefined {
    const entry = this.entries.get(hash);
    if (entry) {
      this.entries.delete(hash);
      this.entries.set(hash, entry);
      this.hitCount++;
    } else {
      this.missCount++;
    }
    this.metrics.cache(entry !== undefined);
    return entry && { ...entry, embeds: STORAGES[this.storage].unpack(entry.embeds) };
  }

  /** Stores an encoding, evicting the least recently used until it fits; one larger than the budget is not kept. */
  set(encoding: ImageEncoding): void {
    const size = encodingBytes(encoding, this.storage);
    if (size > this.budgetBytes) return;
    const held: HeldEncoding = { ...encoding, embeds: STORAGES[this.storage].pack(encoding.embeds) };
    this.delete(encoding.hash);
    while (this.used + size > this.budgetBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
    }
    this.entries.set(encoding.hash, held);
    this.used += size;
  }

  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  delete(hash: string): void {
    const entry = this.entries.get(hash);
    if (!entry) return;
    this.entries.delete(hash);
    this.used -= encodingBytes(entry, this.storage);
  }

  get stats(): { entries: number; bytes: number; budgetBytes: number; hits: number; misses: number } {
    return { entries: this.entries.size, bytes: this.used, budgetBytes: this.budgetBytes, hits: this.hitCount, misses: this.missCount };
  }
}
