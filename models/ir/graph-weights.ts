import { closeSync, openSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { encodeSafetensorsHeader, SafetensorsWriter, type SafetensorsEntry } from '../../bundle/safetensors/write-safetensors.js';
import { convertFloatBytes, encodeFloat16, encodeFloat32, toFloat32 } from '../../bundle/tensors/dtype-convert.js';
import { DTYPES, numel } from '../../bundle/tensors/dtype.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import type { WeightSource } from './builder.js';
import { ELEMENT_TYPES, elemTypeFromBundle, type ElemType } from './element-types.js';
import type { Graph, Initializer } from './graph.js';
import { computeDerived, derivedShape, parseDerivedName, storedType, type DerivedValues } from './weight-derivations.js';

/** A placeholder offset until `write` places the tensor: serializing a graph before that fails loudly in ONNX Runtime. */
const UNPLACED = -1;

/**
 * The weights file of one graph set (a precision variant's folder): every tensor its graphs read,
 * in the graphs' own layout and dtype — canonical tensors of the bundle (converted to the set's
 * float dtype) and tensors derived from them (weight-derivations.ts: kernel-layout copies,
 * quantized weights, their scales). Graphs are built against it as their WeightSource; `write`
 * then stores each tensor the finished graphs still reference exactly once, however many graphs
 * share it, and points their initializers at it. Nothing is computed twice and nothing is built
 * twice: lookups only read the canonical header.
 */
export class GraphWeightSet implements WeightSource {
  readonly derives = true;
  private readonly canonical;

  constructor(
    private readonly canonicalPath: string,
    /** The file name, relative to the graphs' folder (ONNX external data `location`). */
    readonly fileName: string,
    /** float32, or float16 for fp16 graphs. */
    readonly floatType: ElemType,
  ) {
    this.canonical = openSafetensors(canonicalPath);
  }

  lookup(name: string): ReturnType<WeightSource['lookup']> {
    const { base, steps } = parseDerivedName(name);
    const view = this.canonical.tensors.get(base);
    if (!view) return undefined;
    const isFloat = DTYPES[view.dtype].isFloat;
    let dtype: ElemType | undefined;
    let shape: readonly number[];
    if (steps.length === 0) {
      dtype = isFloat ? this.floatType : elemTypeFromBundle(view.dtype);
      shape = view.shape;
    } else {
      const derived = derivedShape(name, view.shape, isFloat);
      dtype = storedType(derived.kind, this.floatType);
      shape = derived.shape;
    }
    if (!dtype) return undefined;
    return { dtype, shape, external: { location: this.fileName, offset: UNPLACED, length: numel(shape) * ELEMENT_TYPES[dtype].bytes } };
  }

  /**
   * Writes the tensors `graphs` reference from this set into `path` and returns the graphs with
   * their initializers placed in it, plus the file's size. `GraphWeightSet.writeAll` writes several
   * sets at once.
   */
  write(path: string, graphs: readonly Graph[], metadata: Record<string, string> = {}): WrittenSet {
    return GraphWeightSet.writeAll([{ set: this, path, graphs, metadata }])[0]!;
  }

  /**
   * Writes several sets built on the same canonical file in one pass over it: each canonical tensor
   * is read once and each derivation computed once (`w#kernel` for the fp32 set, then `#s8` of it
   * for the int8 set and `#s8#u8` for the u8 set), whichever sets need them. Tensors are sorted by
   * canonical name, then by full name, in every file. On any error every file is removed.
   */
  static writeAll(jobs: ReadonlyArray<{ set: GraphWeightSet; path: string; graphs: readonly Graph[]; metadata?: Record<string, string> }>): WrittenSet[] {
    const canonicalPath = jobs[0]?.set.canonicalPath;
    if (jobs.some((j) => j.set.canonicalPath !== canonicalPath)) throw new BridgeTowerError('E_INTERNAL', 'GraphWeightSet.writeAll: the sets derive from different canonical files');
    const plans = jobs.map((job) => job.set.plan(job.path, job.graphs, job.metadata ?? {}));
    const writers: SafetensorsWriter[] = [];
    const fd = canonicalPath === undefined ? undefined : openSync(canonicalPath, 'r');
    try {
      for (const p of plans) writers.push(new SafetensorsWriter(p.path, p.entries, p.metadata));
      const bases = [...new Set(plans.flatMap((p) => p.entries.map((e) => parseDerivedName(e.name).base)))].sort();
      const next = plans.map(() => 0);
      for (const base of bases) {
        const view = jobs[0]!.set.canonical.tensors.get(base)!;
        const raw = readTensorBytes(fd!, view);
        const cache = new Map<string, DerivedValues>();
        let floats: DerivedValues | undefined;
        plans.forEach((p, i) => {
          for (let entry = p.entries[next[i]!]; entry && parseDerivedName(entry.name).base === base; entry = p.entries[++next[i]!]) {
            if (!entry.name.includes('#')) {
              writers[i]!.write(entry.name, DTYPES[view.dtype].isFloat && view.dtype !== entry.dtype ? convertFloatBytes(view.dtype, entry.dtype, raw) : raw);
              continue;
            }
            floats ??= { dtype: 'float', shape: view.shape, data: toFloat32(view.dtype, raw) };
            const values = computeDerived(entry.name, floats, (k) => cache.get(k), (k, v) => cache.set(k, v));
            writers[i]!.write(entry.name, encodeValues(values, entry.dtype, entry.name));
          }
        });
      }
      for (const w of writers) w.close();
    } catch (error) {
      for (const w of writers) w.abort();
      throw error;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return plans.map((p) => p.result);
  }

  /** The file's tensor list (sorted), header size and each initializer's place; the graphs pointed at it. */
  private plan(path: string, graphs: readonly Graph[], metadata: Record<string, string>) {
    const used = new Map<string, Initializer>();
    for (const g of graphs) for (const init of g.initializers) if (init.external?.location === this.fileName) used.set(init.name, init);
    const entries: SafetensorsEntry[] = [...used.values()]
      .map((i) => ({ name: i.name, dtype: ELEMENT_TYPES[i.dtype].bundle, shape: [...i.dims] }))
      .sort((a, b) => compareByBase(a.name, b.name));
    const { prefix, byteLengths } = encodeSafetensorsHeader(path, entries, metadata);
    const placed = new Map<string, { offset: number; length: number }>();
    let offset = prefix.length;
    entries.forEach((e, i) => {
      placed.set(e.name, { offset, length: byteLengths[i]! });
      offset += byteLengths[i]!;
    });
    const bound = graphs.map((g) => ({
      ...g,
      initializers: g.initializers.map((init) => {
        const at = init.external?.location === this.fileName ? placed.get(init.name) : undefined;
        return at ? { ...init, external: { location: this.fileName, ...at } } : init;
      }),
    }));
    return { path, entries, metadata, result: { graphs: bound, bytes: offset, tensors: entries.length } };
  }
}

export interface WrittenSet {
  graphs: Graph[];
  /** Size of the weights file. */
  bytes: number;
  tensors: number;
}

function encodeValues(v: DerivedValues, dtype: string, name: string): Uint8Array {
  if (v.dtype === 'float') {
    const floats = v.data as Float32Array;
    if (dtype === 'float32') return encodeFloat32(floats);
    if (dtype === 'float16') return encodeFloat16(floats);
  } else if (v.dtype === dtype) {
    return new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  }
  throw new BridgeTowerError('E_INTERNAL', `derived weight '${name}': ${v.dtype} values cannot be stored as ${dtype}`, { weight: name });
}

/** By canonical tensor first, then by full name: a canonical tensor's derivations sit together. */
function compareByBase(a: string, b: string): number {
  const [ba, bb] = [parseDerivedName(a).base, parseDerivedName(b).base];
  if (ba !== bb) return ba < bb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
