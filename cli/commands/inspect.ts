import { BridgeTowerError } from '../../common/errors.js';
import { inspectCheckpoint, type InspectReport } from '../../convert/inspect.js';
import type { BundleSummary } from '../../bundle/bundle-summary.js';
import type { Command } from '../run-command.js';
import { formatBytes } from '../../common/format-bytes.js';

export const inspectCommand: Command = {
  summary: 'print the architecture, heads, tensor and parameter counts of a checkpoint or bundle',
  usage: `
Usage: bridgetower inspect <checkpoint-or-bundle> [--text-config <config.json>] [--tensors] [--json]

Reads only the structure (no tensor bytes), so it is instant even on multi-GB checkpoints.
For a bundle it also shows its tasks (head, text length, label count and the first labels), the
image preprocessing (size, resize mode, mean/std), the ONNX graphs with their sizes, the precision
variants and where the bundle came from (sources, converter, fine-tune).

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
  if (r.bundle) lines.push(...formatBundle(r.bundle));
  if (withTensors) for (const t of r.tensors) lines.push(`    ${t.name}  ${t.dtype}  [${t.shape.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

function formatBundle(b: BundleSummary): string[] {
  const p = b.preprocessing;
  const hf = p.hf_processor ? ` (shortest edge ${p.hf_processor.shortest_edge}, size divisor ${p.hf_processor.size_divisor}, crop ${p.hf_processor.crop_size})` : '';
  const lines = [`  name:        ${b.name}`, '  tasks:'];
  for (const t of b.tasks) {
    const labels = t.labels ? `, ${t.labels.count} labels: ${t.labels.first.map((l) => JSON.stringify(l)).join(', ')}${t.labels.count > t.labels.first.length ? ', …' : ''}` : '';
    const count = !t.labels && t.num_labels !== undefined ? `, ${t.num_labels} outputs (no label names)` : '';
    lines.push(`    ${t.task.padEnd(6)} head ${t.head}, text ≤ ${t.max_text_len} tokens${labels}${count}`);
  }
  if (b.tasks.length === 0) lines.push('    (none)');
  lines.push(
    `  image:       ${p.image_size}×${p.image_size}, resize ${p.resize}${hf}, ${p.resample}, mean [${p.mean.join(', ')}], std [${p.std.join(', ')}]`,
    `  tokenizer:   ${b.tokenizer ?? '(none)'}`,
    '  graphs:',
  );
  for (const g of b.graphs) lines.push(`    ${g.file.padEnd(22)} ${g.bytes === null ? 'MISSING' : formatBytes(g.bytes)}`);
  if (b.graphWeights) lines.push(`    ${b.graphWeights.file.padEnd(22)} ${b.graphWeights.bytes === null ? 'MISSING' : formatBytes(b.graphWeights.bytes)} (canonical weights for training graphs, ${b.graphWeights.written_as})`);
  if (b.graphs.length === 0) lines.push('    (none: weights only; convert without --no-graphs to serve or run it)');
  for (const f of b.unlistedGraphFiles) lines.push(`    ${f.padEnd(22)} (not listed in config.json)`);
  // Precision variants: one row per precision the graphs exist in (the server picks one of them).
  lines.push('  variants:');
  for (const v of b.variants) {
    lines.push(`    ${v.precision.padEnd(8)} ${v.dir}/, ${v.files} graphs, ${formatBytes(v.bytes)}`);
    if (v.u8) lines.push(`    ${''.padEnd(8)} ${v.u8.dir}/, ${v.u8.files} graphs, ${formatBytes(v.u8.bytes)} (u8 weights, for CPUs without VNNI)`);
  }
  if (b.variants.length === 0) lines.push('    (none)');
  const pv = b.provenance;
  lines.push(`  provenance:  ${pv.source_kind}, converted by ${pv.converter} at ${pv.converted_at}${pv.ignored ? `, ${pv.ignored} source entries ignored` : ''}`);
  for (const s of pv.sources) lines.push(`    source ${s.file} (${formatBytes(s.bytes)}, sha256 ${s.sha256.slice(0, 16)}…)`);
  if (pv.image_size_resized_from !== undefined) lines.push(`    position embedding resized from image size ${pv.image_size_resized_from}`);
  if (b.fine_tune) lines.push(`    fine-tuned from ${b.fine_tune.base_bundle} on ${b.fine_tune.task} (${b.fine_tune.train}), step ${b.fine_tune.step}, epoch ${b.fine_tune.epoch}`);
  return lines;
}

