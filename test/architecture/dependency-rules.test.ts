import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { importCycles, importsOf, layerOf, readImportGraph, violations, type ImportEdge } from './import-graph.js';
import { ALLOWED_IMPORTS, LAYERS, type Layer } from './layer-rules.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Every TypeScript file of the checkout, tracked or new (not ignored). */
function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' });
  return listed.split('\n').filter((file) => file.endsWith('.ts') && layerOf(file) !== undefined);
}

describe('dependency rules', () => {
  it('no source file imports a layer it must not, nor a package outside its home', () => {
    const found = violations(readImportGraph(ROOT, sourceFiles()));
    assert.deepEqual(found, [], `forbidden imports (the rules are test/architecture/layer-rules.ts and docs/architecture.md):\n${found.join('\n')}`);
  });

  it('no run-time import cycle between source files (a cycle fails at start-up when one module reads another during initialisation)', () => {
    const cycles = importCycles(readImportGraph(ROOT, sourceFiles().filter((file) => !file.startsWith('test/'))));
    assert.deepEqual(cycles, [], `import cycles:\n${cycles.map((c) => c.join(' → ')).join('\n')}`);
  });

  it('finds a cycle in a synthetic import graph and ignores type-only and dynamic imports', () => {
    const edges: ImportEdge[] = [
      ...importsOf('bundle/config.ts', "import { TASKS } from './tasks.js';\n"),
      ...importsOf('bundle/tasks.ts', "import { LABELS } from './labels.js';\nimport type { Arch } from './architecture.js';\n"),
      ...importsOf('bundle/labels.ts', "import { BUNDLE_FILES } from './config.js';\n"),
      ...importsOf('bundle/architecture.ts', "import { TASKS } from './tasks.js';\n"),
      // A backend table that loads its backends lazily, and backends importing the table: no cycle at start-up.
      ...importsOf('server/store.ts', "const open = async () => (await import('./sqlite-store.js')).SqliteStore;\n"),
      ...importsOf('server/sqlite-store.ts', "import { storeError } from './store.js';\n"),
    ];
    assert.deepEqual(importCycles(edges), [['bundle/config.ts', 'bundle/labels.ts', 'bundle/tasks.ts']]);
  });

  it('every top folder holding TypeScript is a layer with rules', () => {
    const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' });
    const tops = new Set(listed.split('\n').filter((f) => f.includes('/')).map((f) => f.split('/')[0]!));
    for (const top of tops) assert.ok((LAYERS as readonly string[]).includes(top), `${top}/ holds TypeScript but has no row in test/architecture/layer-rules.ts`);
  });

  it('finds a forbidden import in a synthetic import graph, and lets the allowed ones pass', () => {
    const edges: ImportEdge[] = [
      ...importsOf('bundle/config.ts', "import { z } from 'zod';\nimport { openSession } from '../runtime/session.js';\n"),
      ...importsOf('models/ir/builder.ts', "import { BUNDLE_FILES } from '../../bundle/config.js';\n"),
      ...importsOf('server/app.ts', "import { x } from '../cli/main.js';\nconst m = await import('../runtime/session.js');\n"),
      ...importsOf('convert/read.ts', "export { a } from '../train/fine-tune.js';\nimport ort from 'onnxruntime-node';\n"),
    ];
    assert.deepEqual(violations(edges), [
      'bundle/config.ts:2 imports runtime/session.js: bundle/ may import only common/',
      'server/app.ts:1 imports cli/main.js: server/ may import only library/, runtime/, preprocess/, bundle/, common/',
      'convert/read.ts:1 imports train/fine-tune.js: convert/ may import only models/, bundle/, common/',
      'convert/read.ts:2 imports the package onnxruntime-node, which belongs to runtime/, train/',
    ]);
  });

  it('reads every form of import: static, dynamic, re-export, side effect, worker URL', () => {
    const source = [
      "import a from './a.js';",
      "import type { B } from '../b/b.js';",
      "export * from './c.js';",
      "import './d.js';",
      "const e = await import('./e.js');",
      "new Worker(new URL('./f.js', import.meta.url));",
      "import { readFileSync } from 'node:fs';",
      "import { z } from 'zod';",
      "import cors from '@fastify/cors';",
    ].join('\n');
    const edges = importsOf('x/y.ts', source);
    assert.deepEqual(edges.map((e) => e.to ?? e.pkg), ['x/a.js', 'b/b.js', 'x/c.js', 'x/d.js', 'x/e.js', 'x/f.js', 'zod', '@fastify/cors']);
  });

  it('docs/architecture.md shows the same matrix as the rules', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
    const rows = new Map<string, string[]>();
    for (const line of doc.split('\n')) {
      const cells = line.match(/^\|\s*`([a-z]+)\/`\s*\|([^|]*)\|/);
      if (!cells) continue;
      rows.set(cells[1]!, [...cells[2]!.matchAll(/`([a-z]+)\/`/g)].map((m) => m[1]!));
    }
    for (const layer of LAYERS) {
      assert.deepEqual(rows.get(layer)?.slice().sort(), [...ALLOWED_IMPORTS[layer as Layer]].sort(), `docs/architecture.md's row for ${layer}/ differs from test/architecture/layer-rules.ts`);
    }
  });
});
