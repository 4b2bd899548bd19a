import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { BridgeTowerError } from '../../common/errors.js';
import { decodeItc, encodeItc, storedDim } from './itc-codec.js';
import {
  dimensionMismatch,
  staleGalleryWarning,
  type ChangePage,
  type GalleryStore,
  type GalleryStoreOptions,
  type ItemInput,
  type ListPage,
  type StoredItem,
} from './gallery-store.js';

/** The database file inside `--data-dir` when `--gallery` is not given. */
export const GALLERY_FILE = 'gallery.sqlite';

/**
 * Versioned migrations, applied in order inside one transaction; `user_version` is the last one
 * applied, and a file of a newer version is refused rather than misread. Version 1 stored every
 * image's encoder output (≈ 10 MB each) and no image: its items cannot be re-encoded, so
 * version 2 drops them (the server says how many, once).
 */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 2,
    sql: `
DROP TABLE IF EXISTS gallery_items;
DROP TABLE IF EXISTS gallery_encodings;
DROP TABLE IF EXISTS galleries;
CREATE TABLE galleries (
  id          INTEGER PRIMARY KEY,
  bundle      TEXT NOT NULL UNIQUE,
  fingerprint TEXT NOT NULL,
  itc_dim     INTEGER NOT NULL DEFAULT 0  -- 0 until the first item
);
-- Images by content: one copy per distinct image, removed with the last item using it. Apart from
-- the items so that loading the index never reads image pages.
CREATE TABLE gallery_images (
  gallery INTEGER NOT NULL REFERENCES galleries(id) ON DELETE CASCADE,
  hash    BLOB NOT NULL,   -- sha256, 32 bytes
  bytes   BLOB NOT NULL,
  PRIMARY KEY (gallery, hash)
);
CREATE TABLE gallery_items (
  gallery    INTEGER NOT NULL REFERENCES galleries(id) ON DELETE CASCADE,
  id         TEXT NOT NULL,
  hash       BLOB NOT NULL,
  itc        BLOB NOT NULL,   -- float32 little-endian, or int8 codes when itc_scale is set
  itc_scale  REAL,
  metadata   TEXT NOT NULL,   -- JSON object
  created_at INTEGER NOT NULL, -- ms since epoch
  updated_at INTEGER NOT NULL,
  -- A rowid table: WITHOUT ROWID rows over ≈ 1 KB (a float32 feature is 1 KB) would spill
  -- into an overflow page each.
  PRIMARY KEY (gallery, id)
);
-- Every write appends the ids it changed; readers follow it with a cursor (AUTOINCREMENT: never reused).
CREATE TABLE gallery_changes (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  gallery INTEGER NOT NULL,
  id      TEXT NOT NULL
);
CREATE INDEX gallery_changes_by_gallery ON gallery_changes (gallery, seq);`,
  },
  {
    // The log keeps one entry per id, its latest (see SqliteGalleryStore.logChange): this index
    // finds the superseded one, and the DELETE compacts a log written before.
    version: 3,
    sql: `
CREATE INDEX gallery_changes_by_id ON gallery_changes (gallery, id);
DELETE FROM gallery_changes WHERE seq NOT IN (SELECT max(seq) FROM gallery_changes GROUP BY gallery, id);`,
  },
];
const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

interface ItemRow {
  id: string;
  hash: Buffer;
  itc: Buffer;
  itc_scale: number | null;
  metadata: string;
  created_at: number;
  updated_at: number;
}
const ITEM_COLUMNS = 'id, hash, itc, itc_scale, metadata, created_at, updated_at';

/** The embedded backend (`--gallery sqlite:<path>`): one file, WAL, synchronous FULL. */
export class SqliteGalleryStore implements GalleryStore {
  private closed = false;
  private readonly sql;

