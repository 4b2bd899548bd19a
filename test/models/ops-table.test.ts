import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { readBundleConfig } from '../../bundle/config.js';
import { DTYPES } from '../../bundle/tensors/dtype.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { GRAPHS } from '../../models/bridgetower/graphs.js';
import { float, GraphBuilder, type WeightSource } from '../../models/ir/builder.js';
import { ELEMENT_TYPES, elemTypeFromOnnx, type ElemType } from '../../models/ir/element-types.js';
import type { Graph, Value } from '../../models/ir/graph.js';
import { MS_DOMAIN } from '../../models/ir/onnx-schema.js';
import { isOpName, OP_NAMES, OPS, type OpName } from '../../models/ir/ops.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { safetensorsWeightSource } from '../../models/ir/weights.js';
import { toOrtTensor } from '../../runtime/session.js';
import { differentiate } from '../../train/autodiff/backward.js';
import { GRADIENT_RULES } from '../../train/autodiff/gradient-rules.js';
import { buildAdamWGraph } from '../../train/optimizer/adamw.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The closed op set of the graph IR (models/ir/ops.ts): every graph the project builds uses only
 * ops of the table, inference gives every value at least its rank, the gradient table of
 * train/autodiff agrees with the op table, and broken rules are internal errors, never silently
 * unknown shapes.
 */

