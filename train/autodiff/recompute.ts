import type { GraphBuilder } from '../../models/ir/builder.js';
import { BridgeTowerError } from '../../common/errors.js';
import { elemTypeFromOnnx, type ElemType } from '../../models/ir/element-types.js';
import type { Node, Value } from '../../models/ir/graph.js';

function castTarget(node: Node): ElemType {
  const to = node.attributes.to;
  const type = to?.type === 'int' ? elemTypeFromOnnx(to.value) : undefined;
  if (!type) throw new BridgeTowerError('E_INTERNAL', `Cast node '${node.name}' has no known 'to' type`, { node: node.name });
  return type;
}

/**
 * Activation recomputation (checkpointing) per encoder / cross-modal layer: the backward pass of a
 * layer recomputes the layer's forward from its inputs instead of keeping its intermediates alive
 * from the forward pass (docs/fine-tune.md "Memory"). Only the layers'
 * boundaries stay alive between forward and backward.
 *
 * A layer is found by its weights: the forward nodes that lie between the layer's weight readers
 * (reachable from one and reaching one) form its segment. The residual adds after a CLIP block's
 * last weight reader fall outside every segment and are simply kept.
 */
export const LAYER_WEIGHTS: readonly RegExp[] = [
  /^text_transformer\.encoder\.layer\.(\d+)\./,
  /^vit_model\.visual\.transformer\.resblocks\.(\d+)\./,
  /^cross_modal_text_layers\.(\d+)\./,
  /^cross_modal_image_layers\.(\d+)\./,
];

/** The forward nodes of each layer, in forward order. */
export function layerSegments(nodes: readonly Node[]): Node[][] {
  const layerOf = (name: string) => {
    for (const pattern of LAYER_WEIGHTS) {
      const m = pattern.exec(name);
      if (m) return m[0];
    }
    return undefined;
  };
  const readers = new Map<string, Set<number>>();
  nodes.forEach((node, i) => {
    for (const input of node.inputs) {
      const layer = input ? layerOf(input) : undefined;
      if (layer) (readers.get(layer) ?? readers.set(layer, new Set()).get(layer)!).add(i);
    }
  });
  const segments: Node[][] = [];
  for (const own of readers.values()) {
    const after = new Set<string>();
    const below = new Array<boolean>(nodes.length).fill(false);
    nodes.forEach((node, i) => {
      if (own.has(i) || node.inputs.some((n) => after.has(n))) {
        below[i] = true;
        node.outputs.forEach((o) => o && after.add(o));
      }
    });
    const needed = new Set<string>();
    const members: number[] = [];
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const above = own.has(i) || node.outputs.some((o) => needed.has(o));
      if (!above) continue;
      node.inputs.forEach((n) => n && needed.add(n));
      if (below[i]) members.push(i);
    }
    segments.push(members.reverse().map((i) => nodes[i]!));
  }
  return segments;
}

/**
 * Emits the segment's forward again, reading its outside inputs through `x + 0·s`, where s is one
 * element of `trigger` (a gradient reaching the segment): the data dependency keeps ONNX Runtime
 * from running the copy before the backward pass gets there (and from merging it with the
 * original). Returns original value name → recomputed value.
 */
export function recomputeSegment(b: GraphBuilder, segment: readonly Node[], trigger: Value, isInitializer: (name: string) => boolean): Map<string, Value> {
  const first = b.op('Slice', [b.op('Reshape', [trigger, b.ints([-1])]), b.ints([0]), b.ints([1])]);
  const zero = b.op('Mul', [b.op('ReduceSum', [first], { keepdims: 0 }), b.scalar(0)]);
  const clones = new Map<string, Value>();
  const late = new Map<string, Value>();
  const read = (name: string): Value | undefined => {
    if (!name) return undefined;
    const clone = clones.get(name);
    if (clone) return clone;
    const v = b.value(name);
    if (v.dtype !== 'float32' || isInitializer(name)) return v;
    if (!late.has(name)) late.set(name, b.refineShape(b.op('Add', [v, zero]), v.shape));
    return late.get(name)!;
  };
  for (const node of segment) {
    const outputs = node.op === 'Cast' ? [b.cast(read(node.inputs[0]!)!, castTarget(node))] : b.node(node.op, node.inputs.map(read), node.attributes, { outputs: node.outputs.length });
    node.outputs.forEach((o, i) => o && clones.set(o, b.refineShape(outputs[i]!, b.value(o).shape)));
  }
  return clones;
}
