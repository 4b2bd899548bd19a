import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { BridgeTowerError } from '../../common/errors.js';
import { Gallery } from '../../server/gallery/gallery.js';
import { openGalleryStore, type GalleryStore, type GalleryStoreOptions } from '../../server/gallery/gallery-store.js';
import { throwawayPostgres, withClient } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp-dir.js';

const FINGERPRINT = 'a'.repeat(64);
const DIM = 256;

/** A unit-length 256-d feature that depends on `seed`. */
function feature(seed: number, dim = DIM): Float32Array {
  const v = Float32Array.from({ length: dim }, (_, i) => Math.sin(seed * 13.7 + i * 0.31));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

function image(seed: number, bytes = 64): Uint8Array {
  return Uint8Array.from({ length: bytes }, (_, i) => (seed * 31 + i * 7) % 256);
}

function item(id: string, seed: number, metadata: Record<string, unknown> = {}) {
  const bytes = image(seed);
  return { id, hash: createHash('sha256').update(bytes).digest('hex'), itc: feature(seed), image: bytes, metadata };
}

/** Each backend under test, and how a test gets a fresh location in it. */
interface Backend {
  name: string;
  location(t: { after(fn: () => void): void }): string;
  /** Sets the schema version a newer bridgetower-node would have written. */
  setNewerSchema(location: string): Promise<void>;
  /** Bytes the gallery's tables take: the images' table (with its index and TOAST), and all the others. */
  bytesUsed(location: string): Promise<{ images: number; records: number }>;
}

const sqlite: Backend = {
  name: 'sqlite',
  location: (t) => `sqlite:${join(tempDir(t), 'gallery.sqlite')}`,
  async setNewerSchema(location) {
    const db = new Database(location.slice('sqlite:'.length));
    db.pragma('user_version = 99');
    db.close();
  },
  async bytesUsed(location) {
    const db = new Database(location.slice('sqlite:'.length));
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
      const rows = db.prepare<[], { name: string; bytes: number }>('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all();
      const images = rows.filter((r) => r.name === 'gallery_images' || r.name.startsWith('sqlite_autoindex_gallery_images')).reduce((sum, r) => sum + r.bytes, 0);
      return { images, records: rows.reduce((sum, r) => sum + r.bytes, 0) - images };
    } finally {
      db.close();
    }
  },
};

// One throwaway cluster for the file (CI: failing to start one fails the file).
let postgresSkip = 'no PostgreSQL server';
const cluster = await throwawayPostgres({ after: (fn) => after(fn), skip: (message) => (postgresSkip = message ?? postgresSkip) });
const postgresUrl = cluster?.url;
let databases = 0;
const postgres: Backend = {
  name: 'postgres',
  location() {
    // One cluster for the file, one database per test: tests never see each other's rows.
    const name = `gallery_${process.pid}_${++databases}`;
    pending.push(name);
    return postgresUrl!.replace('/postgres?', `/${name}?`);
  },
  async setNewerSchema(location) {
    await withClient(location, (client) => client.query('INSERT INTO gallery_schema (version) VALUES (99)'));
  },
  async bytesUsed(location) {
    return withClient(location, async (client) => {
      const { rows } = await client.query<{ relname: string; n: string }>(
        "SELECT relname, pg_total_relation_size(c.oid) AS n FROM pg_class c WHERE c.relname IN ('galleries', 'gallery_images', 'gallery_items', 'gallery_changes') AND c.relkind = 'r'",
      );
      const images = Number(rows.find((r) => r.relname === 'gallery_images')?.n ?? 0);
      return { images, records: rows.reduce((sum, r) => sum + Number(r.n), 0) - images };
    });
  },
};
const pending: string[] = [];

/** Creates the databases `postgres.location` named since the last call. */
async function createPending(): Promise<void> {
  while (pending.length > 0) {
    const name = pending.shift()!;
    await withClient(postgresUrl!, (client) => client.query(`CREATE DATABASE ${name}`));
  }
}

for (const backend of [sqlite, postgres]) {
  describe(`the ${backend.name} gallery store`, () => {
    const skipped = (t: { skip(message?: string): void }) => {
      if (backend === postgres && !postgresUrl) {
        t.skip(postgresSkip);
        return true;
      }
      return false;
    };

    async function open(location: string, options: Partial<GalleryStoreOptions> & { warnings?: string[] } = {}): Promise<GalleryStore> {
      await createPending();
      return openGalleryStore(location, {
        bundle: options.bundle ?? 'bridgetower-demo',
        fingerprint: options.fingerprint ?? FINGERPRINT,
        itcFormat: options.itcFormat ?? 'float32',
        logger: { warn: (message) => options.warnings?.push(message) },
      });
    }

    it('an item written, closed and reopened reads back with its feature, image, hash and metadata', async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      const store = await open(location);
      const stored = await store.put(item('cat.jpg', 1, { tag: 'cat', year: 2024 }));
      await store.close();
      const reopened = await open(location);
      t.after(() => reopened.close());
      const read = await reopened.get('cat.jpg');
      assert.deepEqual(read, stored);
      assert.deepEqual(read?.itc, feature(1));
      assert.deepEqual(read?.metadata, { tag: 'cat', year: 2024 });
      assert.deepEqual((await reopened.image('cat.jpg'))?.bytes, Buffer.from(image(1)));
      assert.match(read!.createdAt, /^\d{4}-\d\d-\d\dT/);
    });

    it('put replaces an id, keeping its creation time; delete says whether it was there', async (t) => {
      if (skipped(t)) return;
      const store = await open(backend.location(t));
      t.after(() => store.close());
      const first = await store.put(item('same', 1));
      const second = await store.put(item('same', 2, { v: 2 }));
      assert.equal(second.createdAt, first.createdAt);
      assert.equal(second.hash, item('same', 2).hash);
      assert.deepEqual((await store.image('same'))?.bytes, Buffer.from(image(2)));
      assert.equal((await store.list({ limit: 10 })).total, 1);
      assert.equal(await store.delete('same'), true);
      assert.equal(await store.delete('same'), false);
      assert.equal(await store.get('same'), undefined);
      assert.equal(await store.image('same'), undefined);
    });

    it('lists pages in id order with the total', async (t) => {
      if (skipped(t)) return;
      const store = await open(backend.location(t));
      t.after(() => store.close());
      for (const [i, id] of ['b', 'a', 'd', 'c', 'E'].entries()) await store.put(item(id, i));
      const first = await store.list({ limit: 2 });
      assert.deepEqual(first.items.map((i) => i.id), ['E', 'a']);
      assert.equal(first.total, 5);
      const second = await store.list({ limit: 10, after: 'a' });
      assert.deepEqual(second.items.map((i) => i.id), ['b', 'c', 'd']);
    });

    it('int8 features read back within half a quantization step', async (t) => {
      if (skipped(t)) return;
      const store = await open(backend.location(t), { itcFormat: 'int8' });
      t.after(() => store.close());
      await store.put(item('q', 3));
      const read = (await store.get('q'))!.itc;
      const exact = feature(3);
      const step = Math.max(...exact.map(Math.abs)) / 127;
      exact.forEach((v, i) => assert.ok(Math.abs(read[i]! - v) <= step / 2 + 1e-7, `value ${i}: ${read[i]} vs ${v}`));
    });

    it('a gallery built by a bundle with another fingerprint is cleared at open, with a warning', async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      const old = await open(location);
      await old.put(item('a', 1));
      await old.put(item('b', 2));
      await old.close();
      const warnings: string[] = [];
      const store = await open(location, { fingerprint: 'b'.repeat(64), warnings });
      t.after(() => store.close());
      assert.equal((await store.list({ limit: 10 })).total, 0);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /gallery of bundle 'bridgetower-demo' .* built by a different model .* 2 item\(s\) were deleted: add the images again/);
    });

    it('galleries of two bundles in one database are kept apart', async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      const vqa = await open(location, { bundle: 'vqa' });
      const demo = await open(location, { bundle: 'demo' });
      t.after(async () => {
        await vqa.close();
        await demo.close();
      });
      await vqa.put(item('shared-id', 1));
      await demo.put(item('shared-id', 2));
      await demo.put(item('demo-only', 3));
      assert.equal((await vqa.list({ limit: 10 })).total, 1);
      assert.deepEqual((await vqa.get('shared-id'))?.itc, feature(1));
    });

    it('a feature of another length than the gallery holds is refused as a model mix-up', async (t) => {
      if (skipped(t)) return;
      const store = await open(backend.location(t));
      t.after(() => store.close());
      await store.put(item('a', 1));
      await assert.rejects(store.put({ ...item('b', 2), itc: feature(2, 512) }), (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_BUNDLE' && /encoded by another model/.test(error.message));
    });

    it('a database written by a newer schema is refused, not misread', async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      await (await open(location)).close();
      await backend.setNewerSchema(location);
      await assert.rejects(open(location), (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_IO' && /schema version 99; this bridgetower-node reads up to \d/.test(error.message));
    });

    it("a second reader's Gallery follows writes made through another connection, deletes included", async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      const writer = await open(location);
      const reader = await Gallery.open(await open(location), { cacheMb: 1, pollMs: 60_000 });
      t.after(async () => {
        await writer.close();
        await reader.close();
      });
      await writer.put(item('x', 5, { kind: 'dog' }));
      await writer.put(item('y', 6, { kind: 'cat' }));
      assert.deepEqual((await reader.nearest(feature(5), 1)).map((n) => n.id), ['x']);
      assert.deepEqual((await reader.nearest(feature(5), 5, { kind: 'cat' })).map((n) => n.id), ['y']);
      await writer.delete('x');
      assert.deepEqual((await reader.nearest(feature(5), 5)).map((n) => n.id), ['y']);
    });

    it('an item takes at most 2 KB besides its image (256-d float32 feature, short id and metadata)', async (t) => {
      if (skipped(t)) return;
      const location = backend.location(t);
      const imageBytes = 30_000; // a small JPEG
      const add = async (from: number, n: number): Promise<void> => {
        const store = await open(location);
        for (let i = from; i < from + n; i++) {
          const bytes = randomBytes(imageBytes); // incompressible, as JPEG is
          await store.put({ id: `img-${String(i).padStart(6, '0')}`, hash: createHash('sha256').update(bytes).digest('hex'), itc: feature(i), image: bytes, metadata: { album: 'a1', n: i } });
        }
        await store.close();
      };
      // Marginal bytes from 50 to 250 items: fixed costs (schema, first pages) left out.
      await add(0, 50);
      const before = await backend.bytesUsed(location);
      await add(50, 200);
      const after = await backend.bytesUsed(location);
      const record = (after.records - before.records) / 200;
      const imageOverhead = (after.images - before.images) / 200 - imageBytes;
      t.diagnostic(`${backend.name}: ${record.toFixed(0)} bytes of record per item; its ${imageBytes}-byte image takes ${imageOverhead.toFixed(0)} bytes more than its size`);
      assert.ok(record <= 2048, `${record.toFixed(0)} bytes of record per item`);
      // 10,000 such items (BASE features, 30 KB images) fit in 1 GB with room to spare.
      assert.ok(10_000 * (record + imageBytes + imageOverhead) <= 2 ** 30);
    });
  });
}

describe('the gallery backends table', () => {
  it('refuses a location of no known scheme, naming the ones it knows', async () => {
    await assert.rejects(openGalleryStore('mysql://db/x', { bundle: 'b', fingerprint: FINGERPRINT, itcFormat: 'float32', logger: { warn() {} } }), /names no known backend: use sqlite:<path>, postgres:/);
  });

  it('keeps passwords out of its messages', async () => {
    const { redactLocation } = await import('../../server/gallery/gallery-store.js');
    assert.equal(redactLocation('postgres://user:secret@db:5432/x'), 'postgres://user:***@db:5432/x');
  });
});