const NO_WEIGHTS: WeightSource = { lookup: () => undefined };
const isInternal = (pattern: RegExp) => (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_INTERNAL' && pattern.test(e.message);

const root = tempDir({ after });
const bundle = join(root, 'demo');
let arch: BridgeTowerArchitecture;
before(async () => {
  await buildDemoBundle(bundle);
  arch = readBundleConfig(bundle).architecture;
});

/** Every graph the demo bundle's code builds: inference graphs (fp32, fp16, fused), training graphs per task with dropout, AdamW. */
let built: Array<{ label: string; graph: Graph }> | undefined;
function everyGraph(): Array<{ label: string; graph: Graph }> {
  built ??= buildEveryGraph();
  return built;
}

function buildEveryGraph(): Array<{ label: string; graph: Graph }> {
  const onnxDir = join(bundle, 'onnx');
  const fp32 = safetensorsWeightSource(join(onnxDir, 'model.safetensors'), onnxDir);
  const fp16: WeightSource = { lookup: (name) => { const w = fp32.lookup(name); return w && { ...w, dtype: w.dtype === 'float32' ? 'float16' : w.dtype }; } };
  const graphs: Array<{ label: string; graph: Graph }> = [];
  for (const [dtype, weights] of [['float32', fp32], ['float16', fp16]] as const) {
    for (const fusedAttention of [false, true]) {
      for (const spec of GRAPHS.filter((g) => g.available(arch))) {
        const b = new GraphBuilder(spec.file.replace(/\.onnx$/, ''), weights, { fusedAttention });
        spec.build(b, { arch, dtype });
        graphs.push({ label: `${spec.file} (${dtype}${fusedAttention ? ', fused attention' : ''})`, graph: b.build() });
      }
    }
  }
  for (const task of ['vqa', 'snli', 'nlvr2', 'irtr'] as const) graphs.push({ label: `${task} training graph`, graph: buildTrainingGraph(bundle, task, { dropout: 0.1 }).graph });
  graphs.push({ label: 'AdamW step', graph: buildAdamWGraph() });
  return graphs;
}

describe('the op table covers every graph the bundle builds', () => {
  it('every node of every graph is an op of the table, in the domain the table gives', () => {
    const used = new Set<string>();
    for (const { label, graph } of everyGraph()) {
      for (const node of graph.nodes) {
        used.add(node.op);
        assert.ok(isOpName(node.op), `${label}: node '${node.name}' has op ${node.op}, which models/ir/ops.ts lacks`);
        assert.equal(node.domain, OPS[node.op].domain, `${label}: ${node.op} node '${node.name}' domain`);
        assert.equal(typeof OPS[node.op].shape, 'function', `${node.op} has a shape rule`);
        assert.equal(typeof OPS[node.op].dtype, 'function', `${node.op} has a dtype rule`);
      }
    }
    assert.ok(used.size > 40, `the graphs use ${used.size} distinct ops`);
  });

  it('inference gives every node output of every graph a rank (no unknown shapes)', () => {
    for (const { label, graph } of everyGraph()) {
      const b = GraphBuilder.extend(graph);
      const unknown = graph.nodes.flatMap((n) => n.outputs.filter((o) => b.value(o).shape === undefined).map((o) => `${n.op} → ${o}`));
      assert.deepEqual(unknown, [], `${label}: values without a rank`);
    }
  });

  it('extending a built graph and adding nothing gives the same graph back', () => {
    for (const { label, graph } of everyGraph().filter((g) => !g.label.includes('training'))) {
      const again = GraphBuilder.extend(graph).build();
      assert.deepEqual(again.nodes, graph.nodes, `${label}: nodes`);
      assert.deepEqual(again.outputs, graph.outputs, `${label}: outputs`);
      assert.deepEqual(again.valueInfo, graph.valueInfo, `${label}: re-inferred value_info`);
      assert.deepEqual(again.opsets, graph.opsets, `${label}: opsets`);
    }
  });
});

describe('gradient rules', () => {
  it("train/autodiff's gradient table has exactly the ops the op table marks gradient: 'rule'", () => {
    const marked = OP_NAMES.filter((op) => OPS[op].gradient === 'rule').sort();
    assert.deepEqual(Object.keys(GRADIENT_RULES).sort(), marked);
  });

  function mulLoss(): Graph {
    const b = new GraphBuilder('arity', NO_WEIGHTS);
    const a = b.input('a', 'float32', [3]);
    b.output(b.op('ReduceSum', [b.op('Mul', [a, b.constant([1, 2, 3], 'float32', [3])])], { keepdims: 0 }), 'loss');
    return b.build();
  }

  it('a rule that returns fewer gradients than its node has inputs is an internal error', () => {
    const rules = { ...GRADIENT_RULES, Mul: ({ g }: { g: ReadonlyArray<Value | undefined> }) => [g[0]] };
    assert.throws(() => differentiate(mulLoss(), 'loss', ['a'], rules), isInternal(/Mul gradient rule returned 1 gradients .* 2 inputs/));
  });

  it('a rule that returns more gradients than its node has inputs is an internal error', () => {
    const rules = { ...GRADIENT_RULES, Mul: ({ g }: { g: ReadonlyArray<Value | undefined> }) => [g[0], g[0], undefined] };
    assert.throws(() => differentiate(mulLoss(), 'loss', ['a'], rules), isInternal(/returned 3 gradients/));
  });

  it('the rules answer once per input when optional inputs are omitted (Slice without axes, LayerNormalization without bias, ReduceSum without axes)', async () => {
    const b = new GraphBuilder('optional_inputs', NO_WEIGHTS);
    const a = b.input('a', 'float32', [4, 6]);
    const w = b.input('w', 'float32', [3]);
    const sliced = b.op('Slice', [a, b.ints([0, 1]), b.ints([2, 4])]);
    const normed = b.op('LayerNormalization', [sliced, w], { axis: -1, epsilon: float(1e-5) });
    b.output(b.op('ReduceSum', [normed], { keepdims: 0 }), 'loss');
    const graph = differentiate(b.build(), 'loss', ['a', 'w']);
    const session = await ort.InferenceSession.create(serializeModel(graph));
    const out = await session.run({ a: new ort.Tensor('float32', Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)), [4, 6]), w: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]) });
    // d/da is zero outside the slice [0:2, 1:4]; d/dw_j = Σ over rows of the normalized column j.
    const da = out['grad.a']!.data as Float32Array;
    assert.deepEqual(out['grad.a']!.dims, [4, 6]);
    for (let r = 0; r < 4; r++) for (let c = 0; c < 6; c++) if (r >= 2 || c < 1 || c >= 4) assert.equal(da[r * 6 + c], 0, `grad.a[${r}, ${c}]`);
    assert.deepEqual(out['grad.w']!.dims, [3]);
  });

  it("an op marked gradient: 'none' on a differentiable path is refused with E_NO_GRADIENT_RULE", () => {
    const b = new GraphBuilder('none', NO_WEIGHTS);
    const a = b.input('a', 'float32', [2]);
    b.output(b.op('ReduceSum', [b.op('Min', [a, b.scalar(1)])], { keepdims: 0 }), 'loss');
    assert.throws(() => differentiate(b.build(), 'loss', ['a']), (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_NO_GRADIENT_RULE' && /Min/.test(e.message));
  });
});

