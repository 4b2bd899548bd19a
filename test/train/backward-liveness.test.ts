import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { GraphBuilder } from '../../models/ir/builder.js';
import { withoutDeadNodes } from '../../models/ir/dead-nodes.js';
import type { Graph, Node } from '../../models/ir/graph.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { differentiate } from '../../train/autodiff/backward.js';
import { activationPeak } from '../../train/memory-model.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * What the backward pass reads of the forward decides the training step's peak memory: every
 * forward activation a gradient node reads stays alive from its forward node to that gradient
 * node. These tests hold the training graph to reading only what its gradients need — no Shape of
 * an activation (its shape is known when the graph is built), no transposed copy of a weight, no
 * four-byte dropout mask, no nodes whose results nothing uses (docs/fine-tune.md, "Memory").
 */

const FORWARD_PREFIX = 'grad_';
const isBackward = (node: Node) => node.name.startsWith(FORWARD_PREFIX);

function producers(graph: Graph): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const node of graph.nodes) for (const o of node.outputs) out.set(o, node);
  return out;
}

/** Forward activations (node outputs, not inputs or initializers) that backward nodes of `op` read. */
function backwardReadsOfForward(graph: Graph, op: string): { node: Node; value: string; producer: Node }[] {
  const from = producers(graph);
  const reads: { node: Node; value: string; producer: Node }[] = [];
  for (const node of graph.nodes) {
    if (!isBackward(node) || node.op !== op) continue;
    for (const input of node.inputs) {
      const producer = from.get(input);
      if (producer && !isBackward(producer)) reads.push({ node, value: input, producer });
    }
  }
  return reads;
}

