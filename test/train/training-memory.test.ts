import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GraphBuilder } from '../../models/ir/builder.js';
import { activationPeak } from '../../train/memory-model.js';
import { buildScaledBundle, type Scale } from '../helpers/scaled-bundle.js';
import { runMemoryProbe } from '../helpers/memory-probe-runner.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The peak-memory model (train/memory-model.ts) and a training step held to it: a small model's
 * measured step peak stays within a bound computed from the model, and step 2 needs no more
 * than step 1 (+ 5 %) — the growth ONNX Runtime's memory-pattern planning caused
 * (docs/fine-tune.md, "Memory"). The measurement runs in a fresh child process, Linux only (VmHWM
 * reset through /proc/self/clear_refs).
 */

/** Small enough for a test (≈ 2.6 M parameters, 96 px), big enough that activations and moments dominate the step. */
const SCALE: Scale = { hidden: 128, layers: 2, crossLayers: 1, imageSize: 96, heads: 4 };
/**
 * What the model leaves out, as a factor on what it counts: the CPU arena's rounding and
 * power-of-two region growth, MLAS packing buffers per thread, glibc's per-thread heaps.
 */
const ALLOWANCE = 1.6;
const STEP2_GROWTH = 0.05;


describe('peak-memory model', () => {
  it('counts the live intermediates of a graph by liveness, with the batch dim bound', () => {
    const b = new GraphBuilder('chain', { lookup: () => undefined });
    const x = b.input('x', 'float32', ['batch', 4]);
    const a = b.op('Mul', [x, x]); // [batch, 4]
    const c = b.op('Add', [a, x]); // a still live while c is made
    const d = b.op('Mul', [c, c]); // a freed; c live while d is made
    b.output(b.op('ReduceSum', [d]), 'loss', []);
    b.output(b.op('Add', [x, x]), 'grad.x', ['batch', 4]); // a gradient output: the flat buffer, not an intermediate
    const graph = b.build();
    const row = 4 * 4;
    for (const batch of [1, 3]) assert.deepEqual(activationPeak(graph, { batch }), { peak: 2 * row * batch, unsized: 0 });
  });

  it('holds a small model\'s training step: peak within the modelled bound, step 2 within 5 % of step 1', { skip: !existsSync('/proc/self/clear_refs') && 'needs Linux /proc/self/clear_refs' }, async (t) => {
    const bundle = join(tempDir(t), 'small');
    await buildScaledBundle(bundle, SCALE);
    const { setup, steps } = await runMemoryProbe({ bundle, batch: 8, textLength: 40, steps: 2, train: 'all', memoryPattern: false, outputs: 'into', threads: 2 });
    const e = setup.estimate;
    assert.equal(e.unsizedValues, 0, 'every intermediate of the training graph is sized');
    assert.equal(e.moments, 2 * e.parameters);
    const modelled = e.moments + e.gradients + e.activations;
    const [one, two] = steps.map((s) => s.peak - setup.afterOpen) as [number, number];
    const mb = (x: number) => `${(x / 1e6).toFixed(1)} MB`;
    t.diagnostic(`after open ${mb(setup.afterOpen)}; model: moments ${mb(e.moments)} + gradients ${mb(e.gradients)} + activations ${mb(e.activations)} = ${mb(modelled)}; measured step peaks − after open: ${mb(one)}, ${mb(two)}`);
    // The buffers the step writes are really resident: the measurement sees the step.
    assert.ok(one >= e.moments + e.gradients, `step 1 added ${mb(one)}, less than its moments and gradient buffer`);
    assert.ok(Math.max(one, two) <= ALLOWANCE * modelled, `a step added ${mb(Math.max(one, two))}, over ${ALLOWANCE} × the modelled ${mb(modelled)}`);
    assert.ok(steps[1]!.peak <= (1 + STEP2_GROWTH) * steps[0]!.peak, `step 2 peaked at ${mb(steps[1]!.peak)}, step 1 at ${mb(steps[0]!.peak)}`);
  });
});