describe('inference failures are internal errors', () => {
  it('a shape rule that fails (Add of shapes that do not broadcast) throws E_INTERNAL naming the node and its inputs', () => {
    const b = new GraphBuilder('bad_add', NO_WEIGHTS);
    const x = b.input('x', 'float32', [2, 3]);
    const y = b.input('y', 'float32', [4, 5]);
    assert.throws(() => b.op('Add', [x, y]), isInternal(/shape inference of Add node 'Add_\d+' failed: shapes \[2, 3\] and \[4, 5\] do not broadcast .*x: float32\[2, 3\]/));
  });

  it('a missing input throws E_INTERNAL rather than an unknown shape', () => {
    const b = new GraphBuilder('bad_where', NO_WEIGHTS);
    const x = b.input('x', 'float32', [2]);
    assert.throws(() => b.op('Where', [undefined, x, x]), isInternal(/Where .* input 0 is missing/));
  });

  it('an op outside the table is a compile error and, forced through, E_INTERNAL', () => {
    const b = new GraphBuilder('bad_op', NO_WEIGHTS);
    const x = b.input('x', 'float32', [2, 2]);
    // @ts-expect-error 'Matmul' is not an op of models/ir/ops.ts (it is 'MatMul')
    assert.throws(() => b.op('Matmul', [x, x]), isInternal(/op 'Matmul' .* is not in the op table/));
  });

  it('extending a graph whose node has an op outside the table is E_INTERNAL', () => {
    const b = new GraphBuilder('foreign', NO_WEIGHTS);
    const x = b.input('x', 'float32', [2]);
    b.output(b.op('Neg', [x]), 'y');
    const graph = b.build();
    const foreign: Graph = { ...graph, nodes: graph.nodes.map((n) => ({ ...n, op: 'Negate' as OpName })) };
    assert.throws(() => GraphBuilder.extend(foreign), isInternal(/op Negate, which the op table/));
  });
});

describe('shape rules of the ops autodiff adds agree with ONNX Runtime', () => {
  /** Builds `f`, runs it on ONNX Runtime, and compares each output's dims with the inferred shape. */
  async function agree(inputs: Record<string, { dims: number[]; data?: number[] }>, f: (b: GraphBuilder, x: Record<string, Value>) => Value[]): Promise<void> {
    const b = new GraphBuilder('shapes', NO_WEIGHTS);
    const x = Object.fromEntries(Object.entries(inputs).map(([name, s]) => [name, b.input(name, 'float32', s.dims)]));
    const outputs = f(b, x).map((v, i) => b.output(v, `out${i}`));
    const session = await ort.InferenceSession.create(serializeModel(b.build()));
    const feeds = Object.fromEntries(Object.entries(inputs).map(([name, s]) => [name, new ort.Tensor('float32', Float32Array.from(s.data ?? Array.from({ length: s.dims.reduce((p, d) => p * d, 1) }, (_, i) => i - 2)), s.dims)]));
    const results = await session.run(feeds);
    outputs.forEach((v, i) => {
      assert.ok(v.shape, `out${i} (${v.name}) has a rank`);
      assert.equal(v.shape.length, results[`out${i}`]!.dims.length, `out${i} rank`);
      v.shape.forEach((d, k) => typeof d === 'number' && assert.equal(d, results[`out${i}`]!.dims[k], `out${i} dim ${k}`));
    });
  }

  it('Abs, Sign, Min, GreaterOrEqual and Size', () =>
    agree({ a: { dims: [2, 3] }, c: { dims: [3] } }, (b, x) => [
      b.op('Abs', [x.a!]),
      b.op('Sign', [x.a!]),
      b.op('Min', [x.a!, x.c!]),
      b.cast(b.op('GreaterOrEqual', [x.a!, x.c!]), 'float32'),
      b.cast(b.op('Size', [x.a!]), 'float32'),
    ]));

  it('Pad with constant and run-time pads', () =>
    agree({ a: { dims: [2, 3] } }, (b, x) => [
      b.op('Pad', [x.a!, b.ints([1, 0, 2, 3])], { mode: 'constant' }),
      b.op('Pad', [x.a!, b.op('Concat', [b.op('Shape', [x.a!]), b.ints([0, 1])], { axis: 0 })], { mode: 'constant' }),
    ]));

  it('ScatterND, NonZero and ConstantOfShape', () =>
    agree({ a: { dims: [4, 3] } }, (b, x) => [
      b.op('ScatterND', [x.a!, b.constant([2], 'int64', [1, 1]), b.constant([7, 8, 9], 'float32', [1, 3])]),
      b.cast(b.op('NonZero', [x.a!]), 'float32'),
      b.op('ConstantOfShape', [b.ints([2, 5])]),
      b.op('ConstantOfShape', [b.op('Shape', [x.a!])]),
    ]));

  it('reductions over every axis, over run-time axes, and Split and Slice with run-time bounds', () =>
    agree({ a: { dims: [4, 6] } }, (b, x) => {
      const rows = b.op('Gather', [b.op('Shape', [x.a!]), b.ints([0])], { axis: 0 });
      return [
        b.op('ReduceMean', [x.a!], { keepdims: 0 }),
        b.op('ReduceSum', [x.a!, b.op('Sub', [rows, b.ints([4])])], { keepdims: 1 }),
        ...b.node('Split', [x.a!, b.op('Concat', [b.ints([2]), b.op('Sub', [rows, b.ints([2])])], { axis: 0 })], { axis: 0 }, { outputs: 2 }),
        b.op('Slice', [x.a!, b.ints([1]), rows, b.ints([1])]),
      ];
    }));
});

