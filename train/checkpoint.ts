import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { buildFolderAtomically, writeFileAtomically } from '../bundle/atomic-dir.js';
import { readSafetensors, toFloat32 } from '../bundle/safetensors/read-safetensors.js';
import { writeSafetensors } from '../bundle/safetensors/write-safetensors.js';
import type { FlatLayout } from './flat-parameters.js';
import { writeTrainedBundle, type FineTuneProvenance } from './trained-bundle.js';

/**
 * Training checkpoints: `<out>/checkpoints/step-000120/` is a complete bundle (servable,
 * evaluable) plus `trainer/`: the AdamW moments (`optimizer.safetensors`) and `state.json`
 * (position in the run, the run's fingerprint, best dev score). Checkpoints are taken at optimizer
 * step boundaries, where no gradient is being accumulated, and every random draw is a function of
 * (--seed, epoch, index), so resuming from one continues bit-identically. Each is built in a
 * hidden folder and renamed into place: an interrupted save leaves nothing behind.
 */
export const CHECKPOINTS_DIR = 'checkpoints';
const TRAINER_DIR = 'trainer';
const STATE_FILE = 'state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FORMAT = 'bridgetower-train-state';

export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: 1;
  /** Optimizer steps done. */
  step: number;
  /** Epoch to continue in (0-based) and micro-batches of it already consumed. */
  epoch: number;
  position: number;
  samples: number;
  /** Everything that must match for `--resume` to continue the same run. */
  fingerprint: Record<string, unknown>;
  best?: { metric: string; value: number; step: number };
  /**
   * The checkpoint was saved for a dev evaluation that has not finished: a run killed in between
   * would otherwise skip it on `--resume`, and `best/` could keep a worse step.
   */
  evalPending?: boolean;
}

export interface CheckpointContents {
  /** The checkpoint bundle's name. */
  name: string;
  source: string;
  layout: FlatLayout;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  state: TrainerState;
  provenance: FineTuneProvenance;
}

export const checkpointName = (step: number) => `step-${String(step).padStart(6, '0')}`;

export async function saveCheckpoint(outDir: string, contents: CheckpointContents): Promise<string> {
  const target = join(outDir, CHECKPOINTS_DIR, checkpointName(contents.state.step));
  mkdirSync(join(outDir, CHECKPOINTS_DIR), { recursive: true });
  await buildFolderAtomically(target, { overwrite: true }, async (dir) => {
    writeTrainedBundle(dir, contents.name, contents.source, contents.layout, contents.params, contents.provenance);
    mkdirSync(join(dir, TRAINER_DIR));
    const tensors = contents.layout.slots.flatMap((slot) =>
      (['m', 'v'] as const).map((kind) => {
        const data = (kind === 'm' ? contents.m : contents.v).subarray(slot.offset, slot.offset + slot.size);
        return { name: `${kind}.${slot.name}`, dtype: 'float32' as const, shape: slot.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
      }),
    );
    writeSafetensors(join(dir, TRAINER_DIR, OPTIMIZER_FILE), tensors, { step: String(contents.state.step) });
    writeFileSync(join(dir, TRAINER_DIR, STATE_FILE), `${JSON.stringify(contents.state, null, 2)}\n`);
  });
  return target;
}

/** Complete checkpoints under `<out>/checkpoints`, oldest first (hidden partial folders are ignored). */
export function listCheckpoints(outDir: string): Array<{ dir: string; step: number }> {
  const root = join(outDir, CHECKPOINTS_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ name, match: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.match && existsSync(join(root, e.name, TRAINER_DIR, STATE_FILE)))
    .map((e) => ({ dir: join(root, e.name), step: Number(e.match![1]) }))
    .sort((a, b) => a.step - b.step);
}

export function readTrainerState(checkpointDir: string): TrainerState {
  const path = join(checkpointDir, TRAINER_DIR, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as TrainerState;
  } catch (error) {
    throw new BridgeTowerError('E_RESUME', `cannot read the training state ${path}: ${(error as Error).message}`);
  }
  if (state.format !== STATE_FORMAT || state.version !== 1) throw new BridgeTowerError('E_RESUME', `${path} is not a bridgetower training state (format ${String(state.format)} v${String(state.version)})`);
  return state;
}

/** Parameters (from the checkpoint's weights) and AdamW moments, in `layout`'s flat order. */
export function loadCheckpoint(checkpointDir: string, layout: FlatLayout): { params: Float32Array; m: Float32Array; v: Float32Array; state: TrainerState } {
  const state = readTrainerState(checkpointDir);
  const params = layout.readFromBundle(checkpointDir);
  const moments = readSafetensors(join(checkpointDir, TRAINER_DIR, OPTIMIZER_FILE));
  const m = new Float32Array(layout.total);
  const v = new Float32Array(layout.total);
  for (const slot of layout.slots) {
    for (const [kind, buffer] of [['m', m], ['v', v]] as const) {
      const t = moments.get(`${kind}.${slot.name}`);
      if (!t || t.dtype !== 'float32' || t.data.byteLength !== slot.size * 4) {
        throw new BridgeTowerError('E_RESUME', `${checkpointDir}: optimizer state lacks a float32 '${kind}.${slot.name}' of ${slot.size} elements (was it saved with another --train subset?)`);
      }
      buffer.set(toFloat32(t.dtype, t.data), slot.offset);
    }
  }
  return { params, m, v, state };
}

/**
 * Keeps the newest `keep` checkpoints and, in addition, those in `protect` (the best dev step's, so
 * that the best/ bundle's optimizer state survives too): at most `keep + protect.size` remain.
 * Returns the steps kept, oldest first, and which of them are kept only because they are protected.
 */
export function pruneCheckpoints(outDir: string, keep: number, protect: ReadonlySet<number> = new Set()): { kept: number[]; extra: number[] } {
  const all = listCheckpoints(outDir);
  const older = all.slice(0, Math.max(0, all.length - keep));
  for (const c of older) if (!protect.has(c.step)) rmSync(c.dir, { recursive: true, force: true });
  const extra = older.filter((c) => protect.has(c.step)).map((c) => c.step);
  return { kept: all.filter((c, i) => i >= older.length || protect.has(c.step)).map((c) => c.step), extra };
}

/** Records a later fact (the dev score that made it the best) in a saved checkpoint's state. */
export async function updateTrainerState(checkpointDir: string, state: TrainerState): Promise<void> {
  await writeFileAtomically(join(checkpointDir, TRAINER_DIR, STATE_FILE), { overwrite: true }, (path) => writeFileSync(path, `${JSON.stringify(state, null, 2)}\n`));
}
