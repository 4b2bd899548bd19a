import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { BridgeTowerClient, BridgeTowerHttpError, CLIENT_METHODS, ROUTES } from '../../client/index.js';
import { BridgeTowerError } from '../../common/errors.js';
import { OverloadError } from '../../server/scheduling/errors.js';
import { retryAfterMs } from '../../client/retry.js';
import { clientTypesSource } from '../helpers/openapi-client-types.js';
import { serverOpenApiDocument } from '../helpers/server-openapi.js';
import { fakeImage, fakeServer } from '../server/http-fakes.js';

const CLIENT_DIR = new URL('../../client/', import.meta.url);

describe('the client matches the server', () => {
  it("client/openapi-types.ts is what the server's OpenAPI document generates (run `npm run client:types` after changing a route)", async () => {
    const committed = readFileSync(new URL('openapi-types.ts', CLIENT_DIR), 'utf8');
    const generated = clientTypesSource(await serverOpenApiDocument());
    assert.ok(committed === generated, 'client/openapi-types.ts is stale: a route or schema changed without the client. Run `npm run client:types` and adapt client/client.ts');
  });

  it('has one method for every route of the OpenAPI document', async () => {
    const document = await serverOpenApiDocument();
    const routes = Object.entries(document.paths as Record<string, object>).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(Object.keys(CLIENT_METHODS).sort(), routes.sort());
    assert.deepEqual(Object.keys(ROUTES).sort(), routes.sort());
    for (const [route, method] of Object.entries(CLIENT_METHODS)) assert.equal(typeof BridgeTowerClient.prototype[method], 'function', `${route}: client.${method} exists`);
  });

  it('imports nothing of Node or of the rest of the package (it runs in browsers)', () => {
    for (const file of readdirSync(CLIENT_DIR).filter((f) => f.endsWith('.ts'))) {
      // Comments may name Node things; the code may not.
      const source = readFileSync(new URL(file, CLIENT_DIR), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      const imports = [...source.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
      for (const specifier of imports) assert.match(specifier, /^\.\/[\w-]+\.js$/, `client/${file} imports '${specifier}': the client may import only its own files`);
      assert.doesNotMatch(source, /\bBuffer\b|\bprocess\./, `client/${file} uses a Node global`);
    }
  });
});

/** The fake server over a real socket: the client goes through fetch, not inject. */
async function listening(t: TestContext) {
  const { app, service } = await fakeServer(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { service, client: new BridgeTowerClient({ baseUrl: `http://127.0.0.1:${port}`, retry: { baseDelayMs: 10 } }) };
}

/** A raw HTTP server whose answers the test scripts, recording when each request came. */
async function scripted(t: TestContext, answer: (n: number, req: IncomingMessage, res: ServerResponse) => void) {
  const arrivals: number[] = [];
  const server = createServer((req, res) => {
    arrivals.push(Date.now());
    req.resume().on('end', () => answer(arrivals.length, req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('connection', (socket) => t.after(() => socket.destroy()));
  return { arrivals, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const OK_VQA = JSON.stringify({ answers: [{ answer: 'yes', score: 0.9 }], model: 'm' });

describe('BridgeTowerClient', () => {
  it('sends image bytes as base64 and returns the typed answer', async (t) => {
    const { client, service } = await listening(t);
    const image = fakeImage(40, 7);
    const answer = await client.vqa({ image, question: 'what is it?', top_k: 2 });
    assert.equal(answer.answers.length, 2);
    assert.equal(answer.model, 'fake');
    const call = service.calls.find((c) => c.method === 'vqa')!;
    assert.deepEqual(Buffer.from((call.input as { image: Uint8Array }).image), image);
    const gallery = await client.galleryPut('item-1', { image: image.toString('base64'), metadata: { a: 1 } });
    assert.equal(gallery.id, 'item-1');
    assert.equal((await client.galleryGet('item-1')).metadata.a, 1);
  });

  it("throws the server's {code, message} as a BridgeTowerHttpError with the status", async (t) => {
    const { client, service } = await listening(t);
    service.failNextWith(new BridgeTowerError('E_USAGE', 'question: the text is empty'));
    await assert.rejects(client.vqa({ image: fakeImage(), question: 'q' }), (e: unknown) => {
      assert.ok(e instanceof BridgeTowerHttpError);
      assert.deepEqual([e.status, e.code, e.message, e.route], [400, 'E_USAGE', 'question: the text is empty', 'POST /vqa']);
      return true;
    });
    await assert.rejects(client.galleryGet('nobody'), (e: unknown) => e instanceof BridgeTowerHttpError && e.status === 404 && e.code === 'E_NOT_IN_GALLERY');
  });

  it('retries a 503 after its Retry-After and returns the answer', async (t) => {
    const { arrivals, baseUrl } = await scripted(t, (n, _req, res) => {
      if (n === 1) res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: { code: 'E_OVERLOADED', message: 'busy' } }));
      else res.writeHead(200, { 'content-type': 'application/json' }).end(OK_VQA);
    });
    const client = new BridgeTowerClient({ baseUrl });
    assert.deepEqual(await client.vqa({ image: 'aGk=', question: 'q' }), JSON.parse(OK_VQA));
    assert.equal(arrivals.length, 2);
    // A lower bound only: the client waited at least what Retry-After asked (a loaded machine only adds).
    assert.ok(arrivals[1]! - arrivals[0]! >= 950, `retried after ${arrivals[1]! - arrivals[0]!} ms, not the 1 s Retry-After asked for`);
  });

  it('gives up after its retries, and does not sleep past its limit, with the last 503', async (t) => {
    const { arrivals, baseUrl } = await scripted(t, (_n, _req, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '3600' }).end(JSON.stringify({ error: { code: 'E_OVERLOADED', message: 'busy for an hour' } }));
    });
    const client = new BridgeTowerClient({ baseUrl });
    await assert.rejects(client.info(), (e: unknown) => e instanceof BridgeTowerHttpError && e.status === 503 && e.code === 'E_OVERLOADED' && e.message === 'busy for an hour');
    assert.equal(arrivals.length, 1, 'a Retry-After over maxDelayMs is answered at once, not slept');
    const noWait = await scripted(t, (_n, _req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'E_OVERLOADED', message: 'busy' } })));
    const retrying = new BridgeTowerClient({ baseUrl: noWait.baseUrl, retry: { retries: 2, baseDelayMs: 5 } });
    await assert.rejects(retrying.info(), (e: unknown) => e instanceof BridgeTowerHttpError && e.status === 503);
    assert.equal(noWait.arrivals.length, 3, 'the first attempt and two retries');
  });

  it("the server's own overload answer (503 + Retry-After) is retried", async (t) => {
    const { client, service } = await listening(t);
    service.failNextWith(new OverloadError('queue full', 0));
    const answer = await client.vqa({ image: fakeImage(), question: 'q', top_k: 1 });
    assert.equal(answer.answers.length, 1);
  });

  it('times out with E_TIMEOUT, and a caller abort is E_ABORTED', async (t) => {
    const { baseUrl } = await scripted(t, () => {}); // never answers
    const client = new BridgeTowerClient({ baseUrl });
    await assert.rejects(client.info({ timeoutMs: 200 }), (e: unknown) => e instanceof BridgeTowerHttpError && e.code === 'E_TIMEOUT' && e.status === 0);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(client.info({ signal: controller.signal }), (e: unknown) => e instanceof BridgeTowerHttpError && e.code === 'E_ABORTED');
  });

  it('reads Retry-After as seconds or as an HTTP date, and ignores what is neither', () => {
    const now = Date.parse('Wed, 02 Dec 2026 08:00:00 GMT');
    assert.equal(retryAfterMs('3', now), 3000);
    assert.equal(retryAfterMs('Wed, 02 Dec 2026 08:00:05 GMT', now), 5000);
    assert.equal(retryAfterMs('Wed, 02 Dec 2026 07:00:00 GMT', now), 0, 'a date in the past means now');
    for (const unreadable of [null, '', 'soon', '-1']) assert.equal(retryAfterMs(unreadable, now), undefined, JSON.stringify(unreadable));
  });

  it('ready() answers a 503 (models loading) at once instead of retrying it', async (t) => {
    const { arrivals, baseUrl } = await scripted(t, (_n, _req, res) => res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: { code: 'E_NOT_READY', message: 'loading' } })));
    await assert.rejects(new BridgeTowerClient({ baseUrl }).ready(), (e: unknown) => e instanceof BridgeTowerHttpError && e.code === 'E_NOT_READY');
    assert.equal(arrivals.length, 1);
  });

  it('a server that is not there is E_NETWORK, saying where it looked', async () => {
    const client = new BridgeTowerClient({ baseUrl: 'http://127.0.0.1:9' });
    await assert.rejects(client.health(), (e: unknown) => e instanceof BridgeTowerHttpError && e.code === 'E_NETWORK' && /127\.0\.0\.1:9/.test(e.message));
  });
});
