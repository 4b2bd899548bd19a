import { readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { ALLOWED_IMPORTS, LAYERS, PACKAGE_HOMES, type Layer } from './layer-rules.js';

/** One import of one source file: a repository-relative file, or a package name. */
export interface ImportEdge {
  from: string;
  /** Repository-relative path of the imported file (`.js` specifiers as written). */
  to?: string;
  /** Package name (`fastify`, `@fastify/cors`) for bare specifiers. */
  pkg?: string;
  line: number;
  /** `import type` / `export type`: erased at compile time, so it cannot form a run-time cycle. */
  typeOnly: boolean;
  /** `import()`: evaluated when called, after every module has initialised, so it cannot either. */
  lazy: boolean;
}

// Static and dynamic imports, re-exports, side-effect imports and `new URL('./x.js', import.meta.url)`
// (how the graph runner names its worker). Specifiers inside template strings are not imports.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)(['"])([^'"\n]+)\1/g;

/** Every import in `source` (the text of repository file `file`). */
export function importsOf(file: string, source: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const match of source.matchAll(SPECIFIER)) {
    const specifier = match[2]!;
    const line = source.slice(0, match.index).split('\n').length;
    const statement = source.slice(0, match.index).match(/(?:^|\n)\s*(import|export)\b([^;]*)$/);
    const typeOnly = statement !== null && /^\s+type\s/.test(statement[2]!);
    const lazy = /^import\s*\(/.test(match[0]);
    if (specifier.startsWith('node:')) continue;
    if (specifier.startsWith('.')) {
      if (!/\.(?:[cm]?[jt]s)$/.test(specifier)) continue; // an asset (the demo page's HTML), not code
      edges.push({ from: file, to: normalize(join(dirname(file), specifier)), line, typeOnly, lazy });
    } else if (!specifier.includes(':')) {
      const parts = specifier.split('/');
      edges.push({ from: file, pkg: specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!, line, typeOnly, lazy });
    }
  }
  return edges;
}

/** Reads the imports of `files` (repository-relative) under `root`. */
export function readImportGraph(root: string, files: readonly string[]): ImportEdge[] {
  return files.flatMap((file) => importsOf(file, readFileSync(join(root, file), 'utf8')));
}

export function layerOf(path: string): Layer | undefined {
  const top = path.split(/[\\/]/)[0];
  return (LAYERS as readonly string[]).includes(top!) ? (top as Layer) : undefined;
}

/** The imports that break the rules, each as a sentence naming the file, the line and the rule. */
export function violations(
  edges: readonly ImportEdge[],
  allowed: Readonly<Record<Layer, readonly Layer[]>> = ALLOWED_IMPORTS,
  homes: Readonly<Record<string, readonly Layer[]>> = PACKAGE_HOMES,
): string[] {
  const found: string[] = [];
  for (const edge of edges) {
    const from = layerOf(edge.from);
    if (!from) continue;
    if (edge.to !== undefined) {
      if (edge.to.startsWith('..')) {
        found.push(`${edge.from}:${edge.line} imports ${relative('.', edge.to)}, outside the repository`);
        continue;
      }
      const to = layerOf(edge.to);
      if (!to || to === from) continue;
      if (!allowed[from].includes(to)) {
        found.push(`${edge.from}:${edge.line} imports ${edge.to}: ${from}/ may import only ${allowed[from].map((l) => `${l}/`).join(', ') || 'nothing outside itself'}`);
      }
    } else if (edge.pkg !== undefined) {
      const home = homes[edge.pkg];
      if (home && from !== 'test' && from !== 'bench' && !home.includes(from)) {
        found.push(`${edge.from}:${edge.line} imports the package ${edge.pkg}, which belongs to ${home.map((l) => `${l}/`).join(', ')}`);
      }
    }
  }
  return found;
}

/**
 * Run-time import cycles (type-only and dynamic imports left out), each as the files around it. ES modules
 * tolerate a cycle until one module reads another's binding during its own initialisation — then
 * it is a `ReferenceError` at start-up, far from the import that caused it; so none is allowed.
 */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const edge of edges) {
    if (edge.typeOnly || edge.lazy || edge.to === undefined) continue;
    const target = edge.to.replace(/\.js$/, '.ts');
    next.set(edge.from, [...(next.get(edge.from) ?? []), target]);
  }
  // Tarjan's strongly connected components: every component with more than one file is a cycle.
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (file: string): void => {
    order.set(file, index);
    low.set(file, index++);
    stack.push(file);
    onStack.add(file);
    for (const to of next.get(file) ?? []) {
      if (!order.has(to)) {
        visit(to);
        low.set(file, Math.min(low.get(file)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(file, Math.min(low.get(file)!, order.get(to)!));
      }
    }
    if (low.get(file) === order.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const file of [...next.keys()].sort()) if (!order.has(file)) visit(file);
  return cycles;
}