describe('element types', () => {
  it('each type has one ONNX code, the typed array ONNX Runtime holds it in, and the bundle dtype of the same width', () => {
    const codes = new Set<number>();
    for (const [name, info] of Object.entries(ELEMENT_TYPES)) {
      assert.ok(!codes.has(info.onnx), `${name}: ONNX code ${info.onnx} is unique`);
      codes.add(info.onnx);
      assert.equal(elemTypeFromOnnx(info.onnx), name);
      assert.equal(info.array.BYTES_PER_ELEMENT, info.bytes, `${name}: typed array width`);
      assert.equal(DTYPES[info.bundle].bytes, info.bytes, `${name}: bundle dtype width`);
      assert.equal(DTYPES[info.bundle].isFloat, info.isFloat, `${name}: float or not, as the bundle says`);
    }
    assert.ok('int8' in ELEMENT_TYPES && 'uint8' in ELEMENT_TYPES, 'int8 and uint8 (quantized graphs)');
  });

  it('cast(x, t) round-trips through every element type in ONNX Runtime', async () => {
    const b = new GraphBuilder('casts', NO_WEIGHTS);
    const x = b.input('x', 'float32', [4]);
    const types = Object.keys(ELEMENT_TYPES).filter((t) => t !== 'bool') as ElemType[];
    types.forEach((t) => b.output(b.cast(b.cast(x, t), 'float32'), `via_${t}`));
    b.output(b.cast(x, 'int8'), 'as_int8');
    const session = await ort.InferenceSession.create(serializeModel(b.build()));
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(0, 1, 2, 100), [4]) });
    for (const t of types) assert.deepEqual(Array.from(out[`via_${t}`]!.data as Float32Array), [0, 1, 2, 100], `through ${t}`);
    assert.equal(out.as_int8!.type, 'int8');
    assert.deepEqual(Array.from(out.as_int8!.data as Int8Array), [0, 1, 2, 100]);
  });

  it('raw int8 bytes become an ONNX Runtime int8 tensor', () => {
    const tensor = toOrtTensor('int8', [3], Uint8Array.of(0xff, 0x01, 0x80));
    assert.equal(tensor.type, 'int8');
    assert.deepEqual(Array.from(tensor.data as Int8Array), [-1, 1, -128]);
  });
});

describe('the op table', () => {
  it('puts ONNX Runtime contrib ops in com.microsoft and the rest in ai.onnx', () => {
    // Fused attention (--optimize), the training graphs' one-node GELU, and the int8 graphs' integer
    // product with its scales; the fused per-tensor DynamicQuantizeMatMul is only measured against
    // it (bench/precision-graphs.ts).
    assert.deepEqual(OP_NAMES.filter((op) => OPS[op].domain === MS_DOMAIN).sort(), ['DynamicQuantizeMatMul', 'Gelu', 'MatMulIntegerToFloat', 'MultiHeadAttention']);
  });
});
