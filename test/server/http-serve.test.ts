import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultBundles, serverOptionsFromFlags } from '../../cli/commands/serve.js';
import { BridgeTowerError } from '../../common/errors.js';
import { BUNDLE_FORMAT } from '../../bundle/config.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { startServer } from '../../server/start.js';
import { tempDir } from '../helpers/temp-dir.js';
import { FakeModelService, fakeImage, testOptions } from './http-fakes.js';

const usage = (pattern: RegExp) => (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_USAGE' && pattern.test(error.message);

describe('serve flags', () => {
  it('default to DEFAULT_SERVER_OPTIONS', () => {
    const { bundles, ...rest } = serverOptionsFromFlags({}, ['models/a'], {});
    assert.deepEqual(bundles, ['models/a']);
    assert.deepEqual(rest, DEFAULT_SERVER_OPTIONS);
  });

  it('are read into ServerOptions', () => {
    const options = serverOptionsFromFlags(
      {
        host: '127.0.0.1',
        port: '9000',
        device: 'cuda',
        'max-batch': '16',
        'max-delay-ms': '2',
        'max-queue': '128',
        'request-timeout-ms': '1000',
        'cache-mb': '0',
        threads: '4',
        'data-dir': '/data',
        gallery: 'postgres://bt@db/gallery',
        'gallery-cache-mb': '64',
        'gallery-itc': 'int8',
        'gallery-ann-threshold': '1000',
        'api-key': 'k',
        auth: 'all',
        'rate-limit': '10',
        'rate-window-ms': '1000',
        cors: 'https://a.example, https://b.example',
        'body-limit-mb': '8',
      },
      ['m'],
      {},
    );
    assert.deepEqual(options, {
      bundles: ['m'],
      host: '127.0.0.1',
      port: 9000,
      device: 'cuda',
      maxBatch: 16,
      maxDelayMs: 2,
      maxQueue: 128,
      requestTimeoutMs: 1000,
      cacheMb: 0,
      threads: 4,
      dataDir: '/data',
      gallery: 'postgres://bt@db/gallery',
      galleryCacheMb: 64,
      galleryItc: 'int8',
      galleryAnnThreshold: 1000,
      apiKey: 'k',
      auth: 'all',
      rateLimit: { max: 10, timeWindowMs: 1000 },
      cors: ['https://a.example', 'https://b.example'],
      bodyLimitBytes: 8 * 1024 * 1024,
      maxImageBytes: 8 * 1024 * 1024,
      logger: true,
    });
  });

  it('take the API key from BRIDGETOWER_API_KEY when --api-key is not given', () => {
    assert.equal(serverOptionsFromFlags({}, [], { BRIDGETOWER_API_KEY: 'from-env' }).apiKey, 'from-env');
    assert.equal(serverOptionsFromFlags({ 'api-key': 'flag' }, [], { BRIDGETOWER_API_KEY: 'from-env' }).apiKey, 'flag');
  });

  it('refuse bad values with a message that names the flag', () => {
    assert.throws(() => serverOptionsFromFlags({ port: 'http' }, [], {}), usage(/--port must be a whole number from 0 to 65535, got 'http'/));
    assert.throws(() => serverOptionsFromFlags({ port: '70000' }, [], {}), usage(/--port/));
    assert.throws(() => serverOptionsFromFlags({ device: 'tpu' }, [], {}), usage(/--device must be cpu or cuda, got 'tpu'/));
    assert.throws(() => serverOptionsFromFlags({ auth: 'none' }, [], {}), usage(/--auth must be writes or all/));
    assert.throws(() => serverOptionsFromFlags({ 'gallery-itc': 'fp16' }, [], {}), usage(/--gallery-itc must be float32 or int8, got 'fp16'/));
    assert.throws(() => serverOptionsFromFlags({ 'max-batch': '0' }, [], {}), usage(/--max-batch/));
    assert.throws(() => serverOptionsFromFlags({ cors: ' , ' }, [], {}), usage(/--cors needs at least one origin/));
  });
});

describe('serve without bundles', () => {
  it('serves every bundle under the models folder, in name order, skipping other folders', async (t) => {
    const root = tempDir(t);
    for (const name of ['zeta', 'alpha']) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'config.json'), JSON.stringify({ format: BUNDLE_FORMAT, format_version: 1, name }));
    }
    mkdirSync(join(root, 'notes'));
    writeFileSync(join(root, 'notes', 'config.json'), JSON.stringify({ something: 'else' }));
    assert.deepEqual(await defaultBundles(root), [join(root, 'alpha'), join(root, 'zeta')]);
  });

  it('builds the demo bundle into <models>/demo when there is none', async (t) => {
    const root = join(tempDir(t), 'models');
    const bundles = await defaultBundles(root);
    assert.deepEqual(bundles, [join(root, 'demo')]);
    assert.deepEqual(await defaultBundles(root), bundles, 'the second start finds the demo bundle built by the first');
  });
});

describe('startServer', () => {
  it('listens and answers over real HTTP until stopped', async () => {
    const server = await startServer(testOptions({ host: '127.0.0.1', port: 0 }), { services: [new FakeModelService()] });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${server.url}/healthz`);
      assert.equal(response.status, 200);
    } finally {
      await server.stop();
    }
    await server.stopped;
    await assert.rejects(fetch(`${server.url}/healthz`));
  });

  it('says which port is taken', async () => {
    const first = await startServer(testOptions({ host: '127.0.0.1', port: 0 }), { services: [new FakeModelService()] });
    try {
      const port = Number(new URL(first.url).port);
      await assert.rejects(startServer(testOptions({ host: '127.0.0.1', port }), { services: [new FakeModelService()] }), usage(/port is in use/));
    } finally {
      await first.stop();
    }
  });

  it('on SIGTERM, finishes the request in flight, closes the models and exits 0', async () => {
    const fakes = fileURLToPath(new URL('./http-fakes.ts', import.meta.url));
    const start = fileURLToPath(new URL('../../server/start.ts', import.meta.url));
    const script = `
      import { FakeModelService, testOptions } from ${JSON.stringify(fakes)};
      import { startServer } from ${JSON.stringify(start)};
      const service = new FakeModelService();
      const vqa = service.vqa.bind(service);
      service.vqa = async (input, ctx) => { await new Promise((r) => setTimeout(r, 300)); return vqa(input, ctx); };
      service.close = async () => { process.stdout.write('closed\\n'); };
      const server = await startServer(testOptions({ host: '127.0.0.1', port: 0 }), { services: [service] });
      // Injected services are the caller's: close it once the server has stopped, as serve does with its own.
      server.stopped.then(() => service.close());
      process.stdout.write(server.url + '\\n');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /^(http:\/\/\S+)$/m.exec(output);
        if (match) resolve(match[1]!);
      });
      child.on('exit', (code) => reject(new Error(`the server exited early (${code}): ${output}`)));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const inFlight = fetch(`${url}/vqa`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: fakeImage().toString('base64'), question: 'q' }) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    child.kill('SIGTERM');
    const response = await inFlight;
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { answers: unknown[] }).answers.length, 5);
    assert.equal(await exited, 0);
    assert.match(output, /closed/);
  });
});
