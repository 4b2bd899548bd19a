import { cpus, totalmem } from 'node:os';
import ort from 'onnxruntime-node';
import type { TrainSubset } from '../train/train-subsets.js';
import type { ModelFlops } from './model-flops.js';
import type { StepTiming, SubsetResult } from './train-subset.js';

/** Markdown and JSON for bench/train.ts: what docs/PERFORMANCE.md quotes. */
export type Outcome = { subset: TrainSubset; result?: SubsetResult; failure?: string };

export interface RunContext {
  dropout: number;
  command: string;
  wallMs: number;
  loadAverage: number[];
  batch: number;
  imageSize: number;
  flops: ModelFlops;
  warmup: number;
  steps: number;
  budgetS: number;
  threads?: number;
  pcieGBps: number;
  adamwChunk: number;
  maxRssBytes: number;
}

/** Upstream's VQAv2 global batch: micro-batches accumulate into one AdamW step per 512 samples. */
const VQA_GLOBAL_BATCH = 512;

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
export const sec = (ms: number | undefined, digits = 2) => (ms === undefined ? '–' : (ms / 1000).toFixed(digits));
const mb = (bytes: number) => (bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0);
export const gb = (bytes: number | undefined) => (bytes === undefined ? '–' : (bytes / 1e9).toFixed(2));
const share = (x: number) => (Number.isNaN(x) ? '?' : `${Math.round(100 * x)} %`);
const millions = (n: number) => `${(n / 1e6).toFixed(1)} M`;

/** Median of each part over the timed steps (the total's median is its own, not the parts' sum). */
export function medianStep(timings: StepTiming[]): StepTiming {
  const m = (k: keyof StepTiming) => median(timings.map((t) => t[k]));
  return { totalMs: m('totalMs'), forwardBackwardMs: m('forwardBackwardMs'), accumulateMs: m('accumulateMs'), normMs: m('normMs'), adamwMs: m('adamwMs'), zeroMs: m('zeroMs'), loss: m('loss'), othersShare: Math.max(...timings.map((t) => t.othersShare)), peakRss: Math.max(...timings.map((t) => t.peakRss)) };
}

/** ≈ FLOPs of forward + backward: backward counted as 2 × the forward FLOPs of the differentiated part. */
function stepFlops(subset: TrainSubset, f: ModelFlops, batch: number): number {
  const trained = { all: f.total, 'cross-modal': f.fusion + f.head, heads: f.head }[subset];
  return batch * (f.total + 2 * trained);
}

/**
 * Host↔device bytes of one step with `--device cuda` (computed, not measured): the gradient graph
 * reads the parameters and the batch and returns the gradients, logits and loss; the AdamW graph
 * (the trainer opens it on the same device) reads param, grad, m, v and returns param, m, v.
 */
export function deviceBytes(r: SubsetResult) {
  const p = 4 * r.parameters;
  const perMicroBatch = 2 * p + r.batchBytes + r.otherOutputBytes;
  const adamw = 7 * p;
  return { parameters: p, gradients: p, batchAndLogits: r.batchBytes + r.otherOutputBytes, adamw, perMicroBatch, perOptimizerStep: perMicroBatch + adamw };
}

export function jsonReport(outcomes: Outcome[], context: RunContext): string {
  return JSON.stringify({ ...context, outcomes: outcomes.map((o) => ({ ...o, ...(o.result?.steps.length ? { median: medianStep(o.result.steps), deviceBytes: deviceBytes(o.result) } : {}) })) }, null, 2);
}

