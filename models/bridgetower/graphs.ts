import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import type { GraphBuilder, Scope } from '../ir/builder.js';
import type { ElemType, Value } from '../ir/graph.js';
import { extendedAttentionMask } from '../layers/attention.js';
import { castTo } from '../layers/basic.js';
import { classifier, inferFusion, inferImage, inferText } from './bt-module.js';
import { itcPooled, itmHead, mlmHead } from './heads.js';

/**
 * Every graph a bundle ships, as one table: file name, when the checkpoint supports it, what it
 * computes, and how to build it. Graph inputs and outputs are float32/int64 whatever the weight
 * dtype, so callers never depend on it. docs/onnx.md documents each.
 */
export interface GraphContext {
  arch: BridgeTowerArchitecture;
  /** Compute dtype: the bundle's float weight dtype. */
  dtype: ElemType;
}

export interface GraphSpec {
  file: string;
  description: string;
  available(arch: BridgeTowerArchitecture): boolean;
  build(b: GraphBuilder, ctx: GraphContext): void;
}

const BATCH = 'batch';
const SEQ = 'seq';

function textInputs(b: GraphBuilder) {
  return { inputIds: b.input('input_ids', 'int64', [BATCH, SEQ]), attentionMask: b.input('attention_mask', 'int64', [BATCH, SEQ]) };
}

function pixelInput(b: GraphBuilder, arch: BridgeTowerArchitecture, name = 'pixel_values') {
  const size = arch.vision.image_size;
  return b.input(name, 'float32', [BATCH, 3, size, size]);
}

function imageTokens(arch: BridgeTowerArchitecture): number {
  return (arch.vision.image_size / arch.vision.patch_size) ** 2 + 1;
}

/** Graph outputs are float32: cast fp16 results back. */
function out(b: GraphBuilder, root: Scope, value: Value, name: string, shape: ReadonlyArray<number | string>): void {
  b.output(castTo(root, value, 'float32'), name, shape);
}

/** [L] × [batch, tokens, hidden] → [L, batch, tokens, hidden] (upstream's `torch.stack(…, dim=0)`). */
function stackLayers(root: Scope, layers: Value[]): Value {
  const b = root.builder;
  return b.op('Concat', layers.map((l) => b.op('Unsqueeze', [l, b.ints([0])])), { axis: 0 });
}

/** The inverse of `stackLayers`. */
function unstackLayers(root: Scope, stacked: Value, count: number): Value[] {
  const b = root.builder;
  return Array.from({ length: count }, (_, i) => b.op('Gather', [stacked, b.constant([i], 'int64', [], 'layer')], { axis: 0 }));
}

/** text + image + fusion in one graph (the end-to-end graphs). */
function fuseFromInputs(b: GraphBuilder, ctx: GraphContext, pixelName: string, imageTokenType: number) {
  const root = b.scope('');
  const { inputIds, attentionMask } = textInputs(b);
  const t = inferText(root, ctx.arch, inputIds, attentionMask, ctx.dtype, { itc: false });
  const image = inferImage(root, ctx.arch, pixelInput(b, ctx.arch, pixelName), ctx.dtype, { itc: false });
  return inferFusion(root, t.layers, image.layers, t.mask, b.constant([imageTokenType], 'int64', [], 'image_token_type'), ctx.arch.cross_modal);
}

const has = (head: keyof BridgeTowerArchitecture['heads']) => (arch: BridgeTowerArchitecture) => arch.heads[head] !== undefined;

