import type { Graph, Value } from '../../models/ir/graph.js';
import { AutodiffError, GraphEmitter } from './emitter.js';
import { GRADIENT_RULES } from './gradient-rules.js';

/**
 * Reverse-mode autodiff over the graph IR: returns the graph extended with gradient nodes, whose
 * outputs are the loss and `grad.<name>` for each value in `wrt` (inputs or initializers).
 * Only nodes on a path from some `wrt` to the loss are differentiated; integer values stop the
 * gradient. Fan-out gradients are summed with Add.
 */
export function differentiate(graph: Graph, loss: string, wrt: readonly string[]): Graph {
  const e = new GraphEmitter(graph);
  const lossValue = e.value(loss);
  wrt.forEach((name) => e.value(name));

  // Gradients flow only through float values: an integer or boolean output (Shape, ArgMax, a
  // comparison) cuts the path, so index computations, sampled negatives and dropout masks are
  // constants to autodiff and need no gradient rules.
  const dependsOnWrt = new Set(wrt);
  for (const node of graph.nodes) {
    if (node.inputs.some((i) => dependsOnWrt.has(i))) node.outputs.forEach((o) => isFloat(e.value(o)) && dependsOnWrt.add(o));
  }
  const feedsLoss = new Set([loss]);
  for (const node of [...graph.nodes].reverse()) {
    if (node.outputs.some((o) => feedsLoss.has(o) && isFloat(e.value(o)))) node.inputs.forEach((i) => feedsLoss.add(i));
  }
  const differentiable = (name: string) => name !== '' && dependsOnWrt.has(name) && feedsLoss.has(name) && isFloat(e.value(name));

  const pending = new Map<string, Value[]>();
  const accumulate = (name: string, g: Value) => pending.set(name, [...(pending.get(name) ?? []), g]);
  const gradientOf = (name: string): Value | undefined => {
    const parts = pending.get(name);
    if (!parts?.length) return undefined;
    const sum = e.withShape(parts.reduce((a, b) => e.op('Add', [a, b])), e.value(name));
    pending.set(name, [sum]);
    return sum;
  };

  accumulate(loss, e.op('Expand', [e.scalar(1), e.op('Shape', [lossValue])]));
  for (const node of [...graph.nodes].reverse()) {
    if (!node.outputs.some(differentiable) || !node.inputs.some(differentiable)) continue;
    const g = node.outputs.map((o) => (differentiable(o) ? gradientOf(o) : undefined));
    if (g.every((v) => v === undefined)) continue;
    const rule = GRADIENT_RULES[node.op];
    if (!rule) {
      throw new AutodiffError('E_NO_GRADIENT_RULE', `node '${node.name}' (${node.op}) lies between the loss '${loss}' and a parameter, but ${node.op} has no gradient rule; add one to GRADIENT_RULES in train/autodiff/gradient-rules.ts`);
    }
    const x = node.inputs.map((i) => (i === '' ? undefined : e.value(i)));
    const grads = rule({ e, node, x, y: node.outputs.map((o) => e.value(o)), g });
    node.inputs.forEach((input, i) => {
      const gi = grads[i];
      if (gi && differentiable(input)) accumulate(input, gi);
    });
  }

  const outputs = [lossValue, ...wrt.map((name) => {
    const g = gradientOf(name) ?? e.op('Expand', [e.scalar(0), e.op('Shape', [e.value(name)])]);
    return e.node('Identity', [g], {}, 1, `grad.${name}`)[0]!;
  })];
  const declared = new Set([...graph.inputs, ...outputs].map((v) => v.name));
  const valueInfo = e.created().filter((v) => !declared.has(v.name) && v.shape !== undefined && v.shape.every((d) => d !== undefined));
  return {
    ...graph,
    outputs: outputs.map((v, i) => (i === 0 ? v : { ...v, shape: e.value(wrt[i - 1]!).shape })),
    nodes: [...graph.nodes, ...e.nodes],
    initializers: [...graph.initializers, ...e.initializers],
    valueInfo: [...graph.valueInfo.filter((v) => !declared.has(v.name)), ...valueInfo],
  };
}

const isFloat = (v: Value) => v.dtype === 'float32' || v.dtype === 'float16';

/**
 * The values in `candidates` that the loss depends on through float values: what `differentiate`
 * would give a non-zero gradient path. The others are the parameters PyTorch leaves with
 * `.grad = None` (unused heads, the text pooler), which upstream's optimizer skips.
 */
export function reachingLoss(graph: Graph, loss: string, candidates: readonly string[]): Set<string> {
  const e = new GraphEmitter(graph);
  const feedsLoss = new Set([loss]);
  for (const node of [...graph.nodes].reverse()) {
    if (node.outputs.some((o) => feedsLoss.has(o) && isFloat(e.value(o)))) node.inputs.forEach((i) => feedsLoss.add(i));
  }
  return new Set(candidates.filter((c) => feedsLoss.has(c)));
}
