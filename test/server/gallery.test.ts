import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { BridgeTowerError } from '../../common/errors.js';
import { GALLERY_FILE, GalleryStore, validateGalleryId } from '../../server/gallery/gallery-store.js';
import type { ImageEncoding } from '../../server/model-service.js';
import { tempDir } from '../helpers/temp-dir.js';

const BUNDLE = 'bridgetower-demo';
const FINGERPRINT = 'a'.repeat(64);

/** A deterministic encoding whose values depend on `seed`: [2 layers, 5 tokens, 4 hidden] + itc [3]. */
function encoding(seed: number, options: { itc?: boolean; embeds?: number } = {}): ImageEncoding {
  const embeds = Float32Array.from({ length: options.embeds ?? 40 }, (_, i) => Math.sin(seed * 7 + i) * 3.5);
  const hash = `sha256-${seed}`;
  if (options.itc === false) return { hash, embeds };
  return { hash, embeds, itc: Float32Array.from([seed, -seed / 3, 0.125]) };
}

function open(dataDir: string, options: { bundle?: string; fingerprint?: string; warnings?: string[] } = {}): GalleryStore {
  return GalleryStore.open(dataDir, options.bundle ?? BUNDLE, {
    fingerprint: options.fingerprint ?? FINGERPRINT,
    logger: { warn: (message) => options.warnings?.push(message) },
  });
}

function usageError(id: unknown): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof BridgeTowerError, `expected a BridgeTowerError for ${String(id)}`);
    assert.equal(error.code, 'E_USAGE');
    assert.match(error.message, /gallery id .* is invalid: use 1–128 characters/);
    return true;
  };
}

