import type pg from 'pg';
import { BridgeTowerError } from '../../common/errors.js';

/** Advisory-lock key under which replicas starting together migrate one at a time. */
const MIGRATION_LOCK = 0x6274_6730;

/**
 * Versioned migrations of the PostgreSQL gallery, applied in order, each in the transaction that
 * records it in `gallery_schema`; a database of a newer version is refused rather than misread.
 * Append a migration for every change; never edit one that has shipped.
 */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE galleries (
  id          serial PRIMARY KEY,
  bundle      text NOT NULL UNIQUE,
  fingerprint text NOT NULL,
  itc_dim     integer NOT NULL DEFAULT 0
);
-- Images by content, one copy per distinct image; large values are TOASTed out of line, so
-- scanning items never reads them.
CREATE TABLE gallery_images (
  gallery integer NOT NULL REFERENCES galleries(id) ON DELETE CASCADE,
  hash    bytea NOT NULL,
  bytes   bytea NOT NULL,
  PRIMARY KEY (gallery, hash)
);
CREATE TABLE gallery_items (
  gallery    integer NOT NULL REFERENCES galleries(id) ON DELETE CASCADE,
  id         text COLLATE "C" NOT NULL,
  hash       bytea NOT NULL,
  itc        bytea NOT NULL,       -- float32 little-endian, or int8 codes when itc_scale is set
  itc_scale  real,
  metadata   jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (gallery, id)
);
CREATE TABLE gallery_changes (
  seq     bigserial PRIMARY KEY,
  gallery integer NOT NULL,
  id      text NOT NULL
);
CREATE INDEX gallery_changes_by_gallery ON gallery_changes (gallery, seq);`,
  },
  {
    // The change log is pruned (PostgresGalleryStore.pruneChanges): entries carry their time,
    // and a gallery remembers up to which seq its log was cut, so that a replica whose cursor is
    // older knows it missed changes and reloads instead of silently diverging.
    version: 2,
    sql: `
ALTER TABLE gallery_changes ADD COLUMN at timestamptz NOT NULL DEFAULT clock_timestamp();
ALTER TABLE galleries ADD COLUMN pruned_through bigint NOT NULL DEFAULT 0;`,
  },
];
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

export async function migratePostgres(pool: pg.Pool, location: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS gallery_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const version = Number((await client.query<{ v: number | null }>('SELECT max(version) AS v FROM gallery_schema')).rows[0]!.v ?? 0);
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new BridgeTowerError(
        'E_IO',
        `${location} has gallery schema version ${version}; this bridgetower-node reads up to ${POSTGRES_SCHEMA_VERSION}: upgrade bridgetower-node (every replica) or use another database`,
        { location, version },
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= version) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO gallery_schema (version) VALUES ($1)', [migration.version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
