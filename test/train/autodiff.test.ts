import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { float, GraphBuilder } from '../../models/ir/builder.js';
import type { Dim, Value } from '../../models/ir/graph.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { differentiate } from '../../train/autodiff/backward.js';
import { AutodiffError } from '../../train/autodiff/autodiff-error.js';

/**
 * Every gradient rule against central finite differences, through ONNX Runtime in float32. Each
 * graph is `loss = Σ f(inputs) · R` with a fixed random R, so every output element matters.
 */

const EPS = 1e-2;
const TOLERANCE = 2e-2;
const PROBES = 10;

type Init = (rng: () => number) => number;
interface InputSpec {
  dims: number[];
  /** Declared shape (symbolic names exercise the run-time shape paths). */
  declared?: Dim[];
  init?: Init;
}
type Build = (b: GraphBuilder, x: Record<string, Value>) => Value;

function rngFrom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const normal: Init = (rng) => Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
const positive: Init = (rng) => 0.5 + rng();
const awayFromZero: Init = (rng) => (rng() < 0.5 ? -1 : 1) * (0.2 + rng());


async function session(graph: ReturnType<GraphBuilder['build']>) {
  return ort.InferenceSession.create(serializeModel(graph));
}

/** Max relative error per input of analytic vs finite-difference gradients. */
async function gradCheck(specs: Record<string, InputSpec>, f: Build, seed = 1): Promise<Record<string, number>> {
  const rng = rngFrom(seed);
  const data = Object.fromEntries(Object.entries(specs).map(([name, s]) => [name, Float32Array.from({ length: s.dims.reduce((a, d) => a * d, 1) }, () => (s.init ?? normal)(rng))]));
  const feeds = (d: Record<string, Float32Array>) => Object.fromEntries(Object.entries(specs).map(([name, s]) => [name, new ort.Tensor('float32', d[name]!, s.dims)]));

  // Forward once for the output's shape, then weight it with a random R.
  const probe = new GraphBuilder('probe', { lookup: () => undefined });
  const px = Object.fromEntries(Object.entries(specs).map(([name, s]) => [name, probe.input(name, 'float32', s.declared ?? s.dims)]));
  probe.output(f(probe, px), 'out');
  const outDims = (await (await session(probe.build())).run(feeds(data))).out!.dims as number[];

  const b = new GraphBuilder('gradcheck', { lookup: () => undefined });
  const x = Object.fromEntries(Object.entries(specs).map(([name, s]) => [name, b.input(name, 'float32', s.declared ?? s.dims)]));
  const r = b.constant(Array.from({ length: outDims.reduce((a, d) => a * d, 1) }, () => normal(rng)), 'float32', outDims, 'R');
  b.output(b.op('ReduceSum', [b.op('Mul', [f(b, x), r])], { keepdims: 0 }), 'loss');
  const graph = differentiate(b.build(), 'loss', Object.keys(specs));
  const s = await session(graph);
  const analytic = await s.run(feeds(data));

  const errors: Record<string, number> = {};
  for (const name of Object.keys(specs)) {
    const grad = analytic[`grad.${name}`]!.data as Float32Array;
    assert.equal(grad.length, data[name]!.length, `grad.${name} has the input's size`);
    const scale = Math.max(...Array.from(grad, Math.abs));
    let worst = 0;
    for (let p = 0; p < Math.min(PROBES, grad.length); p++) {
      const i = Math.floor(rng() * grad.length);
      const lossAt = async (delta: number) => {
        const moved = new Float32Array(data[name]!);
        moved[i]! += delta;
        return ((await s.run(feeds({ ...data, [name]: moved }), ['loss'])).loss!.data as Float32Array)[0]!;
      };
      const numeric = ((await lossAt(EPS)) - (await lossAt(-EPS))) / (2 * EPS);
      worst = Math.max(worst, Math.abs(grad[i]! - numeric) / (Math.max(Math.abs(grad[i]!), Math.abs(numeric)) + 0.1 * scale + 1e-6));
    }
    errors[name] = worst;
  }
  return errors;
}

async function expectGradients(specs: Record<string, InputSpec>, f: Build): Promise<void> {
  const errors = await gradCheck(specs, f);
  if (process.env.AUTODIFF_REPORT) console.log(JSON.stringify(errors));
  for (const [name, err] of Object.entries(errors)) assert.ok(err < TOLERANCE, `gradient of ${name}: relative error ${err} ≥ ${TOLERANCE}`);
}

const ints = (b: GraphBuilder, v: number[]) => b.ints(v);

