import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../cli/main.js';
import { ERROR_CODES } from '../../common/errors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCS = join(ROOT, 'docs');
const pages = () => [join(ROOT, 'README.md'), ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => join(DOCS, f))];
const read = (path: string) => readFileSync(path, 'utf8');

/** The page that documents each command's options. */
const COMMAND_PAGES: Record<string, string> = {
  convert: 'convert.md',
  'export-ckpt': 'export-ckpt.md',
  'export-hf': 'export-hf.md',
  'fine-tune': 'fine-tune.md',
  serve: 'server.md',
  evaluate: 'evaluation.md',
  predict: 'evaluation.md',
  'compare-variants': 'precision.md',
};

/** Words of the project's own working notes that a reader of the docs cannot look up. */
const JARGON = [/\bseed's\b/i, /\bthe issue text\b/i];

describe('docs', () => {
  it("each command's page mentions every flag its --help shows", () => {
    const missing = Object.entries(COMMAND_PAGES).flatMap(([command, page]) => {
      const text = read(join(DOCS, page));
      const flags = new Set(COMMANDS[command]!.usage.match(/--[a-z][a-z0-9-]*/g) ?? []);
      return [...flags].filter((flag) => flag !== '--help' && !new RegExp(`${flag}(?![a-z0-9-])`).test(text)).map((flag) => `${page}: ${command} ${flag}`);
    });
    assert.deepEqual(missing, []);
  });

  it('link only to files inside the repository, and name no path outside it', () => {
    const broken = pages().flatMap((page) => {
      const text = read(page);
      const links = [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/.test(target));
      const outside = [...text.matchAll(/\.\.\/shared\/[\w./-]*/g)].map((m) => m[0]);
      return [
        ...links.filter((target) => !existsSync(resolve(dirname(page), target)) || !resolve(dirname(page), target).startsWith(ROOT)).map((target) => `${page}: link ${target}`),
        ...outside.map((path) => `${page}: ${path}`),
      ];
    });
    assert.deepEqual(broken, []);
  });

  it('use no internal jargon', () => {
    const found = pages().flatMap((page) =>
      read(page).split('\n').flatMap((line, i) => JARGON.filter((word) => word.test(line)).map((word) => `${page.slice(ROOT.length)}:${i + 1} ${word}`)),
    );
    assert.deepEqual(found, []);
  });

  it("server.md's error table lists every error code the server can answer with", () => {
    const table = read(join(DOCS, 'server.md'));
    const missing = Object.entries(ERROR_CODES).filter(([, code]) => code.httpStatus !== undefined).map(([name]) => name).filter((name) => !new RegExp(`\\|\\s*\`?${name}\`?\\s*\\|`).test(table));
    assert.deepEqual(missing, []);
  });
});
