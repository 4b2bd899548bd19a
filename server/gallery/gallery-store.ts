import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { BridgeTowerError } from '../../common/errors.js';
import type { ImageEncoding } from '../model-service.js';

/** The database file inside `--data-dir`; every served bundle's gallery lives in it. */
export const GALLERY_FILE = 'gallery.sqlite';

/** Bumped when the tables change; a newer file is refused rather than misread. */
const SCHEMA_VERSION = 1;

/**
 * Encodings are stored once per image content (`hash`), items point at them. Replacing or
 * deleting an item therefore never removes an encoding a search in progress may still read; the
 * encodings no item uses any more are deleted at the next open.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS galleries (
  bundle      TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_encodings (
  bundle     TEXT NOT NULL REFERENCES galleries(bundle) ON DELETE CASCADE,
  hash       TEXT NOT NULL,
  itc_dim    INTEGER NOT NULL,  -- 0 when itc is NULL
  embeds_len INTEGER NOT NULL,
  itc        BLOB,              -- float32, native (little-endian) order; NULL without ITC heads
  -- Last: SQLite reads a row's columns in order, so every column before this multi-megabyte
  -- BLOB is read without walking its overflow pages.
  embeds     BLOB NOT NULL,     -- float32 image_encoder output [L, N, H], flattened
  PRIMARY KEY (bundle, hash)
);
CREATE TABLE IF NOT EXISTS gallery_items (
  bundle     TEXT NOT NULL,
  id         TEXT NOT NULL,
  hash       TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (bundle, id),
  FOREIGN KEY (bundle, hash) REFERENCES gallery_encodings(bundle, hash)
);`;

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export interface GalleryItem {
  id: string;
  encoding: ImageEncoding;
}

/** Where the store reports what it did on its own (stale rows cleared). Fastify's `app.log` fits. */
export interface GalleryLogger {
  warn(message: string): void;
}

export interface GalleryStoreOptions {
  /**
   * Identity of the bundle's numbers (`bundleFingerprint` / `readBundleFingerprint`). Rows stored
   * under the same bundle name with another fingerprint were encoded by a different model: they
   * are deleted at open, with a warning.
   */
  fingerprint: string;
  logger?: GalleryLogger;
}

/** What memory holds of an item: everything but the fusion input, which is read when used. */
interface Entry {
  encoding: ImageEncoding;
  embedsLength: number;
}

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

/**
 * One bundle's image gallery, persisted in SQLite (WAL) under the data folder. Ids, hashes and
 * ITC features — what search scores every item with — are loaded into memory at open, so `list()`
 * never touches the disk. The fusion input (`embeds`, L × N × H floats: ≈ 10 MB per image for
 * BASE at 384 px, 24 MB at 576 px) would not fit in memory for a real gallery; it is read from
 * the database when `encoding.embeds` is first used — by search, for its re-ranked candidates
 * only — and shared while anything holds it. Writes go to the database first, then to memory.
 * One process should own a bundle's gallery: another process's writes are seen after a reopen.
 */
export class GalleryStore {
  private readonly entries = new Map<string, Entry>();
  private snapshot: readonly GalleryItem[] | undefined;
  private closed = false;
  private readonly statements;

  private constructor(
    private readonly db: Database.Database,
    /** The database file. */
    readonly path: string,
    readonly bundleName: string,
    readonly fingerprint: string,
  ) {
    this.statements = {
      addEncoding: db.prepare<[string, string, Buffer | null, number, Buffer, number]>(
        'INSERT OR IGNORE INTO gallery_encodings (bundle, hash, itc, itc_dim, embeds, embeds_len) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      upsertItem: db.prepare<[string, string, string, string]>(
        `INSERT INTO gallery_items (bundle, id, hash, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (bundle, id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at`,
      ),
      removeItem: db.prepare<[string, string]>('DELETE FROM gallery_items WHERE bundle = ? AND id = ?'),
      embeds: db.prepare<[string, string], { embeds: Buffer; embeds_len: number }>('SELECT embeds, embeds_len FROM gallery_encodings WHERE bundle = ? AND hash = ?'),
    };
  }

