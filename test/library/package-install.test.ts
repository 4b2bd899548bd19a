import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { assertChildFinished, childTimeoutMs, waitForExit } from '../helpers/child-timeout.js';

/**
 * The package as a user gets it: `npm pack` (whose `prepare` builds dist/), the tarball installed
 * into a fresh project offline (its dependencies hard-linked from this repository's node_modules,
 * so no registry is asked), a consumer module type-checked with `tsc --strict` against the
 * shipped declarations, then run: `import { BridgeTower } from 'bridgetower-node'` on a demo
 * bundle the package builds, and `bridgetower-node/client` against the package's own
 * `bridgetower serve`. The library's answers must be the HTTP answers.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NODE_MODULES = realpathSync(join(REPO, 'node_modules'));
const TSC = join(NODE_MODULES, 'typescript', 'bin', 'tsc');

const CONSUMER = `
import { readFile } from 'node:fs/promises';
import { BridgeTower, BridgeTowerError, buildDemoBundle, type VqaAnswer } from 'bridgetower-node';
import { BridgeTowerClient, BridgeTowerHttpError, type VqaResponse } from 'bridgetower-node/client';

const [mode, bundle, baseUrl, image] = process.argv.slice(2) as [string, string, string, string];
if (mode === 'build') {
  await buildDemoBundle(bundle);
} else {
  const model = await BridgeTower.load(bundle, { threads: 1, precision: 'auto' });
  const answers: VqaAnswer[] = await model.vqa(image, 'what colour is it?', { topK: 3 });
  const batch: VqaAnswer[][] = await model.vqa([image, image], ['what colour is it?', 'is it red?'], { topK: 2 });
  const embedding: Float32Array = await model.embed({ text: 'a red square' });
  let refused = '';
  try {
    await model.fillMask(image, 'a <mask> square');
  } catch (error) {
    if (error instanceof BridgeTowerError) refused = error.code;
  }
  await model.dispose();
  const client = new BridgeTowerClient({ baseUrl, timeoutMs: 60_000 });
  const http: VqaResponse = await client.vqa({ image: await readFile(image), question: 'what colour is it?', top_k: 3 });
  const embedded = await client.embed({ text: 'a red square' });
  let httpError = '';
  try {
    await client.galleryGet('nothing-here');
  } catch (error) {
    if (error instanceof BridgeTowerHttpError) httpError = \`\${error.status} \${error.code}\`;
  }
  process.stdout.write(JSON.stringify({ answers, batch, embedding: [...embedding], refused, http: http.answers, httpEmbedding: 'embedding' in embedded ? embedded.embedding : null, httpError }));
}
`;

function run(command: string, args: string[], cwd: string, what: string, baseMs: number): SpawnSyncReturns<string> {
  const timeout = childTimeoutMs(baseMs);
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_update_notifier: 'false' } });
  assertChildFinished(result, what, timeout);
  assert.equal(result.status, 0, `${what} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the packed package, installed into a new project', () => {
  let dir: string;
  let project: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-package-'));
    run('npm', ['pack', '--pack-destination', dir, '--silent'], REPO, 'npm pack (its prepare script builds dist/)', 60_000);
    const tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
    project = join(dir, 'consumer');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    // The dependencies, hard-linked (symbolic links where /tmp is another file system): npm then
    // finds every one installed and asks no registry (--offline makes asking an error).
    const linked = spawnSync('cp', ['-al', NODE_MODULES, join(project, 'node_modules')]);
    if (linked.status !== 0) run('cp', ['-as', NODE_MODULES, join(project, 'node_modules')], project, 'linking node_modules', 10_000);
    rmSync(join(project, 'node_modules', '.package-lock.json'), { force: true });
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], project, 'npm install --offline <tarball>', 30_000);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a consumer and the shipped docs' TypeScript examples type-check with tsc --strict against the shipped declarations", () => {
    writeFileSync(join(project, 'consumer.mts'), CONSUMER);
    const examples = docExamples(join(project, 'node_modules', 'bridgetower-node', 'docs'));
    assert.ok(examples.length >= 8, `found ${examples.length} ts examples in docs/library.md and docs/evaluation.md`);
    examples.forEach((source, i) => writeFileSync(join(project, `docs-example-${i}.mts`), source));
    run(
      process.execPath,
      [TSC, '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2023,dom', '--typeRoots', join(NODE_MODULES, '@types'), '--types', 'node', '--skipLibCheck', '--outDir', join(project, 'out'), 'consumer.mts', ...examples.map((_, i) => `docs-example-${i}.mts`)],
      project,
      'tsc --strict consumer.mts',
      30_000,
    );
  });

  it('import { BridgeTower } answers what bridgetower-node/client gets from the served bundle', async () => {
    const bundle = join(dir, 'demo');
    run(process.execPath, ['out/consumer.mjs', 'build', bundle], project, "the package's buildDemoBundle", 30_000);
    const image = join(dir, 'red.png');
    await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: 210, g: 30, b: 20 } } }).png().toFile(image);
    const port = await freePort();
    const bin = join(project, 'node_modules', 'bridgetower-node', 'bin', 'bridgetower.js');
    const server = spawn(process.execPath, [bin, 'serve', bundle, '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, 'data')], { cwd: project, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    try {
      await waitUntilReady(`http://127.0.0.1:${port}`, childTimeoutMs(20_000), () => stderr);
      const out = run(process.execPath, ['out/consumer.mjs', 'run', bundle, `http://127.0.0.1:${port}`, image], project, 'the consumer', 30_000);
      const result = JSON.parse(out.stdout) as { answers: unknown[]; batch: unknown[][]; embedding: number[]; refused: string; http: unknown[]; httpEmbedding: number[]; httpError: string };
      assert.equal(result.answers.length, 3);
      assert.deepEqual(result.answers, result.http, 'library vqa = POST /vqa through the client');
      assert.deepEqual(result.batch[0], result.answers.slice(0, 2), 'the batch form answers row 0 as the single call');
      assert.equal(result.embedding.length, result.httpEmbedding.length);
      result.embedding.forEach((v, i) => assert.ok(Math.abs(v - result.httpEmbedding[i]!) < 1e-6, `embedding component ${i}: ${v} vs ${result.httpEmbedding[i]}`));
      assert.equal(result.refused, 'E_USAGE', 'a task the bundle lacks is a typed BridgeTowerError');
      assert.equal(result.httpError, '404 E_NOT_IN_GALLERY', "the server's {code} arrives as a BridgeTowerHttpError");
    } finally {
      server.kill('SIGTERM');
      await waitForExit(server, 'bridgetower serve', childTimeoutMs(10_000));
    }
  });

  it('CommonJS require is refused with what to do instead', () => {
    const result = spawnSync(process.execPath, ['-e', "require('bridgetower-node')"], { cwd: project, encoding: 'utf8', timeout: childTimeoutMs(5_000) });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /bridgetower-node is ESM-only[\s\S]*await import\('bridgetower-node'\)/);
    const client = spawnSync(process.execPath, ['-e', "require('bridgetower-node/client')"], { cwd: project, encoding: 'utf8', timeout: childTimeoutMs(5_000) });
    assert.match(client.stderr, /ESM-only/);
  });
});

/**
 * The ```ts blocks of the package's docs, each as a module: the names the prose assumes (a
 * loaded `model`, a `client`, image data) are declared where the block does not define them.
 */
function docExamples(docs: string): string[] {
  const assumed: Record<string, string> = {
    model: "import('bridgetower-node').BridgeTower",
    client: "import('bridgetower-node/client').BridgeTowerClient",
    catBase64: 'string',
    catBytes: 'Uint8Array',
    file: 'File',
  };
  return ['library.md', 'evaluation.md'].flatMap((page) =>
    [...readFileSync(join(docs, page), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => {
      const body = m[1]!;
      const prelude = Object.entries(assumed)
        .filter(([name]) => new RegExp(`\\b${name}\\b`).test(body) && !new RegExp(`\\bconst ${name}\\b|\\{[^}]*\\b${name}\\b[^}]*\\} = `).test(body))
        .map(([name, type]) => `declare const ${name}: ${type};`);
      return `// ${page}\n${prelude.join('\n')}\n${body}\nexport {};\n`;
    }),
  );
}

async function waitUntilReady(baseUrl: string, timeoutMs: number, log: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(`${baseUrl}/readyz`).then((r) => r.status, () => 0);
    if (status === 200) return;
    if (Date.now() > until) assert.fail(`bridgetower serve was not ready after ${Math.round(timeoutMs / 1000)} s (timeout):\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