describe('the gallery store', () => {
  it('items written, closed and reopened are listed again with bit-identical encodings', (t) => {
    const dir = tempDir(t);
    const store = open(dir);
    store.put('cat.jpg', encoding(1));
    store.put('dog', encoding(2));
    store.close();

    const reopened = open(dir);
    t.after(() => reopened.close());
    assert.equal(reopened.count(), 2);
    const byId = new Map(reopened.list().map((item) => [item.id, item.encoding]));
    assert.deepEqual(byId.get('cat.jpg'), encoding(1));
    assert.deepEqual(byId.get('dog'), encoding(2));
  });

  it('encodings of a bundle without ITC heads round-trip without an itc feature', (t) => {
    const dir = tempDir(t);
    const store = open(dir, { bundle: 'vqa-only' });
    store.put('dog', encoding(2, { itc: false }));
    store.close();
    const reopened = open(dir, { bundle: 'vqa-only' });
    assert.deepEqual(reopened.get('dog'), encoding(2, { itc: false }));
    assert.equal(reopened.get('dog')?.itc, undefined);
    reopened.close();
  });

  it('creates the data folder when it does not exist and uses WAL journaling', (t) => {
    const dir = join(tempDir(t), 'nested', 'data');
    const store = open(dir);
    store.put('x', encoding(3));
    assert.ok(existsSync(join(dir, GALLERY_FILE)));
    const peek = new Database(join(dir, GALLERY_FILE), { readonly: true });
    assert.equal(peek.pragma('journal_mode', { simple: true }), 'wal');
    peek.close();
    store.close();
  });

  it('put replaces an existing id instead of adding a second item', (t) => {
    const dir = tempDir(t);
    const store = open(dir);
    store.put('same', encoding(1));
    store.put('same', encoding(9));
    assert.equal(store.count(), 1);
    assert.deepEqual(store.get('same'), encoding(9));
    store.close();
    const reopened = open(dir);
    assert.deepEqual(reopened.get('same'), encoding(9));
    reopened.close();
  });

  it('delete reports whether the id existed, and the deletion survives a restart', (t) => {
    const dir = tempDir(t);
    const store = open(dir);
    store.put('gone', encoding(1));
    store.put('kept', encoding(2));
    assert.equal(store.delete('gone'), true);
    assert.equal(store.delete('gone'), false);
    assert.equal(store.get('gone'), undefined);
    store.close();
    const reopened = open(dir);
    assert.deepEqual(reopened.list().map((item) => item.id), ['kept']);
    reopened.close();
  });

  it('list returns the same array until a write changes the gallery', (t) => {
    const store = open(tempDir(t));
    store.put('a', encoding(1));
    const first = store.list();
    assert.equal(store.list(), first);
    store.put('b', encoding(2));
    assert.notEqual(store.list(), first);
    assert.deepEqual(store.list().map((item) => item.id), ['a', 'b']);
    store.close();
  });

  it('ids outside 1–128 characters of [A-Za-z0-9._:-] are usage errors that say what is allowed', (t) => {
    const store = open(tempDir(t));
    for (const id of ['', 'a'.repeat(129), 'has space', 'slash/inside', 'ünïcode', 'semi;colon', 42]) {
      assert.throws(() => store.put(id as string, encoding(1)), usageError(id));
      assert.throws(() => store.get(id as string), usageError(id));
      assert.throws(() => store.delete(id as string), usageError(id));
    }
    assert.equal(validateGalleryId('a'.repeat(128)), 'a'.repeat(128));
    assert.equal(validateGalleryId('img-01_v2.png:crop'), 'img-01_v2.png:crop');
    assert.equal(store.count(), 0);
    store.close();
  });

  it('galleries of two bundles in one data folder are kept apart', (t) => {
    const dir = tempDir(t);
    const vqa = open(dir, { bundle: 'vqa', fingerprint: 'f'.repeat(64) });
    const demo = open(dir, { bundle: 'demo' });
    vqa.put('shared-id', encoding(1));
    demo.put('shared-id', encoding(2));
    demo.put('demo-only', encoding(3));
    assert.equal(vqa.count(), 1);
    assert.deepEqual(vqa.get('shared-id'), encoding(1));
    vqa.close();
    demo.close();
    const reopened = open(dir, { bundle: 'vqa', fingerprint: 'f'.repeat(64) });
    assert.deepEqual(reopened.list().map((item) => item.id), ['shared-id']);
    reopened.close();
  });

  it('a gallery built by a bundle with another fingerprint is cleared at open, with a warning', (t) => {
    const dir = tempDir(t);
    const old = open(dir);
    old.put('a', encoding(1));
    old.put('b', encoding(2));
    old.close();

    const warnings: string[] = [];
    const store = open(dir, { fingerprint: 'b'.repeat(64), warnings });
    assert.equal(store.count(), 0);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /gallery of bundle 'bridgetower-demo' .* built by a different model .* 2 item\(s\) were deleted: add the images again/);
    store.put('c', encoding(3));
    store.close();

    const again: string[] = [];
    const reopened = open(dir, { fingerprint: 'b'.repeat(64), warnings: again });
    assert.deepEqual(reopened.list().map((item) => item.id), ['c']);
    assert.deepEqual(again, []);
    reopened.close();
  });

  it('an encoding of another size than the gallery holds is refused as a model mix-up', (t) => {
    const store = open(tempDir(t));
    store.put('a', encoding(1));
    assert.throws(() => store.put('b', encoding(2, { embeds: 48 })), (error: unknown) => {
      assert.ok(error instanceof BridgeTowerError);
      assert.equal(error.code, 'E_BUNDLE');
      assert.match(error.message, /encoded by another model/);
      return true;
    });
    assert.throws(() => store.put('c', encoding(3, { itc: false })), /encoded by another model/);
    assert.equal(store.count(), 1);
    store.close();
  });

  it('a database written by a newer schema is refused, not misread', (t) => {
    const dir = tempDir(t);
    open(dir).close();
    const db = new Database(join(dir, GALLERY_FILE));
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => open(dir), (error: unknown) => {
      assert.ok(error instanceof BridgeTowerError);
      assert.equal(error.code, 'E_IO');
      assert.match(error.message, /schema version 99; this bridgetower-node reads up to 1/);
      return true;
    });
  });

  it('a damaged encoding (BLOB length not matching its stored size) is refused by name when read', (t) => {
    const dir = tempDir(t);
    const store = open(dir);
    store.put('broken', encoding(1));
    store.close();
    const db = new Database(join(dir, GALLERY_FILE));
    db.prepare("UPDATE gallery_encodings SET embeds_len = 41, itc_dim = 4 WHERE hash = 'sha256-1'").run();
    db.close();
    assert.throws(() => open(dir), /damaged: itc of 'broken' holds 12 bytes for 4 float32 values/);
    const fixItc = new Database(join(dir, GALLERY_FILE));
    fixItc.prepare("UPDATE gallery_encodings SET itc_dim = 3 WHERE hash = 'sha256-1'").run();
    fixItc.close();
    const reopened = open(dir);
    t.after(() => reopened.close());
    assert.throws(() => reopened.get('broken')?.embeds, /damaged: embeds of image sha256-1 holds 160 bytes for 41 float32 values/);
  });

  it('an image stored under two ids is stored once, and kept until no id uses it', (t) => {
    const dir = tempDir(t);
    const encodings = (): number => {
      const db = new Database(join(dir, GALLERY_FILE), { readonly: true });
      const { n } = db.prepare('SELECT count(*) AS n FROM gallery_encodings').get() as { n: number };
      db.close();
      return n;
    };
    const store = open(dir);
    store.put('first', encoding(1));
    store.put('second', encoding(1));
    assert.equal(encodings(), 1);
    store.delete('first');
    store.close();
    const reopened = open(dir);
    assert.deepEqual(reopened.get('second'), encoding(1));
    reopened.delete('second');
    reopened.close();
    open(dir).close();
    assert.equal(encodings(), 0);
  });

  it('an encoding handed to a search stays readable when its item is deleted or replaced meanwhile', (t) => {
    const dir = tempDir(t);
    const writer = open(dir);
    writer.put('a', encoding(1));
    writer.put('b', encoding(2));
    writer.close();
    const store = open(dir);
    const [a, b] = store.list().map((item) => item.encoding);
    store.delete('a');
    store.put('b', encoding(3));
    assert.deepEqual(a?.embeds, encoding(1).embeds);
    assert.deepEqual(b?.embeds, encoding(2).embeds);
    assert.deepEqual(store.get('b')?.embeds, encoding(3).embeds);
    store.close();
  });

  it('a closed store refuses further calls, and closing twice is harmless', (t) => {
    const store = open(tempDir(t));
    store.close();
    store.close();
    assert.throws(() => store.list(), /is closed/);
    assert.throws(() => store.put('a', encoding(1)), /is closed/);
  });
});
