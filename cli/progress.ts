import cliProgress from 'cli-progress';

/**
 * A byte-progress bar on an interactive terminal; silent elsewhere (CI logs, pipes, `--json`), so
 * machine-readable output is never interleaved with bar redraws.
 */
export function byteProgress(label: string, enabled: boolean): { update(done: number, total: number): void; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {doneMB}/{totalMB} MB | {speed} MB/s | eta {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return {
    update(done, total) {
      const speed = mb(done / Math.max(0.001, (Date.now() - started) / 1000));
      if (!running) {
        bar.start(total, done, { doneMB: mb(done), totalMB: mb(total), speed });
        running = true;
      } else {
        bar.update(done, { doneMB: mb(done), totalMB: mb(total), speed });
      }
    },
    stop() {
      if (running) bar.stop();
    },
  };
}

/** An item-progress bar (items/s and ETA) on an interactive terminal; silent elsewhere. */
export function itemProgress(label: string, enabled: boolean): { update(done: number, total: number): void; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} | {rate} items/s | eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    update(done, total) {
      const rate = (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1);
      if (!running) {
        bar.start(total, done, { rate });
        running = true;
      } else {
        bar.update(done, { rate });
      }
    },
    stop() {
      if (running) bar.stop();
    },
  };
}
