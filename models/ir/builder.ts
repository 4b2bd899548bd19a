import { BridgeTowerError } from '../../common/errors.js';
import { float32ToFloat16Bits as float16Bits } from '../../bundle/tensors/dtype-convert.js';
import { ELEMENT_TYPES } from './element-types.js';
import type { Attribute, Dim, ElemType, ExternalData, Graph, Initializer, Node, Value } from './graph.js';
import { DEFAULT_OPSET, MS_DOMAIN } from './onnx-schema.js';
import { isOpName, OPS, type OpName, type OpSpec } from './ops.js';
import { SHAPE_VALUE_RULES } from './shape-inference.js';

/** Where named weights come from (the bundle's model.safetensors), without reading them. */
export interface WeightSource {
  /** dtype, shape and byte range of a weight, or undefined if the bundle lacks it. */
  lookup(name: string): { dtype: ElemType; shape: readonly number[]; external: ExternalData } | undefined;
  /**
   * Whether the source also serves tensors derived from its weights at export
   * (models/ir/weight-derivations.ts: `w#kernel`, the kernel-layout copy of a Linear weight).
   * Exported graph sets do; a training graph reads the bundle's canonical tensors as they are.
   */
  readonly derives?: boolean;
}

export interface GraphFeatures {
  /** Emit ONNX Runtime's com.microsoft MultiHeadAttention instead of MatMul/Softmax/MatMul. */
  fusedAttention: boolean;
  /** Training graphs only: where `models/layers/dropout.ts` draws its masks (absent = no dropout). */
  dropout?: DropoutFeature;
  /**
   * GELU as one com.microsoft Gelu node (training graphs): its gradient rule recomputes from x
   * alone, so the backward keeps one tensor per GELU instead of the four its decomposed form
   * leaves live (x, x/√2, 1 + erf, x/2), as PyTorch's native gelu saves only x.
   */
  fusedGelu?: boolean;
}

/** Dropout in a training graph: every site hashes (element index, `seed` input, site number). */
export interface DropoutFeature {
  /** int64 scalar graph input; a different value per step gives fresh masks. */
  readonly seed: Value;
  /** Drop probability of every site (upstream: 0.1 in RoBERTa, the cross-modal layers and the NLVR2 head). */
  readonly rate: number;
  /** Sites emitted so far; each gets its own stream. */
  sites: number;
}

export type AttributeInput = number | string | readonly number[] | Attribute;

/** Every op but Cast, whose target goes through `cast(x, dtype)` instead of an ONNX type code. */
export type BuildOp = Exclude<OpName, 'Cast'>;

export interface ExtendOptions {
  /** Where weights that the extension asks for come from (default: none). */
  weights?: WeightSource;
  features?: GraphFeatures;
  /** The graph's values to keep as outputs, in order (default: its outputs); a value that is not an output yet becomes one. */
  outputs?: readonly string[];
  /** Prefix of new node and constant names (autodiff's `grad_`), so that extensions read apart. */
  prefix?: string;
}

const NO_WEIGHTS: WeightSource = { lookup: () => undefined };

/**
 * Builds a graph, the one writer of graph nodes. Weights are requested by their canonical name
 * through scopes that mirror the upstream module tree
 * (`b.scope('cross_modal_text_layers.0').scope('attention')`), so a missing or misnamed weight
 * names itself. Node outputs get dtype and shape from the op table (models/ir/ops.ts); an op it
 * cannot infer is an internal error. `GraphBuilder.extend(graph)` continues a finished graph
 * (autodiff, training-graph plumbing) with its values re-inferred by the same rules.
 */
