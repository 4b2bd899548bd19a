import { BridgeTowerError } from '../../common/errors.js';
import { exportCheckpoint } from '../../convert/export/export-ckpt.js';
import { byteProgress } from '../progress.js';
import type { Command } from '../run-command.js';

export const exportCkptCommand: Command = {
  summary: "write a bundle's weights as an upstream-loadable PyTorch Lightning .ckpt",
  usage: `
Usage: bridgetower export-ckpt --bundle <dir> --out <file.ckpt> [options]

Writes the bundle (e.g. the output of fine-tune) as a PyTorch Lightning checkpoint in torch's zip
format, with upstream (microsoft/BridgeTower) parameter names and hyper_parameters.config, so that
upstream's code continues from it:
  torch.load(path, map_location='cpu')['state_dict'] → model.load_state_dict(state_dict, strict=False)
Every tensor keeps its dtype (fp32 or fp16). The file appears only once it is complete.

Options:
  --bundle <dir>         bundle folder to export (required)
  --out <file.ckpt>      checkpoint to write (required)
  --force                replace an existing --out file
  --epoch <n>            Lightning 'epoch' to record (default 0)
  --global-step <n>      Lightning 'global_step' to record (default 0)
  --json                 print a machine-readable summary instead of text
  -h, --help             this help

Examples:
  bridgetower export-ckpt --bundle bundles/vqa-finetuned --out vqa-finetuned.ckpt
  bridgetower export-ckpt --bundle bundles/demo --out /tmp/demo.ckpt --force --json

See docs/export-ckpt.md for loading the file with upstream's code.
`,
  options: {
    bundle: { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' },
    epoch: { type: 'string' },
    'global-step': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new BridgeTowerError('E_USAGE', `unexpected argument '${positionals[0]}': pass the bundle as --bundle <dir>; see --help`);
    if (!values.bundle) throw new BridgeTowerError('E_USAGE', '--bundle <dir> is required: the bundle folder to export');
    if (!values.out) throw new BridgeTowerError('E_USAGE', '--out <file.ckpt> is required: the checkpoint file to write');
    const progress = byteProgress('exporting', !values.json);
    try {
      const summary = await exportCheckpoint({
        bundle: values.bundle,
        out: values.out,
        force: values.force ?? false,
        epoch: integerOption(values.epoch, '--epoch'),
        globalStep: integerOption(values['global-step'], '--global-step'),
        onProgress: (done, total) => progress.update(done, total),
      });
      progress.stop();
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
        return;
      }
      const lines = [
        `wrote ${summary.out}`,
        `  state dict: ${summary.tensors} entries (${summary.dtype}), ${(summary.bytes / 1e6).toFixed(1)} MB`,
        `  config:     ${summary.config_source}`,
        ...summary.config_changes.map((c) => `  changed:    ${c}`),
        ...summary.filled.map((f) => `  filled:     ${f.name} — ${f.reason}`),
        ...summary.left_out.map((f) => `  left out:   ${f.name} — ${f.reason}`),
        ...summary.missing.map((f) => `  missing:    ${f.name} — ${f.reason}`),
        ...summary.warnings.map((w) => `  warning:    ${w}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      progress.stop();
    }
  },
};

function integerOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new BridgeTowerError('E_USAGE', `${name} must be a non-negative integer, got '${value}'`);
  return n;
}
