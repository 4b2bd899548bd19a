import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import hnswlib from 'hnswlib-node';
import { BridgeTowerError } from '../../common/errors.js';

/** Metadata values a filter can match: JSON scalars. Objects and arrays are stored, never matched. */
export type MetadataScalar = string | number | boolean | null;
export type Metadata = Record<string, unknown>;
/** Every key must equal its value (JSON equality of scalars). */
export type MetadataFilter = Record<string, MetadataScalar>;

export interface Neighbor {
  id: string;
  /** Inner product of the unit-length features: their cosine similarity. */
  similarity: number;
}

export interface VectorIndexOptions {
  /** From this many items on, search uses the HNSW index (built in the background; exact until it is ready). */
  annThreshold: number;
  /** HNSW graph degree and build breadth (hnswlib's M and efConstruction). */
  m?: number;
  efConstruction?: number;
  /** Search breadth: at least this (hnswlib's ef)… */
  efSearch?: number;
  /** …and at least this many times k: recall@k at a fixed ef falls as k grows towards it. */
  efPerK?: number;
}

/**
 * Chosen by bench/gallery.ts (docs/PERFORMANCE.md): on clustered 256-d features, recall@128 at
 * M 16 needs ef ≈ 4k (0.965 at 100,000 items; ef 2k gives 0.93); M 24 reaches it at a smaller
 * ef but builds about twice as slowly, and building is what a 1M gallery waits for.
 */
export const DEFAULT_INDEX_OPTIONS = { annThreshold: 50_000, m: 16, efConstruction: 128, efSearch: 128, efPerK: 4 } as const;

/** The HNSW search breadth for top-`k` under `options`: max(efSearch, ⌈efPerK·k⌉). */
export function searchBreadth(k: number, options: Pick<Required<VectorIndexOptions>, 'efSearch' | 'efPerK'>): number {
  return Math.max(options.efSearch, Math.ceil(options.efPerK * k), k);
}

/** How many points the background build adds before letting requests run. */
const BUILD_SLICE = 256;

/**
 * The gallery's ITC features in memory, for candidate search. Every vector lives in one flat
 * Float32Array (exact search is a scan of it); from `annThreshold` items on, an HNSW graph
 * (hnswlib) answers instead, updated point by point as items change. HNSW labels are stable
 * integers per id (the flat slots move when an item is removed); a removed id's label is marked
 * deleted and reused if the id comes back. Metadata equality filters use postings (key=value →
 * ids): a filter is answered exactly over the matching items, so a selective filter never
 * starves an approximate search of results.
 */
export class VectorIndex {
  private vectors: Float32Array;
  private readonly ids: string[] = [];
  private readonly slotOf = new Map<string, number>();
  private readonly metadataOf = new Map<string, Metadata>();
  private readonly postings = new Map<string, Set<string>>();
  private readonly options: Required<VectorIndexOptions>;

  private ann: hnswlib.HierarchicalNSW | undefined;
  private annReady = false;
  private building: Promise<void> | undefined;
  private readonly labelOf = new Map<string, number>();
  private readonly idOfLabel: string[] = [];
  /** Labels in the graph now, and labels ever added (a removed one stays in the graph, marked deleted). */
  private readonly inAnn = new Set<number>();
  private readonly everAdded = new Set<number>();
  private deletedLabels = 0;

  constructor(
    readonly dim: number,
    options: VectorIndexOptions = DEFAULT_INDEX_OPTIONS,
  ) {
    if (!Number.isInteger(dim) || dim <= 0) throw new BridgeTowerError('E_INTERNAL', `a vector index needs a positive dimension, got ${dim}`);
    this.options = { ...DEFAULT_INDEX_OPTIONS, ...options };
    this.vectors = new Float32Array(dim * 64);
  }

  get size(): number {
    return this.ids.length;
  }

  /** Whether searches without a filter are answered by the HNSW graph now. */
  get approximate(): boolean {
    return this.annReady;
  }

  has(id: string): boolean {
    return this.slotOf.has(id);
  }

  /** Adds or replaces an item's vector (unit length) and metadata. */
  upsert(id: string, vector: Float32Array, metadata: Metadata = {}): void {
    if (vector.length !== this.dim) {
      throw new BridgeTowerError('E_INTERNAL', `item '${id}' has an ITC feature of ${vector.length} values; the index holds ${this.dim}`);
    }
    let slot = this.slotOf.get(id);
    // A reload or a replica reading its own write back: re-adding to the HNSW graph would cost as much as an insert.
    if (slot !== undefined && this.holds(slot, id, vector, metadata)) return;
    if (slot === undefined) {
      slot = this.ids.length;
      this.grow(slot + 1);
      this.ids.push(id);
      this.slotOf.set(id, slot);
    } else {
      this.unpost(id);
    }
    this.vectors.set(vector, slot * this.dim);
    this.metadataOf.set(id, metadata);
    this.post(id, metadata);
    if (this.ann) this.annAdd(id, vector);
    else if (this.ids.length >= this.options.annThreshold) this.startBuild();
  }