export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly nodeNames = new Set<string>();
  private readonly inputs: Value[] = [];
  private readonly outputs: Value[] = [];
  private readonly initializers = new Map<string, Initializer>();
  private readonly values = new Map<string, Value>();
  /** The node that computes each value (graph inputs and initializers have none). */
  private readonly producers = new Map<string, Node>();
  private readonly constantValues = new Map<string, readonly number[]>();
  /** Contents of shape tensors as possibly symbolic dims (SHAPE_VALUE_RULES). */
  private readonly shapeValues = new Map<string, readonly Dim[]>();
  /** Per symbolic dim, the 1-element tensor that reads it off a graph input (`shapeTensor`). */
  private readonly symbolSources = new Map<string, Value>();
  private counter = 0;
  private usesContribOps = false;
  private baseOpsets: Readonly<Record<string, number>> = { '': DEFAULT_OPSET };
  private baseDocString: string | undefined;
  /** Optional kernels the layers may use (`--optimize`) and, in training graphs, dropout. */
  readonly features: GraphFeatures;

  constructor(
    readonly name: string,
    private readonly weights: WeightSource,
    features: GraphFeatures = { fusedAttention: false },
    private readonly prefix = '',
  ) {
    // A copy: enableDropout must not reach other builders given the same features object.
    this.features = { ...features };
  }

  /** A builder that appends to `graph`: its inputs, initializers, nodes and outputs, every value re-inferred. */
  static extend(graph: Graph, options: ExtendOptions = {}): GraphBuilder {
    const b = GraphBuilder.replaying(graph, options, () => false);
    for (const name of options.outputs ?? graph.outputs.map((o) => o.name)) b.outputs.push(graph.outputs.find((o) => o.name === name) ?? b.value(name));
    return b;
  }

  /**
   * A copy of `graph` in which `replace` may emit other nodes in place of a node (returning true;
   * the last emitted node must produce the node's output under its name). Initializers no node
   * reads any more are dropped. New names carry `options.prefix`, so they never meet the graph's.
   */
  static rewrite(graph: Graph, options: ExtendOptions, replace: (node: Node, b: GraphBuilder) => boolean): Graph {
    const b = GraphBuilder.replaying(graph, options, replace);
    b.outputs.push(...graph.outputs);
    const built = b.build();
    const read = new Set([...built.nodes.flatMap((n) => n.inputs), ...built.outputs.map((o) => o.name)]);
    return { ...built, initializers: built.initializers.filter((i) => read.has(i.name)) };
  }

  /** A builder holding `graph`'s initializers, inputs and nodes (each offered to `replace` first), values re-inferred; no outputs yet. */
  private static replaying(graph: Graph, options: ExtendOptions, replace: (node: Node, b: GraphBuilder) => boolean): GraphBuilder {
    const b = new GraphBuilder(graph.name, options.weights ?? NO_WEIGHTS, options.features, options.prefix);
    b.baseOpsets = graph.opsets;
    b.baseDocString = graph.docString;
    for (const init of graph.initializers) {
      b.initializers.set(init.name, init);
      if (init.dtype === 'int64' && init.data) b.constantValues.set(init.name, Array.from(new BigInt64Array(init.data.slice().buffer), Number));
      b.register({ name: init.name, dtype: init.dtype, shape: init.dims });
    }
    for (const v of graph.inputs) b.inputs.push(b.register(v));
    for (const node of graph.nodes) if (!replace(node, b)) b.replay(node);
    for (const v of graph.valueInfo) if (b.values.has(v.name)) b.refineShape(b.value(v.name), v.shape);
    return b;
  }

  scope(prefix: string): Scope {
    return new Scope(this, prefix);
  }

  input(name: string, dtype: ElemType, shape: readonly Dim[]): Value {
    const value = this.register({ name, dtype, shape });
    this.inputs.push(value);
    return value;
  }

  /** Declares a graph output under `name` (an Identity node renames internal values). */
  output(value: Value, name: string, shape?: readonly Dim[]): Value {
    const named = value.name === name ? value : this.node('Identity', [value], {}, { outputName: name })[0]!;
    this.outputs.push({ ...named, shape: shape ?? named.shape });
    return named;
  }

  /** A weight of the bundle, as an external initializer pointing into model.safetensors. */
  weight(name: string): Value {
    const existing = this.values.get(name);
    if (existing && this.initializers.has(name)) return existing;
    const found = this.weights.lookup(name);
    if (!found) {
      throw new BridgeTowerError('E_BUNDLE', `graph '${this.name}' needs weight '${name}', which the bundle's model.safetensors lacks`, { weight: name });
    }
    this.initializers.set(name, { name, dtype: found.dtype, dims: found.shape, external: found.external });
    return this.register({ name, dtype: found.dtype, shape: found.shape });
  }

  /**
   * A Linear weight [out, in] as the [in, out] matrix `MatMul(x, W)` takes (`part`: one third of a
   * packed [3·out, in] weight, `nn.MultiheadAttention`'s q, k or v rows). Exported graphs read a copy
   * prepared at export in that layout (`<name>#kernel`), so the weight reaches its MatMul directly and
   * a quantization pass finds it; graphs built on canonical tensors (training) transpose in the graph.
   */
  kernel(name: string, part?: 'q' | 'k' | 'v'): Value {
    if (this.weights.derives) return this.weight([name, ...(part ? [part] : []), 'kernel'].join('#'));
    if (part) throw new BridgeTowerError('E_INTERNAL', `graph '${this.name}': a part of '${name}' needs a weight source that derives tensors`, { weight: name });
    return this.op('Transpose', [this.weight(name)], { perm: [1, 0] });
  }

  /** Whether `kernel()` reads prepared copies (exported graph sets) rather than transposing in the graph. */
  get derivesWeights(): boolean {
    return this.weights.derives === true;
  }

  hasWeight(name: string): boolean {
    return this.weights.lookup(name) !== undefined;
  }

  /** Turns the named initializers into graph inputs of the same dtype and shape, after the existing inputs. */
  initializersAsInputs(names: ReadonlySet<string>): void {
    for (const init of [...this.initializers.values()].filter((i) => names.has(i.name))) {
      this.initializers.delete(init.name);
      this.constantValues.delete(init.name);
      this.inputs.push(this.value(init.name));
    }
  }

  /**
   * Turns on dropout for the layers built from here on (`models/layers/dropout.ts`): adds the int64
   * scalar `dropout_seed` input every site hashes.
   */
  enableDropout(rate: number): DropoutFeature {
    const feature: DropoutFeature = { seed: this.input('dropout_seed', 'int64', []), rate, sites: 0 };
    this.features.dropout = feature;
    return feature;
  }

  /** An inline constant tensor (shapes, axes, scalars). */
  constant(values: readonly number[], dtype: ElemType, dims: readonly number[] = [values.length], hint = 'const'): Value {
    const name = this.fresh(hint);
    this.initializers.set(name, { name, dtype, dims, data: encodeConstant(values, dtype) });
    if (dtype === 'int64') this.constantValues.set(name, values);
    return this.register({ name, dtype, shape: dims });
  }

  /** int64 1-D constant, the usual shape/axes argument. */
  ints(values: readonly number[]): Value {
    return this.constant(values, 'int64', [values.length], 'ints');
  }

  /** A scalar float constant in the given float dtype. */
  scalar(value: number, dtype: ElemType = 'float32'): Value {
    return this.constant([value], dtype, [], 'scalar');
  }

  /** Known int64 constant contents (axes, shapes), or undefined. */
  constantOf(v: Value): readonly number[] | undefined {
    return this.constantValues.get(v.name);
  }

  /** A value of the graph by name; a missing one is a bug of the caller. */
  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new BridgeTowerError('E_INTERNAL', `graph '${this.name}' has no value named '${name}'`, { graph: this.name, value: name });
    return v;
  }

  /** A value of the graph by name, or undefined. */
  find(name: string): Value | undefined {
    return this.values.get(name);
  }

  /**
   * A 1-D int64 tensor holding `dims`: a constant when they are static, else a Concat whose
   * symbolic dims are read off a graph input with the same symbol (inputs live for the whole run,
   * so this keeps no activation alive). Undefined when a dim is unknown or no input carries it.
   */
  shapeTensor(dims: readonly Dim[]): Value | undefined {
    if (dims.every((d) => typeof d === 'number')) return this.ints(dims as number[]);
    const parts: Value[] = [];
    for (const d of dims) {
      const part = typeof d === 'number' ? this.ints([d]) : d === undefined ? undefined : this.symbolSource(d);
      if (!part) return undefined;
      parts.push(part);
    }
    return this.op('Concat', parts, { axis: 0 });
  }

  private symbolSource(symbol: string): Value | undefined {
    const known = this.symbolSources.get(symbol);
    if (known) return known;
    const input = this.inputs.find((i) => i.shape?.includes(symbol));
    if (!input) return undefined;
    const source = this.op('Gather', [this.op('Shape', [input]), this.ints([input.shape!.indexOf(symbol)])], { axis: 0 });
    this.symbolSources.set(symbol, source);
    return source;
  }

  /** The node that computes `v`, or undefined for inputs, initializers and constants (rewrites peek through it). */
  producerOf(v: Value): Node | undefined {
    return this.producers.get(v.name);
  }

  /** The nodes added so far, in order (a copy: autodiff walks them while it appends). */
  nodesSoFar(): readonly Node[] {
    return [...this.nodes];
  }

  /** Records dims that inference left unknown but the caller knows (a gradient has its value's shape). */
  refineShape(v: Value, known: readonly Dim[] | undefined): Value {
    if (!known) return v;
    if (v.shape && (v.shape.length !== known.length || v.shape.every((d) => d !== undefined))) return v;
    const refined: Value = { ...v, shape: v.shape ? v.shape.map((d, i) => d ?? known[i]) : known };
    return this.register(refined);
  }

  /** `x` converted to another element type (ONNX Cast). */
  cast(x: Value, to: ElemType): Value {
    return this.append('Cast', [x], { to: { type: 'int', value: ELEMENT_TYPES[to].onnx } }, {})[0]!;
  }

  /** Adds a node; returns its outputs with inferred dtype and shape. */
  node(
    op: BuildOp,
    inputs: ReadonlyArray<Value | undefined>,
    attributes: Readonly<Record<string, AttributeInput>> = {},
    options: { outputs?: number; outputName?: string } = {},
  ): Value[] {
    return this.append(op, inputs, Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, toAttribute(v)])), options);
  }

  /** Single-output shorthand for `node`. */
  op(op: BuildOp, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, AttributeInput>> = {}): Value {
    return this.node(op, inputs, attributes)[0]!;
  }

  build(docString?: string): Graph {
    const declared = new Set([...this.inputs, ...this.outputs].map((v) => v.name));
    const valueInfo = [...this.values.values()].filter((v) => !declared.has(v.name) && !this.initializers.has(v.name) && v.shape !== undefined && v.shape.every((d) => d !== undefined));
    const doc = docString ?? this.baseDocString;
    return {
      name: this.name,
      inputs: this.inputs,
      outputs: this.outputs,
      nodes: this.nodes,
      initializers: [...this.initializers.values()],
      valueInfo,
      opsets: this.usesContribOps ? { ...this.baseOpsets, [MS_DOMAIN]: 1 } : this.baseOpsets,
      ...(doc ? { docString: doc } : {}),
    };
  }

  private append(op: OpName, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, Attribute>>, options: { outputs?: number; outputName?: string }): Value[] {
    const name = this.fresh(op);
    const shapes = this.infer(op, name, inputs, attributes);
    const count = options.outputs ?? shapes.shapes.length;
    const outputs = Array.from({ length: count }, (_, i) => (i === 0 && options.outputName ? options.outputName : `${name}_out${i}`));
    return this.push({ op, domain: OPS[op].domain, name, inputs: inputs.map((i) => i?.name ?? ''), outputs, attributes }, shapes);
  }

  /** Re-adds a node of an extended graph as it is, inferring its outputs. */
  private replay(node: Node): void {
    if (!isOpName(node.op) || OPS[node.op].domain !== node.domain) {
      throw new BridgeTowerError('E_INTERNAL', `graph '${this.name}': node '${node.name}' has op ${node.domain ? `${node.domain}.` : ''}${node.op}, which the op table (models/ir/ops.ts) lacks`, { node: node.name, op: node.op });
    }
    const inputs = node.inputs.map((i) => (i === '' ? undefined : this.value(i)));
    this.push(node, this.infer(node.op, node.name, inputs, node.attributes));
  }

  private push(node: Node, inferred: { dtype: ElemType; shapes: ReadonlyArray<readonly Dim[] | undefined>; shapeValue?: readonly Dim[] }): Value[] {
    if (node.domain === MS_DOMAIN) this.usesContribOps = true;
    if (inferred.shapeValue && node.outputs[0]) this.shapeValues.set(node.outputs[0], inferred.shapeValue);
    this.nodes.push(node);
    this.nodeNames.add(node.name);
    for (const output of node.outputs) if (output) this.producers.set(output, node);
    return node.outputs.map((name, i) => this.register({ name, dtype: inferred.dtype, shape: inferred.shapes[i] ?? inferred.shapes[0] }));
  }

  /** Output dtype and shapes from the op table; a rule that fails (or a missing rule) is a bug, never an unknown shape. */
  private infer(op: OpName, node: string, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, Attribute>>) {
    const spec: OpSpec | undefined = Object.hasOwn(OPS, op) ? OPS[op] : undefined;
    if (!spec) {
      throw new BridgeTowerError('E_INTERNAL', `graph '${this.name}': op '${op}' of node '${node}' is not in the op table (models/ir/ops.ts)`, { node, op });
    }
    const constants = inputs.map((i) => (i ? this.constantValues.get(i.name) : undefined));
    const ctx = { inputs, attributes, constants, dims: inputs.map((i, n) => (i ? this.shapeValues.get(i.name) ?? constants[n] : undefined)) };
    try {
      const shapeValue = SHAPE_VALUE_RULES[op]?.(ctx);
      return { dtype: spec.dtype(ctx), shapes: spec.shape(ctx), ...(shapeValue ? { shapeValue } : {}) };
    } catch (error) {
      const described = inputs.map((i) => (i ? `${i.name}: ${i.dtype}[${i.shape?.map((d) => d ?? '?').join(', ') ?? '?'}]` : '(omitted)'));
      throw new BridgeTowerError('E_INTERNAL', `graph '${this.name}': shape inference of ${op} node '${node}' failed: ${(error as Error).message} (inputs ${described.join('; ')})`, { node, op, inputs: described });
    }
  }

  private register(value: Value): Value {
    this.values.set(value.name, value);
    return value;
  }

  /** A name no value or node of the graph has yet. */
  private fresh(hint: string): string {
    let name: string;
    do name = `${this.prefix}${hint}_${this.counter++}`;
    while (this.values.has(name) || this.nodeNames.has(name));
    return name;
  }
}

