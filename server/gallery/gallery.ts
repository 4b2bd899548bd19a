import { BridgeTowerError } from '../../common/errors.js';
import type { ImageEncoding, SearchableGallery } from '../model-service.js';
import { ImageCache, type CacheStorage } from '../scheduling/image-cache.js';
import { validateGalleryId, validateMetadata, type GalleryStore, type ListPage, type StoredItem } from './gallery-store.js';
import { DEFAULT_INDEX_OPTIONS, VectorIndex, type Metadata, type MetadataFilter, type Neighbor, type VectorIndexOptions } from './vector-index.js';

export interface GalleryOptions {
  /** Byte budget of the image-encoder outputs kept for re-ranking (--gallery-cache-mb). */
  cacheMb: number;
  /** How the cache holds encodings (--gallery-cache-dtype); float32 unless said. */
  cacheStorage?: CacheStorage;
  index?: VectorIndexOptions;
  /** How often the change log is read besides NOTIFY wake-ups and searches (ms). */
  pollMs?: number;
  /** Where a failed background sync is reported (once per outage). */
  warn?: (message: string) => void;
}

/** Changes read per round trip while catching up. */
const CHANGE_PAGE = 1000;
const DEFAULT_POLL_MS = 1000;

/** What a search over the gallery used, for its answer. */
export interface SearchSession extends SearchableGallery {
  /** Candidates whose encoding was not cached and whose stored image was encoded again. */
  readonly reencoded: number;
}

/**
 * One bundle's gallery as the routes use it: a store (the record: features, images, metadata),
 * the in-memory index of its ITC features (candidate search), and an LRU cache of image-encoder
 * outputs (re-ranking input), refilled by encoding a candidate's stored image again. The index
 * follows the store's change log: writes here, and writes by other replicas on a shared store,
 * reach it through the same `sync()`, which runs after every write, before every search, on
 * NOTIFY and every `pollMs`.
 */
export class Gallery {
  private index: VectorIndex | undefined;
  private readonly hashOf = new Map<string, string>();
  private readonly cache: ImageCache;
  private cursor = 0;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private readonly poller: NodeJS.Timeout;
  private outage = false;

  private constructor(
    readonly store: GalleryStore,
    private readonly options: GalleryOptions,
  ) {
    this.cache = ImageCache.fromMegabytes(options.cacheMb, undefined, options.cacheStorage);
    this.poller = setInterval(() => void this.backgroundSync(), options.pollMs ?? DEFAULT_POLL_MS);
    this.poller.unref();
  }

  /** Loads every item's feature into memory, then follows the store's changes. */
  static async open(store: GalleryStore, options: GalleryOptions): Promise<Gallery> {
    const gallery = new Gallery(store, options);
    try {
      gallery.cursor = await store.scan((item) => gallery.apply(item.id, item));
    } catch (error) {
      await gallery.close();
      throw error;
    }
    store.watch?.(() => void gallery.backgroundSync());
    return gallery;
  }

  get bundle(): string {
    return this.store.bundle;
  }

  /** Items in the index (as of the last sync). */
  get count(): number {
    return this.index?.size ?? 0;
  }

  /** Stores the image with its encoding (the encoding warms the cache); visible to searches when it resolves. */
  async put(input: { id: string; image: Uint8Array; encoding: ImageEncoding; metadata?: Metadata }): Promise<StoredItem> {
    const id = validateGalleryId(input.id);
    const metadata = validateMetadata(input.metadata ?? {}, id);
    const { itc, hash } = input.encoding;
    if (!itc) throw new BridgeTowerError('E_USAGE', `gallery item '${id}' has no ITC feature: fill the gallery with a bundle that has ITC heads`, { id });
    const stored = await this.store.put({ id, hash, itc, image: input.image, metadata });
    this.cache.set(input.encoding);
    await this.sync();
    return stored;
  }

  /** False when the id was not there. */
  async delete(id: string): Promise<boolean> {
    const removed = await this.store.delete(validateGalleryId(id));
    await this.sync();
    return removed;
  }

  get(id: string): Promise<StoredItem | undefined> {
    return this.store.get(validateGalleryId(id));
  }

  list(page: ListPage): Promise<{ items: StoredItem[]; total: number }> {
    return this.store.list(page);
  }

  /** The `n` items nearest `query` among those matching `filter`, as of now (syncs first). */
  async nearest(query: Float32Array, n: number, filter?: MetadataFilter): Promise<Neighbor[]> {
    await this.sync();
    return this.index?.nearest(query, n, filter) ?? [];
  }

