import { BridgeTowerError } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';

/**
 * The transformers classes an exported folder can be loaded with, and the bundle heads each one
 * holds beside the shared `bridgetower.*` encoder. A bundle head outside the chosen class goes to
 * the separate head file (docs/export-hf.md), so `model.safetensors` holds exactly the state dict
 * of the class named in config.json's `architectures`.
 */

/** Bundle heads by the canonical names of their tensors. */
export const HEAD_TENSORS = {
  itm: /^itm_score\./,
  mlm: /^mlm_score\./,
  itc: /^(itc_text_head\.|itc_image_head\.|temperature$)/,
  itc_cross_modal: /^itc_cross_modal_head\./,
  vqa: /^vqa_classifier\./,
  snli: /^snli_classifier\./,
  nlvr2: /^nlvr2_classifier\./,
} as const;
export type HeadName = keyof typeof HEAD_TENSORS;

export function headOfTensor(canonical: string): HeadName | undefined {
  return (Object.keys(HEAD_TENSORS) as HeadName[]).find((head) => HEAD_TENSORS[head].test(canonical));
}

export type HfClassName = 'BridgeTowerForImageAndTextRetrieval' | 'BridgeTowerForContrastiveLearning' | 'BridgeTowerForMaskedLM' | 'BridgeTowerModel';

interface HfClassSpec {
  /** Bundle heads this class's state dict holds (its own modules beside `bridgetower`). */
  readonly heads: readonly HeadName[];
  /** Why this bundle cannot fill the class, or undefined when it can. */
  readonly cannotHold: (arch: BridgeTowerArchitecture) => string | undefined;
  /** Short name for `--class`. */
  readonly alias: string;
  /** Whether its state dict holds the encoder under HF_BASE_MODEL_PREFIX (task classes) or bare (BridgeTowerModel itself). */
  readonly prefixed: boolean;
}

/** In the order a bundle picks its class when `--class` is not given: the first one it can fill. */
export const HF_CLASSES: Readonly<Record<HfClassName, HfClassSpec>> = {
  // itm_score.fc on pooler_output: the same head and input in upstream and HF.
  BridgeTowerForImageAndTextRetrieval: { alias: 'itm', prefixed: true, heads: ['itm'], cannotHold: (a) => (a.heads.itm ? undefined : 'the bundle has no ITM head (itm_score)') },
  // HF's contrastive class needs its third head and its own image-ITC input; upstream ITC has neither.
  BridgeTowerForContrastiveLearning: {
    alias: 'contrastive',
    prefixed: true,
    heads: ['itc', 'itc_cross_modal'],
    cannotHold: (a) =>
      !a.heads.itc
        ? 'the bundle has no ITC heads'
        : !a.heads.itc_cross_modal
          ? "the bundle has no itc_cross_modal_head: upstream ITC checkpoints lack it (and feed itc_image_head raw CLIP features, where HF's class feeds it the cross-modal transform)"
          : a.heads.itc.image_source !== 'cross_modal_transform'
            ? 'its image ITC head was trained on raw CLIP features, not the cross-modal transform HF feeds it'
            : undefined,
  },
  BridgeTowerForMaskedLM: { alias: 'mlm', prefixed: true, heads: ['mlm'], cannotHold: (a) => (a.heads.mlm ? undefined : 'the bundle has no MLM head (mlm_score)') },
  BridgeTowerModel: { alias: 'base', prefixed: false, heads: [], cannotHold: () => undefined },
};

/** `--class` accepts the class name or its alias. */
export function parseHfClass(value: string): HfClassName {
  const found = (Object.keys(HF_CLASSES) as HfClassName[]).find((name) => name === value || HF_CLASSES[name].alias === value);
  if (!found) {
    const choices = (Object.keys(HF_CLASSES) as HfClassName[]).map((n) => `${HF_CLASSES[n].alias} (${n})`).join(', ');
    throw new BridgeTowerError('E_USAGE', `--class ${JSON.stringify(value)} is not a BridgeTower class transformers has: choose one of ${choices}`, { value });
  }
  return found;
}

/** The class asked for (refused if the bundle cannot fill it), else the first one the bundle can fill. */
export function chooseHfClass(arch: BridgeTowerArchitecture, requested?: HfClassName): HfClassName {
  if (requested) {
    const why = HF_CLASSES[requested].cannotHold(arch);
    if (why) throw new BridgeTowerError('E_USAGE', `--class ${requested} cannot be exported: ${why}; leave --class out to pick the class the bundle fits`, { class: requested });
    return requested;
  }
  return (Object.keys(HF_CLASSES) as HfClassName[]).find((name) => HF_CLASSES[name].cannotHold(arch) === undefined)!;
}