describe('what the backward pass keeps of the forward', () => {
  it('the demo bundle’s training graph reads no forward activation for its shape, no transposed weight and no float dropout mask', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    for (const recompute of ['none', 'layers'] as const) {
      const { graph } = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1, recompute });
      const shapeReads = backwardReadsOfForward(graph, 'Shape').filter((r) => r.producer.op !== 'Shape');
      assert.deepEqual(
        shapeReads.map((r) => `${r.node.name} reads ${r.value} (${r.producer.op})`),
        [],
        `${recompute}: a Shape in the backward keeps a forward activation alive`,
      );
      // The Linear kernels Wᵀ: read by their forward MatMul only; the backward reads W itself.
      const from = producers(graph);
      const parameters = new Set(graph.inputs.map((i) => i.name));
      const kernels = graph.nodes.filter((n) => !isBackward(n) && n.op === 'Transpose' && parameters.has(n.inputs[0]!));
      assert.ok(kernels.length > 10, 'the training graph transposes its Linear weights');
      for (const kernel of kernels) {
        const readers = graph.nodes.filter((n) => n.inputs.includes(kernel.outputs[0]!));
        assert.deepEqual(
          readers.filter(isBackward).map((n) => n.name),
          [],
          `${recompute}: the backward reads the transposed copy ${kernel.outputs[0]} of ${kernel.inputs[0]}`,
        );
      }
      // Dropout: the backward reads the mask as booleans (one byte), not as a float tensor.
      const whereReads = backwardReadsOfForward(graph, 'Where');
      assert.ok(whereReads.length > 0, `${recompute}: dropout gradients select with the mask`);
      for (const r of whereReads.filter((x) => x.node.inputs[0] === x.value)) assert.equal(r.producer.op, 'Not', `${recompute}: ${r.node.name} selects with ${r.value}`);
      // (keep = Not(Less(u, p)), models/layers/dropout.ts; other Nots, such as the padding mask, may be cast.)
      const isKeepMask = (name: string) => from.get(name)?.op === 'Not' && from.get(from.get(name)!.inputs[0]!)?.op === 'Less';
      assert.ok(graph.nodes.some((n) => n.outputs.some(isKeepMask)), `${recompute}: the graph has dropout masks`);
      assert.equal(graph.nodes.filter((n) => n.op === 'Cast' && isKeepMask(n.inputs[0]!)).length, 0, `${recompute}: a dropout mask is cast to float`);
      // Nothing is computed that no output needs.
      assert.equal(withoutDeadNodes(graph).nodes.length, graph.nodes.length, `${recompute}: the training graph has dead nodes`);
    }
  });

  it('keeps the batch symbolic through computed shapes, so broadcast gradients reduce over constant axes', () => {
    // The class-token pattern of CLIP's embeddings: a row expanded to Shape(pixels)[0:1] ++ [1, W].
    const b = new GraphBuilder('expand', { lookup: () => undefined });
    const x = b.input('x', 'float32', ['batch', 3, 4]);
    const row = b.input('row', 'float32', [1, 1, 4]);
    const batch = b.op('Slice', [b.op('Shape', [x]), b.ints([0]), b.ints([1])]);
    const rows = b.op('Expand', [row, b.op('Concat', [batch, b.ints([1, 4])], { axis: 0 })]);
    assert.deepEqual(rows.shape, ['batch', 1, 4]);
    const joined = b.op('Concat', [rows, x], { axis: 1 });
    assert.deepEqual(joined.shape, ['batch', 4, 4]);
    const reshaped = b.op('Reshape', [joined, b.op('Concat', [batch, b.ints([16])], { axis: 0 })]);
    assert.deepEqual(reshaped.shape, ['batch', 16]);
  });

  it('a bias, a scale and a reshape differentiate without reading the activation they act on', async () => {
    const b = new GraphBuilder('linear', { lookup: () => undefined });
    const x = b.input('x', 'float32', ['batch', 'seq', 4]);
    const w = b.input('w', 'float32', [3, 4]);
    const bias = b.input('bias', 'float32', [3]);
    const y = b.op('Add', [b.op('MatMul', [x, b.op('Transpose', [w], { perm: [1, 0] })]), bias]);
    const heads = b.op('Reshape', [b.op('Div', [y, b.scalar(2)]), b.ints([0, 0, 3, 1])]);
    const loss = b.op('ReduceSum', [b.op('Mul', [heads, heads])], { keepdims: 0 });
    b.output(loss, 'loss');
    const graph = differentiate(b.build(), 'loss', ['w', 'bias', 'x']);
    assert.deepEqual(backwardReadsOfForward(graph, 'Shape'), [], 'no Shape of a forward value in the backward');
    assert.equal(graph.nodes.filter((n) => n.op === 'NonZero').length, 0, 'broadcast axes are constants');
    // And the gradients are right: loss = Σ (y/2)², so dL/dbias = Σ_rows y/2, dL/dx = (y/2)·W, dL/dW = (y/2)ᵀx.
    const session = await ort.InferenceSession.create(serializeModel(graph));
    const [batchN, seq] = [2, 3];
    const xs = Float32Array.from({ length: batchN * seq * 4 }, (_, i) => Math.sin(i + 1));
    const ws = Float32Array.from({ length: 12 }, (_, i) => Math.cos(i * 0.7));
    const bs = Float32Array.of(0.1, -0.2, 0.3);
    const out = await session.run({ x: new ort.Tensor('float32', xs, [batchN, seq, 4]), w: new ort.Tensor('float32', ws, [3, 4]), bias: new ort.Tensor('float32', bs, [3]) });
    const half = Array.from({ length: batchN * seq }, (_, r) => [0, 1, 2].map((o) => (bs[o]! + [0, 1, 2, 3].reduce((a, k) => a + xs[r * 4 + k]! * ws[o * 4 + k]!, 0)) / 2));
    const gBias = [0, 1, 2].map((o) => half.reduce((a, row) => a + row[o]!, 0));
    const gW = [0, 1, 2].flatMap((o) => [0, 1, 2, 3].map((k) => half.reduce((a, row, r) => a + row[o]! * xs[r * 4 + k]!, 0)));
    const gX = half.flatMap((row) => [0, 1, 2, 3].map((k) => row.reduce((a, v, o) => a + v * ws[o * 4 + k]!, 0)));
    const close = (got: Float32Array, want: number[], what: string) => want.forEach((v, i) => assert.ok(Math.abs(got[i]! - v) < 1e-5 * (1 + Math.abs(v)), `${what}[${i}] = ${got[i]}, expected ${v}`));
    close(out['grad.bias']!.data as Float32Array, gBias, 'grad.bias');
    close(out['grad.w']!.data as Float32Array, gW, 'grad.w');
    close(out['grad.x']!.data as Float32Array, gX, 'grad.x');
    await session.release();
  });

  it('withoutDeadNodes drops what no output reads, with its constants, and keeps the rest in order', () => {
    const b = new GraphBuilder('dead', { lookup: () => undefined });
    const x = b.input('x', 'float32', [2]);
    const used = b.op('Mul', [x, b.scalar(3)]);
    b.op('Add', [b.op('Neg', [x]), b.scalar(5)]);
    b.output(b.op('Sigmoid', [used]), 'y');
    const graph = b.build();
    const pruned = withoutDeadNodes(graph);
    assert.deepEqual(pruned.nodes.map((n) => n.op), ['Mul', 'Sigmoid', 'Identity']);
    assert.equal(pruned.initializers.length, 1, 'the dead Add’s constant is gone');
    assert.equal(withoutDeadNodes(pruned), pruned, 'a graph without dead nodes comes back as it is');
  });

  it('the demo bundle’s modelled activation peak is what its live values need, not its dead ones', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    const { graph } = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1 });
    const bound = { batch: 4, seq: 12 };
    assert.equal(activationPeak(withoutDeadNodes(graph), bound).peak, activationPeak(graph, bound).peak);
    assert.equal(activationPeak(graph, bound).unsized, 0, 'every activation is sized once the batch is known');
  });
});
