import { it, type TestContext } from 'node:test';

/**
 * `it` for a suite that cannot run here: each test is skipped with `reason` (false: runs). A suite
 * skipped with `describe(name, { skip })` counts as no test at all in node:test's summary
 * ("skipped 0"); skipping its tests makes `npm test` report them as skipped.
 */
export function itUnless(reason: string | false): (name: string, fn: (t: TestContext) => void | Promise<void>) => void {
  return (name, fn) => {
    it(name, { skip: reason }, fn);
  };
}
