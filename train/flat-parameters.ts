import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { BUNDLE_FILES } from '../bundle/config.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { readFully } from '../bundle/tensors/read-tensor.js';
import { groupOf, type OptimizerHyperParameters, type ParameterGroup } from './optimizer/parameter-groups.js';
import type { TrainableParameter } from './training-graph.js';

/**
 * The trainable parameters as one float32 buffer, ordered by upstream optimizer group so each
 * group is one contiguous range (the AdamW graph then runs once per group with scalar step sizes).
 * ONNX Runtime reads graph inputs in place, so feeding a parameter costs a view, not a copy.
 */
export interface ParameterSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  group: ParameterGroup;
}

export interface GroupRange {
  group: ParameterGroup;
  offset: number;
  size: number;
}

export class FlatLayout {
  readonly slots: ParameterSlot[];
  readonly groups: GroupRange[];
  readonly total: number;
  private readonly byName: Map<string, ParameterSlot>;

  constructor(parameters: readonly TrainableParameter[], hp: OptimizerHyperParameters) {
    const grouped = parameters.map((p) => ({ p, group: groupOf(p.name, hp) }));
    const orphan = grouped.find((g) => g.group === undefined);
    if (orphan) throw new BridgeTowerError('E_USAGE', `parameter '${orphan.p.name}' falls in none of upstream's six optimizer groups (a head name that also contains 'cross_modal')`);
    grouped.sort((a, b) => a.group!.group - b.group!.group);
    let offset = 0;
    this.slots = grouped.map(({ p, group }) => {
      const slot = { name: p.name, shape: p.shape, offset, size: p.size, group: group! };
      offset += p.size;
      return slot;
    });
    this.total = offset;
    this.byName = new Map(this.slots.map((s) => [s.name, s]));
    this.groups = [];
    for (const slot of this.slots) {
      const last = this.groups[this.groups.length - 1];
      if (last && last.group.group === slot.group.group) last.size += slot.size;
      else this.groups.push({ group: slot.group, offset: slot.offset, size: slot.size });
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  slot(name: string): ParameterSlot {
    const s = this.byName.get(name);
    if (!s) throw new BridgeTowerError('E_USAGE', `'${name}' is not a trainable parameter of this run`);
    return s;
  }

  view(buffer: Float32Array, name: string): Float32Array {
    const s = this.slot(name);
    return buffer.subarray(s.offset, s.offset + s.size);
  }

  /** Reads the trainable parameters' initial values from a bundle's float32 model.safetensors. */
  readFromBundle(bundleDir: string): Float32Array {
    const path = join(bundleDir, BUNDLE_FILES.weights);
    const file = openSafetensors(path);
    const values = new Float32Array(this.total);
    const fd = openSync(path, 'r');
    try {
      for (const slot of this.slots) {
        const view = file.tensors.get(slot.name);
        if (!view) throw new BridgeTowerError('E_BUNDLE', `${path} lacks '${slot.name}'`);
        const bytes = slot.size * 4;
        if (view.dtype !== 'float32' || view.storage.byteLength < bytes) {
          throw new BridgeTowerError('E_BUNDLE', `${path}: '${slot.name}' is ${view.dtype} with ${view.storage.byteLength} bytes; training needs float32 [${slot.shape.join(', ')}]`);
        }
        readFully(fd, Buffer.from(values.buffer, slot.offset * 4, bytes), view.storage.fileOffset + view.storageOffset * 4);
      }
    } finally {
      closeSync(fd);
    }
    return values;
  }
}

/** `into[offset + i] += g[i] · weight`: one micro-batch's gradient into the accumulated flat buffer. */
export function addScaled(into: Float32Array, g: Float32Array, offset: number, weight: number): void {
  for (let i = 0; i < g.length; i++) into[offset + i]! += g[i]! * weight;
}

/** The global L2 norm (accumulated in float64), for logging, divergence checks and clipping. */
export function l2Norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

export function scaleInPlace(x: Float32Array, factor: number): void {
  for (let i = 0; i < x.length; i++) x[i]! *= factor;
}

/**
 * A zeroed flat buffer whose pages are resident from the start. `new Float32Array(n)` gets pages
 * the kernel maps on first write, so a gradient buffer or the moments would join the process's
 * memory only partway through step 1, and step 1's peak would understate every later step's by up
 * to their size (1.4 GB each for BASE `--trainable all`). Writing the zeros makes the first step's
 * peak the steady state's.
 */
export function residentBuffer(length: number): Float32Array {
  return new Float32Array(length).fill(0);
}
