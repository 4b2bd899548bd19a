import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { DEFAULT_BUNDLE_ROOT } from '../../bundle/bundle-folders.js';
import { assertChildFinished, childTimeoutMs } from '../helpers/child-timeout.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GIT_TIMEOUT_MS = childTimeoutMs(12_000);

function insideGitCheckout(): boolean {
  const result = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: ROOT, timeout: GIT_TIMEOUT_MS });
  assertChildFinished(result, 'git rev-parse', GIT_TIMEOUT_MS);
  return result.status === 0;
}

/** Generated bundles, at any depth under the bundle root. */
const BUNDLE_FILES = [`${DEFAULT_BUNDLE_ROOT}/a/b/c/config.json`, `${DEFAULT_BUNDLE_ROOT}/x.onnx`, `${DEFAULT_BUNDLE_ROOT}/demo/tokenizer.json`, `${DEFAULT_BUNDLE_ROOT}/vqa/onnx/vqa.onnx`];
/** Model-definition sources, which once sat beside bundles under models/. */
const SOURCE_FILES = ['models/ir/ops.json', 'models/bridgetower/config.json', 'models/bridgetower/graphs.ts'];

describe('.gitignore', () => {
  /** Whether git ignores `path` by the patterns alone (--no-index: tracked or not). */
  const ignored = (path: string): boolean => {
    const result = spawnSync('git', ['check-ignore', '--no-index', '--quiet', path], { cwd: ROOT, encoding: 'utf8', timeout: GIT_TIMEOUT_MS });
    assertChildFinished(result, `git check-ignore ${path}`, GIT_TIMEOUT_MS);
    if (result.status !== 0 && result.status !== 1) throw new Error(`git check-ignore ${path} exited ${result.status}: ${result.stderr}`);
    return result.status === 0;
  };

  it('ignores every file under the bundle root', (t) => {
    if (!insideGitCheckout()) return t.skip('not a git checkout');
    for (const path of BUNDLE_FILES) assert.equal(ignored(path), true, path);
  });

  it('ignores nothing under models/, which is source code', (t) => {
    if (!insideGitCheckout()) return t.skip('not a git checkout');
    for (const path of SOURCE_FILES) assert.equal(ignored(path), false, path);
  });
});

describe('.dockerignore', () => {
  /**
   * Docker's matching, enough for this file: patterns are anchored at the context root, `**` spans
   * folders, `*` and `?` stay within one, a pattern that matches a folder excludes all below it, and
   * a later `!pattern` re-includes.
   */
  const patterns = readFileSync(`${ROOT}/.dockerignore`, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const toRegExp = (pattern: string) =>
    new RegExp(`^${pattern.replace(/^\/+/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '(?:.*/)?')}(?:/.*)?$`);
  const excluded = (path: string): boolean =>
    patterns.reduce((state, pattern) => (pattern.startsWith('!') ? (toRegExp(pattern.slice(1)).test(path) ? false : state) : toRegExp(pattern).test(path) || state), false);

  it('leaves the bundle root out of the build context', () => {
    for (const path of BUNDLE_FILES) assert.equal(excluded(path), true, path);
  });

  it('keeps every model-definition source in it', () => {
    for (const path of SOURCE_FILES) assert.equal(excluded(path), false, path);
  });
});