describe('gradient rules agree with finite differences', () => {
  it('Add sums the gradient over axes a symbolic-batch input was broadcast along', () =>
    expectGradients({ a: { dims: [2, 3, 4], declared: ['batch', 3, 4] }, c: { dims: [4] } }, (b, x) => b.op('Add', [x.a!, x.c!])));
  it('Add un-broadcasts size-1 axes of a static input', () => expectGradients({ a: { dims: [2, 3, 4] }, c: { dims: [3, 1] } }, (b, x) => b.op('Add', [x.a!, x.c!])));
  it('Sub negates the gradient of its second input', () => expectGradients({ a: { dims: [2, 3] }, c: { dims: [1, 3] } }, (b, x) => b.op('Sub', [x.a!, x.c!])));
  it('Mul scales each gradient by the other factor', () => expectGradients({ a: { dims: [2, 3, 4], declared: ['batch', 'seq', 4] }, c: { dims: [3, 1] } }, (b, x) => b.op('Mul', [x.a!, x.c!])));
  it('Div differentiates numerator and denominator', () => expectGradients({ a: { dims: [2, 3] }, c: { dims: [3], init: positive } }, (b, x) => b.op('Div', [x.a!, x.c!])));
  it('MatMul of a batched activation by a shared weight sums the weight gradient over the batch', () =>
    expectGradients({ a: { dims: [2, 3, 4], declared: ['batch', 3, 4] }, w: { dims: [4, 5] } }, (b, x) => b.op('MatMul', [x.a!, x.w!])));
  it('MatMul of two batched operands differentiates both', () => expectGradients({ a: { dims: [2, 3, 4] }, c: { dims: [2, 4, 5] } }, (b, x) => b.op('MatMul', [x.a!, x.c!])));
  it('Transpose applies the inverse permutation to the gradient', () => expectGradients({ a: { dims: [2, 3, 4] } }, (b, x) => b.op('Transpose', [x.a!], { perm: [2, 0, 1] })));
  it('Reshape reshapes the gradient back', () => expectGradients({ a: { dims: [2, 3, 4], declared: ['batch', 3, 4] } }, (b, x) => b.op('Reshape', [x.a!, ints(b, [-1, 4])])));
  it('Unsqueeze and Squeeze reshape the gradient back', () =>
    expectGradients({ a: { dims: [2, 3] } }, (b, x) => b.op('Squeeze', [b.op('Unsqueeze', [x.a!, ints(b, [1, 3])]), ints(b, [3])])));
  it('Concat splits the gradient between its inputs', () => expectGradients({ a: { dims: [2, 3] }, c: { dims: [2, 2] } }, (b, x) => b.op('Concat', [x.a!, x.c!], { axis: 1 })));
  it('Split concatenates output gradients and zero-fills unused outputs', () =>
    expectGradients({ a: { dims: [2, 6] } }, (b, x) => b.node('Split', [x.a!, ints(b, [2, 3, 1])], { axis: 1 }, { outputs: 3 })[1]!));
  it('Slice pads the gradient back to the input shape', () =>
    expectGradients({ a: { dims: [4, 6], declared: ['rows', 6] } }, (b, x) => b.op('Slice', [x.a!, ints(b, [1, -4]), ints(b, [3, 100]), ints(b, [0, 1])])));
  it('Gather on axis 0 of an embedding table scatter-adds repeated rows', () =>
    expectGradients({ w: { dims: [5, 3] } }, (b, x) => b.op('Gather', [x.w!, b.constant([0, 2, 2, 4, 2, 0], 'int64', [2, 3])], { axis: 0 })));
  it('Gather of one token on axis 1 scatters into that token only', () =>
    expectGradients({ a: { dims: [2, 4, 3] } }, (b, x) => b.op('Gather', [x.a!, b.constant([1], 'int64', [])], { axis: 1 })));
  it('Erf has derivative 2/√π · exp(−x²)', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Erf', [x.a!])));
  it('Gelu (com.microsoft, exact erf) has derivative Φ(x) + x·φ(x)', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Gelu', [x.a!])));
  it('Sigmoid has derivative σ(1 − σ)', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Sigmoid', [x.a!])));
  it('Tanh has derivative 1 − tanh²', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Tanh', [x.a!])));
  it('Sqrt, Exp and Neg differentiate elementwise', () =>
    expectGradients({ a: { dims: [3, 4], init: positive } }, (b, x) => b.op('Neg', [b.op('Exp', [b.op('Sqrt', [x.a!])])])));
  it('Log has derivative 1/x', () => expectGradients({ a: { dims: [3, 4], init: positive } }, (b, x) => b.op('Log', [x.a!])));
  it('Abs has derivative sign(x)', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Abs', [x.a!])));
  it('LogSoftmax differentiates along its axis', () => expectGradients({ a: { dims: [2, 3, 5] } }, (b, x) => b.op('LogSoftmax', [x.a!], { axis: -1 })));
  it('Softmax differentiates along its axis', () => expectGradients({ a: { dims: [2, 3, 5] } }, (b, x) => b.op('Softmax', [x.a!], { axis: -1 })));
  it('LayerNormalization differentiates input, scale and bias', () =>
    expectGradients({ a: { dims: [2, 3, 5], declared: ['batch', 'seq', 5] }, w: { dims: [5] }, c: { dims: [5] } }, (b, x) =>
      b.op('LayerNormalization', [x.a!, x.w!, x.c!], { axis: -1, epsilon: float(1e-5) })));
  it('Max with a scalar passes the gradient where the input wins', () =>
    expectGradients({ a: { dims: [3, 4], init: awayFromZero } }, (b, x) => b.op('Max', [x.a!, b.scalar(0)])));
  it('ReduceL2 has derivative x / ‖x‖', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('ReduceL2', [x.a!], { axes: [-1], keepdims: 0 })));
  it('ReduceMean spreads the gradient evenly', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('ReduceMean', [x.a!], { axes: [0], keepdims: 0 })));
  it('ReduceSum with keepdims spreads the gradient', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('ReduceSum', [x.a!, ints(b, [1])], { keepdims: 1 })));
  it('Cast between float types passes the gradient through', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.cast(x.a!, 'float32')));
  it('Identity passes the gradient through', () => expectGradients({ a: { dims: [3, 4] } }, (b, x) => b.op('Identity', [x.a!])));
  it('Expand sums the gradient over expanded axes', () =>
    expectGradients({ a: { dims: [3, 1] } }, (b, x) => b.op('Expand', [x.a!, b.op('Concat', [ints(b, [2]), ints(b, [3, 4])], { axis: 0 })])));
  it('Where routes the gradient by the condition', () =>
    expectGradients({ a: { dims: [2, 3] }, c: { dims: [3] } }, (b, x) => b.op('Where', [b.constant([1, 0, 1, 0, 0, 1], 'bool', [2, 3]), x.a!, x.c!])));
  it('Conv with stride equal to kernel differentiates pixels, weight and bias, cropping the remainder', () =>
    expectGradients({ p: { dims: [2, 2, 5, 4] }, w: { dims: [3, 2, 2, 2] }, c: { dims: [3] } }, (b, x) =>
      b.op('Conv', [x.p!, x.w!, x.c!], { kernel_shape: [2, 2], strides: [2, 2] })));
});

describe('composite graphs', () => {
  it('a LayerNorm → Linear → GELU chain agrees with finite differences', () =>
    expectGradients({ a: { dims: [2, 3, 4], declared: ['batch', 'seq', 4] }, g: { dims: [4] }, beta: { dims: [4] }, w: { dims: [5, 4] }, c: { dims: [5] } }, (b, x) => {
      const n = b.op('LayerNormalization', [x.a!, x.g!, x.beta!], { axis: -1, epsilon: float(1e-5) });
      const y = b.op('Add', [b.op('MatMul', [n, b.op('Transpose', [x.w!], { perm: [1, 0] })]), x.c!]);
      const erf = b.op('Erf', [b.op('Div', [y, b.scalar(Math.SQRT2)])]);
      return b.op('Mul', [b.op('Mul', [y, b.scalar(0.5)]), b.op('Add', [erf, b.scalar(1)])]);
    }));
  it('a single-head attention block with shared input agrees with finite differences', () =>
    expectGradients({ a: { dims: [2, 3, 4] }, wq: { dims: [4, 4] }, wk: { dims: [4, 4] }, wv: { dims: [4, 4] } }, (b, x) => {
      const [q, k, v] = [x.wq!, x.wk!, x.wv!].map((w) => b.op('MatMul', [x.a!, w])) as [Value, Value, Value];
      const scores = b.op('Div', [b.op('MatMul', [q, b.op('Transpose', [k], { perm: [0, 2, 1] })]), b.scalar(2)]);
      return b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), v]);
    }));
});

