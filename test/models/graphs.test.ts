import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { GRAPHS } from '../../models/bridgetower/graphs.js';
import { elemTypeFromOnnx } from '../../models/ir/element-types.js';
import { ModelProto } from '../../models/ir/onnx-schema.js';
import { floatFeed, int64Feed, maxAbsError, runGraph, session, take, type Dense, type Optimization } from '../helpers/parity.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';
import type ort from 'onnxruntime-node';

/**
 * The graphs of a bundle converted from the demo architecture (every head but MLM), with random
 * weights: they load in ONNX Runtime at every optimization level, declare the documented
 * signatures, and give each row the same result whatever batch it runs in and however padded.
 */

const TOLERANCE = 1e-5;
const root = tempDir({ after });
const { arch, weights } = tinyWeights();

let converted: Promise<string> | undefined;
function demoBundle(): Promise<string> {
  converted ??= (async () => {
    const out = join(root, 'bundle');
    await convertCheckpoint({ checkpoint: writeTinyCkpt(root, weights), out, textConfig: writeTextConfig(root, arch) });
    return out;
  })();
  return converted;
}

// ---- Documented signatures (models/bridgetower/graphs.ts), for the demo architecture --------

type Dim = number | string;
type Signature = { inputs: Array<[string, 'float32' | 'int64', Dim[]]>; outputs: Array<[string, 'float32', Dim[]]> };

function signatures(a: BridgeTowerArchitecture): Record<string, Signature> {
  const [L, H, C] = [a.cross_modal.num_layers, a.cross_modal.hidden_size, a.heads.itc!.dim];
  const S = a.vision.image_size;
  const N = (S / a.vision.patch_size) ** 2 + 1;
  const ids: Signature['inputs'] = [['input_ids', 'int64', ['batch', 'seq']], ['attention_mask', 'int64', ['batch', 'seq']]];
  const pixels = (name: string): Signature['inputs'][number] => [name, 'float32', ['batch', 3, S, S]];
  const cls = (name: string): Signature['inputs'][number] => [name, 'float32', ['batch', 2 * H]];
  const logits = (labels: number): Signature['outputs'] => [['logits', 'float32', ['batch', labels]]];
  return {
    'text_encoder.onnx': { inputs: ids, outputs: [['text_embeds', 'float32', [L, 'batch', 'seq', H]], ['text_itc', 'float32', ['batch', C]]] },
    'image_encoder.onnx': { inputs: [pixels('pixel_values')], outputs: [['image_embeds', 'float32', [L, 'batch', N, H]], ['image_itc', 'float32', ['batch', C]]] },
    'fusion.onnx': {
      inputs: [['text_embeds', 'float32', [L, 'batch', 'seq', H]], ['attention_mask', 'int64', ['batch', 'seq']], ['image_embeds', 'float32', [L, 'batch', N, H]], ['image_token_type', 'int64', ['batch']]],
      outputs: [['cls_feats', 'float32', ['batch', 2 * H]], ['text_feats', 'float32', ['batch', 'seq', H]], ['image_feats', 'float32', ['batch', N, H]]],
    },
    'head_vqa.onnx': { inputs: [cls('cls_feats')], outputs: logits(a.heads.vqa!.num_labels) },
    'head_snli.onnx': { inputs: [cls('cls_feats')], outputs: logits(3) },
    'head_itm.onnx': { inputs: [cls('cls_feats')], outputs: logits(2) },
    'head_nlvr2.onnx': { inputs: [cls('cls_feats_left'), cls('cls_feats_right')], outputs: logits(2) },
    'vqa.onnx': { inputs: [...ids, pixels('pixel_values')], outputs: logits(a.heads.vqa!.num_labels) },
    'snli.onnx': { inputs: [...ids, pixels('pixel_values')], outputs: logits(3) },
    'itm.onnx': { inputs: [...ids, pixels('pixel_values')], outputs: logits(2) },
    'nlvr2.onnx': { inputs: [...ids, pixels('pixel_values_left'), pixels('pixel_values_right')], outputs: logits(2) },
    // The demo architecture has upstream ITC heads and no itc_cross_modal_head: no cross_embeds.
    'embeddings.onnx': { inputs: [...ids, pixels('pixel_values')], outputs: [['text_embeds', 'float32', ['batch', C]], ['image_embeds', 'float32', ['batch', C]]] },
  };
}

