import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BridgeTowerError } from '../../common/errors.js';
import { readBundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { fineTune, type FineTuneOptions } from '../../train/fine-tune.js';
import { FlatLayout } from '../../train/flat-parameters.js';
import { buildOptimizerGraphs } from '../../train/optimizer-graph.js';
import { openStepRunner, optimizerInGraph, type StepRunner } from '../../train/step-runner.js';
import { FINE_TUNE_TASKS } from '../../train/tasks.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { vqaBatch } from '../helpers/vqa-batch.js';
import { writeColorVqa } from '../helpers/synthetic-colors.js';

/**
 * `--optimizer-in-graph on` (train/optimizer-graph.ts, train/in-graph-step.ts): the gradient
 * accumulation and the AdamW update run inside the training graph. Its parameters and moments are
 * those of the separate path (the gradient graph, then the `ort` AdamW engine: the graph
 * train/optimizer/adamw.ts defines) bit for bit, at accumulation 1 and 2 (1/2 is exact, so the
 * in-graph acc + g·0.5 rounds like addScaled's float64 sum).
 */

const differing = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

async function demo(t: { after(fn: () => void): void }) {
  const root = tempDir(t);
  const bundle = join(root, 'demo');
  await buildDemoBundle(bundle);
  return { root, bundle };
}

describe('the optimizer folded into the training graph', () => {
  it('outputs no gradient: acc_out per parameter while accumulating, param_out/m_out/v_out and grad_sq on the step', async (t) => {
    const { bundle } = await demo(t);
    const training = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1 });
    const layout = new FlatLayout(training.parameters, FINE_TUNE_TASKS.vqa.recipe);
    const names = (values: ReadonlyArray<{ name: string }>) => values.map((v) => v.name);
    const single = buildOptimizerGraphs(training, layout, 1);
    assert.equal(single.accumulate, undefined, 'accumulation 1 needs no accumulating graph');
    assert.ok(!names(single.step.inputs).some((n) => n.startsWith('acc.')), 'accumulation 1: the step reads its own gradient only');
    const graphs = buildOptimizerGraphs(training, layout, 2);
    for (const graph of [graphs.accumulate!, graphs.step]) {
      assert.ok(!names(graph.outputs).some((n) => n.startsWith('grad.')), `${graph.name} outputs a gradient`);
      assert.deepEqual(names(graph.outputs).slice(0, 2), ['loss', 'logits']);
    }
    const p = training.parameters[0]!.name;
    assert.ok(names(graphs.accumulate!.inputs).includes(`acc.${p}`) && names(graphs.accumulate!.inputs).includes('grad_scale'));
    assert.ok(names(graphs.accumulate!.outputs).includes(`acc_out.${p}`));
    const stepOutputs = names(graphs.step.outputs);
    for (const prefix of ['param_out.', 'm_out.', 'v_out.']) assert.equal(stepOutputs.filter((n) => n.startsWith(prefix)).length, training.parameters.length, prefix);
    assert.ok(stepOutputs.includes('grad_sq'));
    const groups = names(graphs.step.inputs).filter((n) => n.startsWith('step_size.'));
    assert.deepEqual(groups, layout.groups.map((g) => `step_size.${g.group.group}`), 'one step size per optimizer group');
  });

  for (const accumulation of [1, 2]) {
    it(`gives the separate path's parameters and moments bit for bit (accumulation ${accumulation}, 3 steps, dropout on)`, async (t) => {
      const { bundle } = await demo(t);
      const training = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1 });
      const recipe = FINE_TUNE_TASKS.vqa.recipe;
      const layout = new FlatLayout(training.parameters, recipe);
      const arch = readBundleConfig(bundle).architecture;
      const batch = vqaBatch(2, 7, arch.vision.image_size, training.numLabels, arch.text.vocab_size);
      const session = { threads: 1 };
      const run = async (runner: StepRunner) => {
        let params = layout.readFromBundle(bundle);
        const losses: number[] = [];
        const norms: number[] = [];
        try {
          for (let micro = 0; micro < 3 * accumulation; micro++) {
            const last = (micro + 1) % accumulation === 0;
            // Step 1 at lr 0 (warmup's first step), then larger steps: every group's scalars vary.
            const out = await runner.microBatch(batch, params, 1000 + micro, last ? [0, 1, 0.5][Math.floor(micro / accumulation)] : undefined);
            losses.push(out.loss);
            assert.equal(out.stepped !== undefined, last, 'steps exactly on the last micro-batch');
            if (out.stepped) {
              params = out.stepped.params;
              norms.push(out.stepped.gradNorm);
            }
          }
          return { params, m: runner.m.slice(), v: runner.v.slice(), steps: runner.steps, losses, norms };
        } finally {
          await runner.release();
        }
      };
      const separate = await run(await openStepRunner(training, layout, { accumulation, inGraph: false, engine: 'ort', session }));
      const folded = await run(await openStepRunner(training, layout, { accumulation, inGraph: true, session }));
      assert.equal(folded.steps, 3);
      assert.deepEqual(folded.losses, separate.losses);
      assert.ok(differing(separate.params, layout.readFromBundle(bundle)) > layout.total / 2, 'the steps move the parameters');
      for (const buffer of ['params', 'm', 'v'] as const) assert.equal(differing(folded[buffer], separate[buffer]), 0, `${buffer} differs`);
      // The folded norm sums each tensor's squares in float32: a logged value, not a parity one.
      for (const [i, norm] of folded.norms.entries()) assert.ok(Math.abs(norm - separate.norms[i]!) <= 1e-5 * separate.norms[i]!, `step ${i + 1}: norm ${norm} vs ${separate.norms[i]}`);
    });
  }
});

