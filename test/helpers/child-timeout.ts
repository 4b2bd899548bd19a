import assert from 'node:assert/strict';
import type { ChildProcess, SpawnSyncReturns } from 'node:child_process';

/**
 * How long a test waits for a child process. The base is what an idle laptop needs several times
 * over; a loaded 2-core CI machine ran the suite 5× slower, so every wait is 5× the base, and
 * BRIDGETOWER_TEST_TIMEOUT_SCALE multiplies it again (2 on a slower host, 0.2 to find hangs fast).
 */
export function childTimeoutMs(baseMs: number): number {
  const raw = process.env.BRIDGETOWER_TEST_TIMEOUT_SCALE;
  const scale = raw === undefined || raw === '' ? 1 : Number(raw);
  if (!(scale > 0)) throw new Error(`BRIDGETOWER_TEST_TIMEOUT_SCALE must be a positive number, got '${raw}'`);
  return Math.round(baseMs * 5 * scale);
}

/**
 * A child that ran past its timeout (or could not start) fails the test saying so, instead of
 * surfacing later as a puzzling `status null` / `-1 !== 0`.
 */
export function assertChildFinished(result: Pick<SpawnSyncReturns<unknown>, 'error' | 'signal'>, what: string, timeoutMs: number): void {
  const error = result.error as NodeJS.ErrnoException | undefined;
  if (error?.code === 'ETIMEDOUT') {
    assert.fail(`${what} timed out after ${Math.round(timeoutMs / 1000)} s (set BRIDGETOWER_TEST_TIMEOUT_SCALE to wait longer on a slow machine)`);
  }
  if (error) assert.fail(`${what} could not run: ${error.message}`);
}

/** Waits for a spawned child to exit; one still running after `timeoutMs` is killed and fails the test as a timeout. */
export async function waitForExit(child: ChildProcess, what: string, timeoutMs: number): Promise<[code: number | null, signal: NodeJS.Signals | null]> {
  if (child.exitCode !== null || child.signalCode !== null) return [child.exitCode, child.signalCode];
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    assert.fail(`${what} timed out after ${Math.round(timeoutMs / 1000)} s (set BRIDGETOWER_TEST_TIMEOUT_SCALE to wait longer on a slow machine)`);
  }
  return outcome;
}