const SIGNATURES = signatures(arch);

interface ValueInfo {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim?: Array<{ dimValue?: number; dimParam?: string }> } } };
}

/** A graph's declared inputs and outputs, read from the .onnx file itself. */
function declared(file: string): { inputs: Array<[string, string, Dim[]]>; outputs: Array<[string, string, Dim[]]> } {
  const model = ModelProto.toObject(ModelProto.decode(readFileSync(file)), { longs: Number }) as { graph: { input: ValueInfo[]; output: ValueInfo[] } };
  const info = (v: ValueInfo): [string, string, Dim[]] => [
    v.name,
    elemTypeFromOnnx(v.type.tensorType.elemType) ?? `onnx type ${v.type.tensorType.elemType}`,
    (v.type.tensorType.shape.dim ?? []).map((d) => d.dimParam ?? d.dimValue ?? '?'),
  ];
  return { inputs: model.graph.input.map(info), outputs: model.graph.output.map(info) };
}

// ---- Rows of uneven length, and feeds for any subset of them ---------------------------------

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = random(7);
const PAD = arch.text.pad_token_id;
const LENGTHS = [5, 12, 3, 20, 8, 16, 11];
const PIXELS = 3 * arch.vision.image_size * arch.vision.image_size;
const noise = (n: number) => Float32Array.from({ length: n }, () => 4 * rand() - 2);
/** `<s>` content `</s>`, content ids above the specials so that none is the pad id. */
const ROWS = LENGTHS.map((length, r) => ({
  ids: [0, ...Array.from({ length: length - 2 }, () => 3 + Math.floor(rand() * (arch.text.vocab_size - 3))), 2],
  left: noise(PIXELS),
  right: noise(PIXELS),
  imageTokenType: 1 + (r % 2),
  clsLeft: noise(2 * arch.cross_modal.hidden_size),
  clsRight: noise(2 * arch.cross_modal.hidden_size),
}));
const BATCHES = [[0, 1], ROWS.map((_, r) => r)];

type Feeds = Record<string, ort.Tensor>;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const longest = (rows: number[]) => Math.max(...rows.map((r) => LENGTHS[r]!));
const stack = (rows: number[], pick: (r: number) => Float32Array, shape: number[]): Dense => {
  const data = new Float32Array(rows.length * shape.reduce((a, b) => a * b, 1));
  rows.forEach((r, k) => data.set(pick(r), k * (data.length / rows.length)));
  return { shape: [rows.length, ...shape], data };
};

/** ids padded with the pad id and mask 0 up to the longest row. */
function textFeeds(rows: number[]): Feeds {
  const T = longest(rows);
  const ids = rows.flatMap((r) => [...ROWS[r]!.ids, ...new Array(T - LENGTHS[r]!).fill(PAD)]);
  const mask = rows.flatMap((r) => range(T).map((i) => (i < LENGTHS[r]! ? 1 : 0)));
  return { input_ids: int64Feed([rows.length, T], ids), attention_mask: int64Feed([rows.length, T], mask) };
}

const pixelFeed = (rows: number[], side: 'left' | 'right') => floatFeed(stack(rows, (r) => ROWS[r]![side], [3, arch.vision.image_size, arch.vision.image_size]));
const clsFeed = (rows: number[], side: 'clsLeft' | 'clsRight') => floatFeed(stack(rows, (r) => ROWS[r]![side], [2 * arch.cross_modal.hidden_size]));

