import { BridgeTowerError } from '../../common/errors.js';

/**
 * Checks what pickleparser built before anything else touches it. Its BUILD opcode merges a state
 * into any object without `__setstate__` (Object.assign) and its DICT opcode sets keys as
 * properties, so a hostile pickle can give a list an own `map` or a dict an own `get`, which would
 * crash (untyped) whatever reads the value later. It can also nest values 20,000 deep (stack
 * overflow in any recursive reader) or share one list twice per level, so that a few hundred bytes
 * expand to 2^40 values once written out as metadata. Walked iteratively, each object once.
 */

/** Nesting a checkpoint needs: a state dict's tensor is ~4 levels, Lightning's hyper_parameters ~8. */
export const MAX_PICKLE_DEPTH = 100;
/** Values the object graph holds once shared references are written out as copies (metadata, JSON). */
export const MAX_EXPANDED_VALUES = 4_000_000;

/** A class whose instances the allowlist builds with a fixed shape (frozen, or with their own `__setstate__`). */
type LeafClass = abstract new (...args: never[]) => unknown;

const TYPED_ARRAY_PROTOTYPE = Object.getPrototypeOf(Uint8Array.prototype) as object;

interface Frame {
  readonly node: object;
  readonly children: readonly unknown[];
  next: number;
  height: number;
  size: number;
}

/**
 * Refuses (E_CHECKPOINT_FORMAT, `details.reason`) a graph with a tampered container
 * ('pickle_tampered_object'), nesting deeper than MAX_PICKLE_DEPTH ('pickle_too_deep') or more than
 * MAX_EXPANDED_VALUES values once expanded ('pickle_too_many_values').
 */
export function checkUnpickledGraph(root: unknown, label: string, leafClasses: readonly LeafClass[]): void {
  const fail = (reason: string, why: string): never => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${label}: ${why}`, { path: label, reason });
  };
  const leafPrototypes = new Set<unknown>([...leafClasses.map((c) => c.prototype), Buffer.prototype, Uint8Array.prototype]);
  /** Expanded size of each finished object (a shared one counts again wherever it appears). */
  const sizes = new Map<object, { height: number; size: number }>();
  const onPath = new Set<object>();
  const path: Frame[] = [];

  const enter = (node: object): void => {
    if (path.length >= MAX_PICKLE_DEPTH) {
      fail('pickle_too_deep', `the pickle nests values more than ${MAX_PICKLE_DEPTH} levels deep; a checkpoint needs a handful`);
    }
    path.push({ node, children: childrenOf(node, leafPrototypes, fail), next: 0, height: 1, size: 1 });
    onPath.add(node);
  };
  const account = (frame: Frame, height: number, size: number): void => {
    frame.height = Math.max(frame.height, height + 1);
    frame.size += size;
    if (path.length - 1 + frame.height > MAX_PICKLE_DEPTH) {
      fail('pickle_too_deep', `the pickle nests values more than ${MAX_PICKLE_DEPTH} levels deep; a checkpoint needs a handful`);
    }
    if (frame.size > MAX_EXPANDED_VALUES) {
      fail('pickle_too_many_values', `the pickle expands to more than ${MAX_EXPANDED_VALUES} values (shared references written out); it is not a checkpoint`);
    }
  };

  if (typeof root !== 'object' || root === null) return;
  enter(root);
  while (path.length > 0) {
    const frame = path[path.length - 1]!;
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++];
      if (typeof child !== 'object' || child === null) account(frame, 0, 1);
      else if (onPath.has(child)) account(frame, 0, 1); // a cycle: written out as '[circular]'
      else if (sizes.has(child)) account(frame, sizes.get(child)!.height, sizes.get(child)!.size);
      else enter(child);
      continue;
    }
    path.pop();
    onPath.delete(frame.node);
    sizes.set(frame.node, { height: frame.height, size: frame.size });
    if (path.length > 0) account(path[path.length - 1]!, frame.height, frame.size);
  }
}

/** The values inside a container, after checking it is exactly what the parser or the allowlist makes. */
function childrenOf(node: object, leafPrototypes: ReadonlySet<unknown>, fail: (reason: string, why: string) => never): readonly unknown[] {
  const prototype = Object.getPrototypeOf(node) as unknown;
  const tampered = (what: string, key: PropertyKey): never =>
    fail('pickle_tampered_object', `the pickle gives a ${what} the own property '${String(key)}' (a BUILD or DICT aimed at it): the checkpoint is corrupt or hostile`);
  if (typeof node === 'function' || leafPrototypes.has(prototype) || isTypedArrayOf(prototype)) return [];
  if (prototype === Array.prototype && Array.isArray(node)) {
    const keys = Reflect.ownKeys(node);
    if (keys.length !== node.length + 1) {
      const extra = keys.find((k) => k !== 'length' && !(typeof k === 'string' && /^(0|[1-9]\d*)$/.test(k)));
      tampered('list', extra ?? 'length');
    }
    return node;
  }
  if (prototype === Map.prototype && node instanceof Map) {
    // withState() gives allowlisted containers a non-enumerable __setstate__; nothing else belongs there.
    const extra = Reflect.ownKeys(node).find((k) => k !== '__setstate__');
    if (extra !== undefined) tampered('dict', extra);
    return [...node.keys(), ...node.values()];
  }
  if (prototype === Object.prototype) {
    const extra = Reflect.ownKeys(node).find((k) => typeof k !== 'string' || k in Object.prototype);
    if (extra !== undefined) tampered('object', extra);
    return Object.values(node);
  }
  return fail('pickle_tampered_object', 'the pickle built an object whose prototype was replaced (a BUILD aimed at it): the checkpoint is corrupt or hostile');
}

function isTypedArrayOf(prototype: unknown): boolean {
  return typeof prototype === 'object' && prototype !== null && Object.getPrototypeOf(prototype) === TYPED_ARRAY_PROTOTYPE;
}