describe('differentiate', () => {
  it('refuses an op without a gradient rule on a differentiable path, naming the node', () => {
    const b = new GraphBuilder('norule', { lookup: () => undefined });
    const a = b.input('a', 'float32', [2]);
    b.output(b.op('ReduceSum', [b.op('Relu', [a])], { keepdims: 0 }), 'loss');
    assert.throws(() => differentiate(b.build(), 'loss', ['a']), (e: unknown) => e instanceof AutodiffError && e.code === 'E_NO_GRADIENT_RULE' && /Relu/.test(e.message));
  });
  it('gives a zero gradient to a parameter the loss does not depend on', async () => {
    const b = new GraphBuilder('unused', { lookup: () => undefined });
    const a = b.input('a', 'float32', [2]);
    b.input('u', 'float32', [3]);
    b.output(b.op('ReduceSum', [b.op('Mul', [a, a])], { keepdims: 0 }), 'loss');
    const s = await session(differentiate(b.build(), 'loss', ['a', 'u']));
    const out = await s.run({ a: new ort.Tensor('float32', Float32Array.from([1, 2]), [2]), u: new ort.Tensor('float32', new Float32Array(3), [3]) });
    assert.deepEqual(Array.from(out['grad.a']!.data as Float32Array), [2, 4]);
    assert.deepEqual(Array.from(out['grad.u']!.data as Float32Array), [0, 0, 0]);
  });
});