/** Each row's encoder outputs at batch 1: the fusion graph's inputs. */
const encoded = new Map<number, Promise<{ text: Dense; image: Dense }>>();
function encodeRow(bundle: string, r: number) {
  if (!encoded.has(r)) {
    encoded.set(r, (async () => ({
      text: (await runGraph(bundle, 'text_encoder', textFeeds([r]))).text_embeds!,
      image: (await runGraph(bundle, 'image_encoder', { pixel_values: pixelFeed([r], 'left') })).image_embeds!,
    }))());
  }
  return encoded.get(r)!;
}

/** Fusion feeds: real tokens from each row's own encoding, random values on padded positions (masked, so they must not matter). */
async function fusionFeeds(bundle: string, rows: number[]): Promise<Feeds> {
  const rowsEncoded = await Promise.all(rows.map((r) => encodeRow(bundle, r)));
  const [L, , , H] = rowsEncoded[0]!.text.shape as [number, number, number, number];
  const T = longest(rows);
  const text = noise(L * rows.length * T * H);
  rows.forEach((r, k) => {
    for (let l = 0; l < L; l++) text.set(rowsEncoded[k]!.text.data.subarray(l * LENGTHS[r]! * H, (l + 1) * LENGTHS[r]! * H), (l * rows.length + k) * T * H);
  });
  const N = rowsEncoded[0]!.image.shape[2]!;
  const image = new Float32Array(L * rows.length * N * H);
  rowsEncoded.forEach(({ image: one }, k) => {
    for (let l = 0; l < L; l++) image.set(one.data.subarray(l * N * H, (l + 1) * N * H), (l * rows.length + k) * N * H);
  });
  return {
    text_embeds: floatFeed({ shape: [L, rows.length, T, H], data: text }),
    attention_mask: textFeeds(rows).attention_mask!,
    image_embeds: floatFeed({ shape: [L, rows.length, N, H], data: image }),
    image_token_type: int64Feed([rows.length], rows.map((r) => ROWS[r]!.imageTokenType)),
  };
}

const FEEDS: Record<string, (bundle: string, rows: number[]) => Feeds | Promise<Feeds>> = {
  'text_encoder.onnx': (_, rows) => textFeeds(rows),
  'image_encoder.onnx': (_, rows) => ({ pixel_values: pixelFeed(rows, 'left') }),
  'fusion.onnx': fusionFeeds,
  'head_vqa.onnx': (_, rows) => ({ cls_feats: clsFeed(rows, 'clsLeft') }),
  'head_snli.onnx': (_, rows) => ({ cls_feats: clsFeed(rows, 'clsLeft') }),
  'head_itm.onnx': (_, rows) => ({ cls_feats: clsFeed(rows, 'clsLeft') }),
  'head_nlvr2.onnx': (_, rows) => ({ cls_feats_left: clsFeed(rows, 'clsLeft'), cls_feats_right: clsFeed(rows, 'clsRight') }),
  'vqa.onnx': (_, rows) => ({ ...textFeeds(rows), pixel_values: pixelFeed(rows, 'left') }),
  'snli.onnx': (_, rows) => ({ ...textFeeds(rows), pixel_values: pixelFeed(rows, 'left') }),
  'itm.onnx': (_, rows) => ({ ...textFeeds(rows), pixel_values: pixelFeed(rows, 'left') }),
  'nlvr2.onnx': (_, rows) => ({ ...textFeeds(rows), pixel_values_left: pixelFeed(rows, 'left'), pixel_values_right: pixelFeed(rows, 'right') }),
  'embeddings.onnx': (_, rows) => ({ ...textFeeds(rows), pixel_values: pixelFeed(rows, 'left') }),
};

/** Where each output keeps its batch axis, and its token axis where padding adds positions. */
const LAYOUT: Record<string, { batch: number; seq?: number }> = {
  text_embeds: { batch: 1, seq: 2 },
  text_feats: { batch: 0, seq: 1 },
  text_itc: { batch: 0 },
  image_embeds: { batch: 1 },
  image_itc: { batch: 0 },
  image_feats: { batch: 0 },
  cls_feats: { batch: 0 },
  logits: { batch: 0 },
  // embeddings.onnx reuses the encoder output names for pooled [batch, dim] embeddings.
  'embeddings.onnx:text_embeds': { batch: 0 },
  'embeddings.onnx:image_embeds': { batch: 0 },
};

