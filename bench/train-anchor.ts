import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gb, median, medianStep, sec, type Outcome } from './train-report.js';
import { runWatchedChild, type WatchedOutcome } from './watched-child.js';

/**
 * bench/train.ts `--pytorch <python>`: the same step in PyTorch eager (bench/pytorch/train_step.py
 * on bench/pytorch/bridgetower_eager.py, a torch.nn BridgeTower verified against upstream's
 * fixtures by bench/pytorch/check_eager.py), run as a child strictly alternated with the Node
 * child of `--subsets all`, round after round, so both see the same machine state.
 */

const here = dirname(fileURLToPath(import.meta.url));
export const ANCHOR_SCRIPT = join(here, 'pytorch', 'train_step.py');

/** One step of train_step.py's JSON (its field names follow bench/train-subset.ts's StepTiming). */
export interface AnchorStep {
  totalMs: number;
  forwardBackwardMs: number;
  adamwMs: number;
  zeroMs: number;
  loss: number;
  peakRss: number;
  othersShare: number;
  cpuUserMs: number;
  cpuSysMs: number;
  minorFaults: number;
}

export interface AnchorResult {
  torch: string;
  threads: number;
  batch: number;
  imageSize: number;
  textLength: number;
  optimizer: string;
  stage: string;
  parameters: number;
  trainedParameters?: number;
  trainedTensors?: number;
  setupMs: number;
  peakRssAfterSetup: number;
  peakRss: number;
  warmup: AnchorStep[];
  steps: AnchorStep[];
}

export interface AnchorOptions {
  python: string;
  batch: number;
  size: number;
  textLength: number;
  warmup: number;
  steps: number;
  dropout: number;
  threads?: number;
}

export function runPytorchAnchor(o: AnchorOptions, maxRssBytes: number): Promise<WatchedOutcome<AnchorResult>> {
  const args = [ANCHOR_SCRIPT, '--json', '--batch', String(o.batch), '--size', String(o.size), '--text-len', String(o.textLength), '--warmup', String(o.warmup), '--steps', String(o.steps), '--dropout', String(o.dropout), ...(o.threads ? ['--threads', String(o.threads)] : [])];
  return runWatchedChild<AnchorResult>(o.python, args, maxRssBytes);
}

export interface Round {
  pytorch: WatchedOutcome<AnchorResult>;
  node: Outcome;
}

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '–' : `${(a / b).toFixed(2)}×`);
const share = (xs: number[]) => (xs.length ? `${Math.round(100 * Math.max(...xs))} %` : '–');

interface Side {
  stepMs?: number;
  forwardBackwardMs?: number;
  adamwMs?: number;
  peakRss?: number;
  others: number[];
  note: string;
}

/** The median timed step of each side (the warm-up steps are listed, not counted). */
function sides(round: Round): { pytorch: Side; node: Side } {
  const p = round.pytorch.last;
  const pSteps = p?.steps ?? [];
  const n = round.node.result;
  const nSteps = n?.steps ?? [];
  const nMedian = nSteps.length ? medianStep(nSteps) : undefined;
  return {
    pytorch: {
      ...(pSteps.length ? { stepMs: median(pSteps.map((s) => s.totalMs)), forwardBackwardMs: median(pSteps.map((s) => s.forwardBackwardMs)), adamwMs: median(pSteps.map((s) => s.adamwMs)) } : {}),
      // the steps' peaks, as the Node side's peakRssSteps (the warm-up included, the setup not)
      ...(p && p.warmup.length + pSteps.length ? { peakRss: Math.max(...[...p.warmup, ...pSteps].map((s) => s.peakRss)) } : {}),
      others: [...(p?.warmup ?? []), ...pSteps].map((s) => s.othersShare),
      note: round.pytorch.failure ?? (p ? `warm-up ${p.warmup.map((s) => sec(s.totalMs)).join(', ') || 'none'}; torch ${p.torch}, ${p.threads} threads` : 'no result'),
    },
    node: {
      ...(nMedian ? { stepMs: nMedian.totalMs, forwardBackwardMs: nMedian.forwardBackwardMs, adamwMs: nMedian.adamwMs } : {}),
      ...(n ? { peakRss: n.peakRssSteps } : {}),
      others: [...(n?.warmup ?? []), ...nSteps].map((s) => s.othersShare),
      note: round.node.failure ?? (n ? `warm-up ${n.warmup.map((s) => sec(s.totalMs)).join(', ') || 'none'}` : 'no result'),
    },
  };
}

/** One row per child, in the order they ran, and the Node / PyTorch ratios per round. */
export function anchorMarkdown(rounds: Round[], header: string): string {
  const rows = rounds.flatMap((round, i) => {
    const s = sides(round);
    const row = (name: string, x: Side) => `| ${i + 1} | ${name} | ${sec(x.stepMs)} | ${sec(x.forwardBackwardMs)} | ${sec(x.adamwMs)} | ${gb(x.peakRss)} | ${share(x.others)} | ${x.note} |`;
    return [row('PyTorch eager', s.pytorch), row('bridgetower-node', s.node)];
  });
  const ratios = rounds.map((round, i) => {
    const s = sides(round);
    return `| ${i + 1} | ${ratio(s.node.stepMs, s.pytorch.stepMs)} | ${ratio(s.node.forwardBackwardMs, s.pytorch.forwardBackwardMs)} | ${ratio(s.node.adamwMs, s.pytorch.adamwMs)} | ${ratio(s.node.peakRss, s.pytorch.peakRss)} |`;
  });
  return [
    header,
    '',
    '| round | run | step s (median) | forward+backward s | AdamW s | peak RSS GB (steps) | others used (max) | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    '| round | step, Node / PyTorch | forward+backward | AdamW | peak RSS |',
    '| --- | --- | --- | --- | --- |',
    ...ratios,
  ].join('\n');
}

export function anchorJson(rounds: Round[], context: object): string {
  return JSON.stringify({ ...context, rounds: rounds.map((r) => ({ pytorch: r.pytorch, node: r.node })) }, null, 2);
}
