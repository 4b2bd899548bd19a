import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { childTimeoutMs } from '../helpers/child-timeout.js';
import { documentedErrors, envelopeViolation } from '../helpers/documented-errors.js';
import { imageBombs, validImages } from '../helpers/hostile-images.js';
import { hostileRequest, type HostileContext } from '../helpers/hostile-requests.js';
import { rawRequest, sendRaw, type RawResponse } from '../helpers/raw-http.js';
import { SeededRandom } from '../helpers/seeded-random.js';

/**
 * Malformed and hostile requests against a real server on the demo bundle: every answer is a 2xx
 * (the mutation happened to leave the request valid) or a documented 4xx / 503 in the error
 * envelope; the server keeps answering; its memory stays bounded. `HOSTILE_REQUESTS=10000` (npm
 * run test:hostile) runs more; `HOSTILE_SEED` picks another sequence.
 */
const REQUESTS = Number(process.env.HOSTILE_REQUESTS ?? 1000);
const SEED = Number(process.env.HOSTILE_SEED ?? 20240611);
const CONCURRENCY = 4;
const HEALTH_EVERY = 50;
const API_KEY = 'hostile-suite-key';
const BODY_LIMIT = 1024 * 1024;
/** RSS growth allowed over the run, after a warm-up (sessions, arenas and caches are allocated by then). */
const MAX_RSS_GROWTH_MB = 160;
/** Starting the server and loading the demo bundle, on a loaded CI machine. */
const START_TIMEOUT_MS = childTimeoutMs(24_000);
const SERVER_ENTRY = fileURLToPath(new URL('../helpers/hostile-server.ts', import.meta.url));

interface Outcome {
  label: string;
  status: number | 'no answer';
  violation?: string;
}

async function rssBytes(url: string): Promise<number> {
  const response = await sendRaw(url, rawRequest('GET /metrics HTTP/1.1', { connection: 'close' }));
  const match = /^bridgetower_process_resident_memory_bytes (\d+)/m.exec(response.body.toString('utf8'));
  assert.ok(match, 'GET /metrics reports the resident memory');
  return Number(match[1]);
}

describe(`${REQUESTS} hostile requests against a real server (seed ${SEED})`, () => {
  let child: ChildProcess;
  let url: string;
  let ctx: HostileContext;

  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-hostile-'));
    const bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
    const options = { bundles: [bundle], dataDir: join(dir, 'data'), apiKey: API_KEY, auth: 'writes', bodyLimitBytes: BODY_LIMIT, maxImageBytes: BODY_LIMIT / 2, cacheMb: 8, maxBatch: 4 };
    child = spawn(process.execPath, ['--import', 'tsx', SERVER_ENTRY, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    url = await new Promise<string>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`timeout: the server did not start within ${START_TIMEOUT_MS / 1000} s (${output})`)), START_TIMEOUT_MS);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const line = output.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      });
      child.on('exit', (code) => reject(new Error(`the server exited before listening (${code}): ${output}`)));
    });
    for (const until = Date.now() + START_TIMEOUT_MS; ; ) {
      if ((await sendRaw(url, rawRequest('GET /readyz HTTP/1.1', { connection: 'close' }))).status === 200) break;
      if (Date.now() > until) throw new Error(`timeout: the demo bundle was not ready within ${START_TIMEOUT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const images = await validImages();
    ctx = { rng: new SeededRandom(SEED), images, bombs: imageBombs(images), apiKey: API_KEY, bodyLimitBytes: BODY_LIMIT };
  });

  after(async () => {
    // The server owns the gallery database in `dir`: let it stop before removing the folder.
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers each with a 2xx or a documented 4xx/503 in the error envelope, keeps answering, and keeps its memory bounded', async (t) => {
    const documented = documentedErrors();
    const requests = Array.from({ length: REQUESTS }, () => hostileRequest(ctx));
    const send = async (label: string, bytes: Buffer): Promise<Outcome> => {
      let response: RawResponse;
      try {
        response = await sendRaw(url, bytes);
      } catch (error) {
        return { label, status: 'no answer', violation: `no answer: ${(error as Error).message}` };
      }
      if (response.status < 300) return { label, status: response.status };
      const documentedStatus = (response.status >= 400 && response.status < 500) || response.status === 503;
      // An answer to a HEAD has no body to check (its headers are a GET's).
      const isHead = bytes.subarray(0, 5).toString('latin1') === 'HEAD ';
      const violation = !documentedStatus
        ? `a ${response.status}: ${response.body.toString('utf8').slice(0, 200)}`
        : isHead
          ? undefined
          : envelopeViolation(response.status, response.headers['content-type'], response.body.toString('utf8'), documented);
      return { label, status: response.status, ...(violation ? { violation } : {}) };
    };

    // Warm up on the first requests (sessions, arenas, caches), then measure memory from there.
    const warmup = Math.min(100, Math.floor(REQUESTS / 10));
    const outcomes: Outcome[] = [];
    const run = async (from: number, to: number) => {
      for (let start = from; start < to; start += HEALTH_EVERY) {
        const batch = requests.slice(start, Math.min(to, start + HEALTH_EVERY));
        for (let i = 0; i < batch.length; i += CONCURRENCY) outcomes.push(...(await Promise.all(batch.slice(i, i + CONCURRENCY).map((r) => send(r.label, r.bytes)))));
        const health = await sendRaw(url, rawRequest('GET /healthz HTTP/1.1', { connection: 'close' }));
        assert.equal(health.status, 200, `/healthz after request ${Math.min(to, start + HEALTH_EVERY)} (${batch.at(-1)!.label})`);
      }
    };
    await run(0, warmup);
    const rssBefore = await rssBytes(url);
    await run(warmup, REQUESTS);
    const rssAfter = await rssBytes(url);

    const byStatus = new Map<string, number>();
    for (const o of outcomes) byStatus.set(String(o.status), (byStatus.get(String(o.status)) ?? 0) + 1);
    const violations = outcomes.filter((o) => o.violation);
    const serverErrors = outcomes.filter((o) => typeof o.status === 'number' && o.status >= 500 && o.status !== 503);
    const growthMb = (rssAfter - rssBefore) / 2 ** 20;
    const summary = `statuses ${JSON.stringify(Object.fromEntries([...byStatus].sort()))}; 5xx other than 503: ${serverErrors.length}; envelope violations: ${violations.length}; RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssAfter / 2 ** 20).toFixed(0)} MiB (${growthMb >= 0 ? '+' : ''}${growthMb.toFixed(1)} MiB)`;
    t.diagnostic(`hostile HTTP (${REQUESTS} requests, seed ${SEED}): ${summary}`);
    assert.equal(outcomes.length, REQUESTS);
    assert.deepEqual(violations.slice(0, 20).map((o) => `${o.label} → ${o.violation}`), [], summary);
    assert.ok(byStatus.size > 5, `the requests reach many different answers: ${summary}`);
    assert.ok([...byStatus.keys()].some((s) => s.startsWith('2')), 'some requests stay valid and are served');
    assert.ok(growthMb < MAX_RSS_GROWTH_MB, `RSS grew by ${growthMb.toFixed(1)} MiB over ${REQUESTS - warmup} requests (limit ${MAX_RSS_GROWTH_MB} MiB)`);
  });
});