  private constructor(
    private readonly db: Database.Database,
    readonly location: string,
    readonly bundle: string,
    private readonly gallery: number,
    private itcDim: number,
    private readonly options: GalleryStoreOptions,
  ) {
    this.sql = {
      item: db.prepare<[number, string], ItemRow>(`SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = ? AND id = ?`),
      hashOf: db.prepare<[number, string], { hash: Buffer }>('SELECT hash FROM gallery_items WHERE gallery = ? AND id = ?'),
      addImage: db.prepare<[number, Buffer, Buffer]>('INSERT OR IGNORE INTO gallery_images (gallery, hash, bytes) VALUES (?, ?, ?)'),
      upsert: db.prepare<[number, string, Buffer, Buffer, number | null, string, number, number]>(
        `INSERT INTO gallery_items (gallery, id, hash, itc, itc_scale, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (gallery, id) DO UPDATE SET hash = excluded.hash, itc = excluded.itc, itc_scale = excluded.itc_scale,
           metadata = excluded.metadata, updated_at = excluded.updated_at`,
      ),
      remove: db.prepare<[number, string]>('DELETE FROM gallery_items WHERE gallery = ? AND id = ?'),
      dropUnusedImage: db.prepare<[number, Buffer, number, Buffer]>(
        'DELETE FROM gallery_images WHERE gallery = ? AND hash = ? AND NOT EXISTS (SELECT 1 FROM gallery_items WHERE gallery = ? AND hash = ?)',
      ),
      logChange: db.prepare<[number, string]>('INSERT INTO gallery_changes (gallery, id) VALUES (?, ?)'),
      dropSuperseded: db.prepare<[number, string, number]>('DELETE FROM gallery_changes WHERE gallery = ? AND id = ? AND seq < ?'),
      setDim: db.prepare<[number, number]>('UPDATE galleries SET itc_dim = ? WHERE id = ?'),
      image: db.prepare<[number, string], { hash: Buffer; bytes: Buffer }>(
        'SELECT i.hash, m.bytes FROM gallery_items i JOIN gallery_images m ON m.gallery = i.gallery AND m.hash = i.hash WHERE i.gallery = ? AND i.id = ?',
      ),
      page: db.prepare<[number, string, number], ItemRow>(`SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = ? AND id > ? ORDER BY id LIMIT ?`),
      count: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM gallery_items WHERE gallery = ?'),
      all: db.prepare<[number], ItemRow>(`SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = ?`),
      cursor: db.prepare<[number], { seq: number | null }>('SELECT max(seq) AS seq FROM gallery_changes WHERE gallery = ?'),
      changes: db.prepare<[number, number, number], { seq: number; id: string }>('SELECT seq, id FROM gallery_changes WHERE gallery = ? AND seq > ? ORDER BY seq LIMIT ?'),
    };
  }

  static async open(path: string, options: GalleryStoreOptions): Promise<SqliteGalleryStore> {
    const file = resolve(path);
    let db: Database.Database;
    try {
      mkdirSync(dirname(file), { recursive: true });
      db = new Database(file);
    } catch (error) {
      throw new BridgeTowerError('E_IO', `cannot open the gallery database ${file}: ${(error as Error).message}; check that its folder is writable`, { path: file });
    }
    try {
      migrate(db, file, options);
      const { id, itcDim } = claim(db, file, options);
      return new SqliteGalleryStore(db, file, options.bundle, id, itcDim, options);
    } catch (error) {
      db.close();
      if (error instanceof BridgeTowerError) throw error;
      throw new BridgeTowerError('E_IO', `cannot use the gallery database ${file}: ${(error as Error).message}`, { path: file });
    }
  }

  async put(item: ItemInput): Promise<StoredItem> {
    this.assertOpen();
    if (this.itcDim !== 0 && item.itc.length !== this.itcDim) throw dimensionMismatch(item.id, this.bundle, item.itc.length, this.itcDim);
    const hash = Buffer.from(item.hash, 'hex');
    const itc = encodeItc(item.itc, this.options.itcFormat);
    const metadata = JSON.stringify(item.metadata);
    const now = Date.now();
    const write = this.db.transaction(() => {
      const previous = this.sql.hashOf.get(this.gallery, item.id)?.hash;
      this.sql.addImage.run(this.gallery, hash, Buffer.from(item.image.buffer, item.image.byteOffset, item.image.byteLength));
      this.sql.upsert.run(this.gallery, item.id, hash, Buffer.from(itc.bytes), itc.scale, metadata, now, now);
      if (previous && !previous.equals(hash)) this.sql.dropUnusedImage.run(this.gallery, previous, this.gallery, previous);
      if (this.itcDim === 0) this.sql.setDim.run(item.itc.length, this.gallery);
      this.logChange(item.id);
    });
    write.immediate();
    this.itcDim = item.itc.length;
    return this.toItem(this.sql.item.get(this.gallery, item.id)!);
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    const remove = this.db.transaction((): boolean => {
      const previous = this.sql.hashOf.get(this.gallery, id)?.hash;
      if (!previous) return false;
      this.sql.remove.run(this.gallery, id);
      this.sql.dropUnusedImage.run(this.gallery, previous, this.gallery, previous);
      this.logChange(id);
      return true;
    });
    return remove.immediate();
  }

  async get(id: string): Promise<StoredItem | undefined> {
    this.assertOpen();
    const row = this.sql.item.get(this.gallery, id);
    return row && this.toItem(row);
  }

  async image(id: string): Promise<{ hash: string; bytes: Uint8Array } | undefined> {
    this.assertOpen();
    const row = this.sql.image.get(this.gallery, id);
    return row && { hash: row.hash.toString('hex'), bytes: row.bytes };
  }

