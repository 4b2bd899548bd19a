import { FlatLayout } from '../../train/flat-parameters.js';
import type { AdamWEngineName } from '../../train/optimizer/adamw-engines.js';
import { AdamWRunner } from '../../train/optimizer/adamw-runner.js';
import type { OptimizerHyperParameters } from '../../train/optimizer/parameter-groups.js';

/**
 * Replays upstream's two stored AdamW steps (README "Training goldens": `initial.<name>`,
 * `adamw_hf.grad_step{1,2}.<name>` in, `adamw_hf.step{1,2}.<name>` out) through AdamWRunner and
 * lists every tensor whose result is not bit for bit upstream's. One loop for the fine-tuning
 * goldens (test/train/adamw.test.ts) and the pre-training one (pretrain-parity.test.ts).
 */
export interface ReplayResult {
  failures: string[];
  exactTensors: number;
  tensors: number;
}

export async function replayStoredAdamWSteps(
  get: (name: string) => Float32Array,
  parameters: readonly { name: string; shape: number[]; size: number }[],
  hp: OptimizerHyperParameters,
  options: { engine?: AdamWEngineName; chunk?: number; threads?: number; nativeKernel?: string } = {},
): Promise<ReplayResult> {
  const layout = new FlatLayout(parameters, hp);
  const params = new Float32Array(layout.total);
  for (const slot of layout.slots) params.set(get(`initial.${slot.name}`), slot.offset);
  const adamw = await AdamWRunner.open(layout, options);
  const failures: string[] = [];
  let exactTensors = 0;
  try {
    for (const step of [1, 2]) {
      const grads = new Float32Array(layout.total);
      for (const slot of layout.slots) grads.set(get(`adamw_hf.grad_step${step}.${slot.name}`), slot.offset);
      await adamw.step(params, grads, 1);
      for (const slot of layout.slots) {
        const ref = get(`adamw_hf.step${step}.${slot.name}`);
        const got = layout.view(params, slot.name);
        let bad = 0;
        let maxAbs = 0;
        for (let j = 0; j < ref.length; j++) {
          if (Object.is(got[j], ref[j])) continue;
          bad++;
          maxAbs = Math.max(maxAbs, Math.abs(got[j]! - ref[j]!));
        }
        if (bad === 0) exactTensors++;
        else failures.push(`step${step}.${slot.name}: ${bad}/${ref.length} elements differ (max abs ${maxAbs})`);
      }
    }
  } finally {
    await adamw.release();
  }
  return { failures, exactTensors, tensors: 2 * layout.slots.length };
}

/**
 * The engines × chunk sizes every replay runs: each default, chunks that split tensors mid-way, and
 * the native engine's best kernel and its portable one on two threads (tests skip those outside CI
 * when the addon is not built: test/helpers/native-adamw.ts).
 */
export const REPLAY_VARIANTS: readonly { engine: AdamWEngineName; chunk?: number; threads?: number; nativeKernel?: string }[] = [
  { engine: 'ort' },
  { engine: 'ort', chunk: 1000 },
  { engine: 'wasm' },
  { engine: 'wasm', chunk: 1002 },
  { engine: 'native' },
  { engine: 'native', nativeKernel: 'portable', threads: 2 },
];

/** A variant's name in a test title. */
export function replayVariantName(variant: (typeof REPLAY_VARIANTS)[number]): string {
  const details = [variant.chunk ? `chunks of ${variant.chunk}` : '', variant.nativeKernel ? `${variant.nativeKernel} kernel` : '', variant.threads ? `${variant.threads} threads` : ''].filter(Boolean);
  return `${variant.engine} engine${details.map((d) => `, ${d}`).join('')}`;
}
