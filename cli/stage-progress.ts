import cliProgress from 'cli-progress';

/**
 * A counted-items progress bar that restarts for each stage (retrieval's texts, images, re-rank),
 * with items/s. Like byteProgress, it draws only on an interactive terminal and never with --json.
 */
export function stageProgress(enabled: boolean): { update(stage: string, done: number, total: number): void; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: '{stage} [{bar}] {value}/{total} | {rate}/s | eta {eta_formatted}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let current: { stage: string; started: number } | undefined;
  const rate = (done: number) => (done / Math.max(0.001, (Date.now() - current!.started) / 1000)).toFixed(1);
  return {
    update(stage, done, total) {
      if (current?.stage !== stage) {
        if (current) bar.stop();
        current = { stage, started: Date.now() };
        bar.start(total, done, { stage, rate: rate(done) });
      } else {
        bar.update(done, { stage, rate: rate(done) });
      }
    },
    stop() {
      if (current) bar.stop();
      current = undefined;
    },
  };
}
