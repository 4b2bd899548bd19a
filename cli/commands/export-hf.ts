import { BridgeTowerError } from '../../common/errors.js';
import { exportHuggingFace } from '../../convert/export/export-hf.js';
import { parseHfClass } from '../../convert/export/hf-classes.js';
import type { Command } from '../run-command.js';

export const exportHfCommand: Command = {
  summary: 'write a bundle as a Hugging Face transformers folder (config.json, model.safetensors, tokenizer, processor)',
  usage: `
Usage: bridgetower export-hf <bundle> --out <dir> [options]

Writes the bundle as a folder that transformers loads with from_pretrained: config.json in
BridgeTowerConfig's schema, model.safetensors under Hugging Face names (logit_scale = log(1/temperature)),
tokenizer.json + vocab.json + merges.txt + tokenizer_config.json + special_tokens_map.json, and
preprocessor_config.json for BridgeTowerImageProcessor. Weights keep the bundle's dtype.

The class (config.json "architectures") is the first the bundle fills:
  itm          BridgeTowerForImageAndTextRetrieval   (ITM head)
  contrastive  BridgeTowerForContrastiveLearning     (HF-converted contrastive bundles only)
  mlm          BridgeTowerForMaskedLM                (MLM head)
  base         BridgeTowerModel                      (any bundle)
Heads the class has no module for (VQA, SNLI-VE, NLVR2, upstream ITC, a second head) go to
bridgetower_heads.safetensors beside it, with their layout in its metadata; the command says so.
An architecture HF's classes cannot build is refused, naming the option.

The folder appears only once complete; an existing --out is replaced only with --force.

Options:
  <bundle>, --bundle <dir>  bundle folder to export (required)
  --out <dir>               folder to write (required)
  --class <name>            itm | contrastive | mlm | base, or the class name (default: see above)
  --force                   replace an existing --out folder
  --json                    print a machine-readable summary instead of text
  -h, --help                this help

Examples:
  bridgetower export-hf bundles/itm-finetuned --out hf/itm-finetuned
  bridgetower export-hf bundles/pt --out hf/pt-mlm --class mlm --force

  python -c "from transformers import BridgeTowerForImageAndTextRetrieval as M; M.from_pretrained('hf/itm-finetuned')"

See docs/export-hf.md for what is written and the head file's layout.
`,
  options: {
    bundle: { type: 'string' },
    out: { type: 'string' },
    class: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }) {
    if (positionals.length > 1 || (positionals.length === 1 && values.bundle)) {
      throw new BridgeTowerError('E_USAGE', `unexpected argument '${positionals.at(-1)}': give one bundle, as <bundle> or --bundle <dir>; see --help`);
    }
    const bundle: string | undefined = values.bundle ?? positionals[0];
    if (!bundle) throw new BridgeTowerError('E_USAGE', 'a bundle is required: bridgetower export-hf <bundle> --out <dir>');
    if (!values.out) throw new BridgeTowerError('E_USAGE', '--out <dir> is required: the folder to write');
    const summary = await exportHuggingFace({
      bundle,
      out: values.out,
      force: values.force ?? false,
      ...(values.class !== undefined ? { hfClass: parseHfClass(values.class) } : {}),
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
      return;
    }
    const lines = [
      `wrote ${summary.out}`,
      `  loads with: ${summary.hf_class}.from_pretrained(${JSON.stringify(summary.out)})`,
      `  weights:    ${summary.tensors} tensors (${summary.dtype}) in model.safetensors`,
      ...(summary.head_file
        ? [`  head file:  ${summary.head_file.file} — ${summary.head_file.heads.join(', ') || 'tensors'} (${summary.head_file.tensors} tensors), which ${summary.hf_class} has no module for; see docs/export-hf.md`]
        : []),
      `  files:      ${summary.files.join(', ')}`,
      ...summary.config_changes.map((c) => `  changed:    ${c}`),
      ...summary.left_out.map((f) => `  left out:   ${f.name} — ${f.reason}`),
      ...summary.warnings.map((w) => `  warning:    ${w}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