  /**
   * Opens (creating `dataDir` and the database if missing) the gallery of `bundleName` and loads
   * its index into memory; clears it first if it was built by a bundle with another fingerprint.
   */
  static open(dataDir: string, bundleName: string, options: GalleryStoreOptions): GalleryStore {
    if (!bundleName) throw new BridgeTowerError('E_USAGE', 'a gallery needs a bundle name');
    if (!options.fingerprint) throw new BridgeTowerError('E_USAGE', `the gallery of '${bundleName}' needs the bundle's fingerprint (readBundleFingerprint)`);
    const path = resolve(join(dataDir, GALLERY_FILE));
    let db: Database.Database;
    try {
      mkdirSync(dataDir, { recursive: true });
      db = new Database(path);
    } catch (error) {
      throw new BridgeTowerError('E_IO', `cannot open the gallery database ${path}: ${(error as Error).message}; check that --data-dir is writable`, { path });
    }
    try {
      const store = new GalleryStore(prepareDatabase(db, path), path, bundleName, options.fingerprint);
      store.claim(options.logger ?? stderrLogger);
      store.load();
      return store;
    } catch (error) {
      db.close();
      if (error instanceof BridgeTowerError) throw error;
      throw new BridgeTowerError('E_IO', `cannot use the gallery database ${path}: ${(error as Error).message}`, { path });
    }
  }

  /** Stores `encoding` under `id`, replacing any previous one; atomic, durable when it returns. */
  put(id: string, encoding: ImageEncoding): void {
    this.assertOpen();
    validateGalleryId(id);
    this.checkDims(id, encoding);
    const write = this.db.transaction(() => {
      this.statements.addEncoding.run(
        this.bundleName,
        encoding.hash,
        encoding.itc ? floatBytes(encoding.itc) : null,
        encoding.itc?.length ?? 0,
        floatBytes(encoding.embeds),
        encoding.embeds.length,
      );
      this.statements.upsertItem.run(this.bundleName, id, encoding.hash, new Date().toISOString());
    });
    write.immediate();
    this.entries.set(id, this.entry(encoding.hash, encoding.itc, encoding.embeds.length, encoding.embeds));
    this.snapshot = undefined;
  }

  /** Removes `id`; false when it was not there. */
  delete(id: string): boolean {
    this.assertOpen();
    validateGalleryId(id);
    const removed = this.statements.removeItem.run(this.bundleName, id).changes > 0;
    this.entries.delete(id);
    if (removed) this.snapshot = undefined;
    return removed;
  }

  get(id: string): ImageEncoding | undefined {
    this.assertOpen();
    return this.entries.get(validateGalleryId(id))?.encoding;
  }

  has(id: string): boolean {
    this.assertOpen();
    return this.entries.has(validateGalleryId(id));
  }

  /** Every item, from memory; the same array until the next write (cheap to call per search). */
  list(): readonly GalleryItem[] {
    this.assertOpen();
    this.snapshot ??= Object.freeze([...this.entries].map(([id, { encoding }]) => ({ id, encoding })));
    return this.snapshot;
  }

  count(): number {
    this.assertOpen();
    return this.entries.size;
  }

  /** Closes the database; further calls fail. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** Registers this bundle's fingerprint, deleting rows another model encoded under the same name. */
  private claim(logger: GalleryLogger): void {
    const claim = this.db.transaction((): { previous: string; cleared: number } | undefined => {
      const row = this.db.prepare<[string], { fingerprint: string }>('SELECT fingerprint FROM galleries WHERE bundle = ?').get(this.bundleName);
      if (row?.fingerprint === this.fingerprint) return undefined;
      const cleared = this.db.prepare<[string]>('DELETE FROM gallery_items WHERE bundle = ?').run(this.bundleName).changes;
      this.db.prepare<[string]>('DELETE FROM gallery_encodings WHERE bundle = ?').run(this.bundleName);
      this.db
        .prepare<[string, string, string]>(
          `INSERT INTO galleries (bundle, fingerprint, created_at) VALUES (?, ?, ?)
           ON CONFLICT (bundle) DO UPDATE SET fingerprint = excluded.fingerprint, created_at = excluded.created_at`,
        )
        .run(this.bundleName, this.fingerprint, new Date().toISOString());
      return row ? { previous: row.fingerprint, cleared } : undefined;
    });
    const stale = claim.immediate();
    if (stale) {
      logger.warn(
        `the gallery of bundle '${this.bundleName}' in ${this.path} was built by a different model (fingerprint ${stale.previous.slice(0, 12)}…, ` +
          `this bundle's is ${this.fingerprint.slice(0, 12)}…); its encodings cannot be searched with this one, so its ${stale.cleared} item(s) ` +
          'were deleted: add the images again',
      );
    }
  }

