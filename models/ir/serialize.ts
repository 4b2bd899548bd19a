import Long from 'long';
import { ELEMENT_TYPES } from './element-types.js';
import { ATTRIBUTE_TYPES, IR_VERSION, ModelProto } from './onnx-schema.js';
import type { Attribute, Graph, Initializer, Value } from './graph.js';

/**
 * Serializes a graph as an ONNX ModelProto. The one place that knows the ONNX wire format; every
 * graph (inference, fused, training) goes through it.
 */
export function serializeModel(graph: Graph, metadata: Record<string, string> = {}, producerVersion = ''): Uint8Array {
  const model = {
    irVersion: IR_VERSION,
    producerName: 'bridgetower-node',
    producerVersion,
    opsetImport: Object.entries(graph.opsets).map(([domain, version]) => ({ domain, version })),
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      docString: graph.docString ?? '',
      node: graph.nodes.map((n) => ({
        input: n.inputs,
        output: n.outputs,
        name: n.name,
        opType: n.op,
        domain: n.domain,
        attribute: Object.entries(n.attributes).map(([name, a]) => attributeProto(name, a)),
      })),
      initializer: graph.initializers.map(tensorProto),
      input: graph.inputs.map(valueInfoProto),
      output: graph.outputs.map(valueInfoProto),
      valueInfo: graph.valueInfo.map(valueInfoProto),
    },
  };
  const error = ModelProto.verify(model);
  if (error) throw new Error(`internal error: invalid ONNX model '${graph.name}': ${error}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

function tensorProto(init: Initializer) {
  const base = { name: init.name, dataType: ELEMENT_TYPES[init.dtype].onnx, dims: init.dims.map((d) => Long.fromNumber(d)) };
  if (init.external) {
    const { location, offset, length } = init.external;
    return {
      ...base,
      dataLocation: 1, // EXTERNAL
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(length) },
      ],
    };
  }
  return { ...base, rawData: init.data ?? new Uint8Array(0) };
}

function attributeProto(name: string, a: Attribute) {
  switch (a.type) {
    case 'int':
      return { name, type: ATTRIBUTE_TYPES.int, i: Long.fromNumber(a.value) };
    case 'float':
      return { name, type: ATTRIBUTE_TYPES.float, f: a.value };
    case 'string':
      return { name, type: ATTRIBUTE_TYPES.string, s: Buffer.from(a.value, 'utf8') };
    case 'ints':
      return { name, type: ATTRIBUTE_TYPES.ints, ints: a.value.map((v) => Long.fromNumber(v)) };
    case 'floats':
      return { name, type: ATTRIBUTE_TYPES.floats, floats: [...a.value] };
    case 'tensor':
      return { name, type: ATTRIBUTE_TYPES.tensor, t: tensorProto(a.value) };
  }
}

function valueInfoProto(v: Value) {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[v.dtype].onnx,
        ...(v.shape ? { shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: Long.fromNumber(d) } : typeof d === 'string' ? { dimParam: d } : {})) } } : {}),
      },
    },
  };
}
