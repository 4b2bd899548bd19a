import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { DEFAULT_BUNDLE_ROOT } from '../../bundle/bundle-folders.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { parseVariants } from '../../bundle/graph-variants.js';
import { byteProgress } from '../progress.js';
import type { Command } from '../run-command.js';

export const convertCommand: Command = {
  summary: 'convert a BridgeTower checkpoint (.ckpt, Hugging Face folder) into a model bundle',
  usage: `
Usage: convert-ckpt <checkpoint> [--out <dir>] [options]
       bridgetower convert <checkpoint> [--out <dir>] [options]

<checkpoint> is a released Lightning .ckpt (zip or legacy format), a torch state dict, a
.safetensors file with upstream names, or a Hugging Face BridgeTower folder (config.json +
model.safetensors or pytorch_model.bin).

Options:
  --out <dir>            bundle folder to write (default: ./${DEFAULT_BUNDLE_ROOT}/<checkpoint name>)
  --tokenizer <path>     tokenizer.json, a folder with vocab.json + merges.txt, or "vocab.json,merges.txt"
  --labels <path>        VQA answers: JSON list, id2label object, or an HF config.json with id2label
  --text-config <path>   RoBERTa config.json (heads, LayerNorm eps) when the text encoder is not roberta-base/large
  --image-size <n>       resize the positional embedding for this resolution (bicubic, as upstream)
  --dtype fp32|fp16      weight and compute dtype of the bundle and its graphs (default fp32)
  --variants <list>      graph precisions to write, comma-separated from fp32, int8, fp16 (default: the
                         --dtype precision and int8); int8 and fp16 graphs go to onnx/int8/, onnx/fp16/
  --optimize             graphs use ONNX Runtime's fused MultiHeadAttention kernel
  --no-optimize          plain ONNX attention (MatMul/Softmax/MatMul); see docs/onnx.md for the default
  --no-graphs            write the weights only, no ONNX graphs
  --name <name>          bundle name (default: checkpoint file name)
  --force                replace an existing --out folder (only an empty folder or a bundle)
  --json                 print a machine-readable summary instead of text
  -h, --help             this help

Examples:
  convert-ckpt BridgeTower_ftfpt_base_vqav2.ckpt --tokenizer roberta-base/ --labels vqa_labels.json
  convert-ckpt BridgeTower_ftfpt_base_snlive.ckpt --tokenizer vocab.json,merges.txt --out ${DEFAULT_BUNDLE_ROOT}/snli
  convert-ckpt ./bridgetower-base-itm-mlm --dtype fp16 --out ${DEFAULT_BUNDLE_ROOT}/itm-fp16
  convert-ckpt BridgeTower_ftfpt_base_vqav2.ckpt --variants fp32,int8,fp16 --out ${DEFAULT_BUNDLE_ROOT}/vqa
`,
  options: {
    out: { type: 'string' },
    tokenizer: { type: 'string' },
    labels: { type: 'string' },
    'text-config': { type: 'string' },
    'image-size': { type: 'string' },
    dtype: { type: 'string' },
    variants: { type: 'string' },
    name: { type: 'string' },
    force: { type: 'boolean' },
    optimize: { type: 'boolean' },
    'no-optimize': { type: 'boolean' },
    'no-graphs': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new BridgeTowerError('E_USAGE', `expected exactly one checkpoint, got ${positionals.length}; see --help`);
    const checkpoint = positionals[0]!;
    if (values.optimize && values['no-optimize']) throw new BridgeTowerError('E_USAGE', '--optimize and --no-optimize contradict each other');
    const dtype = values.dtype ?? 'fp32';
    if (dtype !== 'fp32' && dtype !== 'fp16') throw new BridgeTowerError('E_USAGE', `--dtype must be fp32 or fp16, got '${dtype}'`);
    const variants = values.variants === undefined ? undefined : parseVariants(values.variants);
    const imageSize = values['image-size'] === undefined ? undefined : Number(values['image-size']);
    if (imageSize !== undefined && !(Number.isInteger(imageSize) && imageSize > 0)) {
      throw new BridgeTowerError('E_USAGE', `--image-size must be a positive integer, got '${values['image-size']}'`);
    }
    const name = checkpoint.replace(/\/+$/, '').split('/').pop()!.replace(/\.(ckpt|bin|safetensors|pt|pth)$/, '');
    const progress = byteProgress('converting', !values.json);
    try {
      const summary = await convertCheckpoint({
        checkpoint,
        out: values.out ?? join(DEFAULT_BUNDLE_ROOT, name),
        tokenizer: values.tokenizer,
        labels: values.labels,
        textConfig: values['text-config'],
        imageSize,
        dtype,
        ...(variants ? { variants } : {}),
        name: values.name,
        force: values.force ?? false,
        graphs: !values['no-graphs'],
        ...(values.optimize || values['no-optimize'] ? { optimize: Boolean(values.optimize) && !values['no-optimize'] } : {}),
        onProgress: (done, total) => progress.update(done, total),
      });
      progress.stop();
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
        return;
      }
      const lines = [
        `wrote ${summary.out}`,
        `  tasks:      ${summary.tasks.join(', ') || '(none)'}`,
        `  tensors:    ${summary.tensors} (${(summary.parameters / 1e6).toFixed(2)} M parameters, ${summary.dtype})`,
        `  image size: ${summary.image_size}`,
        ...(summary.variants.length ? [`  graphs:     ${summary.variants.join(', ')}`] : []),
        ...summary.sources.map((s) => `  source:     ${s.file} (${(s.bytes / 1e6).toFixed(1)} MB, sha256 ${s.sha256.slice(0, 16)}…)`),
        ...summary.warnings.map((w) => `  warning:    ${w}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      progress.stop();
    }
  },
};