describe('fine-tune --optimizer-in-graph', () => {
  const smallRun = (bundle: string, train: string, out: string): FineTuneOptions => ({
    bundle, task: 'vqa', train, out, batchSize: 8, microBatchSize: 4, epochs: 1, learningRate: 1e-4, seed: 7, threads: 1, saveEvery: 1,
  });

  it('on trains the weights of off bit for bit (accumulation 2, dropout, augmentation), and resumes bit-identically', async (t) => {
    const { root, bundle } = await demo(t);
    const train = await writeColorVqa(join(root, 'data'), 'train', 24, 3);
    const off = join(root, 'off');
    await fineTune({ ...smallRun(bundle, train, off), optimizerInGraph: 'off' });
    const on = join(root, 'on');
    await fineTune({ ...smallRun(bundle, train, on), optimizerInGraph: 'on' });
    assert.equal(sha(join(on, 'model.safetensors')), sha(join(off, 'model.safetensors')));

    const broken = join(root, 'broken');
    await assert.rejects(
      fineTune({ ...smallRun(bundle, train, broken), optimizerInGraph: 'on', onEvent: (e) => { if (e.type === 'checkpoint' && e.step === 2) throw new Error('interrupted'); } }),
      /interrupted/,
    );
    await assert.rejects(fineTune({ ...smallRun(bundle, train, broken), optimizerInGraph: 'off', resume: true }), (e: BridgeTowerError) => e.code === 'E_RESUME' && /optimizerInGraph/.test(e.message));
    const resumed = await fineTune({ ...smallRun(bundle, train, broken), optimizerInGraph: 'on', resume: true });
    assert.equal(resumed.step, 3);
    assert.equal(sha(join(broken, 'model.safetensors')), sha(join(on, 'model.safetensors')));
  });

  it('refuses on with --clip-grad-norm, and an unknown choice, before reading anything', async (t) => {
    const root = tempDir(t);
    const base: FineTuneOptions = { bundle: join(root, 'absent'), task: 'vqa', train: join(root, 'absent.jsonl'), out: join(root, 'out') };
    await assert.rejects(fineTune({ ...base, optimizerInGraph: 'on', clipGradNorm: 1 }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /--clip-grad-norm/.test(e.message) && /--optimizer-in-graph off/.test(e.message));
    await assert.rejects(fineTune({ ...base, optimizerInGraph: 'yes' as 'on' }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /auto, on, off/.test(e.message));
  });

  it('the CLI takes --optimizer-in-graph and refuses on with --clip-grad-norm as a usage error', () => {
    assert.match(runCli(['fine-tune', '--help']).stdout, /--optimizer-in-graph auto\|on\|off/);
    const refused = runCli(['fine-tune', '--bundle', 'x', '--task', 'vqa', '--train', 'a', '--out', 'o', '--optimizer-in-graph', 'on', '--clip-grad-norm', '1']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--clip-grad-norm needs the global gradient norm/);
  });

  it('auto is on for CUDA only, and off whenever clipping is asked for', () => {
    assert.equal(optimizerInGraph('auto', 'cuda', undefined), true);
    assert.equal(optimizerInGraph('auto', 'cpu', undefined), false);
    assert.equal(optimizerInGraph('auto', undefined, undefined), false);
    assert.equal(optimizerInGraph('auto', 'cuda', 1), false);
    assert.equal(optimizerInGraph('off', 'cuda', undefined), false);
    assert.equal(optimizerInGraph('on', 'cpu', undefined), true);
  });
});
