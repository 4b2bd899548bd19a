import { BridgeTowerError } from '../../common/errors.js';
import type { Metadata } from './vector-index.js';
import type { ItcFormat } from './itc-codec.js';

/**
 * What a gallery persists per item: the ITC feature search ranks by, the image (re-encoded for
 * ITM re-ranking when its encoding is not cached), its content hash, the caller's metadata and
 * timestamps. Never the image encoder's output (≈ 10 MB per image for BASE): that is a cache.
 */
export interface StoredItem {
  id: string;
  /** sha256 of the image bytes, hex. */
  hash: string;
  /** Unit-length ITC feature (dequantized when stored as int8). */
  itc: Float32Array;
  metadata: Metadata;
  createdAt: string;
  updatedAt: string;
}

export interface ItemInput {
  id: string;
  hash: string;
  itc: Float32Array;
  image: Uint8Array;
  metadata: Metadata;
}

/** One entry of the change log: the id's current state (undefined: it is gone). */
export interface Change {
  seq: number;
  id: string;
  item: StoredItem | undefined;
}

/** What `changesSince` read: the changes, or (`pruned`) the news that some of them are gone. */
export interface ChangePage {
  changes: Change[];
  /**
   * The log no longer holds every change after the cursor: entries up to a later seq were pruned
   * (PostgreSQL keeps `changeRetentionMs`). The reader must reload everything with `scan`.
   */
  pruned: boolean;
}

/** How long PostgreSQL keeps change-log entries: a replica out of touch for longer reloads the gallery. */
export const DEFAULT_CHANGE_RETENTION_MS = 24 * 3600_000;

export interface ListPage {
  /** Items with ids after this one (ids sort by code unit); the first page without it. */
  after?: string;
  limit: number;
}

/**
 * A backend for one bundle's gallery. Every write is one transaction that also appends to a change
 * log whose sequence numbers follow commit order; every process reading the store keeps its
 * in-memory index in step by reading the log from its cursor (`Gallery.sync`). Writes are durable
 * when their promise resolves. Failures to reach the database reject with E_GALLERY_UNAVAILABLE.
 */
export interface GalleryStore {
  /** Where it lives, for messages (no password). */
  readonly location: string;
  readonly bundle: string;
  put(item: ItemInput): Promise<StoredItem>;
  /** False when the id was not there. */
  delete(id: string): Promise<boolean>;
  get(id: string): Promise<StoredItem | undefined>;
  /** The stored image of `id` (undefined: no such item). */
  image(id: string): Promise<{ hash: string; bytes: Uint8Array } | undefined>;
  list(page: ListPage): Promise<{ items: StoredItem[]; total: number }>;
  /** Every item, to `each`, as of one consistent snapshot; resolves to the change-log cursor of that snapshot. */
  scan(each: (item: StoredItem) => void): Promise<number>;
  /** Changes after `cursor`, oldest first, at most `limit`; `pruned` when some are no longer kept. */
  changesSince(cursor: number, limit: number): Promise<ChangePage>;
  /** Calls `wake` when another process may have written (PostgreSQL LISTEN); absent: the log is polled. */
  watch?(wake: () => void): void;
  close(): Promise<void>;
}

/** Where a backend reports what it did on its own (stale rows cleared). Fastify's `app.log` fits. */
export interface GalleryLogger {
  warn(message: string): void;
}

export interface GalleryStoreOptions {
  bundle: string;
  /**
   * Identity of the bundle's numbers (`bundleFingerprint`). Items stored under the same bundle
   * name with another fingerprint were encoded by a different model: they are deleted at open,
   * with a warning.
   */
  fingerprint: string;
  /** How ITC features are stored: float32 (1 KB for 256-d) or int8 with a per-vector scale (256 B). */
  itcFormat: ItcFormat;
  logger: GalleryLogger;
  /** PostgreSQL: change-log entries older than this are pruned (default DEFAULT_CHANGE_RETENTION_MS). */
  changeRetentionMs?: number;
}

type Opener = (location: string, options: GalleryStoreOptions) => Promise<GalleryStore>;

