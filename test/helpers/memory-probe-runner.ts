import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ProbeOptions, ProbeSetup, ProbeStep } from './training-memory-probe.js';

const PROBE = fileURLToPath(new URL('./training-memory-probe.ts', import.meta.url));
/** Generous: a loaded 2-core CI machine runs the small model's steps in seconds, BASE's in minutes. */
const DEFAULT_TIMEOUT_MS = 20 * 60_000;

/**
 * Runs test/helpers/training-memory-probe.ts in a fresh process (its peak memory is the step's
 * alone) and reads its JSON lines: the setup line, then one per step. A probe that runs past
 * `timeoutMs` is killed and reported as a timeout, not as a failed measurement.
 */
export function runMemoryProbe(options: ProbeOptions, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ setup: ProbeSetup; steps: ProbeStep[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', PROBE, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`the memory probe timed out after ${timeoutMs / 1000} s (${JSON.stringify(options)})`));
      if (code !== 0) return reject(new Error(`the memory probe exited with ${code ?? signal}`));
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { setup?: ProbeSetup } & ProbeStep);
      resolve({ setup: lines[0]!.setup!, steps: lines.slice(1) });
    });
  });
}
