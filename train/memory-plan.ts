import type { MemoryEstimate, StepShape } from './memory-model.js';
import { RECOMPUTE_MODES, type RecomputeMode } from './training-graph.js';

/**
 * How a fine-tuning run keeps its step inside the memory it has: activation recomputation
 * (`--recompute`) and ONNX Runtime's CPU memory arena (`--cpu-arena`), each chosen automatically
 * unless the user fixes it. The plans below are tried in order, fastest first; `auto` takes the
 * first whose measured process peak fits the memory available (docs/fine-tune.md, "Memory").
 */
export const RECOMPUTE_CHOICES = ['auto', ...RECOMPUTE_MODES] as const;
export type RecomputeChoice = (typeof RECOMPUTE_CHOICES)[number];
export const CPU_ARENA_CHOICES = ['auto', 'on', 'off'] as const;
export type CpuArenaChoice = (typeof CPU_ARENA_CHOICES)[number];

export interface MemoryPlan {
  recompute: RecomputeMode;
  cpuArena: boolean;
}

interface PlanRow extends MemoryPlan {
  /**
   * The whole process's step peak over the modelled one (`estimateTrainingMemory`), measured on
   * full-size BASE `--trainable all` (docs/PERFORMANCE.md, "The CPU arena at micro-batch 2 and 8"):
   * arena on 1.30× at micro-batch 2 and 1.24× at 8, off 1.10× and 1.08×. Undefined for the
   * recomputing plans, which are the last resort (the liveness walk does not yet model them).
   */
  processOverModel?: number;
  /** What the warning says was done when `auto` had to pick this plan. */
  remedy: string;
}

const PLANS: readonly PlanRow[] = [
  { recompute: 'none', cpuArena: true, processOverModel: 1.3, remedy: '' },
  {
    recompute: 'none',
    cpuArena: false,
    processOverModel: 1.1,
    remedy: "turning ONNX Runtime's CPU memory arena off (--cpu-arena off: about 15 % less memory; at micro-batch 8 the step was 1.5× slower, at 2 no slower)",
  },
  { recompute: 'layers', cpuArena: true, remedy: "recomputing each layer's activations in the backward pass (--recompute layers)" },
  { recompute: 'layers', cpuArena: false, remedy: "recomputing each layer's activations in the backward pass with ONNX Runtime's CPU memory arena off (--recompute layers --cpu-arena off)" },
];

/** On a GPU the CPU arena holds none of the activations: `auto` leaves it on there. */
const ARENA_MATTERS: Readonly<Record<'cpu' | 'cuda', boolean>> = { cpu: true, cuda: false };

export interface MemoryPlanChoice {
  plan: MemoryPlan;
  /** Set when `auto` gave up speed for memory: the warning to log. */
  warning?: string;
}

/**
 * The first plan the user's fixed choices allow whose expected peak (modelled × measured process
 * overhead) fits `available` bytes; the last allowed one when none does.
 */
export function chooseMemoryPlan(
  asked: { recompute: RecomputeChoice; cpuArena: CpuArenaChoice; device?: 'cpu' | 'cuda' },
  estimate: MemoryEstimate,
  available: number,
  shape: StepShape,
): MemoryPlanChoice {
  const arena = asked.cpuArena === 'auto' && !ARENA_MATTERS[asked.device ?? 'cpu'] ? 'on' : asked.cpuArena;
  const allowed = PLANS.filter((p) => (asked.recompute === 'auto' || p.recompute === asked.recompute) && (arena === 'auto' || p.cpuArena === (arena === 'on')));
  const fits = (p: PlanRow) => p.processOverModel === undefined || estimate.total * p.processOverModel <= available;
  const chosen = allowed.find(fits) ?? allowed.at(-1)!;
  const plan = { recompute: chosen.recompute, cpuArena: chosen.cpuArena };
  if (chosen === allowed[0]) return { plan };
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
  const need = `a training step needs about ${gb(estimate.total)} (parameters, moments and gradients ${gb(estimate.parameters + estimate.moments + estimate.gradients)}, activations ${gb(estimate.activations)} at micro-batch ${shape.batch}) and ${gb(available)} is available`;
  const alternatives = [asked.recompute === 'auto' ? '--recompute none' : '', arena === 'auto' ? '--cpu-arena on' : ''].filter(Boolean).join(' / ');
  return { plan, warning: `${need}: ${chosen.remedy}; ${alternatives ? `${alternatives} to keep the faster plan, or ` : ''}lower --micro-batch-size` };
}
