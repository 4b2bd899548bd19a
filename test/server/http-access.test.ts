import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { fakeImage, fakeServer } from './http-fakes.js';

const B64 = fakeImage(12).toString('base64');
const KEY = 'correct horse battery staple';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('the API key', () => {
  it('without a key configured, the gallery is writable by anyone', async (t) => {
    const { app } = await fakeServer(t);
    assert.equal((await app.inject({ method: 'PUT', url: '/gallery/a', payload: { image: B64 } })).statusCode, 200);
  });

  it('an empty API key is refused when the server is built (E_USAGE), not taken as no key', async (t) => {
    for (const auth of ['writes', 'all'] as const) {
      await assert.rejects(fakeServer(t, { server: { apiKey: '', auth } }), (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_USAGE' && /--api-key is empty/.test(error.message));
    }
  });

  it("with --auth writes, the gallery's write routes need the key and answer 401 without it", async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: KEY, auth: 'writes' } });
    const missing = await app.inject({ method: 'PUT', url: '/gallery/a', payload: { image: B64 } });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json().error.code, 'E_UNAUTHORIZED');
    assert.equal(missing.headers['www-authenticate'], 'Bearer');
    const wrong = await app.inject({ method: 'PUT', url: '/gallery/a', payload: { image: B64 }, headers: bearer('guess') });
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.json().error.message, 'wrong API key');
    assert.equal((await app.inject({ method: 'DELETE', url: '/gallery/a' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'PUT', url: '/gallery/a', payload: { image: B64 }, headers: bearer(KEY) })).statusCode, 200);
    assert.equal((await app.inject({ method: 'DELETE', url: '/gallery/a', headers: bearer(KEY) })).statusCode, 200);
  });

  it('with --auth writes, reading routes stay open', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: KEY, auth: 'writes' } });
    assert.equal((await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/search', payload: { text: 'q' } })).statusCode, 200);
  });

  it('with --auth all, every route but the probes needs the key', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: KEY, auth: 'all' } });
    const routes = [
      { method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } },
      { method: 'POST', url: '/search', payload: { text: 'q' } },
      { method: 'GET', url: '/metrics' },
      { method: 'GET', url: '/openapi.json' },
    ] as const;
    for (const route of routes) {
      assert.equal((await app.inject(route)).statusCode, 401, `${route.method} ${route.url} without the key`);
      assert.equal((await app.inject({ ...route, headers: bearer(KEY) })).statusCode, 200, `${route.method} ${route.url} with the key`);
    }
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });

  it('with --auth all, the demo page itself loads without the key (its form sends the key with each call)', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: KEY, auth: 'all' } });
    assert.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200);
  });

  it('the scheme is case-insensitive; other schemes and near-miss keys are refused', async (t) => {
    const { app } = await fakeServer(t, { server: { apiKey: KEY, auth: 'all' } });
    const call = (authorization: string) => app.inject({ method: 'POST', url: '/embed', payload: { text: 't' }, headers: { authorization } });
    assert.equal((await call(`bearer ${KEY}`)).statusCode, 200);
    assert.equal((await call(`Basic ${KEY}`)).statusCode, 401);
    assert.equal((await call(`Bearer ${KEY}!`)).statusCode, 401);
    assert.equal((await call(`Bearer ${KEY.slice(0, -1)}`)).statusCode, 401);
    assert.equal((await call('Bearer')).statusCode, 401);
  });
});

describe('CORS', () => {
  it('is off unless origins are given', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' }, headers: { origin: 'https://example.com' } });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['access-control-allow-origin'], undefined);
  });

  it('allows the configured origins only', async (t) => {
    const { app } = await fakeServer(t, { server: { cors: ['https://app.example.com'] } });
    const allowed = await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' }, headers: { origin: 'https://app.example.com' } });
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    const other = await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' }, headers: { origin: 'https://evil.example.com' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });

  it('answers preflights without the key, even with --auth all', async (t) => {
    const { app } = await fakeServer(t, { server: { cors: ['https://app.example.com'], apiKey: KEY, auth: 'all' } });
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/gallery/x',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(preflight.statusCode, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.match(String(preflight.headers['access-control-allow-methods']), /PUT/);
    assert.match(String(preflight.headers['access-control-allow-headers']), /authorization/);
  });
});

describe('rate limiting', () => {
  it('answers 429 with Retry-After past the per-client limit, and never limits the probes', async (t) => {
    const { app } = await fakeServer(t, { server: { rateLimit: { max: 2, timeWindowMs: 60_000 } } });
    const call = () => app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } });
    assert.equal((await call()).statusCode, 200);
    assert.equal((await call()).statusCode, 200);
    const limited = await call();
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error.code, 'E_RATE_LIMITED');
    assert.match(limited.json().error.message, /at most 2 per 60000 ms/);
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    for (let i = 0; i < 5; i++) assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });

  it('counts each client apart', async (t) => {
    const { app } = await fakeServer(t, { server: { rateLimit: { max: 1, timeWindowMs: 60_000 } } });
    const from = (remoteAddress: string) => app.inject({ method: 'POST', url: '/embed', payload: { text: 't' }, remoteAddress });
    assert.equal((await from('10.0.0.1')).statusCode, 200);
    assert.equal((await from('10.0.0.1')).statusCode, 429);
    assert.equal((await from('10.0.0.2')).statusCode, 200);
  });

  it('is off by default', async (t) => {
    const { app } = await fakeServer(t);
    for (let i = 0; i < 20; i++) assert.equal((await app.inject({ method: 'POST', url: '/embed', payload: { text: 't' } })).statusCode, 200);
  });
});
