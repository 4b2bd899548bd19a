import { readFileSync } from 'node:fs';

/**
 * Peak resident memory of this process, in bytes. On Linux this reads VmHWM, the high-water mark
 * of the current address space: `process.resourceUsage().maxRSS` (getrusage) also carries over
 * the parent's RSS at fork time, which would make a child's figure meaningless.
 */
export function peakResidentBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS * 1024;
}
