import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * A bench child process that reports progress as one JSON object per stdout line (each the whole
 * result so far), watched: the bench's children (bench/train.ts's Node steps and the PyTorch
 * anchor) allocate tens of GB, so a child whose RSS passes `maxRssBytes`, or that leaves the
 * machine under 1 GiB available, is stopped (SIGKILL) and reported with what it measured so far,
 * rather than the kernel's OOM killer choosing among the processes of a shared machine.
 */
export interface WatchedOutcome<T> {
  /** The last JSON line the child printed. */
  last?: T;
  /** Why it did not exit cleanly: stopped by the watchdog, a signal or an exit status. */
  failure?: string;
}

export const meminfoBytes = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) * 1024;
const rssBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

export function runWatchedChild<T>(command: string, args: readonly string[], maxRssBytes: number): Promise<WatchedOutcome<T>> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: T | undefined;
  let pending = '';
  let stopped: string | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.trim()) last = JSON.parse(line) as T;
  });
  const watchdog = setInterval(() => {
    try {
      const rss = rssBytes(child.pid!);
      const available = meminfoBytes('MemAvailable');
      if (rss > maxRssBytes || available < 2 ** 30) {
        stopped = `stopped by the bench at ${(rss / 1e9).toFixed(1)} GB RSS (limit ${(maxRssBytes / 1e9).toFixed(1)} GB; ${(available / 1e9).toFixed(1)} GB still available)`;
        child.kill('SIGKILL');
      }
    } catch {
      // the child has just exited
    }
  }, 100);
  return new Promise((resolve) => {
    const finish = (failure: string | undefined) => {
      clearInterval(watchdog);
      resolve({ ...(last !== undefined ? { last } : {}), ...(failure ? { failure } : {}) });
    };
    child.on('error', (error) => finish(`could not start ${command}: ${error.message}`));
    child.on('close', (code, signal) => finish(code === 0 ? undefined : (stopped ?? (signal ? `killed by ${signal}` : `exited with status ${code}`))));
  });
}
