import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import {
  assertClose,
  bundleCache,
  dense,
  feed,
  floatFeed,
  int64Feed,
  ints,
  loadFixture,
  mlmEndToEnd,
  runGraph,
  similarities,
  type Dense,
  type Fixture,
} from '../helpers/parity.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * Bundles converted from the Hugging Face fixtures (fixtures/bridgetower-hf) reproduce what
 * transformers' own BridgeTower classes computed, within 1e-4 max abs error. The graphs run
 * chained from the raw inputs (text_encoder, image_encoder → fusion → head), since transformers
 * does not expose the cross-modal inputs. pixel_mask is ignored, as it is by transformers.
 */

const TOLERANCE = 1e-4;
const HF = ['fixtures', 'bridgetower-hf'];
const bundleFor = bundleCache();

interface Ctx {
  t: TestContext;
  bundle: string;
  inputs: Fixture;
  expected: Fixture;
}

async function context(t: TestContext, model: string): Promise<Ctx | undefined> {
  const inputs = sharedFixture(t, ...HF, 'inputs.safetensors');
  const expected = sharedFixture(t, ...HF, model, 'expected.safetensors');
  if (!inputs || !expected) return undefined;
  const bundle = await bundleFor(t, [...HF, model]);
  if (!bundle) return undefined;
  return { t, bundle, inputs: loadFixture(inputs), expected: loadFixture(expected) };
}

const close = (ctx: Ctx, actual: Dense | undefined, golden: string, graph: string, output: string): void => {
  assertClose(ctx.t, actual, dense(ctx.expected, golden), { graph, output: `${output} vs ${golden}`, tolerance: TOLERANCE });
};

const textFeeds = (ctx: Ctx) => ({ input_ids: feed(ctx.inputs, 'input_ids'), attention_mask: feed(ctx.inputs, 'attention_mask') });
const textEncoder = (ctx: Ctx) => runGraph(ctx.bundle, 'text_encoder', textFeeds(ctx));
const imageEncoder = (ctx: Ctx) => runGraph(ctx.bundle, 'image_encoder', { pixel_values: feed(ctx.inputs, 'pixel_values') });

/** text_encoder + image_encoder → fusion with image token type 1 (transformers' default). */
async function fuse(ctx: Ctx) {
  const text = await textEncoder(ctx);
  const image = await imageEncoder(ctx);
  const n = text.text_embeds!.shape[1]!;
  return runGraph(ctx.bundle, 'fusion', {
    text_embeds: floatFeed(text.text_embeds!),
    attention_mask: feed(ctx.inputs, 'attention_mask'),
    image_embeds: floatFeed(image.image_embeds!),
    image_token_type: int64Feed([n], new Array(n).fill(1)),
  });
}

interface Check {
  title: string;
  covers: string[];
  run(ctx: Ctx): Promise<void>;
}