  /** Drops encodings no item uses any more, then loads the index (not the embeds) into memory. */
  private load(): void {
    this.db
      .prepare<[string, string]>('DELETE FROM gallery_encodings WHERE bundle = ? AND hash NOT IN (SELECT hash FROM gallery_items WHERE bundle = ?)')
      .run(this.bundleName, this.bundleName);
    const rows = this.db
      .prepare<[string], { id: string; hash: string; itc: Buffer | null; itc_dim: number; embeds_len: number }>(
        `SELECT i.id, i.hash, e.itc, e.itc_dim, e.embeds_len
         FROM gallery_items i JOIN gallery_encodings e ON e.bundle = i.bundle AND e.hash = i.hash
         WHERE i.bundle = ? ORDER BY i.id`,
      )
      .iterate(this.bundleName);
    // The embeds' sizes are checked when they are read: checking them here would read them all.
    for (const row of rows) {
      const itc = row.itc === null ? undefined : floatsOf(row.itc, row.itc_dim, `itc of '${row.id}'`, this.path);
      this.entries.set(row.id, this.entry(row.hash, itc, row.embeds_len));
    }
  }

  /**
   * An item's encoding whose `embeds` is read from the database on first use and kept while
   * anything references it (a WeakRef: the garbage collector frees it after the search).
   */
  private entry(hash: string, itc: Float32Array | undefined, embedsLength: number, embeds?: Float32Array): Entry {
    let held = embeds ? new WeakRef(embeds) : undefined;
    const readEmbeds = (): Float32Array => {
      let value = held?.deref();
      if (!value) {
        value = this.readEmbeds(hash);
        held = new WeakRef(value);
      }
      return value;
    };
    const encoding = (itc ? { hash, itc } : { hash }) as ImageEncoding;
    Object.defineProperty(encoding, 'embeds', { get: readEmbeds, enumerable: true });
    return { encoding, embedsLength };
  }

  private readEmbeds(hash: string): Float32Array {
    this.assertOpen();
    const row = this.statements.embeds.get(this.bundleName, hash);
    if (!row) throw new BridgeTowerError('E_IO', `${this.path} lost the encoding of image ${hash} of the gallery of '${this.bundleName}'`, { path: this.path, hash });
    return floatsOf(row.embeds, row.embeds_len, `embeds of image ${hash}`, this.path);
  }

  /** One bundle encodes every image to the same sizes; a different size means a mixed-up model. */
  private checkDims(id: string, encoding: ImageEncoding): void {
    if (encoding.embeds.length === 0) throw new BridgeTowerError('E_USAGE', `gallery item '${id}' has an empty image encoding`, { id });
    const first = this.entries.values().next();
    if (first.done) return;
    const expected = { embeds: first.value.embedsLength, itc: first.value.encoding.itc?.length ?? 0 };
    if (expected.embeds !== encoding.embeds.length || expected.itc !== (encoding.itc?.length ?? 0)) {
      throw new BridgeTowerError(
        'E_BUNDLE',
        `gallery item '${id}' has encodings of ${encoding.embeds.length} (+ itc ${encoding.itc?.length ?? 0}) floats, but the gallery of ` +
          `'${this.bundleName}' holds ${expected.embeds} (+ itc ${expected.itc}): it was encoded by another model`,
        { id, bundle: this.bundleName },
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new BridgeTowerError('E_IO', `the gallery of '${this.bundleName}' (${this.path}) is closed`, { path: this.path });
  }
}

function prepareDatabase(db: Database.Database, path: string): Database.Database {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new BridgeTowerError('E_IO', `${path} has gallery schema version ${version}; this bridgetower-node reads up to ${SCHEMA_VERSION}: upgrade bridgetower-node or use another --data-dir`, { path, version });
  }
  // Encodings are megabytes: large pages mean short overflow chains. Only a new file takes it.
  db.pragma('page_size = 65536');
  db.pragma('journal_mode = WAL');
  // FULL: a put that returned is on disk even after a power loss, not only after a crash.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Another process (a backup, a second server by mistake) may hold the lock briefly.
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
  return db;
}

function floatBytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** A BLOB back to floats, after checking its length matches the stored element count. */
function floatsOf(bytes: Buffer, length: number, what: string, path: string): Float32Array {
  if (bytes.byteLength !== length * Float32Array.BYTES_PER_ELEMENT) {
    throw new BridgeTowerError('E_IO', `${path} is damaged: ${what} holds ${bytes.byteLength} bytes for ${length} float32 values; delete the item or the file`, { path });
  }
  // A large BLOB gets a Buffer of its own: use it in place. A small one may sit in Node's shared
  // pool at an offset that is not a multiple of 4: copy it.
  if (bytes.byteOffset % Float32Array.BYTES_PER_ELEMENT === 0 && bytes.byteLength === bytes.buffer.byteLength) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }
  const floats = new Float32Array(length);
  new Uint8Array(floats.buffer).set(bytes);
  return floats;
}

const stderrLogger: GalleryLogger = {
  warn: (message) => process.stderr.write(`bridgetower: warning: ${message}\n`),
};
