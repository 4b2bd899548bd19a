import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serverOptionsFromFlags } from '../../cli/commands/serve.js';
import { defaultBundles } from '../../cli/default-bundles.js';
import { DEFAULT_BUNDLE_ROOT } from '../../bundle/bundle-folders.js';
import { BridgeTowerError } from '../../common/errors.js';
import { BUNDLE_FORMAT } from '../../bundle/config.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { startServer } from '../../server/start.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { FakeModelService, fakeImage, testOptions } from './http-fakes.js';

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const usage = (pattern: RegExp) => (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_USAGE' && pattern.test(error.message);

describe('serve flags', () => {
  it('default to DEFAULT_SERVER_OPTIONS', () => {
    const { bundles, ...rest } = serverOptionsFromFlags({}, ['bundles/a'], {});
    assert.deepEqual(bundles, ['bundles/a']);
    assert.deepEqual(rest, DEFAULT_SERVER_OPTIONS);
  });

  it('are read into ServerOptions', () => {
    const options = serverOptionsFromFlags(
      {
        host: '127.0.0.1',
        port: '9000',
        device: 'cuda',
        precision: 'int8',
        'max-batch': '16',
        'max-delay-ms': '2',
        'max-queue': '128',
        'request-timeout-ms': '1000',
        'cache-mb': '0',
        threads: '4',
        'data-dir': '/data',
        gallery: 'postgres://bt@db/gallery',
        'gallery-cache-mb': '64',
        'gallery-cache-dtype': 'float16',
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
      precision: 'int8',
      maxBatch: 16,
      maxDelayMs: 2,
      maxQueue: 128,
      requestTimeoutMs: 1000,
      cacheMb: 0,
      threads: 4,
      dataDir: '/data',
      gallery: 'postgres://bt@db/gallery',
      galleryCacheMb: 64,
      galleryCacheDtype: 'float16',
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

  it('refuse an empty API key, from --api-key or BRIDGETOWER_API_KEY, instead of serving without one', () => {
    for (const key of ['', '  ']) {
      assert.throws(() => serverOptionsFromFlags({ 'api-key': key, auth: 'all' }, [], {}), usage(/^--api-key is empty/));
      assert.throws(() => serverOptionsFromFlags({ auth: 'all' }, [], { BRIDGETOWER_API_KEY: key }), usage(/^BRIDGETOWER_API_KEY is empty/));
    }
    assert.equal(serverOptionsFromFlags({}, [], {}).apiKey, undefined, 'no key given at all: no authentication');
  });

  it('bridgetower serve --api-key "" --auth all exits 2 before serving anything', () => {
    const result = runCli(['serve', '--api-key', '', '--auth', 'all', '--port', '0']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--api-key is empty/);
  });

  it('refuse bad values with a message that names the flag', () => {
    assert.throws(() => serverOptionsFromFlags({ port: 'http' }, [], {}), usage(/--port must be a whole number from 0 to 65535, got 'http'/));
    assert.throws(() => serverOptionsFromFlags({ port: '70000' }, [], {}), usage(/--port/));
    assert.throws(() => serverOptionsFromFlags({ device: 'tpu' }, [], {}), usage(/--device must be cpu or cuda, got 'tpu'/));
    assert.throws(() => serverOptionsFromFlags({ precision: 'fp8' }, [], {}), usage(/--precision must be fp32 or int8 or fp16 or auto, got 'fp8'/));
    assert.throws(() => serverOptionsFromFlags({ auth: 'none' }, [], {}), usage(/--auth must be writes or all/));
    assert.throws(() => serverOptionsFromFlags({ 'gallery-itc': 'fp16' }, [], {}), usage(/--gallery-itc must be float32 or int8, got 'fp16'/));
    assert.throws(() => serverOptionsFromFlags({ 'max-batch': '0' }, [], {}), usage(/--max-batch/));
    assert.throws(() => serverOptionsFromFlags({ cors: ' , ' }, [], {}), usage(/--cors needs at least one origin/));
  });
});

describe('serve without bundles', () => {
  /** A bundle root and an (absent) legacy root in a fresh folder, and the notes defaultBundles logs. */
  function roots(t: { after(fn: () => void): void }) {
    const dir = tempDir(t);
    const logged: string[] = [];
    return { root: join(dir, 'bundles'), legacyRoot: join(dir, 'models'), log: (line: string) => logged.push(line), logged };
  }
  function writeConfig(dir: string, config: Record<string, unknown>): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  }
  const realConfig = (name: string) => ({ format: BUNDLE_FORMAT, format_version: 1, name, provenance: { sources: [{ file: `${name}.ckpt` }] } });
  const demoConfig = { format: BUNDLE_FORMAT, format_version: 1, name: 'bridgetower-demo (random weights: answers are meaningless)', provenance: { sources: [{ file: 'bridgetower-demo.safetensors' }] } };

  it('the default bundle root is ./bundles', () => {
    assert.equal(DEFAULT_BUNDLE_ROOT, 'bundles');
  });

  it('serves every bundle under the bundle root, in name order, skipping other folders', async (t) => {
    const { root, legacyRoot, log } = roots(t);
    for (const name of ['zeta', 'alpha']) writeConfig(join(root, name), realConfig(name));
    writeConfig(join(root, 'notes'), { something: 'else' });
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'alpha'), join(root, 'zeta')]);
  });

  it('builds the demo bundle into <root>/demo when there is none, and finds it on the next start', async (t) => {
    const { root, legacyRoot, log, logged } = roots(t);
    const bundles = await defaultBundles({ root, legacyRoot, log });
    assert.deepEqual(bundles, [join(root, 'demo')]);
    assert.match(logged.join('\n'), /building the DEMO bundle/);
    logged.length = 0;
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), bundles, 'the second start finds the demo bundle built by the first');
    assert.doesNotMatch(logged.join('\n'), /building|skipping/);
  });

  it('builds the demo into an empty <root>/demo (a mount point), and never into a folder of other files', async (t) => {
    const { root, legacyRoot, log } = roots(t);
    mkdirSync(join(root, 'demo'), { recursive: true });
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'demo')]);
    const other = roots(t);
    mkdirSync(join(other.root, 'demo'), { recursive: true });
    writeFileSync(join(other.root, 'demo', 'notes.md'), 'mine');
    await assert.rejects(defaultBundles(other), usage(/is not a bundle.*nothing was deleted/));
    assert.deepEqual(readdirSync(join(other.root, 'demo')), ['notes.md']);
  });

  it('beside a real bundle, skips the demo bundle and says so', async (t) => {
    const { root, legacyRoot, log, logged } = roots(t);
    writeConfig(join(root, 'demo'), demoConfig);
    writeConfig(join(root, 'vqa'), realConfig('vqa'));
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'vqa')]);
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, new RegExp(`skipping the demo bundle ${escape(join(root, 'demo'))}.*serve ${escape(join(root, 'vqa'))} ${escape(join(root, 'demo'))}`));
    assert.equal(existsSync(join(root, 'demo', 'model.safetensors')), false, 'nothing was built');
  });

  it('tells a fine-tuned demo bundle from a real one by its provenance', async (t) => {
    const { root, legacyRoot, log } = roots(t);
    writeConfig(join(root, 'demo-ft'), { ...demoConfig, name: 'my-experiment' });
    writeConfig(join(root, 'real'), realConfig('real'));
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'real')]);
  });

  it('a real bundle left under the old ./models location is refused, with the move to make, rather than serving a demo', async (t) => {
    const { root, legacyRoot, log } = roots(t);
    writeConfig(join(legacyRoot, 'vqa'), realConfig('vqa'));
    await assert.rejects(defaultBundles({ root, legacyRoot, log }), usage(new RegExp(`under ${escape(legacyRoot)} \\(${escape(join(legacyRoot, 'vqa'))}\\).*mv ${escape(join(legacyRoot, 'vqa'))} ${escape(root)}/`)));
    assert.equal(existsSync(join(root, 'demo')), false, 'no demo was built');
  });

  it('beside real bundles in the new root, old-location bundles are named as not served', async (t) => {
    const { root, legacyRoot, log, logged } = roots(t);
    writeConfig(join(legacyRoot, 'old'), realConfig('old'));
    writeConfig(join(legacyRoot, 'demo'), demoConfig);
    writeConfig(join(root, 'new'), realConfig('new'));
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'new')]);
    const notes = logged.join('\n');
    assert.match(notes, new RegExp(`not serving ${escape(join(legacyRoot, 'old'))}: bundles now go under`));
    assert.match(notes, new RegExp(`ignoring ${escape(join(legacyRoot, 'demo'))}.*rm -r ${escape(join(legacyRoot, 'demo'))}`));
  });

  it('source files under the old location are no bundles and raise nothing', async (t) => {
    const { root, legacyRoot, log, logged } = roots(t);
    writeConfig(join(legacyRoot, 'bridgetower'), { hidden_size: 768 });
    writeConfig(join(root, 'vqa'), realConfig('vqa'));
    assert.deepEqual(await defaultBundles({ root, legacyRoot, log }), [join(root, 'vqa')]);
    assert.deepEqual(logged, []);
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