const CHECKS = {
  fusion: {
    title: 'the encoders and fusion reproduce pooler_output (cls_feats), text_features and image_features',
    covers: ['pooler_output', 'text_features', 'image_features'],
    async run(ctx) {
      const out = await fuse(ctx);
      close(ctx, out.cls_feats, 'pooler_output', 'fusion', 'cls_feats');
      close(ctx, out.text_feats, 'text_features', 'fusion', 'text_feats');
      close(ctx, out.image_feats, 'image_features', 'fusion', 'image_feats');
    },
  },
  headItm: {
    title: 'head_itm on the golden pooler_output reproduces the ITM logits',
    covers: ['logits'],
    run: async (ctx) => close(ctx, (await runGraph(ctx.bundle, 'head_itm', { cls_feats: feed(ctx.expected, 'pooler_output') })).logits, 'logits', 'head_itm', 'logits'),
  },
  itm: {
    title: 'itm.onnx reproduces the ITM logits from ids, mask and pixels',
    covers: ['logits'],
    run: async (ctx) => close(ctx, (await runGraph(ctx.bundle, 'itm', { ...textFeeds(ctx), pixel_values: feed(ctx.inputs, 'pixel_values') })).logits, 'logits', 'itm.onnx', 'logits'),
  },
  headMlm: {
    title: 'head_mlm on the golden text_features reproduces the MLM logits',
    covers: ['logits'],
    run: async (ctx) => close(ctx, (await runGraph(ctx.bundle, 'head_mlm', { text_feats: feed(ctx.expected, 'text_features') })).logits, 'logits', 'head_mlm', 'logits'),
  },
  mlmChained: {
    title: 'fusion then head_mlm reproduce the MLM logits from ids, mask and pixels',
    covers: ['logits'],
    async run(ctx) {
      const fused = await fuse(ctx);
      close(ctx, (await runGraph(ctx.bundle, 'head_mlm', { text_feats: floatFeed(fused.text_feats!) })).logits, 'logits', 'fusion + head_mlm', 'logits');
    },
  },
  mlm: {
    title: 'mlm.onnx reproduces the MLM logits at the asked positions from ids, mask and pixels',
    covers: ['logits'],
    run: (ctx) => mlmEndToEnd(ctx.t, ctx.bundle, ctx.inputs, dense(ctx.expected, 'logits'), { tolerance: TOLERANCE }),
  },
  textItc: {
    title: 'text_encoder reproduces the contrastive text_embeds',
    covers: ['text_embeds'],
    run: async (ctx) => close(ctx, (await textEncoder(ctx)).text_itc, 'text_embeds', 'text_encoder', 'text_itc'),
  },
  imageItc: {
    title: "image_encoder reproduces the contrastive image_embeds (Hugging Face's ITC image path: after the cross-modal transform and token type)",
    covers: ['image_embeds'],
    run: async (ctx) => close(ctx, (await imageEncoder(ctx)).image_itc, 'image_embeds', 'image_encoder', 'image_itc'),
  },
  itcLogits: {
    title: "the ITC features and the bundle's temperature reproduce logits_text_to_image (temperature = exp(−logit_scale))",
    covers: ['logits_text_to_image'],
    async run(ctx) {
      const temperature = dense(readSafetensors(join(ctx.bundle, 'model.safetensors')), 'temperature').data[0]!;
      const text = (await textEncoder(ctx)).text_itc!;
      const image = (await imageEncoder(ctx)).image_itc!;
      close(ctx, similarities(text, image, 1 / temperature), 'logits_text_to_image', 'text_encoder × image_encoder', 'text_itc @ image_itcᵀ / temperature');
    },
  },
  embeddings: {
    title: 'embeddings.onnx reproduces text_embeds, image_embeds and cross_embeds (and their stack, the contrastive logits) from ids, mask and pixels',
    covers: ['text_embeds', 'image_embeds', 'cross_embeds', 'logits'],
    async run(ctx) {
      const out = await embeddings(ctx);
      for (const name of ['text_embeds', 'image_embeds', 'cross_embeds']) close(ctx, out[name], name, 'embeddings', name);
      close(ctx, stackRows([out.text_embeds!, out.image_embeds!, out.cross_embeds!]), 'logits', 'embeddings', 'stack(text, image, cross)');
    },
  },
  crossSimilarities: {
    title: "the embeddings graph and the bundle's temperature reproduce logits_text_to_cross and logits_image_to_cross",
    covers: ['logits_text_to_cross', 'logits_image_to_cross'],
    async run(ctx) {
      const scale = 1 / dense(readSafetensors(join(ctx.bundle, 'model.safetensors')), 'temperature').data[0]!;
      const out = await embeddings(ctx);
      close(ctx, similarities(out.text_embeds!, out.cross_embeds!, scale), 'logits_text_to_cross', 'embeddings', 'text_embeds @ cross_embedsᵀ / temperature');
      close(ctx, similarities(out.image_embeds!, out.cross_embeds!, scale), 'logits_image_to_cross', 'embeddings', 'image_embeds @ cross_embedsᵀ / temperature');
    },
  },
} satisfies Record<string, Check>;

const embeddings = (ctx: Ctx) => runGraph(ctx.bundle, 'embeddings', { ...textFeeds(ctx), pixel_values: feed(ctx.inputs, 'pixel_values') });

/** [B, C] × k → [B, k, C] (torch.stack(…, dim=-2)). */
function stackRows(parts: Dense[]): Dense {
  const [rows, dim] = parts[0]!.shape as [number, number];
  const data = new Float32Array(rows * parts.length * dim);
  parts.forEach((p, k) => {
    for (let r = 0; r < rows; r++) data.set(p.data.subarray(r * dim, (r + 1) * dim), (r * parts.length + k) * dim);
  });
  return { shape: [rows, parts.length, dim], data };
}

/**
 * Goldens no bundle graph produces: per-layer hidden states (the bundle's encoders output them
 * after the cross-modal transform) and the contrastive training `loss`.
 */
const NOT_GRAPH_OUTPUTS = /^(hidden_states\.|loss$)/;

const MODELS: Array<{ model: string; checks: Array<keyof typeof CHECKS>; notGraphOutputs?: string[] }> = [
  { model: 'itm', checks: ['fusion', 'headItm', 'itm'] },
  { model: 'itm-bin', checks: ['fusion', 'headItm', 'itm'] },
  { model: 'mlm', checks: ['fusion', 'headMlm', 'mlmChained', 'mlm'] },
  { model: 'contrastive', checks: ['fusion', 'textItc', 'imageItc', 'itcLogits', 'embeddings', 'crossSimilarities'] },
];