/** Row k of a batched output, cut to the row's real tokens. */
function rowOf(file: string, output: string, t: Dense, k: number, length: number): Dense {
  const layout = LAYOUT[`${file}:${output}`] ?? LAYOUT[output];
  assert.ok(layout, `no layout for output ${output}`);
  const row = take(t, layout.batch, [k]);
  return layout.seq === undefined ? row : take(row, layout.seq, range(length));
}

// ---- Tests ----------------------------------------------------------------------------------

const FILES = Object.keys(SIGNATURES);

describe('graphs of a bundle converted from the demo architecture', () => {
  it('the bundle holds exactly the graphs graphs.ts lists as available for its heads', async () => {
    const bundle = await demoBundle();
    const written = readdirSync(join(bundle, 'onnx')).filter((f) => f.endsWith('.onnx')).sort();
    assert.deepEqual(written, GRAPHS.filter((g) => g.available(arch)).map((g) => g.file).sort());
    assert.deepEqual(written, [...FILES].sort());
  });

  for (const file of FILES) {
    it(`${file} declares its documented inputs and outputs (names, dtypes, symbolic batch/seq dims)`, async () => {
      const actual = declared(join(await demoBundle(), 'onnx', file));
      assert.deepEqual(actual, SIGNATURES[file], `${file} signature`);
    });

    it(`${file} loads in ONNX Runtime with optimization 'all' and with 'disabled'`, async () => {
      const bundle = await demoBundle();
      for (const level of ['all', 'disabled'] as const) {
        const s = await session(bundle, file, level);
        assert.deepEqual(s.inputNames, SIGNATURES[file]!.inputs.map(([name]) => name), `${file} (${level}) inputs`);
        assert.deepEqual(s.outputNames, SIGNATURES[file]!.outputs.map(([name]) => name), `${file} (${level}) outputs`);
      }
    });

    it(`${file} gives every row the same outputs alone and inside batches of 2 and 7 padded to the longest row`, async (t) => {
      const bundle = await demoBundle();
      const alone = await Promise.all(ROWS.map(async (_, r) => runGraph(bundle, file, await FEEDS[file]!(bundle, [r]))));
      let worst = 0;
      for (const rows of BATCHES) {
        const batched = await runGraph(bundle, file, await FEEDS[file]!(bundle, rows));
        rows.forEach((r, k) => {
          for (const [output, value] of Object.entries(batched)) {
            const error = maxAbsError(rowOf(file, output, value, k, LENGTHS[r]!).data, rowOf(file, output, alone[r]![output]!, 0, LENGTHS[r]!).data);
            worst = Math.max(worst, error);
            assert.ok(error <= TOLERANCE, `${file} → ${output}, row ${r} (length ${LENGTHS[r]}) in a batch of ${rows.length}: max abs error ${error.toExponential(3)} vs batch 1 exceeds ${TOLERANCE}`);
          }
        });
      }
      t.diagnostic(`${file}: worst batch-vs-alone max abs error ${worst.toExponential(2)}`);
    });

    it(`${file} gives the same outputs with optimization 'disabled' and 'all'`, async (t) => {
      const bundle = await demoBundle();
      const feeds = await FEEDS[file]!(bundle, BATCHES[1]!);
      const results = {} as Record<Optimization, Record<string, Dense>>;
      for (const level of ['all', 'disabled'] as const) results[level] = await runGraph(bundle, file, feeds, level);
      for (const [output, value] of Object.entries(results.all)) {
        const error = maxAbsError(value.data, results.disabled[output]!.data);
        t.diagnostic(`${file} → ${output}: 'all' vs 'disabled' max abs error ${error.toExponential(2)}`);
        assert.ok(error <= TOLERANCE, `${file} → ${output}: optimization 'all' differs from 'disabled' by ${error.toExponential(3)} (> ${TOLERANCE})`);
      }
    });
  }
});
