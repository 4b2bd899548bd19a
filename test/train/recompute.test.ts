import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import type { BridgeTowerError } from '../../common/errors.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import { layerSegments } from '../../train/autodiff/recompute.js';
import { FlatLayout } from '../../train/flat-parameters.js';
import { GradientStep } from '../../train/gradient-step.js';
import { estimateTrainingMemory } from '../../train/memory-model.js';
import { FINE_TUNE_TASKS } from '../../train/tasks.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { l2Comparison } from '../helpers/parity.js';
import { writeColorVqa } from '../helpers/synthetic-colors.js';
import { tempDir } from '../helpers/temp-dir.js';
import { vqaBatch } from '../helpers/vqa-batch.js';

/**
 * `recompute: 'layers'` (train/autodiff/recompute.ts): the backward pass recomputes every encoder
 * and cross-modal layer instead of keeping its intermediates. The gradients are those of the plain
 * training graph (within 1e-6 relative L2 per tensor, dropout on: the masks are recomputed from
 * the same seed), and the modelled activation peak falls.
 */
const TOLERANCE = 1e-6;
/**
 * Attention key biases get a gradient that is zero mathematically (softmax ignores a shift shared
 * by all keys); both graphs return rounding noise there, so they are held to noise level instead.
 */
const ZERO_GRADIENT = /(attention|crossattention)\.self\.key\.bias$/;
const NOISE = 1e-6;

describe('activation recomputation per layer', () => {
  it('finds one segment per encoder and cross-modal layer, each reading only its own layer weights', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    const arch = readBundleConfig(bundle).architecture;
    const forward = buildTrainingGraph(bundle, 'vqa', { forwardOnly: true, dropout: 0.1 }).graph;
    const segments = layerSegments(forward.nodes);
    assert.equal(segments.length, arch.text.num_layers + arch.vision.num_layers + 2 * arch.cross_modal.num_layers);
    const names = new Set<string>();
    for (const segment of segments) {
      assert.ok(segment.length > 10, 'a layer is more than a few nodes');
      const layers = new Set(segment.flatMap((n) => n.inputs.map((i) => /^(.*(?:layer|resblocks|layers)\.\d+)\./.exec(i)?.[1]).filter((x) => x !== undefined)));
      assert.equal(layers.size, 1, `a segment reads the weights of ${[...layers].join(', ')}`);
      for (const node of segment) {
        assert.ok(!names.has(node.name), `${node.name} is in two segments`);
        names.add(node.name);
      }
    }
  });

  it('gives the gradients of the plain graph (dropout on), with a lower modelled activation peak', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    const plain = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1 });
    const layered = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1, recompute: 'layers' });
    assert.deepEqual(layered.parameters, plain.parameters);
    assert.ok(layered.graph.nodes.length > plain.graph.nodes.length, 'the recomputed layers are extra nodes');
    const layout = new FlatLayout(plain.parameters, FINE_TUNE_TASKS.vqa.recipe);
    const params = layout.readFromBundle(bundle);
    const arch = readBundleConfig(bundle).architecture;
    const batch = vqaBatch(4, 20, arch.vision.image_size, plain.numLabels, arch.text.vocab_size);
    const run = async (training: typeof plain) => {
      const step = await GradientStep.open(training, { threads: 1 });
      try {
        const grads = new Float32Array(layout.total);
        const out = await step.run(batch, params, layout, 1234, grads);
        return { loss: out.loss, grads };
      } finally {
        await step.release();
      }
    };
    const a = await run(plain);
    const b = await run(layered);
    // The same forward, though ONNX Runtime may fuse the two graphs' nodes differently.
    assert.ok(Math.abs(b.loss - a.loss) <= TOLERANCE * Math.abs(a.loss), `loss ${b.loss} recomputed, ${a.loss} plain`);
    const failures: string[] = [];
    let worst = 0;
    for (const slot of layout.slots) {
      const e = l2Comparison(layout.view(b.grads, slot.name), layout.view(a.grads, slot.name));
      if (ZERO_GRADIENT.test(slot.name)) {
        if (!(e.maxAbs <= NOISE)) failures.push(`${slot.name}: max abs ${e.maxAbs} on a mathematically zero gradient`);
        continue;
      }
      const rel = e.ref === 0 ? e.maxAbs : e.rel;
      worst = Math.max(worst, rel);
      if (!(rel <= TOLERANCE)) failures.push(`${slot.name}: relative L2 ${rel}`);
    }
    t.diagnostic(`worst relative L2 over ${layout.slots.length} gradients: ${worst.toExponential(2)}`);
    assert.deepEqual(failures, []);
    const shape = { batch: 4, textLength: 20, accumulation: 1 };
    const before = estimateTrainingMemory(plain, layout, shape).activations;
    const after = estimateTrainingMemory(layered, layout, shape).activations;
    t.diagnostic(`modelled activation peak: ${(before / 1e6).toFixed(1)} MB plain, ${(after / 1e6).toFixed(1)} MB recomputed`);
    assert.ok(after < before, 'recomputation lowers the modelled activation peak');
  });

  it('fine-tune --recompute layers trains; resuming it with another choice is refused, naming recompute', async (t) => {
    const root = tempDir(t);
    const bundle = join(root, 'demo');
    await buildDemoBundle(bundle);
    const train = await writeColorVqa(join(root, 'data'), 'train', 8, 3);
    const out = join(root, 'out');
    const events: TrainEvent[] = [];
    const run = { bundle, task: 'vqa' as const, train, out, batchSize: 4, microBatchSize: 4, epochs: 1, seed: 7, threads: 1 };
    const result = await fineTune({ ...run, recompute: 'layers', onEvent: (e) => events.push(e) });
    assert.equal(result.step, 2);
    assert.ok(events.filter((e) => e.type === 'step').every((e) => e.type === 'step' && Number.isFinite(e.loss)));
    await assert.rejects(fineTune({ ...run, recompute: 'none', resume: true }), (e: BridgeTowerError) => e.code === 'E_RESUME' && /recompute/.test(e.message));
    await assert.rejects(fineTune({ ...run, out: join(root, 'other'), recompute: 'sometimes' as 'layers' }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /--recompute/.test(e.message));
  });
});