/** Backends by URL scheme; each is imported when used, so SQLite-only servers never load `pg`. */
const BACKENDS: Record<string, Opener> = {
  'memory:': async (_location, options) => new (await import('./memory-gallery-store.js')).MemoryGalleryStore(options.bundle),
  'sqlite:': async (location, options) => (await import('./sqlite-gallery-store.js')).SqliteGalleryStore.open(location.slice('sqlite:'.length), options),
  'postgres:': async (location, options) => (await import('./postgres-gallery-store.js')).PostgresGalleryStore.open(location, options),
  'postgresql:': async (location, options) => (await import('./postgres-gallery-store.js')).PostgresGalleryStore.open(location, options),
};

/** Opens the backend `location` names: `sqlite:<path>` or `postgres://user@host/db` (`?host=/socket/dir` for a unix socket). */
export async function openGalleryStore(location: string, options: GalleryStoreOptions): Promise<GalleryStore> {
  if (!options.bundle) throw new BridgeTowerError('E_USAGE', 'a gallery needs a bundle name');
  if (!options.fingerprint) throw new BridgeTowerError('E_USAGE', `the gallery of '${options.bundle}' needs the bundle's fingerprint (readBundleFingerprint)`);
  const scheme = /^[a-z]+:/i.exec(location)?.[0].toLowerCase();
  const open = scheme ? BACKENDS[scheme] : undefined;
  if (!open) {
    throw new BridgeTowerError('E_USAGE', `--gallery '${redactLocation(location)}' names no known backend: use sqlite:<path>, postgres://<user>@<host>/<database> or memory: (nothing kept)`, {
      schemes: Object.keys(BACKENDS),
    });
  }
  return open(location, options);
}

/** A location without its password, for messages and logs. */
export function redactLocation(location: string): string {
  return location.replace(/^(postgres(?:ql)?:\/\/[^:/@]*):[^@]*@/i, '$1:***@');
}

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Serialized metadata beyond this is refused: it is kept in memory for every item. */
export const MAX_METADATA_BYTES = 4096;

/** Checks a gallery item id: 1–128 characters of `A–Z a–z 0–9 . _ : -` (URL- and log-safe). */
export function validateGalleryId(id: unknown): string {
  if (typeof id === 'string' && ID_PATTERN.test(id)) return id;
  const shown = typeof id === 'string' ? JSON.stringify(id.length > 140 ? `${id.slice(0, 140)}…` : id) : String(id);
  throw new BridgeTowerError(
    'E_USAGE',
    `gallery id ${shown} is invalid: use 1–128 characters of A–Z, a–z, 0–9, '.', '_', ':' and '-'`,
    { id: typeof id === 'string' ? id.slice(0, 140) : id, pattern: ID_PATTERN.source },
  );
}

/** Checks user metadata: a JSON object of at most MAX_METADATA_BYTES serialized. */
export function validateMetadata(metadata: unknown, id: string): Metadata {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new BridgeTowerError('E_USAGE', `the metadata of gallery item '${id}' must be a JSON object, got ${Array.isArray(metadata) ? 'an array' : typeof metadata}`, { id });
  }
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > MAX_METADATA_BYTES) {
    throw new BridgeTowerError('E_USAGE', `the metadata of gallery item '${id}' is ${bytes} bytes of JSON; the limit is ${MAX_METADATA_BYTES}: keep large data elsewhere and store its key`, { id, bytes });
  }
  return metadata as Metadata;
}

/** A stored feature of another length than the gallery's means another model wrote it. */
export function dimensionMismatch(id: string, bundle: string, got: number, expected: number): BridgeTowerError {
  return new BridgeTowerError(
    'E_BUNDLE',
    `gallery item '${id}' has an ITC feature of ${got} values, but the gallery of '${bundle}' holds ${expected}: it was encoded by another model`,
    { id, bundle },
  );
}

/** The warning a backend logs when a fingerprint change cleared a gallery. */
export function staleGalleryWarning(bundle: string, location: string, previous: string, current: string, cleared: number): string {
  return (
    `the gallery of bundle '${bundle}' in ${location} was built by a different model (fingerprint ${previous.slice(0, 12)}…, ` +
    `this bundle's is ${current.slice(0, 12)}…); its features cannot be searched with this one, so its ${cleared} item(s) ` +
    'were deleted: add the images again'
  );
}
