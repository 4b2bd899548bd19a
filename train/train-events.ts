import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainerState } from './checkpoint.js';
import type { MemoryPlan } from './memory-plan.js';

/**
 * What a fine-tuning run reports, in one schema: each event is appended to `train-log.jsonl` and
 * handed to `onEvent` (which `fine-tune --json` prints) as the same object, so a log line and a
 * `--json` line can be read by the same code.
 */
export type TrainEventBody =
  /** `memory`: the plan the run's steps use (train/memory-plan.ts), what `auto` chose included. */
  | { type: 'start'; totalSteps: number; warmupSteps: number; accumulation: number; microBatchesPerEpoch: number; step: number; examples: number; parameters: number; memory: MemoryPlan }
  | { type: 'resume'; step: number; from: string }
  | { type: 'warning'; message: string }
  /**
   * An optimizer step. `terms`: the loss's terms where the objective sums several (pre-training's
   * `mlm_loss`, `itm_loss`), averaged over the step's micro-batches as `loss` is; absent otherwise.
   */
  | { type: 'step'; step: number; epoch: number; loss: number; terms?: Record<string, number>; lr: number; gradNorm: number; samplesPerSecond: number; seconds: number }
  | { type: 'eval'; step: number; metrics: Record<string, number>; best: boolean }
  /**
   * A checkpoint was saved: `kept` are the steps whose checkpoints remain (the newest
   * --keep-checkpoints, plus `keptForBest`: the best dev step's, when it is older than those).
   */
  | { type: 'checkpoint'; step: number; dir: string; kept: number[]; keptForBest: number | null }
  | { type: 'diverged'; step: number; what: string }
  /** Stopped by a signal: `checkpoint` is where `--resume` continues from (null: none saved yet). */
  | { type: 'stopped'; step: number; signal: string; checkpoint: { step: number; dir: string } | null }
  | { type: 'done'; step: number; out: string; best: TrainerState['best'] | null };

/** An event as logged and emitted: its body and when it happened (ISO 8601). */
export type TrainEvent = TrainEventBody & { time: string };

export const LOG_FILE = 'train-log.jsonl';

/** Records an event: stamps the time, appends the log line, then tells the listener. */
export interface EventRecorder {
  (body: TrainEventBody): void;
  /**
   * `out` is ready for the log: a fresh run's folder is prepared only after the data, graphs and
   * sessions are loaded (a refusal before then leaves nothing behind), and preparing may clear it,
   * so events before then (warnings of the set-up) reach the listener at once and the log here.
   */
  ready(): void;
}

/** The one writer of events: stamps the time, appends the log line (once `ready`), then tells the listener. */
export function eventRecorder(out: string, onEvent: ((event: TrainEvent) => void) | undefined): EventRecorder {
  let waiting: TrainEvent[] | undefined = [];
  const line = (event: TrainEvent) => `${JSON.stringify(event)}\n`;
  const emit = ((body: TrainEventBody) => {
    const event = { time: new Date().toISOString(), ...body } as TrainEvent;
    if (waiting) waiting.push(event);
    else appendFileSync(join(out, LOG_FILE), line(event));
    onEvent?.(event);
  }) as EventRecorder;
  emit.ready = () => {
    if (!waiting) return;
    const held = waiting;
    waiting = undefined;
    if (held.length) appendFileSync(join(out, LOG_FILE), held.map(line).join(''));
  };
  return emit;
}
