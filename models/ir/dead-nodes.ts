import type { Graph } from './graph.js';

/**
 * The graph without the nodes no output depends on, and without the initializers and value infos
 * only they read. Gradient rules answer for every input of a node, so autodiff also builds the
 * gradients of constants (a dropout mask, an attention scale) before it drops them; left in the
 * graph, ONNX Runtime runs those nodes and keeps their forward inputs alive until it does
 * (2,000 nodes and 1.6 GB of BASE's activations at micro-batch 8, docs/fine-tune.md "Memory").
 */
export function withoutDeadNodes(graph: Graph): Graph {
  const needed = new Set(graph.outputs.map((o) => o.name));
  const kept: Graph['nodes'][number][] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (!node.outputs.some((o) => o !== '' && needed.has(o))) continue;
    kept.push(node);
    for (const input of node.inputs) if (input !== '') needed.add(input);
  }
  if (kept.length === graph.nodes.length) return graph;
  kept.reverse();
  const produced = new Set(kept.flatMap((n) => n.outputs));
  return {
    ...graph,
    nodes: kept,
    initializers: graph.initializers.filter((i) => needed.has(i.name)),
    valueInfo: graph.valueInfo.filter((v) => produced.has(v.name)),
  };
}