for (const { model, checks, notGraphOutputs = [] } of MODELS) {
  describe(`Hugging Face ${model}: a converted bundle reproduces transformers' outputs within ${TOLERANCE}`, () => {
    for (const name of checks) {
      it(CHECKS[name].title, async (t) => {
        const ctx = await context(t, model);
        if (ctx) await CHECKS[name].run(ctx);
      });
    }

    it('every golden that a graph can produce is compared', (t) => {
      const expected = sharedFixture(t, ...HF, model, 'expected.safetensors');
      if (!expected) return;
      const covered = new Set(checks.flatMap((name) => CHECKS[name].covers));
      const unchecked = [...loadFixture(expected).keys()].filter((key) => !covered.has(key) && !NOT_GRAPH_OUTPUTS.test(key) && !notGraphOutputs.includes(key));
      assert.deepEqual(unchecked, [], `${model}/expected.safetensors has goldens no test compares: ${unchecked.join(', ')}`);
    });
  });
}

// --- the bundle's own preprocessing and tokenizer on real photographs -----------------------

/**
 * `<model>/expected_processor.safetensors`: transformers' processor (PIL backend) and the folder's
 * tokenizer on each photograph, then the model. Here the bundle converted without --tokenizer
 * takes the same bytes and caption through its own pipeline (BundlePreprocessor, what the server
 * and fine-tune use) and its graphs; cross_embeds and the stacked contrastive logits have no graph.
 */
const PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'chelsea.jpg', 'coffee.jpg', 'astronaut.jpg'];
const PROCESSOR_OUTPUTS: Record<string, Array<[golden: string, graph: 'fusion' | 'itm' | 'mlm' | 'text' | 'image', output: string]>> = {
  itm: [['logits', 'itm', 'logits']],
  'itm-bin': [['logits', 'itm', 'logits']],
  mlm: [['logits', 'mlm', 'logits']],
  contrastive: [['text_embeds', 'text', 'text_itc'], ['image_embeds', 'image', 'image_itc']],
};
const FUSED: Array<[string, string]> = [['pooler_output', 'cls_feats'], ['text_features', 'text_feats'], ['image_features', 'image_feats']];

for (const model of MODELS.map((m) => m.model)) {
  describe(`Hugging Face ${model}: the bundle's own tokenizer and image processing reproduce transformers' processor + model within ${TOLERANCE}`, () => {
    for (const photo of PHOTOS) {
      it(`${photo}: same ids, same pixel values, and ${[...FUSED.map(([g]) => g), ...PROCESSOR_OUTPUTS[model]!.map(([g]) => g)].join(', ')}`, async (t) => {
        const goldensPath = sharedFixture(t, ...HF, model, 'expected_processor.safetensors');
        const casesPath = sharedFixture(t, ...HF, 'processor_cases.json');
        const image = sharedFixture(t, 'fixtures', 'images', photo);
        const bundle = await bundleFor(t, [...HF, model]);
        if (!goldensPath || !casesPath || !image || !bundle) return;
        const goldens = loadFixture(goldensPath);
        const cases = JSON.parse(readFileSync(casesPath, 'utf8')).cases as Record<string, { caption: string; caption_mlm: string }>;
        const preprocessor = BundlePreprocessor.open(bundle);
        const caption = model === 'mlm' ? cases[photo]!.caption_mlm : cases[photo]!.caption;
        const text = preprocessor.encodeTexts([caption]);
        assert.deepEqual([...text.inputIds].map(Number), ints(goldens, `${photo}.input_ids`));
        const pixels = await preprocessor.pixelValues(readFileSync(image));
        assert.deepEqual(pixels, dense(goldens, `${photo}.pixel_values`).data, 'pixel values differ from the processor\'s');

        const ctx: Ctx = { t, bundle, inputs: goldens, expected: goldens };
        const ids = int64Feed([...text.dims], text.inputIds);
        const mask = int64Feed([...text.dims], text.attentionMask);
        const pixelFeed = floatFeed({ shape: [1, 3, 48, 48], data: pixels });
        const encodedText = await runGraph(bundle, 'text_encoder', { input_ids: ids, attention_mask: mask });
        const encodedImage = await runGraph(bundle, 'image_encoder', { pixel_values: pixelFeed });
        const n = encodedText.text_embeds!.shape[1]!;
        const fused = await runGraph(bundle, 'fusion', {
          text_embeds: floatFeed(encodedText.text_embeds!),
          attention_mask: mask,
          image_embeds: floatFeed(encodedImage.image_embeds!),
          image_token_type: int64Feed([n], new Array(n).fill(1)),
        });
        for (const [golden, output] of FUSED) close(ctx, fused[output], `${photo}.${golden}`, 'fusion', output);
        const produce = {
          fusion: async () => fused,
          itm: () => runGraph(bundle, 'itm', { input_ids: ids, attention_mask: mask, pixel_values: pixelFeed }),
          mlm: () => runGraph(bundle, 'head_mlm', { text_feats: floatFeed(fused.text_feats!) }),
          text: async () => encodedText,
          image: async () => encodedImage,
        };
        for (const [golden, graph, output] of PROCESSOR_OUTPUTS[model]!) close(ctx, (await produce[graph]())[output], `${photo}.${golden}`, graph, output);
      });
    }
  });
}
