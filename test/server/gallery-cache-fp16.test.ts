import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { Gallery } from '../../server/gallery/gallery.js';
import { MemoryGalleryStore } from '../../server/gallery/memory-gallery-store.js';
import type { ImageEncoding } from '../../server/model-service.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { ImageCache, encodingBytes, type CacheStorage } from '../../server/scheduling/image-cache.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The gallery's re-ranking cache may hold the image encoder's output as IEEE half
 * (`--gallery-cache-dtype float16`): half the bytes, and ITM re-ranking scores within 1e-3 of
 * the float32 cache's, on the fixture bundles (the demo bundle and upstream's tiny
 * irtr_itm_itc checkpoint converted).
 */

const SCORE_TOLERANCE = 1e-3;
const FAR = { deadline: Date.now() + 10 * 60_000 };
const root = tempDir({ after });

async function png(seed: number, width = 72, height = 56): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (3 + seed) + seed * 113) % 253;
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** Every bundle the check runs on: how to make it (undefined: its fixture is absent, skipped). */
const BUNDLES: Record<string, (t: { skip(message?: string): void }) => Promise<string | undefined>> = {
  demo: async () => {
    const dir = join(root, 'demo');
    await buildDemoBundle(dir);
    return dir;
  },
  'tiny irtr_itm_itc (upstream checkpoint)': async (t) => {
    const checkpoint = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'irtr_itm_itc.ckpt');
    const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
    const tokenizer = sharedFixture(t, 'fixtures', 'tokenizer', 'tokenizer.json');
    if (!checkpoint || !textConfig || !tokenizer) return undefined;
    const dir = join(root, 'irtr');
    await convertCheckpoint({ checkpoint, out: dir, textConfig, tokenizer });
    return dir;
  },
};

describe('a float16 re-ranking cache', () => {
  for (const [name, make] of Object.entries(BUNDLES)) {
    it(`${name}: ITM re-ranking scores stay within 1e-3 of the float32 cache's`, async (t) => {
      const bundle = await make(t);
      if (!bundle) return;
      const service = await BundleService.open(bundle, { device: 'cpu', precision: 'fp32', maxBatch: 4, maxDelayMs: 1, maxQueue: 64, cacheMb: 0 });
      t.after(() => service.close());
      const images = await Promise.all([21, 22, 23, 24, 25, 26].map((seed) => png(seed)));
      const encodings = await Promise.all(images.map((image) => service.encodeImage(image, FAR)));

      const search = async (storage: CacheStorage, text: string) => {
        const gallery = await Gallery.open(new MemoryGalleryStore('fixture'), { cacheMb: 256, cacheStorage: storage });
        try {
          for (const [i, encoding] of encodings.entries()) await gallery.put({ id: `img-${i}`, image: images[i]!, encoding });
          const session = gallery.session((bytes) => service.encodeImage(bytes, FAR));
          const hits = await service.search({ text, k: images.length, candidates: images.length, rerank: true, gallery: session }, FAR);
          // Served from the cache, so the half-stored embeddings are what was re-ranked.
          assert.equal(session.reencoded, 0);
          return new Map(hits.map((hit) => [hit.id, hit.score]));
        } finally {
          await gallery.close();
        }
      };
      let worst = 0;
      // Words inside the tiny checkpoint's 1,000-token vocabulary.
      for (const text of ['A man with two people', 'A good man on the']) {
        const full = await search('float32', text);
        const half = await search('float16', text);
        assert.deepEqual([...half.keys()].sort(), [...full.keys()].sort());
        for (const [id, score] of full) worst = Math.max(worst, Math.abs(half.get(id)! - score));
      }
      assert.ok(worst <= SCORE_TOLERANCE, `worst |ITM score difference| ${worst} > ${SCORE_TOLERANCE}`);
    });
  }

  it('holds embeddings in two bytes a value, each the nearest half to the float32 value', () => {
    const embeds = Float32Array.from({ length: 6 * 17 * 8 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 5)));
    const encoding: ImageEncoding = { hash: 'h'.repeat(64), embeds, itc: new Float32Array(16) };
    const full = ImageCache.fromMegabytes(1, undefined, 'float32');
    const half = ImageCache.fromMegabytes(1, undefined, 'float16');
    full.set(encoding);
    half.set(encoding);
    assert.equal(full.stats.bytes - half.stats.bytes, embeds.length * 2);
    assert.equal(encodingBytes(encoding, 'float32') - encodingBytes(encoding, 'float16'), embeds.length * 2);
    const back = half.get(encoding.hash)!.embeds;
    assert.equal(back.length, embeds.length);
    for (let i = 0; i < embeds.length; i++) {
      // A half has 11 significant bits: rounding to nearest errs by at most 2^-11 relative.
      assert.ok(Math.abs(back[i]! - embeds[i]!) <= Math.abs(embeds[i]!) * 2 ** -11, `value ${i}: ${embeds[i]} came back as ${back[i]}`);
    }
    assert.deepEqual(half.get(encoding.hash)!.itc, encoding.itc);
  });
});
