/**
 * Just enough of the WebAssembly binary format to emit one SIMD function without a toolchain
 * (none is installed, and a committed .wasm would be an opaque blob): a byte table of the opcodes
 * used, LEB128, and a builder where every f32x4 operation writes a fresh local. V8 allocates
 * registers for the locals, so "one local per intermediate" costs nothing once TurboFan compiles
 * it, and it keeps the emitted order of operations exactly the order written in TypeScript — the
 * point, since the AdamW kernel must round like the ONNX graph, operation by operation.
 */

/** Opcodes (WebAssembly core 2.0 + fixed-width SIMD); SIMD ones follow the 0xfd prefix as LEB128. */
const OP = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br_if: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  i32Const: 0x41,
  f32Const: 0x43,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Shl: 0x74,
  f32Neg: 0x8c,
} as const;

const SIMD = {
  load: 0x00,
  store: 0x0b,
  f32x4Splat: 0x13,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
} as const;

export const TYPE = { i32: 0x7f, f32: 0x7d, v128: 0x7b } as const;
type ValType = (typeof TYPE)[keyof typeof TYPE];

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

/** A local holding a v128 value. */
export type V = { readonly local: number };
export type Binary = 'add' | 'sub' | 'mul' | 'div';
const BINARY: Record<Binary, number> = { add: SIMD.f32x4Add, sub: SIMD.f32x4Sub, mul: SIMD.f32x4Mul, div: SIMD.f32x4Div };

/**
 * One function body: parameters first (as WebAssembly numbers them), then locals declared on use.
 */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(private readonly params: readonly ValType[]) {}

  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  emit(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  get(index: number): this {
    return this.emit(OP.localGet, ...uleb(index));
  }

  set(index: number): this {
    return this.emit(OP.localSet, ...uleb(index));
  }

  simd(op: number, ...immediates: number[]): this {
    return this.emit(0xfd, ...uleb(op), ...immediates);
  }

  i32Const(n: number): this {
    return this.emit(OP.i32Const, ...sleb(n));
  }

  f32Const(x: number): this {
    const bytes = new Uint8Array(new Float32Array([x]).buffer);
    return this.emit(OP.f32Const, ...bytes);
  }

  /** Stores the v128 on the stack into a fresh local. */
  keep(): V {
    const local = this.local(TYPE.v128);
    this.set(local);
    return { local };
  }

  /** f32x4.splat of the f32 parameter or local `index`. */
  splat(index: number): V {
    return this.get(index).simd(SIMD.f32x4Splat).keep();
  }

  splatConst(x: number): V {
    return this.f32Const(x).simd(SIMD.f32x4Splat).keep();
  }

  op(kind: Binary, a: V, b: V): V {
    return this.get(a.local).get(b.local).simd(BINARY[kind]).keep();
  }

  sqrt(a: V): V {
    return this.get(a.local).simd(SIMD.f32x4Sqrt).keep();
  }

  /** v128.load from the i32 locals `base + offset` (16-byte aligned). */
  load(base: number, offset: number): V {
    return this.get(base).get(offset).emit(OP.i32Add).simd(SIMD.load, 4, 0).keep();
  }

  store(base: number, offset: number, value: V): this {
    return this.get(base).get(offset).emit(OP.i32Add).get(value.local).simd(SIMD.store, 4, 0);
  }

  /**
   * `for (o = 0; o < count * 4 bytes; o += 16) body(o)`, skipped when count is 0; `count` is an i32
   * parameter holding a multiple of 4 elements.
   */
  loopOverVectors(count: number, body: (offset: number) => void): this {
    const offset = this.local(TYPE.i32);
    const end = this.local(TYPE.i32);
    this.get(count).i32Const(2).emit(OP.i32Shl).set(end);
    this.i32Const(0).set(offset);
    this.emit(OP.block, 0x40).get(end).emit(OP.i32Eqz, OP.br_if, 0);
    this.emit(OP.loop, 0x40);
    body(offset);
    this.get(offset).i32Const(16).emit(OP.i32Add).set(offset);
    this.get(offset).get(end).emit(OP.i32LtU, OP.br_if, 0);
    return this.emit(OP.end, OP.end);
  }

  /** f32.neg of an f32 parameter, as a splat. */
  negSplat(index: number): V {
    return this.get(index).emit(OP.f32Neg).simd(SIMD.f32x4Splat).keep();
  }

  body(): number[] {
    const groups: number[][] = [];
    for (const type of this.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === type) last[0]!++;
      else groups.push([1, type]);
    }
    const bytes = [...vec(groups.map(([count, type]) => [...uleb(count!), type!])), ...this.code, OP.end];
    return [...uleb(bytes.length), ...bytes];
  }

  get signature(): readonly ValType[] {
    return this.params;
  }
}

/** A module of one exported function over an imported memory `env.memory`. */
export function moduleBytes(exportName: string, fn: FunctionBuilder): Uint8Array {
  const type = [0x60, ...vec(fn.signature.map((t) => [t])), 0x00];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([type])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vec([[0x00]])),
    ...section(7, vec([[...name(exportName), 0x00, 0x00]])),
    ...section(10, vec([fn.body()])),
  ];
  return Uint8Array.from(bytes);
}
