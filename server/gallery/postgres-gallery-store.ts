import pg from 'pg';
import { BridgeTowerError } from '../../common/errors.js';
import { decodeItc, encodeItc, storedDim } from './itc-codec.js';
import {
  DEFAULT_CHANGE_RETENTION_MS,
  dimensionMismatch,
  redactLocation,
  staleGalleryWarning,
  type ChangePage,
  type GalleryStore,
  type GalleryStoreOptions,
  type ItemInput,
  type ListPage,
  type StoredItem,
} from './gallery-store.js';
import { migratePostgres } from './postgres-schema.js';

/** The NOTIFY channel every write signals on (payload: the gallery's id). */
const CHANNEL = 'bridgetower_gallery';
/** Advisory-lock namespace of gallery writes: one writer per gallery at a time, so change-log order is commit order. */
const WRITE_LOCK = 0x6274_6731;
const LISTEN_RETRY_MS = 1000;
/** A replica prunes its gallery's change log after a write at most this often (one indexed DELETE). */
const PRUNE_EVERY_MS = 60_000;

interface ItemRow {
  id: string;
  hash: Buffer;
  itc: Buffer;
  itc_scale: number | null;
  metadata: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}
const ITEM_COLUMNS = 'id, hash, itc, itc_scale, metadata, created_at, updated_at';

/** Errors that mean "the server is not reachable now", not "this request is wrong" (SQLSTATE classes 08, 57P and node's socket errors). */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/**
 * The shared backend (`--gallery postgres://…`): every replica reads and writes one database.
 * Each write is a transaction that takes the gallery's advisory lock, changes the item and its
 * image, appends to `gallery_changes` and NOTIFYs; replicas LISTEN and read the log from their
 * cursor. PostgreSQL acknowledges the COMMIT after its WAL is flushed (fsync, synchronous_commit
 * on: the defaults), so a resolved put survives a crash of this process and of the database.
 */
