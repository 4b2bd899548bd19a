import type { BridgeTowerArchitecture } from '../bundle/architecture.js';

/**
 * Analytic FLOPs of one BridgeTower VQA forward pass for ONE sample (a batch costs batch × this:
 * nothing is shared between samples). Counted: 2·m·n·k for every matrix product (Linear, the
 * patchify Conv, and the two attention products q·kᵀ and p·v). Not counted: LayerNorm, softmax,
 * GELU, adds, embedding gathers (all O(tokens · hidden), under 1 % here).
 *
 * With T text tokens, N = (S/p)² + 1 image tokens, P = (S/p)² patches, h hidden, f FFN size,
 * Lt / Lv text / vision layers, Lx cross-modal layers, c labels:
 *
 *   linear(m, in, out)  = 2·m·in·out
 *   attention(Tq, Tk)   = 2·Tq·Tk·h (q·kᵀ, all heads) + 2·Tq·Tk·h (p·v)          = 4·Tq·Tk·h
 *   encoderLayer(m)     = 4·linear(m, h, h) (q, k, v, out) + attention(m, m)
 *                         + linear(m, h, f) + linear(m, f, h)                       = 24·m·h² + 4·m²·h  (f = 4h)
 *
 *   text_encoder   = Lt·encoderLayer(T) + Lx·linear(T, h, h)                 (cross_modal_text_transform)
 *   image_encoder  = 2·P·(3·p²)·h (conv1) + Lv·encoderLayer(N) + Lx·linear(N, h, h)
 *   fusion         = Lx·[ textSide + imageSide ] + 2·linear(1, h, h)          (the two poolers)
 *     textSide     = encoderLayer(T)                                         (self-attention + FFN)
 *                    + 2·linear(T, h, h) + 2·linear(N, h, h) + attention(T, N)  (cross-attention: q, out on
 *                                                                                text; k, v on image tokens)
 *     imageSide    = encoderLayer(N) + 2·linear(N, h, h) + 2·linear(T, h, h) + attention(N, T)
 *   head_vqa       = linear(1, 2h, 2·2h) + linear(1, 2·2h, c)                (vqa_classifier 0 and 3)
 */
export interface ModelFlops {
  text: number;
  image: number;
  fusion: number;
  head: number;
  total: number;
  textTokens: number;
  imageTokens: number;
}

export function vqaFlopsPerSample(arch: BridgeTowerArchitecture, textTokens: number): ModelFlops {
  const T = textTokens;
  const h = arch.cross_modal.hidden_size;
  const p = arch.vision.patch_size;
  const P = (arch.vision.image_size / p) ** 2;
  const N = P + 1;
  const linear = (m: number, inSize: number, outSize: number) => 2 * m * inSize * outSize;
  const attention = (tq: number, tk: number, width: number) => 4 * tq * tk * width;
  const encoderLayer = (m: number, width: number, ffn: number) => 4 * linear(m, width, width) + attention(m, m, width) + linear(m, width, ffn) + linear(m, ffn, width);
  const cross = arch.cross_modal;
  const crossFfn = cross.intermediate_size;

  const text = arch.text.num_layers * encoderLayer(T, arch.text.hidden_size, arch.text.intermediate_size) + cross.num_layers * linear(T, arch.text.hidden_size, h);
  const vision = arch.vision;
  const image = 2 * P * (3 * p * p) * vision.width + vision.num_layers * encoderLayer(N, vision.width, vision.mlp_size) + cross.num_layers * linear(N, vision.width, h);
  const textSide = encoderLayer(T, h, crossFfn) + 2 * linear(T, h, h) + 2 * linear(N, h, h) + attention(T, N, h);
  const imageSide = encoderLayer(N, h, crossFfn) + 2 * linear(N, h, h) + 2 * linear(T, h, h) + attention(N, T, h);
  const fusion = cross.num_layers * (textSide + imageSide) + 2 * linear(1, h, h);
  const vqa = arch.heads.vqa;
  const head = vqa ? (vqa.layers === 1 ? linear(1, 2 * h, vqa.num_labels) : linear(1, 2 * h, vqa.hidden_size) + linear(1, vqa.hidden_size, vqa.num_labels)) : 0;
  return { text, image, fusion, head, total: text + image + fusion + head, textTokens: T, imageTokens: N };
}
