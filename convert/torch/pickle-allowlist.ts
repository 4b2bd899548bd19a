import { NameRegistry, Parser } from 'pickleparser';
import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES, type DType } from '../../bundle/tensors/dtype.js';
import { scanPickle } from './pickle-scan.js';
import { checkUnpickledGraph, MAX_PICKLE_DEPTH } from './unpickled-graph.js';

/**
 * The only Python globals a checkpoint pickle may name, each mapped to a constructor of plain data.
 * Python's unpickler would import and call them; here nothing is imported or executed, and any
 * other global is refused before an object is built from it (`posix.system`, `builtins.eval`, …
 * are how malicious checkpoints run code). Mirrors the spirit of torch.load(weights_only=True)
 * (torch/_weights_only_unpickler.py), widened to the containers Lightning and sacred store in
 * `hyper_parameters`.
 */

/** A storage named by a persistent id; the checkpoint reader decides where its bytes lie. */
export class StorageRef {
  constructor(
    /** The key the tensor's storage is cached under (a legacy view has its own key). */
    readonly key: string,
    /** The record (zip `data/<key>`) or legacy storage that holds the bytes. */
    readonly rootKey: string,
    readonly dtype: DType,
    /** Elements before this storage starts inside its root (non-zero only for legacy views). */
    readonly elementOffset: number,
    readonly numel: number,
  ) {
    // The readers check a storage's extent when the persistent id is loaded; a later BUILD aimed at
    // the reference (pickleparser's Object.assign) must fail rather than change it afterwards.
    Object.freeze(this);
  }
}

/** What `_rebuild_tensor_v2` and friends return: a view into a storage, as torch describes it. */
export class PickledTensor {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
  ) {}
  /** BUILD on a tensor (Python attributes) carries nothing a reader needs. */
  __setstate__(): void {}
}

/** `torch.FloatStorage` and friends: the storage class in a persistent id only says the dtype. */
export class StorageClass {
  constructor(readonly name: string, readonly dtype: DType) {}
}

/** Markers for globals that are only ever referenced, never called for data. */
export class NamedGlobal {
  constructor(readonly qualifiedName: string) {}
}

/** `numpy.dtype('f8', False, True)` plus the byte order its BUILD state sets. */
export class NumpyDType {
  byteorder = '=';
  constructor(readonly code: string) {}
  __setstate__(state: unknown): void {
    if (Array.isArray(state) && typeof state[1] === 'string') this.byteorder = state[1];
  }
}

type DataConstructor = (...args: unknown[]) => unknown;
/** A global is either called (REDUCE, NEWOBJ) to build data, or only referenced as a value (a marker). */
type AllowedGlobal = DataConstructor | StorageClass | NamedGlobal;

const TENSOR_TYPES = ['torch.Tensor', 'torch.nn.parameter.Parameter'];

