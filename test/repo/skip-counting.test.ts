import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertChildFinished, childTimeoutMs } from '../helpers/child-timeout.js';
import { tempDir } from '../helpers/temp-dir.js';

const TEST_DIR = fileURLToPath(new URL('..', import.meta.url));
const HELPER = fileURLToPath(new URL('../helpers/skipped-suite.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const RUN_TIMEOUT_MS = childTimeoutMs(30_000);

describe('skipped tests show in the summary', () => {
  it('a suite skipped through itUnless counts each of its tests as skipped', (t) => {
    const file = join(tempDir(t), 'skipped.test.ts');
    writeFileSync(file, `import { describe } from 'node:test';\nimport { itUnless } from ${JSON.stringify(HELPER)};\ndescribe('needs a browser', () => {\n  const it = itUnless('no browser here');\n  it('one', () => {});\n  it('two', () => {});\n});\n`);
    // Without NODE_TEST_CONTEXT the child is a test run of its own, not a subtest of this one.
    const { NODE_TEST_CONTEXT: _parent, ...env } = process.env;
    const result = spawnSync(process.execPath, ['--import', TSX, '--test', '--test-reporter=tap', file], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS, env });
    assertChildFinished(result, 'node --test', RUN_TIMEOUT_MS);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^# skipped 2$/m);
  });

  it("no test file skips a whole suite through describe's skip option, which the summary counts as nothing", () => {
    const files = readdirSync(TEST_DIR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.test.ts'));
    const offenders = files.filter((f) => /\bdescribe\([^\n]*\{\s*skip\b/.test(readFileSync(join(TEST_DIR, f), 'utf8')));
    assert.deepEqual(offenders, []);
  });
});
