import { dimensionMismatch, type Change, type ChangePage, type GalleryStore, type ItemInput, type ListPage, type StoredItem } from './gallery-store.js';

/**
 * A gallery store in this process's memory (`--gallery memory:`, and the servers tests build
 * around fake models): the same contract as the database backends, nothing kept after exit.
 */
export class MemoryGalleryStore implements GalleryStore {
  readonly location = 'memory:';
  private readonly items = new Map<string, StoredItem>();
  private readonly images = new Map<string, Uint8Array>();
  private readonly changes: Array<{ seq: number; id: string }> = [];

  constructor(readonly bundle: string) {}

  async put(input: ItemInput): Promise<StoredItem> {
    const dim = this.items.values().next().value?.itc.length;
    if (dim !== undefined && dim !== input.itc.length && !(this.items.size === 1 && this.items.has(input.id))) {
      throw dimensionMismatch(input.id, this.bundle, input.itc.length, dim);
    }
    const now = new Date().toISOString();
    const item: StoredItem = {
      id: input.id,
      hash: input.hash,
      itc: Float32Array.from(input.itc),
      metadata: structuredClone(input.metadata),
      createdAt: this.items.get(input.id)?.createdAt ?? now,
      updatedAt: now,
    };
    this.items.set(input.id, item);
    this.images.set(input.hash, Uint8Array.from(input.image));
    this.log(input.id);
    return item;
  }

  async delete(id: string): Promise<boolean> {
    if (!this.items.delete(id)) return false;
    this.log(id);
    return true;
  }

  async get(id: string): Promise<StoredItem | undefined> {
    return this.items.get(id);
  }

  async image(id: string): Promise<{ hash: string; bytes: Uint8Array } | undefined> {
    const item = this.items.get(id);
    const bytes = item && this.images.get(item.hash);
    return bytes && { hash: item.hash, bytes };
  }

  async list(page: ListPage): Promise<{ items: StoredItem[]; total: number }> {
    const after = page.after ?? '';
    const ids = [...this.items.keys()].filter((id) => id > after).sort();
    return { items: ids.slice(0, page.limit).map((id) => this.items.get(id)!), total: this.items.size };
  }

  async scan(each: (item: StoredItem) => void): Promise<number> {
    for (const item of this.items.values()) each(item);
    return this.changes.at(-1)?.seq ?? 0;
  }

  async changesSince(cursor: number, limit: number): Promise<ChangePage> {
    const changes = this.changes
      .filter((change) => change.seq > cursor)
      .slice(0, limit)
      .map((change) => ({ ...change, item: this.items.get(change.id) }));
    // One process, gone with it: nothing is ever pruned.
    return { changes, pruned: false };
  }

  async close(): Promise<void> {}

  private log(id: string): void {
    this.changes.push({ seq: this.changes.length + 1, id });
  }
}
