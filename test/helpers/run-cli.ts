import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));

/**
 * Runs the CLI from its sources in a child process, as `bin/bridgetower.js` (or, with
 * `preset: 'convert'`, `bin/convert-ckpt.js`) runs the compiled copy.
 */
export function runCli(args: string[], options: { preset?: 'convert' } = {}): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    encoding: 'utf8',
    input: '',
    timeout: 60_000,
    env: { ...process.env, TEST_CLI_PRESET: options.preset ?? '' },
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
