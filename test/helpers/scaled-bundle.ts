import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { demoArchitecture, DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { convertRandomBundle } from './random-bundle.js';

/**
 * The demo architecture scaled up (width, depth, image size) with only the VQA head: a "small"
 * model between the demo bundle and BASE for memory tests and benches, converted through the same
 * path as the demo bundle (convert/demo/demo-bundle.ts). Random weights.
 */
export interface Scale {
  hidden: number;
  layers: number;
  crossLayers: number;
  imageSize: number;
  heads: number;
}

export const SMALL_SCALE: Scale = { hidden: 256, layers: 4, crossLayers: 2, imageSize: 128, heads: 4 };

export function scaledArchitecture(s: Scale): BridgeTowerArchitecture {
  const arch = demoArchitecture();
  const h = s.hidden;
  Object.assign(arch.text, { hidden_size: h, intermediate_size: 4 * h, num_layers: s.layers, num_heads: s.heads });
  Object.assign(arch.vision, { width: h, mlp_size: 4 * h, num_layers: s.layers, num_heads: s.heads, image_size: s.imageSize });
  Object.assign(arch.cross_modal, { hidden_size: h, intermediate_size: 4 * h, num_layers: s.crossLayers, num_heads: s.heads });
  arch.heads = { vqa: { layers: 2, input_size: 2 * h, hidden_size: 4 * h, num_labels: DEMO_VQA_LABELS.length, layer_norm_eps: 1e-5 } };
  return arch;
}

export async function buildScaledBundle(out: string, scale: Scale, seed = 0): Promise<void> {
  const name = `scaled demo (${scale.hidden} wide, ${scale.layers} layers, ${scale.imageSize} px)`;
  await convertRandomBundle(out, scaledArchitecture(scale), seed, { name, force: true });
}