  /** A view for one search: `filter` applied, re-encodings through `encode` and counted. */
  session(encode: (image: Uint8Array) => Promise<ImageEncoding>, filter?: MetadataFilter): SearchSession {
    let reencoded = 0;
    return {
      nearest: (query, n) => this.nearest(query, n, filter),
      embeds: async (id) => {
        const found = await this.encodingOf(id, encode);
        if (found?.reencoded) reencoded++;
        return found?.embeds;
      },
      get reencoded() {
        return reencoded;
      },
    };
  }

  /** Reads the change log from the cursor and applies it; concurrent callers share one pass that starts after their call. */
  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.startSync();
    this.queued = this.running.catch(() => {}).then(() => {
      this.queued = undefined;
      return this.startSync();
    });
    return this.queued;
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
    await this.running?.catch(() => {});
    await this.store.close();
  }

  private startSync(): Promise<void> {
    const pass = (async () => {
      for (;;) {
        const { changes, pruned } = await this.store.changesSince(this.cursor, CHANGE_PAGE);
        if (pruned) {
          await this.reload();
          continue;
        }
        for (const change of changes) {
          this.apply(change.id, change.item);
          this.cursor = change.seq;
        }
        if (changes.length < CHANGE_PAGE) return;
      }
    })();
    const running = pass.finally(() => {
      if (this.running === running) this.running = undefined;
    });
    this.running = running;
    return running;
  }

  /**
   * The log was pruned past the cursor (this replica was out of touch for longer than the
   * retention): the missed changes are unknown, so every item is read again and whatever the
   * snapshot lacks is removed. In place: unchanged items are no-ops for the index, so an HNSW
   * graph survives the reload.
   */
  private async reload(): Promise<void> {
    const seen = new Set<string>();
    const cursor = await this.store.scan((item) => {
      seen.add(item.id);
      this.apply(item.id, item);
    });
    const gone = [...this.hashOf.keys()].filter((id) => !seen.has(id));
    for (const id of gone) this.apply(id, undefined);
    this.options.warn?.(
      `the gallery of '${this.bundle}' fell behind the change log of ${this.store.location} (cursor ${this.cursor}, pruned past it): reloaded ${seen.size} item(s), ${gone.length} removed`,
    );
    this.cursor = cursor;
  }

  private async backgroundSync(): Promise<void> {
    try {
      await this.sync();
      if (this.outage) this.options.warn?.(`the gallery of '${this.bundle}' (${this.store.location}) is reachable again`);
      this.outage = false;
    } catch (error) {
      if (!this.outage) this.options.warn?.(`the gallery of '${this.bundle}' cannot follow ${this.store.location}: ${(error as Error).message}`);
      this.outage = true;
    }
  }

  private apply(id: string, item: StoredItem | undefined): void {
    if (!item) {
      this.index?.remove(id);
      this.hashOf.delete(id);
      return;
    }
    this.index ??= new VectorIndex(item.itc.length, this.options.index ?? DEFAULT_INDEX_OPTIONS);
    if (item.itc.length !== this.index.dim) {
      throw new BridgeTowerError('E_BUNDLE', `gallery item '${id}' in ${this.store.location} has an ITC feature of ${item.itc.length} values; the gallery holds ${this.index.dim}: it was written by another model`, { id });
    }
    this.index.upsert(id, item.itc, item.metadata);
    this.hashOf.set(id, item.hash);
  }

  /** A candidate's image-encoder output: cached, else its stored image encoded again; undefined when the item is gone. */
  private async encodingOf(id: string, encode: (image: Uint8Array) => Promise<ImageEncoding>): Promise<{ embeds: Float32Array; reencoded: boolean } | undefined> {
    const hash = this.hashOf.get(id);
    if (hash === undefined) return undefined;
    const cached = this.cache.get(hash);
    if (cached) return { embeds: cached.embeds, reencoded: false };
    const image = await this.store.image(id);
    if (!image) return undefined;
    const encoding = await encode(image.bytes);
    if (encoding.hash !== image.hash) {
      throw new BridgeTowerError('E_IO', `the stored image of gallery item '${id}' in ${this.store.location} does not match its hash: delete the item and add it again`, { id });
    }
    this.cache.set(encoding);
    return { embeds: encoding.embeds, reencoded: true };
  }
}