export class PostgresGalleryStore implements GalleryStore {
  private closed = false;
  private listener: pg.Client | undefined;
  private listenTimer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  private pruning: Promise<unknown> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly config: pg.PoolConfig,
    readonly location: string,
    readonly bundle: string,
    private readonly gallery: number,
    private itcDim: number,
    private readonly options: GalleryStoreOptions,
  ) {}

  static async open(url: string, options: GalleryStoreOptions): Promise<PostgresGalleryStore> {
    const location = redactLocation(url);
    const config: pg.PoolConfig = { connectionString: url, max: 8, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000, application_name: 'bridgetower' };
    const pool = new pg.Pool(config);
    // A connection that dies while idle (database restart) must not crash the process.
    pool.on('error', () => {});
    try {
      await migratePostgres(pool, location);
      const { id, itcDim } = await claim(pool, location, options);
      return new PostgresGalleryStore(pool, config, location, options.bundle, id, itcDim, options);
    } catch (error) {
      await pool.end().catch(() => {});
      throw storeError(error, location, 'open the gallery');
    }
  }

  async put(item: ItemInput): Promise<StoredItem> {
    if (this.itcDim !== 0 && item.itc.length !== this.itcDim) throw dimensionMismatch(item.id, this.bundle, item.itc.length, this.itcDim);
    const hash = Buffer.from(item.hash, 'hex');
    const itc = encodeItc(item.itc, this.options.itcFormat);
    const row = await this.transaction('store an item', async (client) => {
      const previous = (await client.query<{ hash: Buffer }>('SELECT hash FROM gallery_items WHERE gallery = $1 AND id = $2', [this.gallery, item.id])).rows[0]?.hash;
      await client.query('INSERT INTO gallery_images (gallery, hash, bytes) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [this.gallery, hash, Buffer.from(item.image)]);
      const { rows } = await client.query<ItemRow>(
        `INSERT INTO gallery_items (gallery, id, hash, itc, itc_scale, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, now(), now())
         ON CONFLICT (gallery, id) DO UPDATE SET hash = excluded.hash, itc = excluded.itc, itc_scale = excluded.itc_scale,
           metadata = excluded.metadata, updated_at = excluded.updated_at
         RETURNING ${ITEM_COLUMNS}`,
        [this.gallery, item.id, hash, Buffer.from(itc.bytes), itc.scale, JSON.stringify(item.metadata)],
      );
      if (previous && !previous.equals(hash)) await this.dropUnusedImage(client, previous);
      if (this.itcDim === 0) await client.query('UPDATE galleries SET itc_dim = $1 WHERE id = $2 AND itc_dim = 0', [item.itc.length, this.gallery]);
      await this.logChange(client, item.id);
      return rows[0]!;
    });
    this.itcDim = item.itc.length;
    this.schedulePrune();
    return this.toItem(row);
  }

  async delete(id: string): Promise<boolean> {
    const removed = await this.transaction('delete an item', async (client) => {
      const { rows } = await client.query<{ hash: Buffer }>('DELETE FROM gallery_items WHERE gallery = $1 AND id = $2 RETURNING hash', [this.gallery, id]);
      if (!rows[0]) return false;
      await this.dropUnusedImage(client, rows[0].hash);
      await this.logChange(client, id);
      return true;
    });
    if (removed) this.schedulePrune();
    return removed;
  }

  async get(id: string): Promise<StoredItem | undefined> {
    const { rows } = await this.query<ItemRow>('read an item', `SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = $1 AND id = $2`, [this.gallery, id]);
    return rows[0] && this.toItem(rows[0]);
  }

  async image(id: string): Promise<{ hash: string; bytes: Uint8Array } | undefined> {
    const { rows } = await this.query<{ hash: Buffer; bytes: Buffer }>(
      'read an image',
      'SELECT i.hash, m.bytes FROM gallery_items i JOIN gallery_images m ON m.gallery = i.gallery AND m.hash = i.hash WHERE i.gallery = $1 AND i.id = $2',
      [this.gallery, id],
    );
    return rows[0] && { hash: rows[0].hash.toString('hex'), bytes: rows[0].bytes };
  }

  async list(page: ListPage): Promise<{ items: StoredItem[]; total: number }> {
    // COLLATE "C": ids page in code-unit order whatever the database's locale, as with SQLite.
    const [items, count] = await Promise.all([
      this.query<ItemRow>('list items', `SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = $1 AND id > $2 COLLATE "C" ORDER BY id COLLATE "C" LIMIT $3`, [this.gallery, page.after ?? '', page.limit]),
      this.query<{ n: string }>('count items', 'SELECT count(*) AS n FROM gallery_items WHERE gallery = $1', [this.gallery]),
    ]);
    return { items: items.rows.map((row) => this.toItem(row)), total: Number(count.rows[0]!.n) };
  }

  async scan(each: (item: StoredItem) => void): Promise<number> {
    // One REPEATABLE READ snapshot: the items and the cursor agree. Read in keyset pages so a
    // large gallery never sits in one result set.
    return this.transaction(
      'load the gallery',
      async (client) => {
        // This gallery's own maximum: the sequence is shared by every gallery, and only one
        // gallery's writes are ordered by its lock. Never below where the log was cut: a
        // pruned-empty log must not read as "behind" again right after this reload.
        const cursor = Number(
          (
            await client.query<{ seq: string }>(
              'SELECT greatest(pruned_through, (SELECT coalesce(max(seq), 0) FROM gallery_changes WHERE gallery = $1)) AS seq FROM galleries WHERE id = $1',
              [this.gallery],
            )
          ).rows[0]!.seq,
        );
        let after = '';
        for (;;) {
          const { rows } = await client.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM gallery_items WHERE gallery = $1 AND id > $2 COLLATE "C" ORDER BY id COLLATE "C" LIMIT 10000`, [this.gallery, after]);
          for (const row of rows) each(this.toItem(row));
          if (rows.length < 10000) return cursor;
          after = rows.at(-1)!.id;
        }
      },
      { isolation: 'REPEATABLE READ READ ONLY', lock: false },
    );
  }

  async changesSince(cursor: number, limit: number): Promise<ChangePage> {
    // One statement, one snapshot: the cut and the entries after the cursor agree (a prune
    // committing in between cannot hide entries without also showing its cut).
    const { rows } = await this.query<ItemRow & { pruned_through: string; seq: string | null; change_id: string }>(
      'read the change log',
      `SELECT g.pruned_through, x.* FROM galleries g LEFT JOIN LATERAL (
         SELECT c.seq, c.id AS change_id, i.id, i.hash, i.itc, i.itc_scale, i.metadata, i.created_at, i.updated_at
         FROM gallery_changes c LEFT JOIN gallery_items i ON i.gallery = c.gallery AND i.id = c.id
         WHERE c.gallery = g.id AND c.seq > $2 ORDER BY c.seq LIMIT $3) x ON true
       WHERE g.id = $1`,
      [this.gallery, cursor, limit],
    );
    if (rows[0] && cursor < Number(rows[0].pruned_through)) return { changes: [], pruned: true };
    const changes = rows
      .filter((row) => row.seq !== null)
      .map((row) => ({ seq: Number(row.seq), id: row.change_id, item: row.id === null ? undefined : this.toItem(row) }));
    return { changes, pruned: false };
  }

  /**
   * Deletes this gallery's change-log entries older than the retention window (all of them up to
   * the newest such entry: a prefix of the log, so a cursor is either past the cut or knows it is
   * behind) and records the cut in `galleries.pruned_through`. Under the write lock: no write
   * can slip a lower seq in meanwhile. Resolves to the number of entries deleted.
   */
  async pruneChanges(retentionMs = this.options.changeRetentionMs ?? DEFAULT_CHANGE_RETENTION_MS): Promise<number> {
    return this.transaction('prune the change log', async (client) => {
      const { rows } = await client.query<{ horizon: string | null }>(
        "SELECT max(seq) AS horizon FROM gallery_changes WHERE gallery = $1 AND at < clock_timestamp() - $2 * interval '1 millisecond'",
        [this.gallery, retentionMs],
      );
      const horizon = rows[0]!.horizon;
      if (horizon === null) return 0;
      const deleted = await client.query('DELETE FROM gallery_changes WHERE gallery = $1 AND seq <= $2', [this.gallery, horizon]);
      await client.query('UPDATE galleries SET pruned_through = greatest(pruned_through, $2) WHERE id = $1', [this.gallery, horizon]);
      return deleted.rowCount ?? 0;
    });
  }

  /** LISTENs on its own connection, reconnecting after a database restart; `wake` is also called on every reconnect (changes may have been missed). */
  watch(wake: () => void): void {
    const connect = async (): Promise<void> => {
      if (this.closed) return;
      const client = new pg.Client(this.config);
      const retry = (): void => {
        if (this.listener === client) this.listener = undefined;
        client.end().catch(() => {});
        if (!this.closed) this.listenTimer = setTimeout(() => void connect(), LISTEN_RETRY_MS);
      };
      client.on('error', retry);
      client.on('notification', (message) => {
        if (message.payload === String(this.gallery)) wake();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANNEL}`);
        this.listener = client;
        wake();
      } catch {
        retry();
      }
    };
    void connect();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.pruning;
    this.closed = true;
    clearTimeout(this.listenTimer);
    await this.listener?.end().catch(() => {});
    await this.pool.end();
  }

  /** After a write, at most every PRUNE_EVERY_MS per process; a failure only waits for the next try. */
  private schedulePrune(): void {
    const now = Date.now();
    if (this.pruning || now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    this.pruning = this.pruneChanges()
      .catch((error: Error) => this.options.logger.warn(`the change log of the gallery of '${this.bundle}' was not pruned (retried after the next write in a minute): ${error.message}`))
      .finally(() => (this.pruning = undefined));
  }

  private async dropUnusedImage(client: pg.PoolClient, hash: Buffer): Promise<void> {
    await client.query('DELETE FROM gallery_images WHERE gallery = $1 AND hash = $2 AND NOT EXISTS (SELECT 1 FROM gallery_items WHERE gallery = $1 AND hash = $2)', [this.gallery, hash]);
  }

  private async logChange(client: pg.PoolClient, id: string): Promise<void> {
    await client.query('INSERT INTO gallery_changes (gallery, id) VALUES ($1, $2)', [this.gallery, id]);
    await client.query('SELECT pg_notify($1, $2)', [CHANNEL, String(this.gallery)]);
  }

  private async query<R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    this.assertOpen();
    try {
      return await this.pool.query<R>(sql, params);
    } catch (error) {
      throw storeError(error, this.location, what);
    }
  }

  /** Runs `work` in a transaction holding the gallery's write lock (unless `lock: false`); retried never, rolled back on any error. */
  private async transaction<T>(what: string, work: (client: pg.PoolClient) => Promise<T>, options: { isolation?: string; lock?: boolean } = {}): Promise<T> {
    this.assertOpen();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw storeError(error, this.location, what);
    }
    let broken = false;
    // The connection dying between two statements emits 'error' on a checked-out client, which
    // the pool does not listen to: unheard, it would end the process. The next statement fails.
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${options.isolation ?? 'READ COMMITTED'}`);
      if (options.lock !== false) await client.query('SELECT pg_advisory_xact_lock($1, $2)', [WRITE_LOCK, this.gallery]);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw storeError(error, this.location, what);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private toItem(row: ItemRow): StoredItem {
    return {
      id: row.id,
      hash: row.hash.toString('hex'),
      itc: decodeItc(row.itc, row.itc_scale, this.itcDim || storedDim(row.itc, row.itc_scale), `${this.location}: gallery item '${row.id}'`),
      metadata: row.metadata,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new BridgeTowerError('E_IO', `the gallery of '${this.bundle}' (${this.location}) is closed`, { location: this.location });
  }
}

/** This bundle's gallery row, created or (after a fingerprint change) emptied, under the write lock of gallery 0. */
async function claim(pool: pg.Pool, location: string, options: GalleryStoreOptions): Promise<{ id: number; itcDim: number }> {
  const client = await pool.connect();
  const onError = (): void => {};
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, 0)', [WRITE_LOCK]);
    const row = (await client.query<{ id: number; fingerprint: string; itc_dim: number }>('SELECT id, fingerprint, itc_dim FROM galleries WHERE bundle = $1', [options.bundle])).rows[0];
    let result: { id: number; itcDim: number };
    if (!row) {
      const { rows } = await client.query<{ id: number }>('INSERT INTO galleries (bundle, fingerprint) VALUES ($1, $2) RETURNING id', [options.bundle, options.fingerprint]);
      result = { id: rows[0]!.id, itcDim: 0 };
    } else if (row.fingerprint === options.fingerprint) {
      result = { id: row.id, itcDim: row.itc_dim };
    } else {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [WRITE_LOCK, row.id]);
      await client.query('INSERT INTO gallery_changes (gallery, id) SELECT gallery, id FROM gallery_items WHERE gallery = $1', [row.id]);
      const cleared = (await client.query('DELETE FROM gallery_items WHERE gallery = $1', [row.id])).rowCount ?? 0;
      await client.query('DELETE FROM gallery_images WHERE gallery = $1', [row.id]);
      await client.query('UPDATE galleries SET fingerprint = $1, itc_dim = 0 WHERE id = $2', [options.fingerprint, row.id]);
      await client.query('SELECT pg_notify($1, $2)', [CHANNEL, String(row.id)]);
      options.logger.warn(staleGalleryWarning(options.bundle, location, row.fingerprint, options.fingerprint, cleared));
      result = { id: row.id, itcDim: 0 };
    }
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.off('error', onError);
    client.release();
  }
}

/** A driver error as a BridgeTowerError: E_GALLERY_UNAVAILABLE (503, retry) when the database is unreachable, else E_IO. */
export function storeError(error: unknown, location: string, what: string): BridgeTowerError {
  if (error instanceof BridgeTowerError) return error;
  const { code, message } = error as { code?: string; message?: string };
  const text = message ?? String(error);
  const unreachable =
    (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) || /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(text);
  if (unreachable) {
    return new BridgeTowerError('E_GALLERY_UNAVAILABLE', `the gallery database ${location} cannot be reached (${text}) to ${what}: retry shortly; nothing was changed unless the request was acknowledged`, {
      location,
      ...(code ? { cause: code } : {}),
    });
  }
  return new BridgeTowerError('E_IO', `the gallery database ${location} failed to ${what}: ${text}`, { location, ...(code ? { cause: code } : {}) });
}
