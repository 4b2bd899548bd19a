import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeModelService, fakeImage, fakeServer, memoryGallery, multipart } from './http-fakes.js';

const B64 = fakeImage(12).toString('base64');
const twoRetrievalModels = () => [new FakeModelService('alpha', ['itm', 'itc']), new FakeModelService('beta', ['itm', 'itc'])];

describe('the gallery routes choose the model by one rule', () => {
  it('PUT /gallery/:id?model=<unknown> is a 404 and stores nothing', async (t) => {
    const gallery = await memoryGallery();
    const { app, service } = await fakeServer(t, { gallery });
    const response = await app.inject({ method: 'PUT', url: '/gallery/cat?model=nonexistent', payload: { image: B64 } });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().error.code, 'E_UNKNOWN_MODEL');
    assert.match(response.json().error.message, /'nonexistent'/);
    assert.equal(gallery.count, 0);
    assert.equal(service.calls.length, 0);
  });

  it('PUT takes the model from the query, as DELETE does', async (t) => {
    const services = twoRetrievalModels();
    const { app } = await fakeServer(t, { services });
    const put = await app.inject({ method: 'PUT', url: '/gallery/cat?model=beta', payload: { image: B64 } });
    assert.equal(put.statusCode, 200);
    assert.equal(put.json().model, 'beta');
    assert.deepEqual(services.map((s) => s.calls.length), [0, 1]);
    const removed = await app.inject({ method: 'DELETE', url: '/gallery/cat?model=beta' });
    assert.equal(removed.json().model, 'beta');
  });

  it('PUT still takes the model in the body, JSON or multipart', async (t) => {
    const { app } = await fakeServer(t, { services: twoRetrievalModels() });
    assert.equal((await app.inject({ method: 'PUT', url: '/gallery/a', payload: { image: B64, model: 'alpha' } })).json().model, 'alpha');
    const form = await multipart([['image', { bytes: fakeImage() }], ['model', 'beta']]);
    assert.equal((await app.inject({ method: 'PUT', url: '/gallery/b', ...form })).json().model, 'beta');
  });

  it('a query and a body that name different models are a 422 naming both', async (t) => {
    const { app } = await fakeServer(t, { services: twoRetrievalModels() });
    const response = await app.inject({ method: 'PUT', url: '/gallery/a?model=alpha', payload: { image: B64, model: 'beta' } });
    assert.equal(response.statusCode, 422);
    assert.equal(response.json().error.code, 'E_INVALID_FIELDS');
    assert.match(response.json().error.message, /'alpha'.*'beta'/);
  });

  it('DELETE /gallery/:id?model=<unknown> is a 404 E_UNKNOWN_MODEL, not E_NOT_IN_GALLERY', async (t) => {
    const { app } = await fakeServer(t);
    await app.inject({ method: 'PUT', url: '/gallery/cat', payload: { image: B64 } });
    const response = await app.inject({ method: 'DELETE', url: '/gallery/cat?model=nonexistent' });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().error.code, 'E_UNKNOWN_MODEL');
  });
});