/** The allowlist: fully qualified global → pure data constructor. */
export const ALLOWED_GLOBALS: Readonly<Record<string, AllowedGlobal>> = {
  // nn.Module.state_dict() is an OrderedDict whose BUILD state (`_metadata`) is dropped.
  'collections.OrderedDict': (items) => withState(mapFrom(items, 'OrderedDict'), () => {}),
  // torch/_utils.py: _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None)
  'torch._utils._rebuild_tensor_v2': (storage, offset, size, stride) => rebuildTensor(storage, offset, size, stride),
  'torch._utils._rebuild_tensor': (storage, offset, size, stride) => rebuildTensor(storage, offset, size, stride),
  // _rebuild_parameter(data, requires_grad, backward_hooks[, state]): a Parameter is its data tensor.
  'torch._utils._rebuild_parameter': (data) => expectTensor(data, '_rebuild_parameter'),
  'torch._utils._rebuild_parameter_with_state': (data) => expectTensor(data, '_rebuild_parameter_with_state'),
  // torch/_tensor.py: _rebuild_from_type_v2(func, new_type, args, state) = func(*args) as new_type.
  // `func` can only be one of these constructors, since the parser resolved it through this table.
  'torch._tensor._rebuild_from_type_v2': (func, newType, args) => {
    if (typeof func !== 'function' || !(newType instanceof NamedGlobal) || !Array.isArray(args)) {
      malformed('_rebuild_from_type_v2', 'expects (function, tensor type, args, state)');
    }
    return expectTensor((func as DataConstructor)(...(args as unknown[])), '_rebuild_from_type_v2');
  },
  ...Object.fromEntries(TENSOR_TYPES.map((name) => [name, new NamedGlobal(name)])),
  ...storageClasses(),
  ...torchDTypes(),
  'torch.device': (type, index) => (typeof index === 'number' ? `${String(type)}:${index}` : String(type)),
  'torch.Size': (dims) => intList(dims, 'torch.Size'),
  // Plain containers, reduced to Map / array / object.
  'pytorch_lightning.utilities.parsing.AttributeDict': (items) => withState(mapFrom(items, 'AttributeDict'), () => {}),
  'lightning.fabric.utilities.data.AttributeDict': (items) => withState(mapFrom(items, 'AttributeDict'), () => {}),
  'sacred.config.custom_containers.ReadOnlyDict': (items) => withState(mapFrom(items, 'ReadOnlyDict'), () => {}),
  'sacred.config.custom_containers.ReadOnlyList': (items) => withState(listFrom(items, 'ReadOnlyList'), () => {}),
  // Namespace is pickled as NEWOBJ + BUILD(state = its attributes): the state is the content.
  'argparse.Namespace': () => {
    const map = new Map<unknown, unknown>();
    return withState(map, (state) => {
      if (state instanceof Map) for (const [k, v] of state) map.set(k, v);
    });
  },
  ...builtins('set', (items) => listFrom(items, 'set')),
  ...builtins('frozenset', (items) => listFrom(items, 'frozenset')),
  ...builtins('slice', (start, stop, step) => ({ start: start ?? null, stop: stop ?? null, step: step ?? null })),
  ...builtins('bytes', (items) => (items === undefined ? Buffer.alloc(0) : Buffer.from(intList(items, 'bytes')))),
  ...builtins('bytearray', (text, encoding) => (text === undefined ? Buffer.alloc(0) : encodeText(text, encoding))),
  // Protocol 2 pickles `bytes` as _codecs.encode(latin-1 text, 'latin1').
  '_codecs.encode': (text, encoding) => encodeText(text, encoding),
  ...numpy('numpy.core.multiarray'),
  ...numpy('numpy._core.multiarray'),
  'numpy.dtype': (code) => {
    if (typeof code !== 'string') malformed('numpy.dtype', 'expects a type code string');
    return new NumpyDType(code as string);
  },
};

export interface UnpickleOptions {
  /** Names the file and record in errors. */
  readonly label: string;
  /** torch's persistent_load: turns a persistent id tuple into a StorageRef. */
  readonly persistentLoad: (pid: unknown) => unknown;
}

/**
 * Unpickles the one pickle at the start of `bytes` through the allowlist (bytes after its STOP
 * opcode are ignored).
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return unpickleAt(bytes, 0, options).value;
}

/**
 * Unpickles the pickle that starts at `start` and says where it ends, so that consecutive pickles
 * (the legacy format) can be read one after another. The opcode stream is checked first
 * (pickle-scan.ts: every length within bounds, the position only moving forwards), and the built
 * value after (unpickled-graph.ts: depth, expanded size, no tampered objects).
 */
