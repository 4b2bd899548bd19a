import { BridgeTowerError, listSome } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { lookupCanonicalName } from '../../bundle/canonical-names.js';
import { DTYPES, numel, type DType } from '../../bundle/tensors/dtype.js';
import { encodeFloat16, encodeFloat32 } from '../../bundle/tensors/dtype-convert.js';
import type { TensorView } from '../../bundle/tensors/tensor-view.js';
import { clipVariantOf } from './upstream-config.js';

/**
 * Which entries the exported state dict holds, so that upstream's `load_state_dict` sees the keys
 * its own `state_dict()` has (the fixtures' keys_*.txt). Canonical bundle names *are* upstream's
 * names (bundle/canonical-names.ts; Hugging Face names were mapped on the way in),
 * so bundle tensors keep their names. Three things differ from "copy every tensor":
 *  - Hugging Face-only tensors have no upstream module: left out, and reported.
 *  - Entries upstream's modules register but no forward pass reads may be absent from a bundle
 *    (a Hugging Face or demo source never had them): filled from the table below, and reported.
 *  - What cannot be filled faithfully is reported as missing; upstream's `load_state_dict(strict=False)`
 *    then keeps the value its own constructor gave it.
 */

export type StateDictEntry =
  | { readonly kind: 'bundle'; readonly name: string; readonly view: TensorView }
  | { readonly kind: 'filled'; readonly name: string; readonly dtype: DType; readonly shape: readonly number[]; readonly bytes: Buffer };

export interface Reported {
  readonly name: string;
  readonly reason: string;
}

export interface StateDictPlan {
  readonly entries: StateDictEntry[];
  readonly filled: Reported[];
  readonly leftOut: Reported[];
  readonly missing: Reported[];
}

interface FillContext {
  readonly arch: BridgeTowerArchitecture;
  readonly config: Record<string, unknown>;
  /** The dtype of the bundle's floating weights (fp32 or fp16). */
  readonly floatDtype: DType;
}

type Fill = { dtype: DType; shape: number[]; values: ArrayLike<number> | BigInt64Array };

interface ExtraEntry {
  /** The upstream module that registers it, and what the filled value is. */
  readonly reason: string;
  /** Shape and value for this model; undefined when they cannot be known from the bundle. */
  readonly make: (ctx: FillContext) => Fill | undefined;
  /** Why `make` can fail, for the report. */
  readonly unknownBecause?: (ctx: FillContext) => string;
}

const floats = (ctx: FillContext, shape: number[], value: number): Fill => ({ dtype: ctx.floatDtype, shape, values: new Float32Array(numel(shape)).fill(value) });
const clipLeftover = (shapeOf: (v: { contextLength: number; textWidth: number }) => number[], value: number) => (ctx: FillContext) => {
  const clip = clipVariantOf(ctx.config, ctx.arch);
  return clip ? floats(ctx, shapeOf(clip), value) : undefined;
};
const clipUnknown = (ctx: FillContext) =>
  `its size comes from the CLIP checkpoint config['vit'] names (${JSON.stringify(ctx.config.vit)}), which is not a known OpenAI CLIP: ` +
  "upstream's load_state_dict(strict=False) keeps the value its CLIP loader gave it (it is never used)";