/** A prefix into the weight tree: `scope.weight('dense.weight')` is `<prefix>.dense.weight`. */
export class Scope {
  constructor(
    readonly builder: GraphBuilder,
    readonly prefix: string,
  ) {}

  scope(name: string | number): Scope {
    return new Scope(this.builder, this.path(String(name)));
  }

  weight(name: string): Value {
    return this.builder.weight(this.path(name));
  }

  /** `GraphBuilder.kernel` of `<prefix>.name`. */
  kernel(name: string, part?: 'q' | 'k' | 'v'): Value {
    return this.builder.kernel(this.path(name), part);
  }

  has(name: string): boolean {
    return this.builder.hasWeight(this.path(name));
  }

  private path(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }
}

/** A float attribute (a plain number that happens to be whole would otherwise be written as an int). */
export function float(value: number): Attribute {
  return { type: 'float', value };
}

function toAttribute(v: AttributeInput): Attribute {
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) return { type: 'ints', value: v as number[] };
  return v as Attribute;
}

function encodeConstant(values: readonly number[], dtype: ElemType): Uint8Array {
  switch (dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
    case 'int32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'int8':
      return new Uint8Array(Int8Array.from(values).buffer);
    case 'uint8':
      return Uint8Array.from(values);
    case 'bool':
      return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
    case 'float16': {
      const out = new Uint16Array(values.length);
      values.forEach((v, i) => (out[i] = float16Bits(v)));
      return new Uint8Array(out.buffer);
    }
  }
}
