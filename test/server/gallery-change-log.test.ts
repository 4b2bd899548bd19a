import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Gallery } from '../../server/gallery/gallery.js';
import { openGalleryStore, type GalleryStore, type GalleryStoreOptions } from '../../server/gallery/gallery-store.js';
import type { PostgresGalleryStore } from '../../server/gallery/postgres-gallery-store.js';
import { throwawayPostgres, withClient } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The change log replicas follow must not grow forever. PostgreSQL cuts it to a retention window
 * and records the cut, so a replica whose cursor is older reloads the whole gallery instead of
 * missing what was pruned; SQLite keeps one entry per id. Against a real PostgreSQL server
 * (test/helpers/postgres.ts).
 */

const FINGERPRINT = 'c'.repeat(64);
const DIM = 256;

function feature(seed: number): Float32Array {
  const v = Float32Array.from({ length: DIM }, (_, i) => Math.sin(seed * 7.3 + i * 0.29));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

function item(id: string, seed: number, metadata: Record<string, unknown> = {}) {
  const bytes = Uint8Array.from({ length: 48 }, (_, i) => (seed * 29 + i * 11) % 256);
  return { id, hash: createHash('sha256').update(bytes).digest('hex'), itc: feature(seed), image: bytes, metadata };
}

let skipReason = 'no PostgreSQL server';
const cluster = await throwawayPostgres({ after: (fn) => after(fn), skip: (message) => (skipReason = message ?? skipReason) });
let databases = 0;

/** A fresh database of the throwaway cluster. */
async function freshDatabase(): Promise<string> {
  const name = `changes_${process.pid}_${++databases}`;
  await withClient(cluster!.url, (client) => client.query(`CREATE DATABASE ${name}`));
  return cluster!.url.replace('/postgres?', `/${name}?`);
}

function open(location: string, options: Partial<GalleryStoreOptions> & { warnings?: string[] } = {}): Promise<GalleryStore> {
  return openGalleryStore(location, {
    bundle: 'bridgetower-demo',
    fingerprint: FINGERPRINT,
    itcFormat: 'float32',
    logger: { warn: (message) => options.warnings?.push(message) },
    ...(options.changeRetentionMs === undefined ? {} : { changeRetentionMs: options.changeRetentionMs }),
  });
}

async function logRows(location: string): Promise<{ entries: number; prunedThrough: number }> {
  return withClient(location, async (client) => {
    const entries = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM gallery_changes')).rows[0]!.n);
    const prunedThrough = Number((await client.query<{ p: string }>('SELECT pruned_through AS p FROM galleries')).rows[0]!.p);
    return { entries, prunedThrough };
  });
}

/** The store without LISTEN: its Gallery reads the log only when asked, so it can fall behind. */
function deaf(store: GalleryStore): GalleryStore {
  return {
    location: store.location,
    bundle: store.bundle,
    put: (input) => store.put(input),
    delete: (id) => store.delete(id),
    get: (id) => store.get(id),
    image: (id) => store.image(id),
    list: (page) => store.list(page),
    scan: (each) => store.scan(each),
    changesSince: (cursor, limit) => store.changesSince(cursor, limit),
    close: () => store.close(),
  };
}

describe('the PostgreSQL change log', () => {
  it('pruning cuts the entries older than the retention, records the cut, and a cursor before it reads as pruned', async (t) => {
    if (!cluster) return t.skip(skipReason);
    const location = await freshDatabase();
    // A long retention: nothing is pruned by the writes themselves.
    const store = (await open(location, { changeRetentionMs: 3600_000 })) as PostgresGalleryStore;
    t.after(() => store.close());
    for (let i = 0; i < 5; i++) await store.put(item(`i${i}`, i));
    await store.put(item('i1', 11));
    await store.delete('i2');
    assert.equal(await store.pruneChanges(3600_000), 0, 'entries younger than the window stay');
    assert.equal((await store.changesSince(0, 100)).changes.length, 7);

    assert.equal(await store.pruneChanges(0), 7);
    const { entries, prunedThrough } = await logRows(location);
    assert.equal(entries, 0);
    assert.ok(prunedThrough > 0);
    assert.deepEqual(await store.changesSince(0, 100), { changes: [], pruned: true });
    assert.deepEqual(await store.changesSince(prunedThrough - 1, 100), { changes: [], pruned: true });
    assert.deepEqual(await store.changesSince(prunedThrough, 100), { changes: [], pruned: false });

    // A reload's cursor is the cut even though the log is empty: it does not read as behind again.
    const cursor = await store.scan(() => {});
    assert.equal(cursor, prunedThrough);
    await store.put(item('i5', 5));
    const after = await store.changesSince(cursor, 100);
    assert.equal(after.pruned, false);
    assert.deepEqual(after.changes.map((c) => c.id), ['i5']);
  });

  it('a write prunes the log on its own', async (t) => {
    if (!cluster) return t.skip(skipReason);
    const location = await freshDatabase();
    const store = await open(location, { changeRetentionMs: 0 });
    await store.put(item('a', 1));
    // close() waits for the prune the write started.
    await store.close();
    const { entries, prunedThrough } = await logRows(location);
    assert.equal(entries, 0);
    assert.ok(prunedThrough > 0);
  });

  it('a replica out of touch for longer than the retention reloads: the deletes, updates and additions it missed all show', async (t) => {
    if (!cluster) return t.skip(skipReason);
    const location = await freshDatabase();
    const writer = (await open(location, { changeRetentionMs: 3600_000 })) as PostgresGalleryStore;
    for (let i = 0; i < 5; i++) await writer.put(item(`i${i}`, i, { n: i }));
    const warnings: string[] = [];
    const replica = await Gallery.open(deaf(await open(location)), { cacheMb: 0, pollMs: 3600_000, warn: (message) => warnings.push(message) });
    t.after(async () => {
      await replica.close();
      await writer.close();
    });
    assert.equal(replica.count, 5);

    await writer.delete('i1');
    await writer.put(item('i2', 42, { n: 'moved' }));
    await writer.put(item('i9', 9));
    assert.ok((await writer.pruneChanges(0)) >= 3);

    const nearest42 = await replica.nearest(feature(42), 10);
    assert.equal(replica.count, 5);
    assert.deepEqual(nearest42.map((n) => n.id).sort(), ['i0', 'i2', 'i3', 'i4', 'i9']);
    assert.equal(nearest42[0]!.id, 'i2');
    assert.ok(Math.abs(nearest42[0]!.similarity - 1) < 1e-5);
    assert.deepEqual((await replica.nearest(feature(0), 5, { n: 'moved' })).map((n) => n.id), ['i2']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /fell behind the change log .*reloaded 5 item\(s\), 1 removed/);

    // Caught up: later writes arrive through the log again, without another reload.
    await writer.delete('i0');
    assert.ok(!(await replica.nearest(feature(0), 10)).some((n) => n.id === 'i0'));
    assert.equal(warnings.length, 1);
  });

  it('a database of schema version 1 is migrated: its log entries gain times and its gallery a cut at 0', async (t) => {
    if (!cluster) return t.skip(skipReason);
    const location = await freshDatabase();
    await (await open(location)).close();
    // Back to version 1 as an older release left it, with one change logged.
    await withClient(location, async (client) => {
      await client.query('ALTER TABLE gallery_changes DROP COLUMN at');
      await client.query('ALTER TABLE galleries DROP COLUMN pruned_through');
      await client.query('DELETE FROM gallery_schema WHERE version > 1');
      await client.query("INSERT INTO gallery_changes (gallery, id) SELECT id, 'gone' FROM galleries");
    });
    const store = await open(location);
    t.after(() => store.close());
    assert.deepEqual(await logRows(location), { entries: 1, prunedThrough: 0 });
    const { changes, pruned } = await store.changesSince(0, 10);
    assert.equal(pruned, false);
    assert.deepEqual(changes.map((c) => [c.id, c.item]), [['gone', undefined]]);
    assert.equal(await (store as PostgresGalleryStore).pruneChanges(0), 1);
  });
});

describe('the SQLite change log', () => {
  it('keeps one entry per id, its latest, and a reader behind it still sees every id that changed', async (t) => {
    const path = join(tempDir(t), 'gallery.sqlite');
    const store = await open(`sqlite:${path}`);
    t.after(() => store.close());
    const start = await store.scan(() => {});
    for (let round = 0; round < 4; round++) for (let i = 0; i < 3; i++) await store.put(item(`i${i}`, 10 * round + i));
    await store.delete('i1');
    const db = new Database(path, { readonly: true });
    const rows = db.prepare<[], { id: string }>('SELECT id FROM gallery_changes ORDER BY seq').all();
    db.close();
    assert.deepEqual(rows.map((r) => r.id), ['i0', 'i2', 'i1']);
    const { changes, pruned } = await store.changesSince(start, 100);
    assert.equal(pruned, false);
    assert.deepEqual(
      changes.map((c) => [c.id, c.item?.hash]),
      [
        ['i0', item('i0', 30).hash],
        ['i2', item('i2', 32).hash],
        ['i1', undefined],
      ],
    );
  });
});