export function unpickleAt(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: unknown; end: number } {
  const end = scanPickle(bytes, start, options.label);
  const parser = new Parser({
    nameResolver: new AllowlistRegistry(options.label),
    persistentResolver: { resolve: (pid: unknown) => options.persistentLoad(pid) },
    // EXT1/2/4 name globals through copyreg's extension registry: refuse them like any unlisted global.
    extensionResolver: {
      resolve: (code: number) => {
        throw new BridgeTowerError('E_FORBIDDEN_GLOBAL', `${options.label}: the checkpoint reader refuses global extension code ${code}`, {
          global: `extension:${code}`,
          path: options.label,
          reason: 'forbidden_global',
        });
      },
    },
    unpicklingTypeOfDictionary: 'Map',
    unpicklingTypeOfSet: 'array',
  });
  let value: unknown;
  try {
    value = withoutConsoleWarnings(() => parser.parse(bytes.subarray(start, end)));
  } catch (err) {
    if (err instanceof BridgeTowerError) throw err;
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${options.label}: not a readable pickle: ${(err as Error).message}`, {
      path: options.label,
      reason: 'bad_pickle',
    });
  }
  checkUnpickledGraph(value, options.label, [PickledTensor, StorageRef, StorageClass, NamedGlobal, NumpyDType]);
  return { value, end };
}

/**
 * pickleparser prints "exceeds MAX_SAFE_INTEGER. Precision may be lost" with console.warn for large
 * ints, which would land on stderr even under `--json`. The parse is synchronous, so muting
 * console.warn around it hides nothing else.
 */
function withoutConsoleWarnings<T>(work: () => T): T {
  const warn = console.warn;
  console.warn = () => {};
  try {
    return work();
  } finally {
    console.warn = warn;
  }
}

/**
 * Converts unpickled values to JSON-like data for `CheckpointFile.metadata`: Maps become objects,
 * tensors `{ __tensor__: shape }` placeholders, bytes base64 strings, markers their names. Beyond
 * `limits` (depth, values written) it writes '[…]': error messages describe values that the graph
 * check has not seen yet, and must stay short and finite whatever the pickle built.
 */
export function toPlainValue(value: unknown, limits: { depth: number; values: number } = { depth: MAX_PICKLE_DEPTH, values: Infinity }): unknown {
  const budget = { values: limits.values };
  const seen = new Set<unknown>();
  const plain = (value: unknown, depth: number): unknown => {
    if (--budget.values < 0 || depth > limits.depth) return '[…]';
    if (value === null || value === undefined) return null;
    if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    if (typeof value !== 'object') return typeof value === 'function' ? '[function]' : value;
    if (value instanceof PickledTensor) return { __tensor__: [...value.shape] };
    if (value instanceof StorageRef) return { __storage__: value.dtype, numel: value.numel };
    if (value instanceof StorageClass) return `torch.${value.name}`;
    if (value instanceof NamedGlobal) return value.qualifiedName;
    if (value instanceof NumpyDType) return `numpy.dtype(${value.code})`;
    if (value instanceof Uint8Array) return bytesOf(value).toString('base64');
    if (seen.has(value)) return '[circular]';
    seen.add(value);
    try {
      if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1));
      // fromEntries defines own properties, so a '__proto__' key cannot reach any prototype.
      if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v, depth + 1)]));
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v, depth + 1)]));
    } finally {
      seen.delete(value);
    }
  };
  return plain(value, 0);
}

/** Limits for a value quoted in an error message. */
const QUOTED = { depth: 8, values: 200 };

const TYPED_ARRAY_GETTERS = Object.getOwnPropertyDescriptors(Object.getPrototypeOf(Uint8Array.prototype));

/** The bytes of a typed array through the built-in getters, which a BUILD-assigned own property cannot shadow. */
function bytesOf(value: Uint8Array): Buffer {
  const get = (name: 'buffer' | 'byteOffset' | 'byteLength') => TYPED_ARRAY_GETTERS[name]!.get!.call(value);
  return Buffer.from(get('buffer') as ArrayBuffer, get('byteOffset') as number, get('byteLength') as number);
}

// Frozen, because these objects outlive one load: a BUILD opcode aimed at one of them (which the
// parser turns into Object.assign) must fail rather than alter it for every later checkpoint.
const RESOLVED = new Map(
  Object.entries(ALLOWED_GLOBALS).map(([name, entry]) => [name, Object.freeze(typeof entry === 'function' ? constructible(entry) : entry)]),
);

/** Resolves names through ALLOWED_GLOBALS only; anything else is refused as it is named. */
class AllowlistRegistry extends NameRegistry {
  constructor(private readonly label: string) {
    super();
  }

  // A Map lookup, so that names like 'constructor' or '__proto__' cannot reach Object.prototype.
  // Markers are returned as values: the parser only pushes them, and calling one fails as malformed.
  override resolve(module: string, name: string): DataConstructor {
    const entry = RESOLVED.get(NameRegistry.getFullyQualifiedName(module, name));
    return (entry ?? this.onMissingName(module, name)) as DataConstructor;
  }

  override onMissingName(module: string, name: string): never {
    const global = NameRegistry.getFullyQualifiedName(module, name);
    throw new BridgeTowerError(
      'E_FORBIDDEN_GLOBAL',
      `${this.label}: the checkpoint reader refuses global '${global}': a pickle may only name tensors, ` +
        'storages and plain containers, since any other global can run code when Python loads it. ' +
        'Only open checkpoints from sources you trust, or re-save this one with plain tensors.',
      { global, path: this.label, reason: 'forbidden_global' },
    );
  }
}

/** The parser calls REDUCE targets plainly and NEWOBJ targets with `new`; a plain function serves both. */
function constructible(construct: DataConstructor): DataConstructor {
  return function (...args: unknown[]) {
    return construct(...args);
  };
}

function storageClasses(): Record<string, StorageClass> {
  return Object.fromEntries(
    Object.entries(DTYPES).map(([dtype, info]) => {
      const name = info.torchStorage[0]!;
      return [`torch.${name}`, new StorageClass(name, dtype as DType)];
    }),
  );
}

/** `torch.float16` etc. appear where a config records a dtype (Lightning's `precision` settings). */
function torchDTypes(): Record<string, NamedGlobal> {
  return Object.fromEntries(Object.keys(DTYPES).map((dtype) => [`torch.${dtype}`, new NamedGlobal(`torch.${dtype}`)]));
}

/** Protocol 2 writes Python 3's `builtins` under Python 2's name `__builtin__` (fix_imports). */
function builtins(name: string, construct: DataConstructor): Record<string, DataConstructor> {
  return { [`builtins.${name}`]: construct, [`__builtin__.${name}`]: construct };
}

function numpy(module: string): Record<string, DataConstructor> {
  return { [`${module}.scalar`]: (dtype, data) => numpyScalar(dtype, data) };
}

const NUMPY_SCALARS: Readonly<Record<string, (b: Buffer, little: boolean) => number | boolean>> = {
  f2: (b, le) => halfToNumber(le ? b.readUInt16LE(0) : b.readUInt16BE(0)),
  f4: (b, le) => (le ? b.readFloatLE(0) : b.readFloatBE(0)),
  f8: (b, le) => (le ? b.readDoubleLE(0) : b.readDoubleBE(0)),
  i1: (b) => b.readInt8(0),
  i2: (b, le) => (le ? b.readInt16LE(0) : b.readInt16BE(0)),
  i4: (b, le) => (le ? b.readInt32LE(0) : b.readInt32BE(0)),
  i8: (b, le) => Number(le ? b.readBigInt64LE(0) : b.readBigInt64BE(0)),
  u1: (b) => b.readUInt8(0),
  u2: (b, le) => (le ? b.readUInt16LE(0) : b.readUInt16BE(0)),
  u4: (b, le) => (le ? b.readUInt32LE(0) : b.readUInt32BE(0)),
  u8: (b, le) => Number(le ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0)),
  b1: (b) => b.readUInt8(0) !== 0,
};

function numpyScalar(dtype: unknown, data: unknown): unknown {
  if (!(dtype instanceof NumpyDType)) malformed('numpy scalar', 'expects a numpy.dtype');
  const { code, byteorder } = dtype as NumpyDType;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data instanceof Uint8Array ? Buffer.from(data) : undefined;
  const decode = NUMPY_SCALARS[code];
  if (!decode || !bytes) return { __numpy__: code };
  if (bytes.length < Number(code.slice(1))) malformed('numpy scalar', `holds ${bytes.length} bytes for dtype ${code}`);
  return decode(bytes, byteorder !== '>');
}

function halfToNumber(h: number): number {
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown): PickledTensor {
  if (!(storage instanceof StorageRef)) malformed('_rebuild_tensor_v2', 'expects a storage (persistent id) as its first argument');
  if (typeof offset !== 'number' || !Number.isInteger(offset)) malformed('_rebuild_tensor_v2', `storage offset ${String(offset)} is not an integer`);
  return new PickledTensor(storage as StorageRef, offset as number, intList(size, 'tensor size'), intList(stride, 'tensor stride'));
}

function expectTensor(value: unknown, what: string): PickledTensor {
  if (!(value instanceof PickledTensor)) malformed(what, 'expects a tensor');
  return value as PickledTensor;
}

function intList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isInteger(v))) {
    malformed(what, `expects a list of integers, got ${JSON.stringify(toPlainValue(value, QUOTED))}`);
  }
  return [...(value as number[])];
}

function mapFrom(items: unknown, what: string): Map<unknown, unknown> {
  if (items === undefined || items === null) return new Map();
  if (items instanceof Map) return new Map(items);
  if (Array.isArray(items) && items.every((pair) => Array.isArray(pair) && pair.length === 2)) {
    return new Map(items as [unknown, unknown][]);
  }
  return malformed(what, 'expects a dict or a list of (key, value) pairs');
}

function listFrom(items: unknown, what: string): unknown[] {
  if (items === undefined || items === null) return [];
  if (Array.isArray(items)) return [...items];
  if (items instanceof Map) return [...items.keys()];
  return malformed(what, 'expects a list');
}

function encodeText(text: unknown, encoding: unknown): Buffer {
  const enc = String(encoding ?? 'latin1').toLowerCase().replace(/[-_]/g, '');
  if (typeof text !== 'string' || !['latin1', 'utf8', 'ascii'].includes(enc)) {
    malformed('_codecs.encode', `expects (text, 'latin1'), got encoding ${String(encoding)}`);
  }
  return Buffer.from(text as string, enc === 'utf8' ? 'utf8' : 'latin1');
}

/** Gives a built object its own handler for the BUILD opcode, instead of the parser's generic merge. */
function withState<T extends object>(target: T, setState: (state: unknown) => void): T {
  Object.defineProperty(target, '__setstate__', { value: setState, enumerable: false });
  return target;
}

function malformed(what: string, why: string): never {
  throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `pickle: ${what} ${why}: the checkpoint is corrupt`, { global: what, reason: 'malformed_global' });
}

/** torch's persistent id for a storage, as torch/serialization.py's persistent_id writes it. */
export interface StoragePersistentId {
  readonly storageClass: StorageClass;
  readonly key: string;
  readonly location: string;
  readonly numel: number;
  /** Legacy format only: (view_key, offset, size) when the storage is a view into a larger one. */
  readonly view: { readonly key: string; readonly offset: number; readonly numel: number } | null;
}

/** Checks the shape of `('storage', StorageClass, key, location, numel[, view_metadata])`. */
export function parseStoragePersistentId(pid: unknown, label: string): StoragePersistentId {
  const fail = (why: string): never => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${label}: persistent id ${describe(pid)} ${why}`, { path: label, reason: 'bad_persistent_id' });
  };
  if (!Array.isArray(pid) || pid.length < 5 || pid.length > 6) return fail("is not ('storage', class, key, location, numel)");
  const [kind, storageClass, key, location, numel, view] = pid as unknown[];
  if (kind !== 'storage') fail(`has type '${String(kind)}'; only 'storage' is supported`);
  if (!(storageClass instanceof StorageClass)) fail('does not name a known torch storage class');
  const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof key !== 'string' && typeof key !== 'number') fail('has a key that is not a string');
  if (!isCount(numel)) fail('has an element count that is not a non-negative integer');
  let parsedView: StoragePersistentId['view'] = null;
  if (view !== undefined && view !== null) {
    if (!Array.isArray(view) || view.length !== 3 || !isCount(view[1]) || !isCount(view[2])) fail('has malformed view metadata');
    const [viewKey, offset, count] = view as [unknown, number, number];
    parsedView = { key: String(viewKey), offset, numel: count };
  }
  return {
    storageClass: storageClass as StorageClass,
    key: String(key),
    location: String(location),
    numel: numel as number,
    view: parsedView,
  };
}

function describe(value: unknown): string {
  const text = JSON.stringify(toPlainValue(value, QUOTED));
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
