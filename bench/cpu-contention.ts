import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * How much of the machine other processes used while a bench step ran: (all CPU time the kernel
 * counted busy, steal included) − (this process's CPU time), as a share of cores × wall time. The
 * bench machines are shared; a figure measured while others held the cores says so next to it.
 * Linux only (/proc/stat); elsewhere the share is NaN. Resolution is one clock tick (10 ms) per
 * core, so steps under ~0.5 s read coarsely.
 */
const TICK_US = 10_000; // USER_HZ = 100 on every Linux ABI Node supports

function busyMicros(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) * TICK_US;
  } catch {
    return NaN;
  }
}

function ownMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Runs `step`; returns its wall time (ms) and the share (0..1) of the cores others used meanwhile. */
export async function timedWithContention(step: () => Promise<unknown>): Promise<{ ms: number; othersShare: number }> {
  const busy = busyMicros();
  const own = ownMicros();
  const started = performance.now();
  await step();
  const ms = performance.now() - started;
  const others = busyMicros() - busy - (ownMicros() - own);
  return { ms, othersShare: Math.min(1, Math.max(0, others / (cpus().length * ms * 1000))) };
}
