import { BridgeTowerError } from '../../common/errors.js';
import { float } from '../../models/ir/builder.js';
import type { Attribute, Dim, ElemType, Graph, Initializer, Node, Value } from '../../models/ir/graph.js';
import { SHAPE_RULES } from '../../models/ir/shape-inference.js';

/**
 * Appends nodes to a finished Graph. GraphBuilder keeps its nodes to itself, so autodiff starts
 * from `builder.build()` and re-infers every value's dtype and shape with the same shape table.
 */
export type AttributeValue = number | string | readonly number[] | Attribute;

/** Why a graph cannot be differentiated; `code` is stable so a trainer can map it. */
export class AutodiffError extends BridgeTowerError {
  constructor(code: 'E_NO_GRADIENT_RULE' | 'E_GRADIENT_UNSUPPORTED' | 'E_GRADIENT_TARGET', message: string) {
    super(code, message);
  }
}

export class GraphEmitter {
  readonly nodes: Node[] = [];
  readonly initializers: Initializer[] = [];
  private readonly values = new Map<string, Value>();
  private readonly constants = new Map<string, readonly number[]>();
  private counter = 0;

  constructor(readonly graph: Graph) {
    for (const init of graph.initializers) {
      this.values.set(init.name, { name: init.name, dtype: init.dtype, shape: init.dims });
      if (init.dtype === 'int64' && init.data) this.constants.set(init.name, Array.from(new BigInt64Array(init.data.slice().buffer), Number));
    }
    for (const v of graph.inputs) this.values.set(v.name, v);
    for (const node of graph.nodes) this.infer(node);
    for (const v of graph.outputs) if (!this.values.has(v.name)) this.values.set(v.name, v);
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new AutodiffError('E_GRADIENT_TARGET', `graph '${this.graph.name}' has no value named '${name}'; pass the name of an input, initializer or node output`);
    return v;
  }

  /** Records a shape that inference missed but the caller knows (a gradient has its value's shape). */
  withShape(v: Value, like: Value): Value {
    if (v.shape !== undefined || like.shape === undefined) return v;
    const known: Value = { ...v, shape: like.shape };
    this.values.set(v.name, known);
    return known;
  }

  /** Known int64 constant contents (axes, shapes), or undefined. */
  constantOf(v: Value): readonly number[] | undefined {
    return this.constants.get(v.name);
  }

  /** Every value created after construction (for value_info). */
  created(): Value[] {
    const out: Value[] = [];
    for (const node of this.nodes) for (const o of node.outputs) out.push(this.values.get(o)!);
    return out;
  }

  op(op: string, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, AttributeValue>> = {}): Value {
    return this.node(op, inputs, attributes, 1)[0]!;
  }

  node(op: string, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, AttributeValue>> = {}, outputs = 1, outputName?: string): Value[] {
    const name = `grad_${op}_${this.counter++}`;
    const node: Node = {
      op,
      domain: '',
      name,
      inputs: inputs.map((i) => i?.name ?? ''),
      outputs: Array.from({ length: outputs }, (_, i) => (i === 0 && outputName ? outputName : `${name}_out${i}`)),
      attributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, toAttribute(v)])),
    };
    this.nodes.push(node);
    return this.infer(node);
  }

  constant(values: readonly number[], dtype: ElemType, dims: readonly number[] = [values.length]): Value {
    const name = `grad_const_${this.counter++}`;
    const data = dtype === 'int64' ? new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) : new Uint8Array(Float32Array.from(values).buffer);
    if (dtype !== 'int64' && dtype !== 'float32') throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `autodiff constants are float32 or int64, not ${dtype}`);
    this.initializers.push({ name, dtype, dims, data });
    if (dtype === 'int64') this.constants.set(name, values);
    const v: Value = { name, dtype, shape: dims };
    this.values.set(name, v);
    return v;
  }

  ints(values: readonly number[]): Value {
    return this.constant(values, 'int64');
  }

  scalar(value: number): Value {
    return this.constant([value], 'float32', []);
  }

  private infer(node: Node): Value[] {
    const inputs = node.inputs.map((n) => (n === '' ? undefined : this.value(n)));
    const present = inputs.filter((i): i is Value => i !== undefined);
    const rule = SHAPE_RULES[node.op];
    let inferred: { dtype: ElemType; shape: readonly Dim[] | undefined }[];
    try {
      inferred = rule
        ? rule({ inputs: present, attributes: node.attributes, constants: inputs.map((i) => (i ? this.constants.get(i.name) : undefined)) })
        : [{ dtype: EXTRA_DTYPES[node.op] ?? present[0]!.dtype, shape: undefined }];
    } catch {
      inferred = [{ dtype: present[0]!.dtype, shape: undefined }];
    }
    return node.outputs.map((name, i) => {
      const info = inferred[i] ?? inferred[0]!;
      const v: Value = { name, dtype: info.dtype, shape: info.shape };
      this.values.set(name, v);
      return v;
    });
  }
}

/** Output dtypes of ops the shape table does not know (they only appear in gradient graphs). */
const EXTRA_DTYPES: Readonly<Record<string, ElemType>> = { GreaterOrEqual: 'bool', NonZero: 'int64', Size: 'int64' };

function toAttribute(v: AttributeValue): Attribute {
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : float(v);
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) return { type: 'ints', value: v as number[] };
  return v as Attribute;
}