  /** Removes an item; false when it was not there. */
  remove(id: string): boolean {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    const last = this.ids.length - 1;
    const lastId = this.ids[last]!;
    if (slot !== last) {
      this.vectors.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim);
      this.ids[slot] = lastId;
      this.slotOf.set(lastId, slot);
    }
    this.ids.pop();
    this.slotOf.delete(id);
    this.unpost(id);
    this.metadataOf.delete(id);
    const label = this.labelOf.get(id);
    if (this.ann && label !== undefined && this.inAnn.has(label)) {
      this.ann.markDelete(label);
      this.inAnn.delete(label);
      this.deletedLabels++;
    }
    return true;
  }

  /** The `k` items most similar to `query` (unit length) that match `filter`, best first. */
  nearest(query: Float32Array, k: number, filter?: MetadataFilter): Neighbor[] {
    if (query.length !== this.dim) {
      throw new BridgeTowerError('E_USAGE', `the query has ${query.length} ITC values but the gallery's features have ${this.dim}: search with the bundle that filled it`);
    }
    if (k <= 0 || this.ids.length === 0) return [];
    if (filter && Object.keys(filter).length > 0) return this.exactOver(query, k, this.matching(filter));
    return this.annReady ? this.annNearest(query, k) : this.exactNearest(query, k);
  }

  /** Exact top-k over every item: the reference ANN recall is measured against. */
  exactNearest(query: Float32Array, k: number): Neighbor[] {
    const top = new TopK(k);
    const { dim, vectors } = this;
    for (let slot = 0, base = 0; slot < this.ids.length; slot++, base += dim) top.offer(slot, dotAt(vectors, base, query, dim));
    return top.sorted().map(([slot, similarity]) => ({ id: this.ids[slot]!, similarity }));
  }

  /** Resolves when a background HNSW build in progress (if any) has finished. */
  async whenBuilt(): Promise<void> {
    await this.building;
  }

  /**
   * Top-k from the HNSW graph at search breadth `ef` (default: `searchBreadth`), whatever the
   * threshold: what benches and recall tests compare with `exactNearest`. Needs a built graph.
   */
  approximateNearest(query: Float32Array, k: number, ef?: number): Neighbor[] {
    if (!this.annReady) throw new BridgeTowerError('E_INTERNAL', `the HNSW graph is not built (${this.size} items, threshold ${this.options.annThreshold}): await whenBuilt() above the threshold`);
    return this.annNearest(query, k, ef);
  }

  private annNearest(query: Float32Array, k: number, ef?: number): Neighbor[] {
    const ann = this.ann!;
    const n = Math.min(k, this.inAnn.size);
    ann.setEf(Math.max(ef ?? searchBreadth(n, this.options), n));
    const { neighbors, distances } = ann.searchKnn(Array.from(query), n);
    // hnswlib's inner-product distance is 1 − dot.
    return neighbors.map((label, i) => ({ id: this.idOfLabel[label]!, similarity: 1 - distances[i]! }));
  }

  private exactOver(query: Float32Array, k: number, ids: Iterable<string>): Neighbor[] {
    const top = new TopK(k);
    for (const id of ids) {
      const slot = this.slotOf.get(id)!;
      top.offer(slot, dotAt(this.vectors, slot * this.dim, query, this.dim));
    }
    return top.sorted().map(([slot, similarity]) => ({ id: this.ids[slot]!, similarity }));
  }

  /** Ids whose metadata has every key of `filter` equal: the smallest posting list, checked against the rest. */
  private matching(filter: MetadataFilter): string[] {
    const lists = Object.entries(filter).map(([key, value]) => this.postings.get(postingKey(key, value)) ?? new Set<string>());
    lists.sort((a, b) => a.size - b.size);
    const [smallest, ...rest] = lists;
    return [...smallest!].filter((id) => rest.every((list) => list.has(id)));
  }

  private post(id: string, metadata: Metadata): void {
    for (const [key, value] of scalarEntries(metadata)) {
      const k = postingKey(key, value);
      let list = this.postings.get(k);
      if (!list) this.postings.set(k, (list = new Set()));
      list.add(id);
    }
  }

  private unpost(id: string): void {
    for (const [key, value] of scalarEntries(this.metadataOf.get(id) ?? {})) {
      const k = postingKey(key, value);
      const list = this.postings.get(k);
      list?.delete(id);
      if (list?.size === 0) this.postings.delete(k);
    }
  }

  private holds(slot: number, id: string, vector: Float32Array, metadata: Metadata): boolean {
    const base = slot * this.dim;
    for (let j = 0; j < this.dim; j++) if (this.vectors[base + j] !== vector[j]) return false;
    return JSON.stringify(this.metadataOf.get(id)) === JSON.stringify(metadata);
  }

  private grow(slots: number): void {
    if (slots * this.dim <= this.vectors.length) return;
    const next = new Float32Array(Math.max(slots * this.dim, this.vectors.length * 2));
    next.set(this.vectors);
    this.vectors = next;
  }

  /** Creates the HNSW graph and fills it with the current items in slices, between requests. */
  private startBuild(): void {
    const ann = new hnswlib.HierarchicalNSW('ip', this.dim);
    ann.initIndex({ maxElements: Math.max(1024, this.ids.length * 2), m: this.options.m, efConstruction: this.options.efConstruction, randomSeed: 100 });
    this.ann = ann;
    const snapshot = [...this.ids];
    this.building = (async () => {
      for (let i = 0; i < snapshot.length; i++) {
        // A rebuild replaced this graph: the newer build carries on.
        if (this.ann !== ann) return;
        const id = snapshot[i]!;
        const slot = this.slotOf.get(id);
        // Removed meanwhile, or already added by an upsert during the build.
        if (slot !== undefined && !this.inAnn.has(this.labelOf.get(id) ?? -1)) this.annAdd(id, this.vectors.subarray(slot * this.dim, (slot + 1) * this.dim));
        if (i % BUILD_SLICE === BUILD_SLICE - 1) await yieldToEventLoop();
      }
      if (this.ann === ann) this.annReady = true;
    })();
  }

  private annAdd(id: string, vector: Float32Array): void {
    const ann = this.ann!;
    // Too many deleted points make the graph slow and wasteful: start a fresh one.
    if (this.deletedLabels > Math.max(1024, this.inAnn.size)) return this.rebuild();
    let label = this.labelOf.get(id);
    if (label === undefined) {
      label = this.idOfLabel.length;
      this.idOfLabel.push(id);
      this.labelOf.set(id, label);
    }
    if (this.everAdded.has(label)) {
      // Updating a point hnswlib marked deleted needs it unmarked first.
      if (!this.inAnn.has(label)) {
        ann.unmarkDelete(label);
        this.deletedLabels--;
      }
    } else if (ann.getCurrentCount() >= ann.getMaxElements()) {
      ann.resizeIndex(ann.getMaxElements() * 2);
    }
    ann.addPoint(Array.from(vector), label);
    this.inAnn.add(label);
    this.everAdded.add(label);
  }

  private rebuild(): void {
    this.ann = undefined;
    this.annReady = false;
    this.inAnn.clear();
    this.everAdded.clear();
    this.labelOf.clear();
    this.idOfLabel.length = 0;
    this.deletedLabels = 0;
    this.startBuild();
  }
}

