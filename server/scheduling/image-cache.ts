import { createHash } from 'node:crypto';
import { NO_METRICS, type RuntimeMetrics } from '../runtime-metrics.js';
import type { ImageEncoding } from '../model-service.js';

/** Bookkeeping per entry beyond its arrays (key, Map node, objects): small next to [L, N, H] floats. */
const ENTRY_OVERHEAD_BYTES = 256;

/** The cache key of an image: sha256 of its encoded bytes, hex. */
export function imageHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes an encoding holds in memory. */
export function encodingBytes(encoding: ImageEncoding): number {
  return encoding.embeds.byteLength + (encoding.itc?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES;
}

/**
 * Least-recently-used image encodings within a byte budget. Keyed by the hash of the *encoded*
 * bytes, so a second question about the same upload skips decoding, resizing and the vision
 * encoder (the dominant cost: 1297 tokens per image at 576 px against ~50 per text). One entry is
 * L × N × H floats (≈ 24 MB for BASE at 576 px), so the budget is in bytes, not entries.
 * A Map iterates in insertion order: re-inserting on each hit keeps the oldest use first.
 */
export class ImageCache {
  private readonly entries = new Map<string, ImageEncoding>();
  private used = 0;
  private hitCount = 0;
  private missCount = 0;

  constructor(
    /** Byte budget; 0 disables the cache. */
    readonly budgetBytes: number,
    private readonly metrics: RuntimeMetrics = NO_METRICS,
  ) {}

  static fromMegabytes(cacheMb: number, metrics?: RuntimeMetrics): ImageCache {
    return new ImageCache(Math.max(0, Math.floor(cacheMb * 1024 * 1024)), metrics);
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
    return entry;
  }

  /** Stores an encoding, evicting the least recently used until it fits; one larger than the budget is not kept. */
  set(encoding: ImageEncoding): void {
    const size = encodingBytes(encoding);
    if (size > this.budgetBytes) return;
    this.delete(encoding.hash);
    while (this.used + size > this.budgetBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
    }
    this.entries.set(encoding.hash, encoding);
    this.used += size;
  }

  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  delete(hash: string): void {
    const entry = this.entries.get(hash);
    if (!entry) return;
    this.entries.delete(hash);
    this.used -= encodingBytes(entry);
  }

  get stats(): { entries: number; bytes: number; budgetBytes: number; hits: number; misses: number } {
    return { entries: this.entries.size, bytes: this.used, budgetBytes: this.budgetBytes, hits: this.hitCount, misses: this.missCount };
  }
}
