import type { BridgeTowerArchitecture, ClassifierHeadConfig } from '../../bundle/architecture.js';
import type { HeadName } from './hf-classes.js';

/**
 * The head file (`bridgetower_heads.safetensors`) beside an exported folder's model.safetensors:
 * the bundle heads the chosen transformers class has no module for. Its `__metadata__` describes
 * each head's layout as JSON (`bridgetower_heads`), so the file explains itself without this
 * project; docs/export-hf.md shows how to run each one on `BridgeTowerModel`'s outputs.
 */

export const HEAD_FILE = 'bridgetower_heads.safetensors';

/** A classifier as upstream's `bt_module.py` builds it (`nn.Sequential` indices 0, 1, 3). */
function classifier(prefix: string, head: ClassifierHeadConfig, input: string) {
  return {
    input,
    tensors: `${prefix}.*`,
    layout:
      head.layers === 2
        ? `${prefix}.0 Linear(${head.input_size}→${head.hidden_size}) → ${prefix}.1 LayerNorm(eps ${head.layer_norm_eps}) → GELU (exact) → ${prefix}.3 Linear(${head.hidden_size}→${head.num_labels})`
        : `${prefix}.0 Linear(${head.input_size}→${head.num_labels})`,
    num_labels: head.num_labels,
  };
}

type Layout = (arch: BridgeTowerArchitecture) => Record<string, unknown>;

export const HEAD_LAYOUTS: Readonly<Record<HeadName, Layout>> = {
  vqa: (a) => classifier('vqa_classifier', a.heads.vqa!, 'pooler_output (BridgeTowerModel, [B, 2H]); answers: sigmoid of the logits, argmax picks one'),
  snli: (a) => ({ ...classifier('snli_classifier', a.heads.snli!, 'pooler_output ([B, 2H]) of the premise image with the hypothesis text'), labels: ['contradiction', 'neutral', 'entailment'] }),
  nlvr2: (a) => ({
    ...classifier(
      'nlvr2_classifier',
      a.heads.nlvr2!,
      'concat(pooler_output(left image, image_token_type_idx=1), pooler_output(right image, image token type 2)) [B, 4H]: token type 2 is row 2 of ' +
        "token_type_embeddings.weight in this file, which HF's 2-row table cannot hold",
    ),
    labels: ['False', 'True'],
  }),
  itm: () => ({ input: 'pooler_output ([B, 2H])', tensors: 'itm_score.fc.*', layout: 'itm_score.fc Linear(2H→2); index 1 = match (BridgeTowerForImageAndTextRetrieval)' }),
  mlm: (a) => ({
    input: 'text_features ([B, T, H])',
    tensors: 'mlm_score.*',
    layout: `mlm_score.transform.dense Linear(H→H) → GELU → mlm_score.transform.LayerNorm(eps ${a.heads.mlm!.layer_norm_eps}) → mlm_score.decoder (no bias) + mlm_score.bias (BridgeTowerForMaskedLM)`,
  }),
  itc: (a) => ({
    input:
      a.heads.itc!.image_source === 'vision_ln_post'
        ? "upstream ITC: text = last text-encoder layer [:, 0]; image = ln_post(last vision layer)[:, 0] (raw CLIP features, not HF's cross-modal transform)"
        : 'text = last text-encoder layer [:, 0]; image = (cross_modal_image_transform(ln_post(last vision layer)) + token_type_embeddings[1])[:, 0]',
    tensors: 'itc_text_head.fc.*, itc_image_head.fc.*, logit_scale',
    layout: `Linear(→${a.heads.itc!.dim}) then L2 normalisation per side; similarities × exp(logit_scale), logit_scale = log(1/temperature)`,
  }),
  itc_cross_modal: (a) => ({ input: 'pooler_output ([B, 2H])', tensors: 'itc_cross_modal_head.fc.*', layout: `Linear(2H→${a.heads.itc_cross_modal!.dim}) then L2 normalisation` }),
};

/** The head file's `__metadata__` (safetensors metadata values are strings). */
export function headFileMetadata(
  arch: BridgeTowerArchitecture,
  heads: readonly HeadName[],
  labels: Partial<Record<string, readonly string[]>>,
): Record<string, string> {
  const layouts = Object.fromEntries(heads.map((head) => [head, { ...HEAD_LAYOUTS[head](arch), ...(labels[head] ? { labels: labels[head] } : {}) }]));
  return { format: 'pt', bridgetower_heads: JSON.stringify(layouts) };
}
