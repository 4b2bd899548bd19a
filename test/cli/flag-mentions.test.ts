import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../cli/main.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The folders whose messages reach users (tests and benchmarks talk to developers). */
const SOURCE_DIRS = ['common', 'client', 'bundle', 'models', 'preprocess', 'runtime', 'convert', 'train', 'library', 'server', 'cli'];
/** Flags of the CLI itself (main.ts) and of Node (`--import tsx`, `--expose-gc`), which no command's usage lists. */
const NOT_COMMAND_FLAGS = new Set(['--help', '--version', '--import', '--expose-gc']);

/** Every `--flag` some command's --help text shows. */
function documentedFlags(): Set<string> {
  return new Set(Object.values(COMMANDS).flatMap((command) => command.usage.match(/--[a-z][a-z0-9-]*/g) ?? []));
}

/**
 * Every `--flag` a source file mentions, with where: CSS custom properties (`--accent: …`,
 * `var(--accent)`) of the demo page are not flags.
 */
function mentionedFlags(): Array<{ flag: string; where: string }> {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', ...SOURCE_DIRS.map((d) => `${d}/*.ts`)], { cwd: ROOT, encoding: 'utf8' });
  return listed.split('\n').filter(Boolean).flatMap((file) =>
    readFileSync(join(ROOT, file), 'utf8').split('\n').flatMap((line, i) =>
      [...line.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*(?![\w(-]|\.\w)/g)]
        .filter((m) => !/var\($/.test(line.slice(0, m.index)) && line[m.index + m[0].length] !== ':')
        .map((m) => ({ flag: m[0], where: `${file}:${i + 1}` })),
    ),
  );
}

describe('flags named in messages', () => {
  it('every --flag a message or usage text names is one that some command takes', () => {
    const documented = documentedFlags();
    const unknown = mentionedFlags().filter(({ flag }) => !documented.has(flag) && !NOT_COMMAND_FLAGS.has(flag));
    assert.deepEqual(unknown.map(({ flag, where }) => `${flag} (${where})`), []);
  });

  it('every option a command parses is shown in its --help', () => {
    const missing = Object.entries(COMMANDS).flatMap(([name, command]) =>
      Object.keys(command.options)
        .filter((option) => !new RegExp(`--${option}(?![a-z0-9-])`).test(command.usage))
        .map((option) => `${name} --${option}`),
    );
    assert.deepEqual(missing, []);
  });
});