/** State-dict entries of upstream's modules that the forward pass never reads (so bundles may lack them). */
export const UPSTREAM_EXTRAS: Readonly<Record<string, ExtraEntry>> = {
  'text_transformer.embeddings.position_ids': {
    reason: 'persistent buffer of transformers 4.17 RobertaEmbeddings: arange(max_position_embeddings), the value it always has',
    make: ({ arch }) => {
      const n = arch.text.max_position_embeddings;
      return { dtype: 'int64', shape: [1, n], values: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) };
    },
  },
  temperature: {
    reason: "BTTransformer.__init__ creates it for every task; filled with its initial value config['temperature']",
    make: (ctx) => floats(ctx, [], typeof ctx.config.temperature === 'number' ? ctx.config.temperature : 0.07),
  },
  'text_transformer.pooler.dense.weight': {
    reason: "RobertaModel's pooler, which BridgeTower never runs; filled with zeros",
    make: (ctx) => floats(ctx, [ctx.arch.text.hidden_size, ctx.arch.text.hidden_size], 0),
  },
  'text_transformer.pooler.dense.bias': {
    reason: "RobertaModel's pooler, which BridgeTower never runs; filled with zeros",
    make: (ctx) => floats(ctx, [ctx.arch.text.hidden_size], 0),
  },
  'vit_model.positional_embedding': {
    reason: 'CLIP text-tower leftover created by clip_model.CLIP.__init__, never used; filled with zeros',
    make: clipLeftover((c) => [c.contextLength, c.textWidth], 0),
    unknownBecause: clipUnknown,
  },
  'vit_model.ln_final.weight': {
    reason: 'CLIP text-tower leftover created by clip_model.CLIP.__init__, never used; filled with ones (LayerNorm init)',
    make: clipLeftover((c) => [c.textWidth], 1),
    unknownBecause: clipUnknown,
  },
  'vit_model.ln_final.bias': {
    reason: 'CLIP text-tower leftover created by clip_model.CLIP.__init__, never used; filled with zeros (LayerNorm init)',
    make: clipLeftover((c) => [c.textWidth], 0),
    unknownBecause: clipUnknown,
  },
};

const FLOAT_ENCODERS: Partial<Record<DType, (values: ArrayLike<number>) => Buffer>> = { float32: encodeFloat32, float16: encodeFloat16 };

/** Bundle tensors in bundle order, then the filled extras in table order. */
export function planUpstreamStateDict(
  tensors: ReadonlyMap<string, TensorView>,
  arch: BridgeTowerArchitecture,
  config: Record<string, unknown>,
): StateDictPlan {
  const entries: StateDictEntry[] = [];
  const leftOut: Reported[] = [];
  const unknown: string[] = [];
  for (const [name, view] of tensors) {
    const row = lookupCanonicalName(name);
    if (!row) unknown.push(name);
    else if (row.hfOnly) leftOut.push({ name, reason: `${row.module} exists only in Hugging Face's BridgeTower: upstream has no module to load it into` });
    else entries.push({ kind: 'bundle', name, view });
  }
  if (unknown.length > 0) {
    throw new BridgeTowerError(
      'E_UNKNOWN_TENSOR',
      `the bundle holds ${unknown.length} tensor(s) that are not BridgeTower parameters: ${listSome(unknown)}; nothing is exported under a guessed name`,
      { unknown },
    );
  }

  const ctx: FillContext = { arch, config, floatDtype: floatDtypeOf(tensors) };
  const filled: Reported[] = [];
  const missing: Reported[] = [];
  for (const [name, extra] of Object.entries(UPSTREAM_EXTRAS)) {
    if (tensors.has(name)) continue;
    const fill = extra.make(ctx);
    if (!fill) {
      missing.push({ name, reason: extra.unknownBecause?.(ctx) ?? 'cannot be derived from the bundle' });
      continue;
    }
    entries.push({ kind: 'filled', name, dtype: fill.dtype, shape: fill.shape, bytes: encode(fill) });
    filled.push({ name, reason: extra.reason });
  }
  return { entries, filled, leftOut, missing };
}

/** Fills take the dtype of the bundle's weights, so an fp16 bundle exports an all-fp16 checkpoint like vqa_fp16.ckpt. */
export function floatDtypeOf(tensors: ReadonlyMap<string, TensorView>): DType {
  const reference = tensors.get('text_transformer.embeddings.word_embeddings.weight');
  const dtype = reference?.dtype ?? 'float32';
  if (!FLOAT_ENCODERS[dtype]) {
    throw new BridgeTowerError('E_BUNDLE', `the bundle's weights are ${dtype}; export supports float32 and float16 bundles`, { dtype });
  }
  return dtype;
}

function encode(fill: Fill): Buffer {
  if (fill.values instanceof BigInt64Array) return Buffer.from(fill.values.buffer, fill.values.byteOffset, fill.values.byteLength);
  const bytes = FLOAT_ENCODERS[fill.dtype]!(fill.values);
  if (bytes.length !== numel(fill.shape) * DTYPES[fill.dtype].bytes) throw new Error(`fill of ${fill.dtype} [${fill.shape.join(', ')}] has ${bytes.length} bytes`);
  return bytes;
}
