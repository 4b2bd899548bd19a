import type { MemoryEstimate, StepShape } from './memory-model.js';
import { RECOMPUTE_MODES, type RecomputeMode } from './training-graph.js';

/**
 * How a fine-tuning run keeps its step inside the memory it has: ONNX Runtime's CPU memory arena
 * (`--cpu-arena`, off by default for training) and activation recomputation (`--recompute`,
 * chosen automatically unless fixed) (docs/fine-tune.md, "Memory").
 */
export const RECOMPUTE_CHOICES = ['auto', ...RECOMPUTE_MODES] as const;
export type RecomputeChoice = (typeof RECOMPUTE_CHOICES)[number];
export const CPU_ARENA_CHOICES = ['off', 'on'] as const;
export type CpuArenaChoice = (typeof CPU_ARENA_CHOICES)[number];

export interface MemoryPlan {
  recompute: RecomputeMode;
  cpuArena: boolean;
}

/**
 * The whole process's step peak over the modelled one (`estimateTrainingMemory`, which counts the
 * step's own tensors; the process adds Node, the session and the allocator's rounding). Measured on
 * full-size BASE `--trainable all` (docs/PERFORMANCE.md, "The CPU arena at micro-batch 2 and 8"):
 * arena on 1.30× at micro-batch 2 and 1.24× at 8; off 1.10× and 1.08×.
 */
const PROCESS_OVER_MODEL: Readonly<Record<CpuArenaChoice, number>> = { on: 1.3, off: 1.1 };

export interface MemoryPlanChoice {
  plan: MemoryPlan;
  /** Set when `--recompute auto` turned recomputation on: the warning to log. */
  warning?: string;
}

/**
 * `--recompute auto` recomputes the layers' activations when the plain step's expected process
 * peak (modelled × the arena's measured overhead) exceeds `available` bytes; a fixed choice is kept.
 */
export function chooseMemoryPlan(asked: { recompute: RecomputeChoice; cpuArena: CpuArenaChoice }, estimate: MemoryEstimate, available: number, shape: StepShape): MemoryPlanChoice {
  const cpuArena = asked.cpuArena === 'on';
  if (asked.recompute !== 'auto') return { plan: { recompute: asked.recompute, cpuArena } };
  const expected = estimate.total * PROCESS_OVER_MODEL[asked.cpuArena];
  if (expected <= available) return { plan: { recompute: 'none', cpuArena } };
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
  const lessMemory = cpuArena ? '--cpu-arena off for about 15 % less, ' : '';
  return {
    plan: { recompute: 'layers', cpuArena },
    warning:
      `a training step needs about ${gb(estimate.total)} (parameters, moments and gradients ${gb(estimate.parameters + estimate.moments + estimate.gradients)}, activations ${gb(estimate.activations)} at micro-batch ${shape.batch}; ` +
      `about ${gb(expected)} for the process with the CPU arena ${asked.cpuArena}) and ${gb(available)} is available: recomputing each layer's activations in the backward pass ` +
      `(--recompute layers; --recompute none to turn it off, ${lessMemory}or lower --micro-batch-size)`,
  };
}
