import { BridgeTowerError } from '../common/errors.js';
import { dot } from '../runtime/task-results.js';
import type { ImageInput } from './image-input.js';
import type { SearchableGallery } from './task-pipeline.js';

/** One gallery image's encodings: its ITC feature (for candidates) and image-encoder output (for re-ranking). */
export interface GalleryEncoding {
  itc: Float32Array;
  embeds: Float32Array;
}

/**
 * An in-memory image gallery for `BridgeTower#search`: exact (brute-force) cosine over the ITC
 * features, which is what upstream's retrieval evaluation does. For a persistent or approximate
 * index, serve the bundle (`bridgetower serve`, docs/server.md) and use its /gallery routes.
 */
export class MemoryGallery implements SearchableGallery {
  private readonly items = new Map<string, GalleryEncoding>();

  constructor(
    /** Encodes images for `add` (the model's image encoder). */
    private readonly encode: (images: readonly ImageInput[]) => Promise<GalleryEncoding[]>,
  ) {}

  get size(): number {
    return this.items.size;
  }

  ids(): string[] {
    return [...this.items.keys()];
  }

  has(id: string): boolean {
    return this.items.has(id);
  }

  delete(id: string): boolean {
    return this.items.delete(id);
  }

  /** Encodes the images (batched) and stores them under their ids; an id already present is replaced. */
  async add(items: ReadonlyArray<{ id: string; image: ImageInput }>): Promise<void> {
    const seen = new Set<string>();
    for (const { id } of items) {
      if (typeof id !== 'string' || id === '') throw new BridgeTowerError('E_USAGE', `gallery ids are non-empty strings, got ${JSON.stringify(id)}`);
      if (seen.has(id)) throw new BridgeTowerError('E_USAGE', `gallery id '${id}' appears twice in one add(): give each image its own id`, { id });
      seen.add(id);
    }
    const encodings = await this.encode(items.map((item) => item.image));
    items.forEach(({ id }, i) => this.items.set(id, encodings[i]!));
  }

  async nearest(query: Float32Array, n: number): Promise<Array<{ id: string; similarity: number }>> {
    const scored = [...this.items].map(([id, { itc }]) => ({ id, similarity: dot(query, itc) }));
    // Best first; ties keep insertion order, as a stable sort.
    return scored.sort((a, b) => b.similarity - a.similarity).slice(0, Math.max(0, n));
  }

  async embeds(id: string): Promise<Float32Array | undefined> {
    return this.items.get(id)?.embeds;
  }
}