  async list(page: ListPage): Promise<{ items: StoredItem[]; total: number }> {
    this.assertOpen();
    const read = this.db.transaction(() => ({
      items: this.sql.page.all(this.gallery, page.after ?? '', page.limit).map((row) => this.toItem(row)),
      total: this.sql.count.get(this.gallery)!.n,
    }));
    return read.deferred();
  }

  async scan(each: (item: StoredItem) => void): Promise<number> {
    this.assertOpen();
    const read = this.db.transaction(() => {
      for (const row of this.sql.all.iterate(this.gallery)) each(this.toItem(row));
      return this.sql.cursor.get(this.gallery)!.seq ?? 0;
    });
    return read.deferred();
  }

  async changesSince(cursor: number, limit: number): Promise<ChangePage> {
    this.assertOpen();
    const read = this.db.transaction(() =>
      this.sql.changes.all(this.gallery, cursor, limit).map(({ seq, id }) => {
        const row = this.sql.item.get(this.gallery, id);
        return { seq, id, item: row && this.toItem(row) };
      }),
    );
    // Compaction removes only superseded entries, never the news itself: nothing is lost.
    return { changes: read.deferred(), pruned: false };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Appends `id` to the log and drops its earlier entries, so the log holds one entry per id ever
   * written (the live items and the ids deleted since), not one per write. That is safe for every
   * reader: an entry says "read this id's current state", and a cursor before the dropped entry
   * is also before the new one, which says the same thing.
   */
  private logChange(id: string): void {
    const seq = Number(this.sql.logChange.run(this.gallery, id).lastInsertRowid);
    this.sql.dropSuperseded.run(this.gallery, id, seq);
  }

  private toItem(row: ItemRow): StoredItem {
    return {
      id: row.id,
      hash: row.hash.toString('hex'),
      itc: decodeItc(row.itc, row.itc_scale, this.itcDim || storedDim(row.itc, row.itc_scale), `${this.location}: gallery item '${row.id}'`),
      metadata: JSON.parse(row.metadata) as StoredItem['metadata'],
      createdAt: new Date(row.created_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new BridgeTowerError('E_IO', `the gallery of '${this.bundle}' (${this.location}) is closed`, { path: this.location });
  }
}

function migrate(db: Database.Database, path: string, options: GalleryStoreOptions): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new BridgeTowerError('E_IO', `${path} has gallery schema version ${version}; this bridgetower-node reads up to ${SCHEMA_VERSION}: upgrade bridgetower-node or use another --gallery`, { path, version });
  }
  db.pragma('journal_mode = WAL');
  // FULL: a put that returned is on disk even after a power loss, not only after a crash.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Another process on the same file (a second server, a backup) may hold the lock briefly.
  db.pragma('busy_timeout = 5000');
  if (version === SCHEMA_VERSION) return;
  const oldItems = version === 1 ? (db.prepare('SELECT count(*) AS n FROM gallery_items').get() as { n: number }).n : 0;
  db.transaction(() => {
    for (const migration of MIGRATIONS) if (migration.version > version) db.exec(migration.sql);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
  if (oldItems > 0) {
    options.logger.warn(`${path}: the gallery format of version 1 kept no images, so its ${oldItems} item(s) cannot be re-encoded and were dropped: add the images again`);
  }
}

/** This bundle's gallery row, created or (after a fingerprint change) emptied. */
function claim(db: Database.Database, path: string, options: GalleryStoreOptions): { id: number; itcDim: number } {
  const run = db.transaction(() => {
    const row = db.prepare<[string], { id: number; fingerprint: string; itc_dim: number }>('SELECT id, fingerprint, itc_dim FROM galleries WHERE bundle = ?').get(options.bundle);
    if (!row) {
      const id = Number(db.prepare<[string, string]>('INSERT INTO galleries (bundle, fingerprint) VALUES (?, ?)').run(options.bundle, options.fingerprint).lastInsertRowid);
      return { id, itcDim: 0 };
    }
    if (row.fingerprint === options.fingerprint) return { id: row.id, itcDim: row.itc_dim };
    db.prepare<[number]>('INSERT INTO gallery_changes (gallery, id) SELECT gallery, id FROM gallery_items WHERE gallery = ?').run(row.id);
    const cleared = db.prepare<[number]>('DELETE FROM gallery_items WHERE gallery = ?').run(row.id).changes;
    db.prepare<[number]>('DELETE FROM gallery_images WHERE gallery = ?').run(row.id);
    db.prepare<[string, number]>('UPDATE galleries SET fingerprint = ?, itc_dim = 0 WHERE id = ?').run(options.fingerprint, row.id);
    options.logger.warn(staleGalleryWarning(options.bundle, path, row.fingerprint, options.fingerprint, cleared));
    return { id: row.id, itcDim: 0 };
  });
  return run.immediate();
}