export function markdownReport(outcomes: Outcome[], c: RunContext): string {
  const complete = outcomes.filter((o) => o.result && o.result.steps.length > 0).map((o) => ({ subset: o.subset, r: o.result!, m: medianStep(o.result!.steps) }));
  const started = outcomes.filter((o) => o.result?.parameters !== undefined).map((o) => ({ subset: o.subset, r: o.result! }));
  const all = complete.find((d) => d.subset === 'all');
  const cpu = cpus();
  const lines = [
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? '?'} (CPU provider, ${c.threads ? `${c.threads} intra-op threads` : 'default intra-op threads'}), ${new Date().toISOString().slice(0, 10)}; load average at the start ${c.loadAverage.map((l) => l.toFixed(2)).join(', ')}.`,
    '',
    `\`${c.command}\` (wall ${sec(c.wallMs, 0)} s):`,
    '',
    `- VQA training graph (BCE × labels, dropout ${c.dropout}), micro-batch ${c.batch}, ${c.imageSize} px, T = ${c.flops.textTokens} text tokens, N = ${c.flops.imageTokens} image tokens; forward ${((c.batch * c.flops.total) / 1e9).toFixed(0)} GFLOP per micro-batch (bench/model-flops.ts). "≈ GFLOP" counts backward as 2 × the forward FLOPs of the differentiated part.`,
    `- Each subset in a fresh child process, one after another; ${c.warmup} warm-up step(s), then up to ${c.steps} timed steps (median; fewer where they pass ${c.budgetS} s). A step = GradientStep.run + accumulating every gradient into the flat buffer + gradient norm + AdamW update (AdamWRunner) + zeroing the buffer: an optimizer step every micro-batch (global batch ${c.batch}). "CPU used by others": the highest share of the cores other processes used during a timed step. A child is stopped when its RSS passes ${gb(c.maxRssBytes)} GB.`,
    '',
    '| --train | trainable params | step s (each) | samples/s | vs all | forward+backward s | gradient accumulate s | AdamW s | norm + zero s | warm-up step s | ≈ GFLOP | ≈ GFLOP/s (forward+backward) | CPU used by others |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const o of outcomes) {
    const done = complete.find((d) => d.subset === o.subset);
    if (!done) {
      lines.push(partialRow(o));
      continue;
    }
    const { subset, r, m } = done;
    const gflop = stepFlops(subset, c.flops, c.batch) / 1e9;
    const vsAll = all ? `${(medianStep(all.r.steps).totalMs / m.totalMs).toFixed(2)}×` : '–';
    lines.push(`| ${subset} | ${millions(r.parameters)} (${r.tensors} tensors) | ${sec(m.totalMs)} (${r.steps.map((t) => sec(t.totalMs)).join(', ')}) | ${(c.batch / (m.totalMs / 1000)).toFixed(2)} | ${vsAll} | ${sec(m.forwardBackwardMs)} | ${sec(m.accumulateMs)} | ${sec(m.adamwMs)} | ${sec(m.normMs + m.zeroMs)} | ${r.warmup.map((t) => sec(t.totalMs)).join(', ') || '–'} | ${gflop.toFixed(0)} | ${(gflop / (m.forwardBackwardMs / 1000)).toFixed(0)} | ${share(m.othersShare)} |`);
  }

  lines.push(
    '',
    `At upstream's VQAv2 global batch (${VQA_GLOBAL_BATCH} = ${VQA_GLOBAL_BATCH / c.batch} micro-batches of ${c.batch} per AdamW step), computed from the medians above: forward+backward and accumulation every micro-batch; norm, AdamW and zeroing once per ${VQA_GLOBAL_BATCH / c.batch}:`,
    '',
    '| --train | s per micro-batch | samples/s | vs all |',
    '| --- | --- | --- | --- |',
  );
  const amortized = (m: StepTiming) => m.forwardBackwardMs + m.accumulateMs + (m.normMs + m.adamwMs + m.zeroMs) / (VQA_GLOBAL_BATCH / c.batch);
  for (const { subset, m } of complete) lines.push(`| ${subset} | ${sec(amortized(m))} | ${(c.batch / (amortized(m) / 1000)).toFixed(2)} | ${all ? `${(amortized(medianStep(all.r.steps)) / amortized(m)).toFixed(2)}×` : '–'} |`);

  lines.push(
    '',
    `Setup, AdamW and memory (peak RSS from VmHWM of the child, Node + tsx baseline included; "per step" = VmHWM restarted at each step's start, warm-up first). "AdamW" = one AdamWRunner update of all trainable values with the steps' engine; "reference" = the same with the ONNX Runtime graph engine over chunks of ${millions(c.adamwChunk * 1e6)} elements (--compare-adamw):`,
    '',
    '| --train | graph nodes | optimizer groups (elements) | graph build s | read parameters s | session open s | peak RSS after open GB | AdamW engine | AdamW s | its peak RSS GB | reference AdamW s (peak RSS GB) | peak RSS per step GB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...started.map(({ subset, r }) => `| ${subset} | ${r.graphNodes} | ${r.groups.map(millions).join(', ')} | ${sec(r.buildMs, 1)} | ${sec(r.readParamsMs, 1)} | ${sec(r.openMs, 1)} | ${gb(r.peakRssAfterOpen)} | ${r.adamwEngine ?? '–'} | ${sec(r.chunkedAdamwMs)} | ${gb(r.chunkedAdamwPeakRss)} | ${r.referenceAdamwMs === undefined ? '–' : `${sec(r.referenceAdamwMs)} (${gb(r.referenceAdamwPeakRss)})`} | ${[...r.warmup, ...r.steps].map((t) => gb(t.peakRss)).join(', ') || gb(r.peakRssSteps)} |`),
    '',
    `Moving the trainable values on this CPU (measured): parameters are fed as views of the flat buffer (no copy); gradients are written by ONNX Runtime into the flat gradient buffer (preallocated outputs; with --allocated-outputs they come back as fresh outputs that a JavaScript loop adds in); the default AdamW engine updates the flat buffers in place. "memcpy" = Float32Array.set of all trainable values into a warm buffer; "Identity output" = one run of an Identity graph over them (fresh output + copy + hand-over to JavaScript); median of 3 each:`,
    '',
    '| --train | trainable MB | memcpy ms (GB/s) | Identity output ms (GB/s) | gradient accumulate ms | accumulate / step | (accumulate + 3 memcpy) / step |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...started.filter(({ r }) => r.memcpyMs !== undefined).map(({ subset, r }) => {
      const bytes = 4 * r.parameters;
      const rate = (ms: number) => (bytes / 1e9 / (ms / 1000)).toFixed(1);
      const m = complete.find((d) => d.subset === subset)?.m;
      const perStep = (ms: number) => (m ? share(ms / m.totalMs) : '–');
      return `| ${subset} | ${mb(bytes)} | ${r.memcpyMs.toFixed(0)} (${rate(r.memcpyMs)}) | ${r.identityRunMs.toFixed(0)} (${rate(r.identityRunMs)}) | ${m ? m.accumulateMs.toFixed(0) : '–'} | ${perStep(m?.accumulateMs ?? 0)} | ${perStep((m?.accumulateMs ?? 0) + 3 * r.memcpyMs)} |`;
    }),
    '',
    `Host↔device bytes with \`--device cuda\` — COMPUTED from the graphs' inputs and outputs, not measured (no GPU here); times assume ${c.pcieGBps} GB/s (PCIe Gen4 x16; copies from pageable memory, as Node's buffers are, are usually slower):`,
    '',
    '| --train | parameters in MB | gradients out MB | batch in + logits out MB | AdamW in + out MB | per micro-batch MB (≈ ms) | per optimizer step MB (≈ ms) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...started.filter(({ r }) => r.batchBytes !== undefined).map(({ subset, r }) => {
      const d = deviceBytes(r);
      const ms = (bytes: number) => ((bytes / (c.pcieGBps * 1e9)) * 1000).toFixed(0);
      return `| ${subset} | ${mb(d.parameters)} | ${mb(d.gradients)} | ${mb(d.batchAndLogits)} | ${mb(d.adamw)} | ${mb(d.perMicroBatch)} (${ms(d.perMicroBatch)}) | ${mb(d.perOptimizerStep)} (${ms(d.perOptimizerStep)}) |`;
    }),
    '',
  );
  return lines.join('\n');
}

/** A subset without a timed step: what it got through before it stopped. */
function partialRow(o: Outcome): string {
  const r = o.result;
  if (!r || r.parameters === undefined) return `| ${o.subset} | – | ${o.failure ?? 'no result'} | | | | | | | | | | |`;
  const step = r.warmup[0] ?? r.current;
  const where = `${o.failure ?? 'no timed step'}, after '${r.stage}'`;
  return `| ${o.subset} | ${millions(r.parameters)} (${r.tensors} tensors) | – (${where}) | – | – | ${sec(step.forwardBackwardMs)}${r.warmup[0] ? ' (warm-up)' : ''} | ${sec(step.accumulateMs)} | ${sec(step.adamwMs)} | – | ${r.warmup.map((t) => sec(t.totalMs)).join(', ') || '–'} | | | |`;
}
