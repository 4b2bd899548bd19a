import { readFileSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { fillMaskPredictions, maskPositions, type FillMaskPrediction } from '../../runtime/fill-mask.js';
import { openGraph, toOrtTensor, type RuntimeOptions } from '../../runtime/session.js';
import { commandPrecision, PRECISION_OPTION, precisionUsage } from '../precision-option.js';
import type { Command } from '../run-command.js';

export const fillMaskCommand: Command = {
  summary: "predict the words at each <mask> of a text about an image, with a bundle's MLM head",
  usage: `
Usage: bridgetower fill-mask <bundle> --image <file> --text "<text with <mask>>" [--top-k 5] [--json]

Runs the bundle's end-to-end mlm.onnx (text + image → vocabulary logits at the <mask> positions)
with the server's preprocessing. Needs a bundle with an MLM head: the pre-trained checkpoints
(BridgeTower_pt_base / _pt_large) or Hugging Face's BridgeTowerForMaskedLM models.
Prints, per <mask>, the best tokens with their softmax probability; --json prints what
POST /fill-mask answers: {"masks": [[{"score", "token", "token_str", "sequence"}, ...], ...]}
(Hugging Face's fill-mask pipeline shape, one list per mask).

Options:
  --image <file>     the image (JPEG, PNG, WebP, GIF, TIFF or AVIF)
  --text <text>      the text, with one or more <mask> where a word is to be predicted
  --top-k <n>        predictions per mask, 1 to 100 (default 5)
  --device cpu|cuda  ONNX Runtime execution provider (default cpu)
${precisionUsage(20)}
  --json             machine-readable output

Example:
  bridgetower fill-mask bundles/pt-base --image cat.jpg --text "a <mask> on a sofa"
`,
  options: { image: { type: 'string' }, text: { type: 'string' }, 'top-k': { type: 'string' }, device: { type: 'string' }, ...PRECISION_OPTION, json: { type: 'boolean' } },
  async run({ values, positionals }) {
    const [bundle, ...extra] = positionals;
    if (!bundle || extra.length > 0) throw new BridgeTowerError('E_USAGE', 'expected exactly one <bundle> folder; see --help');
    if (!values.image) throw new BridgeTowerError('E_USAGE', '--image is required; see --help');
    const text: string | undefined = values.text;
    if (!text || !text.includes('<mask>')) {
      throw new BridgeTowerError('E_USAGE', `--text must contain <mask> where the word to predict goes, e.g. --text "a <mask> on a sofa"${text ? `; got ${JSON.stringify(text)}` : ''}`);
    }
    const topK = values['top-k'] === undefined ? 5 : Number(values['top-k']);
    if (!Number.isInteger(topK) || topK < 1 || topK > 100) throw new BridgeTowerError('E_USAGE', `--top-k must be a whole number from 1 to 100, got '${values['top-k']}'`);
    const device = values.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new BridgeTowerError('E_USAGE', `--device must be cpu or cuda, got '${device}'`);
    let image: Uint8Array;
    try {
      image = readFileSync(values.image);
    } catch (error) {
      throw new BridgeTowerError('E_IO', `cannot read image '${values.image}': ${(error as Error).message}`, { path: values.image });
    }
    const masks = await fillMaskWithGraph(bundle, { image, text, topK }, { device, precision: commandPrecision(bundle, values.precision, device) });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ masks }, null, 2)}\n`);
      return;
    }
    for (const [m, predictions] of masks.entries()) {
      process.stdout.write(`<mask> ${m + 1} of ${masks.length}:\n`);
      for (const p of predictions) process.stdout.write(`  ${p.score.toFixed(4)}  ${JSON.stringify(p.token_str)}  ${p.sequence}\n`);
    }
  },
};

/**
 * Fill-mask for one image and text with the bundle's end-to-end `mlm.onnx` on this thread (the
 * CLI's path; the server runs the split graphs, batched): the same preprocessing as the server,
 * the head applied only at the `<mask>` positions.
 */
export async function fillMaskWithGraph(
  bundleDir: string,
  input: { image: Uint8Array; text: string; topK: number },
  options: Pick<RuntimeOptions, 'device' | 'threads' | 'precision'> = {},
): Promise<FillMaskPrediction[][]> {
  const pre = BundlePreprocessor.open(bundleDir);
  if (!pre.config.tasks.mlm) {
    throw new BridgeTowerError('E_USAGE', `bundle '${bundleDir}' has no MLM head (its tasks: ${Object.keys(pre.config.tasks).join(', ') || 'none'}): fill-mask needs a pre-trained bundle (mlm_score)`, { bundle: bundleDir });
  }
  const { inputIds, attentionMask, dims } = pre.encodeTexts([input.text], 'mlm');
  const ids = Array.from(inputIds, Number);
  const positions = maskPositions(ids, pre.maskTokenId(), pre.maxTextLength('mlm'));
  const pixels = await pre.pixelBatch([input.image]);
  const { session } = await openGraph(bundleDir, 'mlm', options);
  try {
    const out = await session.run({
      input_ids: toOrtTensor('int64', dims, bytesOf(inputIds)),
      attention_mask: toOrtTensor('int64', dims, bytesOf(attentionMask)),
      pixel_values: toOrtTensor('float32', pixels.dims, bytesOf(pixels.data)),
      mask_positions: toOrtTensor('int64', [positions.length], bytesOf(BigInt64Array.from(positions, BigInt))),
    });
    return fillMaskPredictions(out.logits!.data as Float32Array, ids, positions, input.topK, (tokens, o) => pre.decode(tokens, o));
  } finally {
    await session.release();
  }
}

function bytesOf(array: BigInt64Array | Float32Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}
