import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { buildServer } from '../../server/app.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { exactGallery } from '../helpers/exact-gallery.js';
import { throwawayPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Replicas sharing one PostgreSQL gallery, as real `bridgetower serve` processes on the demo
 * bundle: what one acknowledges, the other finds; a killed replica loses nothing acknowledged; a
 * database restart answers 503 and heals without restarting the servers. And /search on either
 * backend equals the service's own search over the same encodings held in hand (which
 * test/server/runtime.test.ts checks against upstream's recipe run on the graphs directly).
 */

const CLI = fileURLToPath(new URL('../helpers/cli-entry.ts', import.meta.url));
/** Spawned servers on a loaded CI machine: generous, and reported as a timeout. */
const START_TIMEOUT_MS = 180_000;
const FAR = { deadline: Date.now() + 30 * 60_000 };

const root = tempDir({ after });
const bundle = join(root, 'demo');
let skipReason = 'no PostgreSQL server';
const cluster: ThrowawayPostgres | undefined = await throwawayPostgres({ after: (fn) => after(fn), skip: (message) => (skipReason = message ?? skipReason) });

async function png(seed: number): Promise<Buffer> {
  const width = 48;
  const height = 40;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (5 + seed) + seed * 61) % 251;
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

interface Replica {
  url: string;
  child: ChildProcess;
  output: () => string;
}

async function startReplica(gallery: string): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', bundle, '--gallery', gallery, '--host', '127.0.0.1', '--port', '0', '--gallery-cache-mb', '8', '--max-delay-ms', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: the server did not start within ${START_TIMEOUT_MS} ms; its output:\n${output}`)), START_TIMEOUT_MS);
    const look = (): void => {
      const match = /serving on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited early (${code}):\n${output}`));
    });
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while ((await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error(`timeout: ${url}/readyz was not 200 within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, child, output: () => output };
}

function stopReplica(replica: Replica | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!replica || replica.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    replica.child.once('exit', () => resolve());
    replica.child.kill(signal);
  });
}

async function call(replica: Replica, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${replica.url}${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    signal: AbortSignal.timeout(60_000),
  }).catch((error: Error) => {
    const why = error.name === 'TimeoutError' ? 'timeout: no answer within 60 s' : error.message;
    throw new Error(`${method} ${path} on ${replica.url}: ${why}; the server's output ends:\n${replica.output().slice(-3000)}`);
  });
  return { status: response.status, json: await response.json() };
}

/** A new database in the cluster, for a test that must see only its own rows. */
async function freshDatabase(url: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  return url.replace('/postgres?', `/${name}?`);
}

/** Every item carries its own id as metadata `probe`, so a search filtered on it finds exactly that item however full the gallery. */
const put = async (replica: Replica, id: string, seed: number, metadata: object = {}) =>
  call(replica, 'PUT', `/gallery/${id}`, { image: (await png(seed)).toString('base64'), metadata: { ...metadata, probe: id } });
const search = (replica: Replica, text: string, extra: object = {}) => call(replica, 'POST', '/search', { text, k: 10, candidates: 8, ...extra });
const ids = (answer: { json: any }): string[] => answer.json.results.map((r: { id: string }) => r.id);
/** Whether a text search on `replica` finds `id` (filtered to it). */
const finds = async (replica: Replica, id: string): Promise<boolean> => ids(await search(replica, 'anything', { filter: { probe: id } })).includes(id);

