import { BridgeTowerError } from '../../common/errors.js';
import { float32ToFloat16Bits as float16Bits } from '../../bundle/tensors/dtype-convert.js';
import type { Attribute, Dim, ElemType, ExternalData, Graph, Initializer, Node, Value } from './graph.js';
import { DEFAULT_OPSET, MS_DOMAIN } from './onnx-schema.js';
import { SHAPE_RULES } from './shape-inference.js';

/** Where named weights come from (the bundle's model.safetensors), without reading them. */
export interface WeightSource {
  /** dtype, shape and byte range of a weight, or undefined if the bundle lacks it. */
  lookup(name: string): { dtype: ElemType; shape: readonly number[]; external: ExternalData } | undefined;
}

export interface GraphFeatures {
  /** Emit ONNX Runtime's com.microsoft MultiHeadAttention instead of MatMul/Softmax/MatMul. */
  fusedAttention: boolean;
  /** Training graphs only: where `models/layers/dropout.ts` draws its masks (absent = no dropout). */
  dropout?: DropoutFeature;
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

/**
 * Builds a graph. Weights are requested by their canonical name through scopes that mirror the
 * upstream module tree (`b.scope('cross_modal_text_layers.0').scope('attention')`), so a missing or
 * misnamed weight names itself. Node outputs get dtype and shape from the shape-inference table.
 */
export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly inputs: Value[] = [];
  private readonly outputs: Value[] = [];
  private readonly initializers = new Map<string, Initializer>();
  private readonly values = new Map<string, Value>();
  private readonly constantValues = new Map<string, readonly number[]>();
  private counter = 0;
  private usesContribOps = false;

  constructor(
    readonly name: string,
    private readonly weights: WeightSource,
    /** Optional kernels the layers may use (`--optimize`). */
    readonly features: GraphFeatures = { fusedAttention: false },
  ) {}

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

  hasWeight(name: string): boolean {
    return this.weights.lookup(name) !== undefined;
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

  /** Adds a node; returns its outputs with inferred dtype and shape. */
  node(
    op: string,
    inputs: ReadonlyArray<Value | undefined>,
    attributes: Readonly<Record<string, AttributeInput>> = {},
    options: { domain?: string; outputs?: number; outputName?: string } = {},
  ): Value[] {
    const domain = options.domain ?? '';
    if (domain === MS_DOMAIN) this.usesContribOps = true;
    const attrs = Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, toAttribute(v)]));
    const present = inputs.filter((i): i is Value => i !== undefined);
    const rule = SHAPE_RULES[op];
    const inferred = rule
      ? rule({ inputs: present, attributes: attrs, constants: inputs.map((i) => (i ? this.constantValues.get(i.name) : undefined)) })
      : [{ dtype: present[0]!.dtype, shape: undefined }];
    const count = options.outputs ?? inferred.length;
    const nodeName = this.fresh(op);
    const outputs = Array.from({ length: count }, (_, i) => {
      const info = inferred[i] ?? inferred[0]!;
      const name = i === 0 && options.outputName ? options.outputName : `${nodeName}_out${i}`;
      return this.register({ name, dtype: info.dtype, shape: info.shape });
    });
    this.nodes.push({ op, domain, name: nodeName, inputs: inputs.map((i) => i?.name ?? ''), outputs: outputs.map((o) => o.name), attributes: attrs });
    return outputs;
  }

  /** Single-output shorthand for `node`. */
  op(op: string, inputs: ReadonlyArray<Value | undefined>, attributes: Readonly<Record<string, AttributeInput>> = {}, domain?: string): Value {
    return this.node(op, inputs, attributes, domain ? { domain } : {})[0]!;
  }

  build(docString?: string): Graph {
    const declared = new Set([...this.inputs, ...this.outputs].map((v) => v.name));
    const valueInfo = [...this.values.values()].filter((v) => !declared.has(v.name) && !this.initializers.has(v.name) && v.shape !== undefined && v.shape.every((d) => d !== undefined));
    return {
      name: this.name,
      inputs: this.inputs,
      outputs: this.outputs,
      nodes: this.nodes,
      initializers: [...this.initializers.values()],
      valueInfo,
      opsets: this.usesContribOps ? { '': DEFAULT_OPSET, [MS_DOMAIN]: 1 } : { '': DEFAULT_OPSET },
      ...(docString ? { docString } : {}),
    };
  }

  private register(value: Value): Value {
    this.values.set(value.name, value);
    return value;
  }

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
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
    case 'bool':
      return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
    case 'float16': {
      const out = new Uint16Array(values.length);
      values.forEach((v, i) => (out[i] = float16Bits(v)));
      return new Uint8Array(out.buffer);
    }
  }
}
