import { BridgeTowerError } from '../../common/errors.js';
import { inspectCheckpoint, type InspectReport } from '../../convert/inspect.js';
import type { Command } from '../run-command.js';

export const inspectCommand: Command = {
  summary: 'print the architecture, heads, tensor and parameter counts of a checkpoint or bundle',
  usage: `
Usage: bridgetower inspect <checkpoint-or-bundle> [--text-config <config.json>] [--tensors] [--json]

Reads only the structure (no tensor bytes), so it is instant even on multi-GB checkpoints.

Options:
  --text-config <path>   RoBERTa config.json when the text encoder is not roberta-base/large
  --tensors              also list every tensor with dtype and shape
  --json                 machine-readable output

Examples:
  bridgetower inspect BridgeTower_ftfpt_base_vqav2.ckpt
  bridgetower inspect bundles/vqa --json
`,
  options: {
    'text-config': { type: 'string' },
    tensors: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new BridgeTowerError('E_USAGE', `expected one checkpoint or bundle, got ${positionals.length}; see --help`);
    const report = inspectCheckpoint(positionals[0]!, { textConfig: values['text-config'] });
    if (values.json) {
      const { tensors, ...rest } = report;
      process.stdout.write(`${JSON.stringify(values.tensors ? report : rest, null, 2)}\n`);
      return;
    }
    process.stdout.write(formatReport(report, values.tensors ?? false));
  },
};

function formatReport(r: InspectReport, withTensors: boolean): string {
  const lines = [`${r.path}  (${r.kind})`];
  if (r.architecture) {
    const { text, vision, cross_modal: cross } = r.architecture;
    lines.push(
      `  semantics:   ${r.architecture.semantics}`,
      `  text:        RoBERTa ${text.num_layers} layers × ${text.hidden_size}, ${text.num_heads} heads, vocab ${text.vocab_size}, ${text.max_position_embeddings} positions (heads/eps from ${text.config_source})`,
      `  vision:      CLIP ViT ${vision.num_layers} layers × ${vision.width}, ${vision.num_heads} head${vision.num_heads === 1 ? '' : 's'}, patch ${vision.patch_size}, image ${vision.image_size}`,
      `  cross-modal: ${cross.num_layers} layers × ${cross.hidden_size}, ${cross.num_heads} heads, ${cross.token_types} token types`,
      `  heads:       ${Object.entries(r.architecture.heads).map(([k, v]) => (v && 'num_labels' in v ? `${k} (${v.num_labels} labels)` : k)).join(', ') || '(none)'}`,
    );
  } else {
    lines.push(`  architecture: not determined — ${r.architectureError}`);
  }
  lines.push(
    `  tensors:     ${r.tensorCount}, ${(r.parameterCount / 1e6).toFixed(2)} M parameters`,
    `  dtypes:      ${Object.entries(r.dtypes).map(([d, n]) => `${d} × ${n}`).join(', ')}`,
  );
  for (const w of r.warnings) lines.push(`  warning:     ${w}`);
  if (withTensors) for (const t of r.tensors) lines.push(`    ${t.name}  ${t.dtype}  [${t.shape.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}
