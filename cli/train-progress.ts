import cliProgress from 'cli-progress';
import { plural } from '../common/plural.js';
import type { TrainEvent } from '../train/fine-tune.js';

/**
 * Fine-tuning progress on stderr: a bar with loss, learning rate and samples/s on a terminal; on a
 * pipe or CI log, a plain line every 5 % of the steps and at each evaluation and checkpoint. With
 * --json nothing is drawn (events go to stdout as JSON Lines instead).
 */
export function trainProgress(enabled: boolean): { event(e: TrainEvent): void; stop(): void } {
  if (!enabled) return { event() {}, stop() {} };
  const tty = process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: 'fine-tune [{bar}] step {value}/{total} | loss {loss} | lr {lr} | {rate} samples/s | eta {eta_formatted}', stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let total = 0;
  let every = 1;
  // On a terminal the bar owns the current line: a message starts on the next one.
  const say = (line: string) => process.stderr.write(`${bar ? '\n' : ''}${line}\n`);
  return {
    event(e) {
      if (e.type === 'start') {
        total = e.totalSteps;
        every = Math.max(1, Math.round(total / 20));
        const line = `fine-tune: ${plural(e.examples, 'example')}, ${plural(e.microBatchesPerEpoch, 'micro-batch', 'micro-batches')} per epoch, accumulation ${e.accumulation}, ${plural(total, 'optimizer step')} (${e.warmupSteps} warmup), ${plural(e.parameters, 'trainable parameter')}`;
        process.stderr.write(`${line}${e.step ? `; resuming after step ${e.step}` : ''}\n`);
        bar?.start(total, e.step, { loss: '-', lr: '-', rate: '-' });
      } else if (e.type === 'step') {
        // Summed objectives show their terms beside the loss: "0.8123 (mlm_loss 0.61, itm_loss 0.20)".
        const terms = e.terms ? ` (${Object.entries(e.terms).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')})` : '';
        const values = { loss: `${e.loss.toFixed(4)}${terms}`, lr: e.lr.toExponential(2), rate: e.samplesPerSecond.toFixed(1) };
        if (bar) bar.update(e.step, values);
        else if (e.step % every === 0 || e.step === total) process.stderr.write(`step ${e.step}/${total} epoch ${e.epoch + 1} loss ${values.loss} lr ${values.lr} ${values.rate} samples/s\n`);
      } else if (e.type === 'eval') {
        say(`dev at step ${e.step}: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}${e.best ? ' (best so far)' : ''}`);
      } else if (e.type === 'checkpoint') {
        const best = e.keptForBest === null ? '' : `; step ${e.keptForBest} kept too: best dev score`;
        if (!bar) process.stderr.write(`checkpoint ${e.dir} (kept: step ${e.kept.join(', ')}${best})\n`);
      } else if (e.type === 'warning') {
        say(`fine-tune: warning: ${e.message}`);
      } else if (e.type === 'done') {
        bar?.stop();
      }
    },
    stop() {
      bar?.stop();
    },
  };
}
