import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childTimeoutMs } from './child-timeout.js';

/**
 * Opens a checkpoint (convert/sources/open-source.ts) in a fresh Node process with a time and a
 * heap limit, for inputs that once made a reader loop forever or exhaust memory: a regression must
 * show up as a failed test ("timed out", "out of memory"), not as a suite that never ends.
 *   node --import tsx test/helpers/open-in-child.ts <checkpoint>   → one JSON line on stdout
 */

export interface ChildOutcome {
  /** 'ok': opened; 'typed': a BridgeTowerError; 'untyped': any other error; 'timeout' / 'crash': the child did not answer. */
  readonly outcome: 'ok' | 'typed' | 'untyped' | 'timeout' | 'crash';
  readonly code?: string;
  readonly reason?: string;
  readonly message?: string;
  readonly stderr: string;
}

export function openInChild(path: string, options: { timeoutMs?: number; maxOldSpaceMb?: number } = {}): ChildOutcome {
  const result = spawnSync(
    process.execPath,
    [`--max-old-space-size=${options.maxOldSpaceMb ?? 512}`, '--import', 'tsx', fileURLToPath(import.meta.url), path],
    { encoding: 'utf8', timeout: options.timeoutMs ?? childTimeoutMs(12_000), input: '' },
  );
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { outcome: 'timeout', stderr: result.stderr };
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    return { ...(JSON.parse(line) as Omit<ChildOutcome, 'stderr'>), stderr: result.stderr };
  } catch {
    return { outcome: 'crash', message: `exit ${result.status} (signal ${result.signal})`, stderr: result.stderr };
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { openCheckpointSource } = await import('../../convert/sources/open-source.js');
  const { BridgeTowerError } = await import('../../common/errors.js');
  let answer: Record<string, unknown>;
  try {
    openCheckpointSource(process.argv[2]!);
    answer = { outcome: 'ok' };
  } catch (error) {
    answer =
      error instanceof BridgeTowerError
        ? { outcome: 'typed', code: error.code, reason: error.details.reason, message: error.message }
        : { outcome: 'untyped', message: String((error as Error).stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
