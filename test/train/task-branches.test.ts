import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { TASK_NAMES } from '../../bundle/tasks.js';
import { FINE_TUNE_TASK_NAMES } from '../../train/tasks.js';

/**
 * What a task needs lives in its row (bundle/tasks.ts, train/tasks.ts): code reads the row rather
 * than branching on the task's name. This scans every non-test source file for such branches.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TABLE_FILES = new Set(['bundle/tasks.ts', 'train/tasks.ts']);
const SKIPPED_FOLDERS = new Set(['node_modules', 'test', 'dist', '.git']);

const names = [...new Set([...TASK_NAMES, ...FINE_TUNE_TASK_NAMES])].join('|');
/** `task === 'vqa'`, `dataset.task !== 'irtr'`, `'vqa' === task`, `case 'vqa':`. */
const BRANCH = new RegExp(String.raw`\btask\s*[!=]==?\s*['"\`]|['"\`](?:${names})['"\`]\s*[!=]==?\s*[\w.]*\btask\b|\bcase\s+['"\`](?:${names})['"\`]`);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return SKIPPED_FOLDERS.has(entry.name) ? [] : sourceFiles(join(dir, entry.name));
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [join(dir, entry.name)] : [];
  });
}

describe('task dispatch', () => {
  it('recognizes a branch on a task name in its usual spellings', () => {
    for (const branch of ["if (task === 'vqa')", "dataset.task !== 'irtr'", "options.task=='snli'", "'nlvr2' === predictions.task", "case 'itm':"]) {
      assert.match(branch, BRANCH, branch);
    }
    for (const lookup of ['FINE_TUNE_TASKS[task].recipe', "this.request('vqa', ctx, work)", "const task: TaskName = 'itc';"]) assert.doesNotMatch(lookup, BRANCH, lookup);
  });

  it("no source file outside the task tables branches on a task's name", () => {
    const branches: string[] = [];
    for (const file of sourceFiles(ROOT)) {
      const path = relative(ROOT, file).split('\\').join('/');
      if (TABLE_FILES.has(path)) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (BRANCH.test(line)) branches.push(`${path}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(branches, [], `read the task's row (bundle/tasks.ts, train/tasks.ts) instead of branching on its name:\n${branches.join('\n')}`);
  });
});