describe('replicas sharing one PostgreSQL gallery', () => {
  let a: Replica | undefined;
  let b: Replica | undefined;
  before(async () => {
    if (!cluster) return;
    await buildDemoBundle(bundle);
    [a, b] = await Promise.all([startReplica(cluster.url), startReplica(cluster.url)]);
  });
  after(async () => {
    await Promise.all([stopReplica(a), stopReplica(b)]);
  });
  const ready = (t: { skip(message?: string): void }): boolean => {
    if (!cluster) t.skip(skipReason);
    return Boolean(cluster);
  };

  it('an image PUT on one replica is found by /search and GET /gallery on the other at once', async (t) => {
    if (!ready(t)) return;
    const stored = await put(a!, 'red-1', 1, { colour: 'red' });
    assert.equal(stored.status, 200, JSON.stringify(stored.json));
    const found = await search(b!, 'a red square', { filter: { colour: 'red' } });
    assert.equal(found.status, 200, JSON.stringify(found.json));
    assert.deepEqual(ids(found), ['red-1']);
    assert.equal((await call(b!, 'GET', '/gallery/red-1')).json.metadata.colour, 'red');
    assert.ok((await call(b!, 'GET', '/gallery')).json.items.some((item: { id: string }) => item.id === 'red-1'));
  });

  it('a DELETE on one replica removes the image from the other', async (t) => {
    if (!ready(t)) return;
    assert.equal((await put(a!, 'gone', 2)).status, 200);
    assert.ok(await finds(b!, 'gone'));
    assert.equal((await call(a!, 'DELETE', '/gallery/gone')).status, 200);
    assert.ok(!(await finds(b!, 'gone')));
    assert.equal((await call(b!, 'GET', '/gallery/gone')).status, 404);
  });

  it('kill -9 of a replica right after an acknowledged PUT loses nothing', async (t) => {
    if (!ready(t)) return;
    const stored = await put(a!, 'survivor', 3);
    assert.equal(stored.status, 200);
    await stopReplica(a, 'SIGKILL');
    assert.ok(await finds(b!, 'survivor'));
    a = await startReplica(cluster!.url);
    assert.ok(await finds(a, 'survivor'));
  });

  it('a PostgreSQL crash and restart under load answers 503 meanwhile and heals without restarting the servers', async (t) => {
    if (!ready(t)) return;
    assert.equal((await put(a!, 'before-crash', 4)).status, 200);
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const answer = await (i % 2 ? search(a!, 'load') : put(a!, `load-${i}`, 10 + (i % 5))).catch(() => ({ status: -1, json: {} }));
        statuses.push(answer.status);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await cluster!.crash();
    const during = await search(a!, 'while down');
    assert.equal(during.status, 503, JSON.stringify(during.json));
    assert.equal(during.json.error.code, 'E_GALLERY_UNAVAILABLE');
    await cluster!.start();
    // The pool reconnects on the next request; allow the loaded machine some time.
    const deadline = Date.now() + 60_000;
    let healed = await search(a!, 'after restart');
    while (healed.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      healed = await search(a!, 'after restart');
    }
    stop = true;
    await load;
    assert.equal(healed.status, 200, `timeout: still ${healed.status} a minute after the restart: ${JSON.stringify(healed.json)}`);
    assert.ok(await finds(a!, 'before-crash'));
    assert.deepEqual([...new Set(statuses)].filter((s) => ![200, 503].includes(s)), [], `statuses under load: ${statuses.join(',')}`);
    assert.equal((await put(b!, 'after-restart', 5)).status, 200);
    assert.ok(await finds(a!, 'after-restart'));
  });
});

describe('/search on each backend equals the service searching the same encodings directly', () => {
  let service: BundleService | undefined;
  before(async () => {
    await buildDemoBundle(bundle).catch(() => {}); // built by the suite above when PostgreSQL is there
    service = await BundleService.open(bundle, { device: 'cpu', maxBatch: 4, maxDelayMs: 1, maxQueue: 64, cacheMb: 0 });
  });
  after(() => service?.close());

  for (const backend of ['sqlite', 'postgres'] as const) {
    it(`${backend}: ITC candidates re-ranked by ITM, and ITC alone`, async (t) => {
      if (backend === 'postgres' && !cluster) return t.skip(skipReason);
      const gallery = backend === 'sqlite' ? `sqlite:${join(tempDir(t), 'gallery.sqlite')}` : await freshDatabase(cluster!.url, 'recipe');
      const app = await buildServer({ ...DEFAULT_SERVER_OPTIONS, bundles: [bundle], logger: false, gallery, galleryCacheMb: 1, maxDelayMs: 1 });
      t.after(() => app.close());
      const images = await Promise.all([21, 22, 23, 24, 25, 26].map(png));
      for (const [i, image] of images.entries()) {
        const response = await app.inject({ method: 'PUT', url: `/gallery/recipe-${i}`, payload: { image: image.toString('base64') } });
        assert.equal(response.statusCode, 200, response.body);
      }
      const encoded = await Promise.all(images.map(async (image, i) => ({ id: `recipe-${i}`, encoding: await service!.encodeImage(image, FAR) })));
      const text = 'two people on a bench';
      for (const rerank of [true, false]) {
        const expected = await service!.search({ text, k: 4, candidates: 5, rerank, gallery: exactGallery(encoded) }, FAR);
        const response = await app.inject({ method: 'POST', url: '/search', payload: { text, k: 4, candidates: 5, rerank } });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json();
        const hits = body.results;
        assert.deepEqual(hits.map((h: { id: string }) => h.id), expected.map((e) => e.id));
        hits.forEach((hit: { score: number; itc: number }, i: number) => {
          assert.ok(Math.abs(hit.score - expected[i]!.score) < 1e-4, `score ${hit.score} vs ${expected[i]!.score}`);
          assert.ok(Math.abs(hit.itc - expected[i]!.itc) < 1e-4, `itc ${hit.itc} vs ${expected[i]!.itc}`);
        });
        assert.equal(body.reranked, rerank);
      }
    });
  }
});
