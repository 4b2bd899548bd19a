import { BridgeTowerError } from '../../common/errors.js';
import { GraphBuilder } from '../../models/ir/builder.js';
import { isFloatType } from '../../models/ir/element-types.js';
import type { Graph, Node, Value } from '../../models/ir/graph.js';
import { withoutDeadNodes } from '../../models/ir/dead-nodes.js';
import { OPS, type DifferentiableOp } from '../../models/ir/ops.js';
import { AutodiffError } from './autodiff-error.js';
import { GRADIENT_RULES, type GradientRules } from './gradient-rules.js';
import { recomputeSegment } from './recompute.js';
import { filledLike, zerosLike } from './shape-ops.js';

/** Layers whose forward the backward pass recomputes (train/autodiff/recompute.ts). */
export interface Recompute {
  segments: readonly (readonly Node[])[];
  isInitializer: (name: string) => boolean;
}

/**
 * Reverse-mode autodiff over the graph IR: returns the graph extended with gradient nodes, whose
 * outputs are the loss and `grad.<name>` for each value in `wrt` (inputs or initializers).
 * `rules` replaces the gradient table (tests).
 */
export function differentiate(graph: Graph, loss: string, wrt: readonly string[], rules: GradientRules = GRADIENT_RULES): Graph {
  const b = GraphBuilder.extend(graph, { prefix: 'grad_', outputs: [] });
  const gradients = appendGradients(b, loss, wrt, rules);
  b.output(b.value(loss), loss);
  for (const name of wrt) b.output(gradients.get(name)!, `grad.${name}`, b.value(name).shape);
  return withoutDeadNodes(b.build());
}

/**
 * Appends to `b` the gradient of `loss` with respect to each value in `wrt` and returns them by
 * name (zeros where the loss does not depend on one). Only nodes on a path from some `wrt` to the
 * loss are differentiated; integer values stop the gradient. Fan-out gradients are summed with Add.
 * With `recompute`, the rules of a segment's nodes read the segment's recomputed values.
 */
export function appendGradients(b: GraphBuilder, loss: string, wrt: readonly string[], rules: GradientRules = GRADIENT_RULES, recompute?: Recompute): Map<string, Value> {
  const target = (name: string): Value => {
    const v = b.find(name);
    if (!v) throw new AutodiffError('E_GRADIENT_TARGET', `graph '${b.name}' has no value named '${name}'; pass the name of an input, initializer or node output`);
    return v;
  };
  const lossValue = target(loss);
  wrt.forEach(target);
  const nodes = b.nodesSoFar();

  // Gradients flow only through float values: an integer or boolean output (Shape, ArgMax, a
  // comparison) cuts the path, so index computations, sampled negatives and dropout masks are
  // constants to autodiff and need no gradient rules.
  const isFloat = (name: string) => isFloatType(b.value(name).dtype);
  const dependsOnWrt = new Set(wrt);
  for (const node of nodes) {
    if (node.inputs.some((i) => dependsOnWrt.has(i))) node.outputs.forEach((o) => isFloat(o) && dependsOnWrt.add(o));
  }
  const feedsLoss = lossDependencies(b, nodes, loss);
  const differentiable = (name: string) => name !== '' && dependsOnWrt.has(name) && feedsLoss.has(name) && isFloat(name);

  const pending = new Map<string, Value[]>();
  const accumulate = (name: string, g: Value) => pending.set(name, [...(pending.get(name) ?? []), g]);
  const gradientOf = (name: string): Value | undefined => {
    const parts = pending.get(name);
    if (!parts?.length) return undefined;
    const sum = b.refineShape(parts.reduce((x, y) => b.op('Add', [x, y])), b.value(name).shape);
    pending.set(name, [sum]);
    return sum;
  };

  const segmentOf = new Map<string, number>();
  recompute?.segments.forEach((segment, i) => segment.forEach((node) => segmentOf.set(node.name, i)));
  const recomputed = new Map<number, Map<string, Value>>();

  accumulate(loss, filledLike(b, lossValue, 1));
  for (const node of [...nodes].reverse()) {
    if (!node.outputs.some(differentiable) || !node.inputs.some(differentiable)) continue;
    const g = node.outputs.map((o) => (differentiable(o) ? gradientOf(o) : undefined));
    if (g.every((v) => v === undefined)) continue;
    const kind = OPS[node.op].gradient;
    if (kind === 'zero') continue;
    if (kind === 'none') {
      throw new AutodiffError(
        'E_NO_GRADIENT_RULE',
        `node '${node.name}' (${node.op}) lies between the loss '${loss}' and a parameter, but ${node.op} has no gradient rule; mark it gradient: 'rule' in models/ir/ops.ts and add its rule to GRADIENT_RULES in train/autodiff/gradient-rules.ts`,
      );
    }
    const rule = rules[node.op as DifferentiableOp];
    if (!rule) throw new BridgeTowerError('E_INTERNAL', `models/ir/ops.ts marks ${node.op} as having a gradient rule, but the gradient table has none`, { op: node.op });
    const segment = segmentOf.get(node.name);
    if (segment !== undefined && !recomputed.has(segment)) recomputed.set(segment, recomputeSegment(b, recompute!.segments[segment]!, g.find((v) => v !== undefined)!, recompute!.isInitializer));
    const clones = segment === undefined ? undefined : recomputed.get(segment);
    const read = (name: string) => clones?.get(name) ?? b.value(name);
    const x = node.inputs.map((i) => (i === '' ? undefined : read(i)));
    const grads = rule({ b, node, x, y: node.outputs.map(read), g });
    if (grads.length !== node.inputs.length) {
      // tinygrad's `assert len(lgrads) == len(t0.src)`: a rule answers for every input, in order.
      throw new BridgeTowerError('E_INTERNAL', `the ${node.op} gradient rule returned ${grads.length} gradients for node '${node.name}', which has ${node.inputs.length} inputs; a rule returns exactly one entry (or undefined) per input`, {
        op: node.op,
        node: node.name,
        inputs: node.inputs.length,
        gradients: grads.length,
      });
    }
    node.inputs.forEach((input, i) => {
      const gi = grads[i];
      if (gi && differentiable(input)) accumulate(input, gi);
    });
  }
  return new Map(wrt.map((name) => [name, gradientOf(name) ?? zerosLike(b, b.value(name))]));
}

/** Every value the loss depends on through float values (the loss included). */
function lossDependencies(b: GraphBuilder, nodes: ReturnType<GraphBuilder['nodesSoFar']>, loss: string): Set<string> {
  const feedsLoss = new Set([loss]);
  for (const node of [...nodes].reverse()) {
    if (node.outputs.some((o) => feedsLoss.has(o) && isFloatType(b.value(o).dtype))) node.inputs.forEach((i) => feedsLoss.add(i));
  }
  return feedsLoss;
}

/**
 * The values in `candidates` that the loss depends on through float values: what `differentiate`
 * would give a non-zero gradient path. The others are the parameters PyTorch leaves with
 * `.grad = None` (unused heads, the text pooler), which upstream's optimizer skips.
 */
export function reachingLoss(graph: Graph, loss: string, candidates: readonly string[]): Set<string> {
  const b = GraphBuilder.extend(graph);
  const feedsLoss = lossDependencies(b, b.nodesSoFar(), loss);
  return new Set(candidates.filter((c) => feedsLoss.has(c)));
}
