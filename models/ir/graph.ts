import type { ElemType } from './element-types.js';
import type { OpName } from './ops.js';

/**
 * The in-memory graph IR: values with dtype and (symbolic) shape, nodes with op type, domain and
 * attributes, initializers that are either inline bytes or a range of the bundle's
 * model.safetensors. Builders (`builder.ts`) create it; `serialize.ts` writes it as ONNX; the
 * training code differentiates it. Element types are models/ir/element-types.ts, ops models/ir/ops.ts.
 */
export type { ElemType } from './element-types.js';

/** A dimension: a size, a symbolic name (`batch`), or unknown. */
export type Dim = number | string | undefined;

export interface Value {
  readonly name: string;
  readonly dtype: ElemType;
  /** undefined: rank unknown. */
  readonly shape: readonly Dim[] | undefined;
}

export type Attribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'tensor'; value: Initializer };

export interface Node {
  readonly op: OpName;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, Attribute>>;
}

/** Where an external initializer's bytes live (ONNX external data: location, offset, length). */
export interface ExternalData {
  readonly location: string;
  readonly offset: number;
  readonly length: number;
}

export interface Initializer {
  readonly name: string;
  readonly dtype: ElemType;
  readonly dims: readonly number[];
  readonly data?: Uint8Array;
  readonly external?: ExternalData;
}

export interface Graph {
  readonly name: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly nodes: readonly Node[];
  readonly initializers: readonly Initializer[];
  /** Shapes of intermediate values, where known (written as ONNX value_info). */
  readonly valueInfo: readonly Value[];
  /** Opset version per domain ('' = ai.onnx). */
  readonly opsets: Readonly<Record<string, number>>;
  readonly docString?: string;
}
