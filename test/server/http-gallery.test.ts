import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { Gallery } from '../../server/gallery/gallery.js';
import { MemoryGalleryStore } from '../../server/gallery/memory-gallery-store.js';
import { fakeImage, fakeServer } from './http-fakes.js';

const b64 = (size: number) => fakeImage(size).toString('base64');

describe('the gallery routes beyond PUT, DELETE and text search', () => {
  it('POST /gallery:batch stores the good items and reports each bad one by id', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({
      method: 'POST',
      url: '/gallery:batch',
      payload: { items: [{ id: 'a', image: b64(10), metadata: { tag: 'x' } }, { id: 'bad id', image: b64(11) }, { id: 'c', image: '***' }, { id: 'd', image: b64(12) }] },
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.added, 2);
    assert.equal(body.failed, 2);
    assert.deepEqual(body.results.map((r: { id: string; ok: boolean }) => [r.id, r.ok]), [['a', true], ['bad id', false], ['c', false], ['d', true]]);
    assert.equal(body.results[1].error.code, 'E_USAGE');
    assert.equal(body.results[2].error.code, 'E_BAD_BASE64');
    assert.equal((await app.inject({ method: 'GET', url: '/gallery' })).json().total, 2);
  });

  it('GET /gallery pages by id with the total, and GET /gallery/:id answers the metadata', async (t) => {
    const { app } = await fakeServer(t);
    for (const id of ['c', 'a', 'b']) await app.inject({ method: 'PUT', url: `/gallery/${id}`, payload: { image: b64(5), metadata: { name: id } } });
    const first = (await app.inject({ method: 'GET', url: '/gallery?limit=2' })).json();
    assert.deepEqual(first.items.map((i: { id: string }) => i.id), ['a', 'b']);
    assert.equal(first.total, 3);
    assert.equal(first.next, 'b');
    const second = (await app.inject({ method: 'GET', url: `/gallery?limit=2&after=${first.next}` })).json();
    assert.deepEqual(second.items.map((i: { id: string }) => i.id), ['c']);
    assert.equal(second.next, undefined);
    const one = await app.inject({ method: 'GET', url: '/gallery/b' });
    assert.deepEqual(one.json().metadata, { name: 'b' });
    assert.equal((await app.inject({ method: 'GET', url: '/gallery/zzz' })).statusCode, 404);
  });

  it('POST /search filters on metadata, and with rerank false answers the ITC ranking', async (t) => {
    const { app } = await fakeServer(t);
    for (const [id, size, album] of [['s', 5, 'x'], ['l', 50, 'y'], ['m', 20, 'x']] as const) {
      await app.inject({ method: 'PUT', url: `/gallery/${id}`, payload: { image: b64(size), metadata: { album } } });
    }
    const filtered = (await app.inject({ method: 'POST', url: '/search', payload: { text: 'q', filter: { album: 'x' } } })).json();
    assert.deepEqual(filtered.results.map((r: { id: string }) => r.id), ['m', 's']);
    const plain = (await app.inject({ method: 'POST', url: '/search', payload: { text: 'q', rerank: false, k: 1 } })).json();
    assert.deepEqual(plain.results, [{ id: 'l', score: 50, itc: 50 }]);
    assert.equal(plain.reranked, false);
  });

  it('POST /search needs exactly one of text and image', async (t) => {
    const { app } = await fakeServer(t);
    assert.equal((await app.inject({ method: 'POST', url: '/search', payload: { k: 1 } })).statusCode, 422);
    assert.equal((await app.inject({ method: 'POST', url: '/search', payload: { text: 'q', image: b64(3) } })).statusCode, 422);
  });

  it('an unreachable gallery database answers 503 E_GALLERY_UNAVAILABLE with Retry-After', async (t) => {
    const store = new MemoryGalleryStore('fake');
    const gallery = await Gallery.open(store, { cacheMb: 1 });
    store.changesSince = async () => {
      throw new BridgeTowerError('E_GALLERY_UNAVAILABLE', 'the gallery database is down: retry shortly');
    };
    const { app } = await fakeServer(t, { gallery });
    const response = await app.inject({ method: 'POST', url: '/search', payload: { text: 'q' } });
    assert.equal(response.statusCode, 503);
    assert.equal(response.json().error.code, 'E_GALLERY_UNAVAILABLE');
    assert.equal(response.headers['retry-after'], '1');
  });

  it('a candidate whose encoding left the cache is encoded again from its stored image, and counted', async (t) => {
    const gallery = await Gallery.open(new MemoryGalleryStore('fake'), { cacheMb: 0 });
    const { app, service } = await fakeServer(t, { gallery });
    await app.inject({ method: 'PUT', url: '/gallery/x', payload: { image: b64(9) } });
    const before = service.calls.filter((c) => c.method === 'encodeImage').length;
    const session = gallery.session((image) => service.encodeImage(image, { deadline: Date.now() + 10_000 }));
    assert.deepEqual(await session.embeds('x'), Float32Array.from([1, 2, 3]));
    assert.equal(session.reencoded, 1);
    assert.equal(service.calls.filter((c) => c.method === 'encodeImage').length, before + 1);
  });
});