export const GRAPHS: readonly GraphSpec[] = [
  {
    file: 'text_encoder.onnx',
    description: 'upstream infer_text: last num_layers RoBERTa outputs after cross_modal_text_transform (+ ITC text feature)',
    available: () => true,
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const { inputIds, attentionMask } = textInputs(b);
      const text = inferText(root, arch, inputIds, attentionMask, dtype);
      out(b, root, stackLayers(root, text.layers), 'text_embeds', [arch.cross_modal.num_layers, BATCH, SEQ, arch.cross_modal.hidden_size]);
      if (text.itc) out(b, root, text.itc, 'text_itc', [BATCH, arch.heads.itc!.dim]);
    },
  },
  {
    file: 'image_encoder.onnx',
    description: 'upstream infer_image: last num_layers CLIP block outputs after ln_post and cross_modal_image_transform (+ ITC image feature)',
    available: () => true,
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const image = inferImage(root, arch, pixelInput(b, arch), dtype);
      out(b, root, stackLayers(root, image.layers), 'image_embeds', [arch.cross_modal.num_layers, BATCH, imageTokens(arch), arch.cross_modal.hidden_size]);
      if (image.itc) out(b, root, image.itc, 'image_itc', [BATCH, arch.heads.itc!.dim]);
    },
  },
  {
    file: 'fusion.onnx',
    description: 'upstream infer_fusion: the cross-modal encoder from cached encoder outputs → cls_feats, text_feats, image_feats',
    available: () => true,
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const layers = arch.cross_modal.num_layers;
      const hidden = arch.cross_modal.hidden_size;
      const textEmbeds = b.input('text_embeds', 'float32', [layers, BATCH, SEQ, hidden]);
      const attentionMask = b.input('attention_mask', 'int64', [BATCH, SEQ]);
      const imageEmbeds = b.input('image_embeds', 'float32', [layers, BATCH, imageTokens(arch), hidden]);
      const imageTokenType = b.input('image_token_type', 'int64', [BATCH]);
      const fused = inferFusion(
        root,
        unstackLayers(root, castTo(root, textEmbeds, dtype), layers),
        unstackLayers(root, castTo(root, imageEmbeds, dtype), layers),
        extendedAttentionMask(root, attentionMask),
        imageTokenType,
        arch.cross_modal,
      );
      out(b, root, fused.clsFeats, 'cls_feats', [BATCH, 2 * hidden]);
      out(b, root, fused.textFeats, 'text_feats', [BATCH, SEQ, hidden]);
      out(b, root, fused.imageFeats, 'image_feats', [BATCH, imageTokens(arch), hidden]);
    },
  },
  ...(['vqa', 'snli'] as const).map(
    (task): GraphSpec => ({
      file: `head_${task}.onnx`,
      description: `${task}_classifier(cls_feats) → logits`,
      available: has(task),
      build(b, { arch, dtype }) {
        const root = b.scope('');
        const cls = b.input('cls_feats', 'float32', [BATCH, 2 * arch.cross_modal.hidden_size]);
        out(b, root, classifier(root.scope(`${task}_classifier`), castTo(root, cls, dtype), arch.heads[task]!), 'logits', [BATCH, arch.heads[task]!.num_labels]);
      },
    }),
  ),
  {
    file: 'head_itm.onnx',
    description: 'itm_score(cls_feats) → logits [no match, match]',
    available: has('itm'),
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const cls = b.input('cls_feats', 'float32', [BATCH, 2 * arch.cross_modal.hidden_size]);
      out(b, root, itmHead(root.scope('itm_score'), castTo(root, cls, dtype)), 'logits', [BATCH, 2]);
    },
  },
  {
    file: 'head_itc_cross.onnx',
    description: "Hugging Face's itc_cross_modal_head(cls_feats), L2-normalised → cross_embeds (the pair embedding; the server fuses then runs this)",
    available: has('itc_cross_modal'),
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const cls = b.input('cls_feats', 'float32', [BATCH, 2 * arch.cross_modal.hidden_size]);
      out(b, root, itcPooled(root.scope('itc_cross_modal_head'), castTo(root, cls, dtype)), 'cross_embeds', [BATCH, arch.heads.itc_cross_modal!.dim]);
    },
  },
  {
    file: 'head_nlvr2.onnx',
    description: 'nlvr2_classifier(concat(cls_feats_left, cls_feats_right)) → logits [False, True]',
    available: has('nlvr2'),
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const left = b.input('cls_feats_left', 'float32', [BATCH, 2 * arch.cross_modal.hidden_size]);
      const right = b.input('cls_feats_right', 'float32', [BATCH, 2 * arch.cross_modal.hidden_size]);
      const pair = b.op('Concat', [castTo(root, left, dtype), castTo(root, right, dtype)], { axis: -1 });
      out(b, root, classifier(root.scope('nlvr2_classifier'), pair, arch.heads.nlvr2!), 'logits', [BATCH, 2]);
    },
  },
  {
    file: 'head_mlm.onnx',
    description: 'mlm_score(text_feats) → logits over the vocabulary',
    available: has('mlm'),
    build(b, { arch, dtype }) {
      const root = b.scope('');
      const feats = b.input('text_feats', 'float32', [BATCH, SEQ, arch.cross_modal.hidden_size]);
      out(b, root, mlmHead(root.scope('mlm_score'), castTo(root, feats, dtype), arch.heads.mlm!.layer_norm_eps), 'logits', [BATCH, SEQ, arch.heads.mlm!.vocab_size]);
    },
  },
  {
    file: 'embeddings.onnx',
    description:
      "retrieval embeddings, L2-normalised: text_embeds (ITC text head), image_embeds (ITC image head) and, with Hugging Face's itc_cross_modal_head, cross_embeds of the pair (BridgeTowerForContrastiveLearning)",
    available: has('itc'),
    build(b, ctx) {
      const root = b.scope('');
      const { arch, dtype } = ctx;
      const { inputIds, attentionMask } = textInputs(b);
      const text = inferText(root, arch, inputIds, attentionMask, dtype);
      const image = inferImage(root, arch, pixelInput(b, arch), dtype);
      const dim = arch.heads.itc!.dim;
      out(b, root, text.itc!, 'text_embeds', [BATCH, dim]);
      out(b, root, image.itc!, 'image_embeds', [BATCH, dim]);
      if (arch.heads.itc_cross_modal) {
        // HF `BridgeTowerForContrastiveLearning`: normalize(itc_cross_modal_head(pooler_output)), the
        // pooler output being cls_feats of the pair with image token type 1.
        const fused = inferFusion(root, text.layers, image.layers, text.mask, b.constant([1], 'int64', [], 'image_token_type'), arch.cross_modal);
        out(b, root, itcPooled(root.scope('itc_cross_modal_head'), fused.clsFeats), 'cross_embeds', [BATCH, arch.heads.itc_cross_modal.dim]);
      }
    },
  },
  ...(['vqa', 'snli'] as const).map(
    (task): GraphSpec => ({
      file: `${task}.onnx`,
      description: `end to end: input_ids, attention_mask, pixel_values → ${task} logits`,
      available: has(task),
      build(b, ctx) {
        const fused = fuseFromInputs(b, ctx, 'pixel_values', 1);
        const root = b.scope('');
        out(b, root, classifier(root.scope(`${task}_classifier`), fused.clsFeats, ctx.arch.heads[task]!), 'logits', [BATCH, ctx.arch.heads[task]!.num_labels]);
      },
    }),
  ),
  {
    file: 'itm.onnx',
    description: 'end to end: input_ids, attention_mask, pixel_values → ITM logits [no match, match]',
    available: has('itm'),
    build(b, ctx) {
      const fused = fuseFromInputs(b, ctx, 'pixel_values', 1);
      const root = b.scope('');
      out(b, root, itmHead(root.scope('itm_score'), fused.clsFeats), 'logits', [BATCH, 2]);
    },
  },
  {
    file: 'mlm.onnx',
    description: 'end to end: input_ids, attention_mask, pixel_values, mask_positions (flat b·seq + t) → MLM logits [masks, vocab] at those positions',
    available: has('mlm'),
    build(b, ctx) {
      // upstream compute_mlm: mlm_score(infer(batch, mask_text=True)['text_feats']). Only the asked
      // rows reach the vocabulary projection: [masks, vocab] instead of [batch, seq, vocab].
      const fused = fuseFromInputs(b, ctx, 'pixel_values', 1);
      const root = b.scope('');
      const positions = b.input('mask_positions', 'int64', ['masks']);
      const rows = b.op('Gather', [b.op('Reshape', [fused.textFeats, b.ints([-1, ctx.arch.cross_modal.hidden_size])]), positions], { axis: 0 });
      const mlm = ctx.arch.heads.mlm!;
      out(b, root, mlmHead(root.scope('mlm_score'), rows, mlm.layer_norm_eps), 'logits', ['masks', mlm.vocab_size]);
    },
  },
  {
    file: 'nlvr2.onnx',
    description: 'end to end: input_ids, attention_mask, pixel_values_left, pixel_values_right → NLVR2 logits [False, True]',
    available: has('nlvr2'),
    build(b, ctx) {
      const root = b.scope('');
      const { inputIds, attentionMask } = textInputs(b);
      const text = inferText(root, ctx.arch, inputIds, attentionMask, ctx.dtype, { itc: false });
      const side = (name: string, tokenType: number) => {
        const image = inferImage(root, ctx.arch, pixelInput(b, ctx.arch, name), ctx.dtype, { itc: false });
        return inferFusion(root, text.layers, image.layers, text.mask, b.constant([tokenType], 'int64', [], 'image_token_type'), ctx.arch.cross_modal).clsFeats;
      };
      const pair = b.op('Concat', [side('pixel_values_left', 1), side('pixel_values_right', 2)], { axis: -1 });
      out(b, root, classifier(root.scope('nlvr2_classifier'), pair, ctx.arch.heads.nlvr2!), 'logits', [BATCH, 2]);
    },
  },
];
