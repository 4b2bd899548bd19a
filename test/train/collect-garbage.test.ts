import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { collectGarbage } from '../../common/collect-garbage.js';
import { GraphBuilder } from '../../models/ir/builder.js';
import { serializeModel } from '../../models/ir/serialize.js';

// Why GradientStep.run collects: the binding hands back a copy of an output it wrote into a
// preallocated tensor. If a later onnxruntime-node stops copying, this fails and the collection can go.
test('onnxruntime-node returns a copy of an output fetched into a preallocated tensor', async () => {
  const b = new GraphBuilder('double', { lookup: () => undefined });
  const x = b.input('x', 'float32', ['n']);
  b.output(b.op('Add', [x, x]), 'y', ['n']);
  const session = await ort.InferenceSession.create(serializeModel(b.build()), { executionProviders: ['cpu'] });
  try {
    const into = new Float32Array(4);
    const results = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [4]) }, { y: new ort.Tensor('float32', into, [4]) });
    assert.deepEqual([...into], [2, 4, 6, 8], 'ONNX Runtime writes the preallocated buffer');
    const returned = results.y!.data as Float32Array;
    assert.deepEqual([...returned], [2, 4, 6, 8]);
    assert.notEqual(returned.buffer, into.buffer, 'the returned tensor is another buffer');
    returned[0] = 99;
    assert.equal(into[0], 2, 'a copy, not a second view of the same memory');
  } finally {
    await session.release();
  }
});

test('collectGarbage frees an unreferenced buffer now, without --expose-gc', async () => {
  let freed = false;
  const registry = new FinalizationRegistry(() => {
    freed = true;
  });
  (() => {
    registry.register(new Float32Array(1 << 20), 'buffer');
  })();
  collectGarbage();
  // Finalizers run as a task after the collection that found the object dead.
  for (let i = 0; i < 20 && !freed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(freed, 'the dropped buffer was collected');
  collectGarbage(); // a second call reuses the same collector
});