/** The `k` best (slot, score) pairs seen, in a min-heap on score. */
class TopK {
  private readonly slots: number[] = [];
  private readonly scores: number[] = [];
  constructor(private readonly k: number) {}

  offer(slot: number, score: number): void {
    const { slots, scores } = this;
    if (slots.length < this.k) {
      slots.push(slot);
      scores.push(score);
      this.up(slots.length - 1);
    } else if (score > scores[0]!) {
      slots[0] = slot;
      scores[0] = score;
      this.down(0);
    }
  }

  /** Best first; ties by lower slot (stable, deterministic). */
  sorted(): Array<[number, number]> {
    return this.slots.map((slot, i): [number, number] => [slot, this.scores[i]!]).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.scores[parent]! <= this.scores[i]!) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.slots.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && this.scores[l]! < this.scores[smallest]!) smallest = l;
      if (r < n && this.scores[r]! < this.scores[smallest]!) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(a: number, b: number): void {
    [this.slots[a], this.slots[b]] = [this.slots[b]!, this.slots[a]!];
    [this.scores[a], this.scores[b]] = [this.scores[b]!, this.scores[a]!];
  }
}

function dotAt(vectors: Float32Array, base: number, query: Float32Array, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 3 < dim; j += 4) {
    s0 += vectors[base + j]! * query[j]!;
    s1 += vectors[base + j + 1]! * query[j + 1]!;
    s2 += vectors[base + j + 2]! * query[j + 2]!;
    s3 += vectors[base + j + 3]! * query[j + 3]!;
  }
  for (; j < dim; j++) s0 += vectors[base + j]! * query[j]!;
  return s0 + s1 + s2 + s3;
}

function isScalar(value: unknown): value is MetadataScalar {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

function scalarEntries(metadata: Metadata): Array<[string, MetadataScalar]> {
  return Object.entries(metadata).filter((entry): entry is [string, MetadataScalar] => isScalar(entry[1]));
}

function postingKey(key: string, value: MetadataScalar): string {
  return JSON.stringify([key, value]);
}
