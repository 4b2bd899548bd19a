import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { readBundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { listCheckpoints } from '../../train/checkpoint.js';
import { fineTune, LOG_FILE, type FineTuneOptions, type TrainEvent } from '../../train/fine-tune.js';
import { linearSchedule, lrFactor, totalOptimizerSteps } from '../../train/optimizer/schedule.js';
import { waitForExit } from '../helpers/child-timeout.js';
import { CLI_TIMEOUT_MS, runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeColorCaptions, writeColorNlvr2, writeColorSnli, writeColorVqa } from '../helpers/synthetic-colors.js';

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const CLI_ENTRY = fileURLToPath(new URL('../helpers/cli-entry.ts', import.meta.url));

async function setup(t: { after(fn: () => void): void }, task: 'vqa' | 'snli' = 'vqa', count = 24) {
  const root = tempDir(t);
  const bundle = join(root, 'demo');
  await buildDemoBundle(bundle);
  const train = await (task === 'vqa' ? writeColorVqa : writeColorSnli)(join(root, 'data'), 'train', count, 3);
  return { root, bundle, train };
}

/** A small run with everything random switched on: augmentation, dropout, accumulation (2), shuffling. */
const smallRun = (bundle: string, train: string, out: string): FineTuneOptions => ({
  bundle, task: 'vqa', train, out, batchSize: 8, microBatchSize: 4, epochs: 2, learningRate: 1e-4, seed: 7, threads: 1, saveEvery: 1, keepCheckpoints: 2,
});

describe('learning-rate schedule (transformers get_linear_schedule_with_warmup)', () => {
  it('rises linearly from 0 over the warmup, then falls linearly to 0 at the last step', () => {
    const s = linearSchedule(100, 0.06);
    assert.equal(s.warmupSteps, 6);
    assert.equal(lrFactor(s, 0), 0);
    assert.equal(lrFactor(s, 3), 3 / 6);
    assert.equal(lrFactor(s, 6), 1);
    assert.equal(lrFactor(s, 53), 47 / 94);
    assert.equal(lrFactor(s, 100), 0);
    assert.equal(lrFactor(s, 120), 0);
  });
  it('takes the warmup as a step count when it is ≥ 1, and counts steps like upstream', () => {
    assert.equal(linearSchedule(50, 10).warmupSteps, 10);
    assert.equal(lrFactor(linearSchedule(50, 0), 0), 1);
    // 1000 micro-batches × 3 epochs ÷ accumulation 64 = 46 steps (integer division).
    assert.equal(totalOptimizerSteps(1000, 3, 64), 46);
  });
});

describe('fine-tune runs', () => {
  it('writes a bundle that evaluate/serve accept, a checkpoint per save, and a JSON Lines log', async (t) => {
    const { root, bundle, train } = await setup(t);
    const out = join(root, 'out');
    const events: TrainEvent[] = [];
    const result = await fineTune({ ...smallRun(bundle, train, out), warmup: 0.5, onEvent: (e) => events.push(e) });
    // 24 examples / 4 = 6 micro-batches per epoch, accumulation 2 → 3 steps per epoch.
    assert.equal(result.step, 6);
    const steps = events.filter((e): e is Extract<TrainEvent, { type: 'step' }> => e.type === 'step');
    assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4, 5, 6]);
    assert.ok(steps.every((s) => s.terms === undefined), 'VQA has one loss term: step events carry no terms');
    // 6 steps, warmup int(6 × 0.5) = 3: the first update uses lr 0, as upstream's LambdaLR.
    assert.deepEqual(steps.map((s) => s.lr), [0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3].map((f) => 1e-4 * f));
    const config = readBundleConfig(out) as ReturnType<typeof readBundleConfig> & { fine_tune?: { step: number; task: string } };
    assert.equal(config.fine_tune?.step, 6);
    assert.equal(config.fine_tune?.task, 'vqa');
    assert.ok(existsSync(join(out, 'onnx', 'vqa.onnx')));
    // The output bundle has the source bundle's precision variants, exported from the trained weights.
    const sourceVariants = readBundleConfig(bundle).graphs!.variants!;
    assert.deepEqual(Object.keys(config.graphs!.variants!), Object.keys(sourceVariants));
    for (const v of Object.values(config.graphs!.variants!)) assert.ok(existsSync(join(out, v.dir, 'vqa.onnx')), `${v.dir}/vqa.onnx`);
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [5, 6], 'keeps the newest --keep-checkpoints');
    const log = readFileSync(join(out, LOG_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainEvent);
    assert.deepEqual(log, events, 'the log holds exactly the events the listener got');
    assert.equal(log.filter((r) => r.type === 'step').length, 6);
    assert.equal(log.at(-1)!.type, 'done');
    // The trained weights differ from the base bundle's; frozen tensors are copied unchanged.
    assert.notEqual(sha(join(out, 'model.safetensors')), sha(join(bundle, 'model.safetensors')));
  });

  for (const task of ['nlvr2', 'irtr'] as const) {
    it(`${task}: trains with dev evaluation each epoch and keeps the best dev bundle`, async (t) => {
      const root = tempDir(t);
      const bundle = join(root, 'demo');
      await buildDemoBundle(bundle);
      const data = join(root, 'data');
      const train = task === 'nlvr2' ? await writeColorNlvr2(data, 'train', 12, 1) : await writeColorCaptions(data, 'train', 1);
      const dev = task === 'nlvr2' ? await writeColorNlvr2(data, 'dev', 6, 2) : await writeColorCaptions(data, 'dev', 2);
      const out = join(root, 'out');
      const events: TrainEvent[] = [];
      const result = await fineTune({ bundle, task, train, dev, out, batchSize: 4, microBatchSize: 4, epochs: 2, learningRate: 1e-4, threads: 1, onEvent: (e) => events.push(e) });
      const evals = events.filter((e): e is Extract<TrainEvent, { type: 'eval' }> => e.type === 'eval');
      assert.equal(evals.length, 2, 'one dev evaluation per epoch');
      const metric = task === 'nlvr2' ? 'accuracy' : 'r_mean';
      assert.ok(evals.every((e) => Number.isFinite(e.metrics[metric])), JSON.stringify(evals));
      assert.equal(result.best?.metric, metric);
      assert.equal(result.best?.value, Math.max(...evals.map((e) => e.metrics[metric]!)));
      const best = readBundleConfig(join(out, 'best')) as ReturnType<typeof readBundleConfig> & { fine_tune?: { step: number; metrics?: Record<string, number> } };
      assert.equal(best.fine_tune?.step, result.best?.step);
      assert.equal(best.fine_tune?.metrics?.[metric], result.best?.value);
    });
  }

  it('--train heads updates the head only: every other tensor is byte-identical to the base', async (t) => {
    const { root, bundle, train } = await setup(t);
    const out = join(root, 'out');
    await fineTune({ ...smallRun(bundle, train, out), subset: 'heads', epochs: 1 });
    const { readSafetensors } = await import('../../bundle/safetensors/read-safetensors.js');
    const before = readSafetensors(join(bundle, 'model.safetensors'));
    const after = readSafetensors(join(out, 'model.safetensors'));
    const changed = [...after].filter(([name, t2]) => Buffer.compare(Buffer.from(t2.data), Buffer.from(before.get(name)!.data)) !== 0).map(([name]) => name);
    assert.ok(changed.length > 0);
    assert.ok(changed.every((name) => name.startsWith('vqa_classifier.')), `changed: ${changed.join(', ')}`);
  });

  it('resumed after an interruption, ends with weights bit-identical to an uninterrupted run', async (t) => {
    const { root, bundle, train } = await setup(t);
    const straight = join(root, 'straight');
    await fineTune(smallRun(bundle, train, straight));

    // Interrupt: stop the run from its event callback right after the checkpoint of step 2.
    const broken = join(root, 'broken');
    await assert.rejects(
      fineTune({ ...smallRun(bundle, train, broken), onEvent: (e) => { if (e.type === 'checkpoint' && e.step === 2) throw new Error('interrupted'); } }),
      /interrupted/,
    );
    assert.equal(listCheckpoints(broken).at(-1)!.step, 2);
    assert.ok(!existsSync(join(broken, 'config.json')), 'an interrupted run is not yet a bundle');
    const resumed = await fineTune({ ...smallRun(bundle, train, broken), resume: true });
    assert.equal(resumed.step, 6);
    assert.equal(sha(join(broken, 'model.safetensors')), sha(join(straight, 'model.safetensors')));
  });

  it('resumed after a kill between a checkpoint and its dev evaluation, runs that evaluation: best/ is the uninterrupted run\'s', async (t) => {
    const { root, bundle, train } = await setup(t);
    const dev = await writeColorVqa(join(root, 'data'), 'dev', 8, 5);
    const run = (out: string): FineTuneOptions => ({ ...smallRun(bundle, train, out), dev, evalEvery: 1 });
    const bestOf = (out: string) => (readBundleConfig(join(out, 'best')) as ReturnType<typeof readBundleConfig> & { fine_tune?: { step: number } }).fine_tune?.step;
    const straight = join(root, 'straight');
    const expected = (await fineTune(run(straight))).best!;
    assert.equal(bestOf(straight), expected.step);

    // Kill the run right after the checkpoint of the step that turns out best, before that step's evaluation.
    const broken = join(root, 'broken');
    const evaluated: number[] = [];
    const kill = (e: TrainEvent) => {
      if (e.type === 'eval') evaluated.push(e.step);
      if (e.type === 'checkpoint' && e.step === expected.step) throw new Error('killed');
    };
    await assert.rejects(fineTune({ ...run(broken), onEvent: kill }), /killed/);
    assert.equal(listCheckpoints(broken).at(-1)!.step, expected.step);
    assert.ok(!evaluated.includes(expected.step), 'the kill came before the evaluation');

    const resumedEvals: number[] = [];
    const resumed = await fineTune({ ...run(broken), resume: true, onEvent: (e) => e.type === 'eval' && resumedEvals.push(e.step) });
    assert.equal(resumedEvals[0], expected.step, 'the pending evaluation runs first');
    assert.deepEqual(resumed.best, expected);
    assert.equal(bestOf(broken), expected.step);
    assert.equal(sha(join(broken, 'best', 'model.safetensors')), sha(join(straight, 'best', 'model.safetensors')));
  });

  it('refuses to resume with different options, and a non-empty --out without --resume or --force', async (t) => {
    const { root, bundle, train } = await setup(t);
    const out = join(root, 'out');
    await fineTune({ ...smallRun(bundle, train, out), epochs: 1 });
    await assert.rejects(fineTune({ ...smallRun(bundle, train, out), epochs: 1, learningRate: 2e-4, resume: true }), (e: BridgeTowerError) => e.code === 'E_RESUME' && /learningRate/.test(e.message));
    await assert.rejects(fineTune({ ...smallRun(bundle, train, out), epochs: 1 }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /--resume/.test(e.message));
    await assert.rejects(fineTune({ ...smallRun(bundle, train, join(root, 'empty')), resume: true }), (e: BridgeTowerError) => e.code === 'E_RESUME' && /drop --resume to start a new run there \(with --force/.test(e.message));
  });

  it('--force starts over in an earlier run folder, finished or stopped early, but never clears other files', async (t) => {
    // 8 examples: one optimizer step per epoch, to keep the three runs short.
    const { root, bundle, train } = await setup(t, 'vqa', 8);
    const run = (out: string) => ({ ...smallRun(bundle, train, out), epochs: 1, saveEvery: undefined, force: true });
    const mine = join(root, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes.md'), 'mine');
    await assert.rejects(fineTune(run(mine)), (e: BridgeTowerError) => e.code === 'E_USAGE' && /is not a bundle/.test(e.message));
    assert.deepEqual(readdirSync(mine), ['notes.md']);

    // A run stopped before it became a bundle: its log and checkpoints, no config.json of its own.
    const stopped = join(root, 'stopped');
    await assert.rejects(fineTune({ ...smallRun(bundle, train, stopped), learningRate: 1e12, warmup: 0 }), (e: BridgeTowerError) => e.code === 'E_DIVERGED');
    assert.equal(existsSync(join(stopped, 'config.json')), false);
    assert.ok(existsSync(join(stopped, LOG_FILE)));
    assert.equal((await fineTune(run(stopped))).step, 1);
    assert.equal(readBundleConfig(stopped).name, 'stopped', 'named after its --out folder, the same on every run');
    assert.equal(readFileSync(join(stopped, LOG_FILE), 'utf8').includes('"type":"diverged"'), false, 'the old log is gone');

    // A finished run's folder is a bundle: --force replaces it too.
    assert.equal((await fineTune(run(stopped))).step, 1);
  });

  it('stops with E_DIVERGED when the loss becomes NaN or infinite, keeping the last good checkpoint', async (t) => {
    const { root, bundle, train } = await setup(t);
    const out = join(root, 'out');
    const error = await fineTune({ ...smallRun(bundle, train, out), learningRate: 1e12, warmup: 0 }).then(
      () => undefined,
      (e: unknown) => e as BridgeTowerError,
    );
    assert.ok(error instanceof BridgeTowerError, 'training with lr 1e12 must diverge');
    assert.equal(error.code, 'E_DIVERGED');
    assert.match(error.message, /NaN|Infinity|gradient norm/);
    const kept = listCheckpoints(out);
    assert.ok(kept.length > 0 && new RegExp(kept.at(-1)!.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).test(error.message), 'the message names the last good checkpoint');
    const log = readFileSync(join(out, LOG_FILE), 'utf8');
    assert.match(log, /"type":"diverged"/);
  });

  it('names the row of an image that does not decode', async (t) => {
    const { root, bundle, train } = await setup(t);
    const lines = readFileSync(train, 'utf8').trim().split('\n');
    const broken = JSON.parse(lines[4]!) as { image: string };
    writeFileSync(join(root, 'data', broken.image), Buffer.from('\x89PNG\r\n\x1a\n truncated'));
    await assert.rejects(fineTune({ ...smallRun(bundle, train, join(root, 'out')), augment: false }), (e: BridgeTowerError) => e.code === 'E_DATA' && /line 5/.test(e.message));
  });

  it('SIGTERM during a run leaves only complete checkpoints, says how to continue, and --resume finishes it identically', async (t) => {
    const { root, bundle, train } = await setup(t, 'snli', 24);
    const straight = join(root, 'straight');
    const common = ['--bundle', bundle, '--task', 'snli', '--train', train, '--batch-size', '8', '--micro-batch-size', '4', '--epochs', '2', '--lr', '1e-4', '--seed', '3', '--threads', '1', '--save-every', '1', '--keep-checkpoints', '3'];
    const first = runCli(['fine-tune', ...common, '--out', straight, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const printed = first.stdout.trim().split('\n').map((line) => JSON.parse(line) as TrainEvent);
    const logged = readFileSync(join(straight, LOG_FILE), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as TrainEvent);
    assert.deepEqual(printed, logged, '--json prints the events of train-log.jsonl, in the same schema');
    const out = join(root, 'out');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, 'fine-tune', ...common, '--out', out, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // The first checkpoint is written: stop the run while it is busy with the next steps.
      if (stdout.includes('"type":"checkpoint"') && child.exitCode === null) child.kill('SIGTERM');
    });
    const [code, signal] = await waitForExit(child, 'fine-tune (stopped by SIGTERM)', CLI_TIMEOUT_MS);
    assert.equal(code, 143, `the run stops itself with 128 + SIGTERM (exit ${code}, signal ${signal}):\n${stderr}`);
    const latest = listCheckpoints(out).at(-1)!;
    assert.ok(latest.step < 6, 'stopped before the end');
    assert.match(stderr, new RegExp(`stopped by SIGTERM after step \\d; the latest checkpoint is .*step-0*${latest.step} \\(step ${latest.step}\\): run the same command with --resume`));
    const stoppedEvents = readFileSync(join(out, LOG_FILE), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as TrainEvent).filter((e) => e.type === 'stopped');
    assert.deepEqual(stoppedEvents.map((e) => e.type === 'stopped' && [e.signal, e.checkpoint?.step]), [['SIGTERM', latest.step]], 'the log records where it stopped');
    const names = existsSync(join(out, 'checkpoints')) ? readdirSync(join(out, 'checkpoints')) : [];
    assert.deepEqual(names.filter((n) => n.startsWith('.')), [], 'no partial checkpoint folder');
    assert.ok(listCheckpoints(out).length >= 1);
    const resumed = runCli(['fine-tune', ...common, '--out', out, '--resume', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(sha(join(out, 'model.safetensors')), sha(join(straight, 'model.safetensors')));
  });
});

describe('bridgetower fine-tune (CLI)', () => {
  it('explains itself and refuses bad options with usage errors', () => {
    const help = runCli(['fine-tune', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--trainable all\|cross-modal\|heads/);
    assert.match(help.stdout, /snli +lr 3e-6, head ×10, cross-modal ×5, warmup 0.06, batch 64/);
    assert.equal(runCli(['fine-tune', '--task', 'vqa']).code, 2);
    assert.match(runCli(['fine-tune', '--bundle', 'x', '--task', 'mlm', '--train', 'a', '--out', 'o']).stderr, /--task must be one of vqa, snli, nlvr2, irtr, pretrain/);
    assert.match(runCli(['fine-tune', '--bundle', 'x', '--task', 'vqa', '--train', 'a', '--out', 'o', '--lr', 'fast']).stderr, /--lr must be a number/);
    assert.match(runCli(['fine-tune', '--bundle', 'x', '--task', 'vqa', '--train', 'a', '--out', 'o', '--adamw-engine', 'fast']).stderr, /--adamw-engine must be one of native, wasm, js, ort, got 'fast'/);
  });

  it('accepts --train heads beside the data, and prints a summary', async (t) => {
    const { root, bundle, train } = await setup(t, 'snli', 12);
    const out = join(root, 'out');
    const r = runCli(['fine-tune', '--bundle', bundle, '--task', 'snli', '--train', train, '--train', 'heads', '--out', out, '--batch-size', '4', '--epochs', '1', '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fine-tuned 3 steps/);
    assert.match(r.stderr, /3 optimizer steps/);
    assert.ok(existsSync(join(out, 'model.safetensors')));
  });

  it('without the native AdamW addon, says once that the optimizer runs on wasm and how to build the addon', async (t) => {
    const { root, bundle, train } = await setup(t, 'snli', 8);
    const args = ['fine-tune', '--bundle', bundle, '--task', 'snli', '--train', train, '--train', 'heads', '--batch-size', '4', '--epochs', '1', '--threads', '1'];
    const r = runCli([...args, '--out', join(root, 'a')], { env: { BRIDGETOWER_ADAMW_ADDON: join(root, 'no-addon.node') } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.match(/warning: AdamW runs on the wasm engine[^\n]*not built[^\n]*npm run build:native/g)?.length, 1, r.stderr);
    // Asked for by name, wasm is no fallback: nothing to warn about.
    const chosen = runCli([...args, '--out', join(root, 'b'), '--adamw-engine', 'wasm'], { env: { BRIDGETOWER_ADAMW_ADDON: join(root, 'no-addon.node') } });
    assert.equal(chosen.code, 0, chosen.stderr);
    assert.doesNotMatch(chosen.stderr, /AdamW runs on the wasm engine/);
  });

  it('warns when the global batch exceeds the data, then trains one step per epoch over all of it, under --name', async (t) => {
    const { root, bundle, train } = await setup(t, 'snli', 6);
    const out = join(root, 'out');
    const r = runCli(['fine-tune', '--bundle', bundle, '--task', 'snli', '--train', train, '--out', out, '--name', 'colors-snli', '--batch-size', '16', '--micro-batch-size', '4', '--epochs', '1', '--save-every', '1', '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: the global batch \(--batch-size 16\) is larger than the 6 training examples: each epoch is one optimizer step over all of them \(1 step in all\); pass --batch-size 6 or less/);
    assert.match(r.stderr, /fine-tune: 6 examples, 2 micro-batches per epoch, accumulation 4, 1 optimizer step \(/);
    assert.match(r.stdout, /^fine-tuned 1 step → /);
    assert.equal(readBundleConfig(out).name, 'colors-snli');
    assert.equal(readBundleConfig(listCheckpoints(out).at(-1)!.dir).name, 'colors-snli-step1');
  });
});
