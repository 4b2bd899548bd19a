import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { syntheticExamples } from '../../library/synthetic-examples.js';
import { compareVariants, type ComparisonExample, type ComparisonReport } from '../../library/variant-comparison.js';
import { itemProgress } from '../progress.js';
import type { Command } from '../run-command.js';
import { formatBytes } from '../../common/format-bytes.js';

const DEFAULT_SYNTHETIC = 16;

export const compareVariantsCommand: Command = {
  summary: "compare a bundle's int8 / fp16 graph variants with its fp32 graphs on the same inputs (max abs diff, relative L2, top-1, top-5)",
  usage: `
Usage: bridgetower compare-variants <bundle> [--data <file.jsonl> | --synthetic <n>] [options]

Runs every precision variant of the bundle's graphs (bridgetower inspect lists them) on the same
inputs, and prints per task the output's agreement with the fp32 graphs: max abs diff and relative
L2 of the head's logits (ITC: of each text's similarities to every image), the share of examples
whose argmax (the answer) is fp32's, and the overlap of the 5 best (for outputs wider than 5).
NLVR2 pairs each image with the next one. docs/precision.md explains how to read it.

Inputs:
  --data <file>       JSON Lines {"image": "<path>", "text": "..."} (paths relative to the file):
                      your own images and texts, the comparison that counts
  --synthetic <n>     n seeded synthetic images and captions instead (default ${DEFAULT_SYNTHETIC} without --data)
  --seed <n>          the synthetic inputs' seed (default 1)

Options:
  --limit <n>         compare on the first n lines of --data only
  --batch-size <n>    rows per graph run (default 8)
  --threads <n>       ONNX Runtime intra-op threads (default: one per core)
  --json              print the report as JSON (no progress bar)

Examples:
  bridgetower compare-variants bundles/vqa --synthetic 32
  bridgetower compare-variants bundles/snli --data dev-sample.jsonl --json
`,
  options: {
    data: { type: 'string' },
    synthetic: { type: 'string' },
    seed: { type: 'string' },
    limit: { type: 'string' },
    'batch-size': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }) {
    const [bundle, ...extra] = positionals;
    if (!bundle || extra.length > 0) throw new BridgeTowerError('E_USAGE', 'expected exactly one <bundle> folder; see --help');
    if (values.data !== undefined && values.synthetic !== undefined) throw new BridgeTowerError('E_USAGE', 'give --data or --synthetic, not both');
    const limit = wholeNumber(values, 'limit');
    const examples = values.data !== undefined ? readExamples(values.data, limit) : syntheticExamples(wholeNumber(values, 'synthetic') ?? DEFAULT_SYNTHETIC, wholeNumber(values, 'seed') ?? 1);
    const batchSize = wholeNumber(values, 'batch-size');
    const threads = wholeNumber(values, 'threads');
    const progress = itemProgress('comparing variants', !values.json);
    let report: ComparisonReport;
    try {
      report = await compareVariants(bundle, examples, { ...(batchSize ? { batchSize } : {}), ...(threads ? { threads } : {}), onProgress: (done, total) => progress.update(done, total) });
    } finally {
      progress.stop();
    }
    const source = values.data !== undefined ? values.data : `synthetic, seed ${wholeNumber(values, 'seed') ?? 1}`;
    process.stdout.write(values.json ? `${JSON.stringify({ ...report, source }, null, 2)}\n` : formatReport(report, source));
  },
};

/** The report as a table per variant, one row per task. */
export function formatReport(report: ComparisonReport, source: string): string {
  const lines = [`${report.name}: ${report.examples} examples (${source}), each variant against fp32 (${formatBytes(report.referenceBytes)})`];
  const header = ['task', 'output', 'rows×width', 'max abs diff', 'rel. L2', 'top-1', 'top-5'];
  for (const variant of report.variants) {
    lines.push('', `${variant.precision}${variant.int8Weights ? ` (${variant.int8Weights} weights)` : ''}, ${formatBytes(variant.bytes)} (${(variant.bytes / report.referenceBytes).toFixed(2)}× fp32):`);
    const rows = variant.tasks.map((t) => [
      t.task,
      t.output,
      `${t.rows}×${t.width}`,
      t.maxAbsDiff.toExponential(2),
      t.relativeL2.toExponential(2),
      percent(t.top1),
      t.top5 === undefined ? '–' : percent(t.top5),
    ]);
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
    for (const row of [header, ...rows]) lines.push(`  ${row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')}`);
  }
  return `${lines.join('\n')}\n`;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** JSON Lines of {"image", "text"}; every line needs both (blank lines are skipped). */
function readExamples(file: string, limit: number | undefined): ComparisonExample[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BridgeTowerError('E_IO', `cannot read --data '${file}': ${(error as Error).message}`, { path: file });
  }
  const examples: ComparisonExample[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    if (limit !== undefined && examples.length >= limit) break;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new BridgeTowerError('E_USAGE', `${where}: not JSON: each line must be {"image": "<path>", "text": "..."}`);
    }
    const { image, text: caption } = (row ?? {}) as Record<string, unknown>;
    if (typeof image !== 'string' || typeof caption !== 'string' || caption.trim() === '') {
      throw new BridgeTowerError('E_USAGE', `${where}: each line needs "image" (a path) and "text" (non-empty): {"image": "<path>", "text": "..."}`);
    }
    examples.push({ image: isAbsolute(image) ? image : join(dirname(file), image), text: caption });
  }
  return examples;
}

function wholeNumber(values: Record<string, unknown>, flag: string): number | undefined {
  const text = values[flag];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text.trim()) || n < 1) throw new BridgeTowerError('E_USAGE', `--${flag} must be a whole number ≥ 1, got '${String(text)}'`, { flag, value: text });
  return n;
}
