/**
 * Upstream's learning-rate schedule: transformers' `get_linear_schedule_with_warmup`, stepped
 * once per optimizer step (`interval: "step"`). The multiplier of step t (0-based: the number of
 * updates already applied) is t / warmup during warmup, then (total − t) / (total − warmup),
 * never below 0. So the first update uses a learning rate of 0 when there is warmup, exactly as
 * upstream's LambdaLR does.
 *
 * `set_schedule` derives the counts: total = len(train_loader) · max_epoch // accumulate_grad_batches,
 * warmup = int(total · fraction) when `warmup_steps` is a fraction.
 */
export interface LinearSchedule {
  totalSteps: number;
  warmupSteps: number;
}

export function linearSchedule(totalSteps: number, warmup: number): LinearSchedule {
  const warmupSteps = warmup < 1 ? Math.trunc(totalSteps * warmup) : Math.trunc(warmup);
  return { totalSteps, warmupSteps };
}

/** The learning-rate multiplier for the update that follows `step` completed updates. */
export function lrFactor(schedule: LinearSchedule, step: number): number {
  const { totalSteps, warmupSteps } = schedule;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** Upstream's step count: micro-batches per epoch × epochs, integer-divided by the accumulation. */
export function totalOptimizerSteps(microBatchesPerEpoch: number, epochs: number, accumulation: number): number {
  return Math.floor((microBatchesPerEpoch * epochs) / accumulation);
}
