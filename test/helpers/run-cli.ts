import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { assertChildFinished, childTimeoutMs } from './child-timeout.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
/** A CLI run in a test: tsx start-up plus at most a tiny fine-tune, on a loaded machine. */
export const CLI_TIMEOUT_MS = childTimeoutMs(60_000);

/**
 * Runs the CLI from its sources in a child process, as `bin/bridgetower.js` (or, with
 * `preset: 'convert'`, `bin/convert-ckpt.js`) runs the compiled copy. A run past the timeout fails
 * the test as "timed out after N s".
 */
export function runCli(args: string[], options: { preset?: 'convert'; env?: Record<string, string> } = {}): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    encoding: 'utf8',
    input: '',
    timeout: CLI_TIMEOUT_MS,
    env: { ...process.env, TEST_CLI_PRESET: options.preset ?? '', ...options.env },
  });
  assertChildFinished(result, `bridgetower ${args.slice(0, 2).join(' ')}`, CLI_TIMEOUT_MS);
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
