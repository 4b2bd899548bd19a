import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { mutate, seededRandom, type MutationName } from '../helpers/mutator.js';
import type { FuzzTarget } from './fuzz-targets.js';

/**
 * Runs mutated inputs through one reader and sorts the outcomes. A case passes when the reader
 * returns (the mutation kept the file valid) or throws a typed BridgeTowerError other than
 * E_INTERNAL, within the time bound, without the process's memory passing the memory bound, and
 * without leaving any file beside the input (no partial output). Everything else is a failure,
 * kept with its bytes so that it can become a regression test.
 */

/** One case may take this long; a reader that needs more is looping or decoding a bomb. */
export const CASE_TIME_BOUND_MS = 5_000;
/** Resident memory after a case; a seed input is a few kilobytes, so more means a bomb went off. */
export const MEMORY_BOUND_BYTES = 1.5 * 2 ** 30;

export interface FuzzFailure {
  readonly reader: string;
  /** Replays the case: the campaign seed and the case's index in it. */
  readonly seed: number;
  readonly caseIndex: number;
  readonly kind: 'untyped' | 'internal' | 'slow' | 'memory' | 'partial-output';
  readonly message: string;
  readonly steps: readonly MutationName[];
  readonly bytes: Buffer;
}

export interface CampaignResult {
  readonly reader: string;
  readonly seed: number;
  readonly cases: number;
  /** The reader returned a value (the mutated file was still valid, or the mutation hit unused bytes). */
  readonly ok: number;
  /** Typed refusals by error code. */
  readonly typed: Record<string, number>;
  readonly failures: FuzzFailure[];
  readonly slowestMs: number;
  readonly elapsedMs: number;
}

export interface CampaignOptions {
  readonly seed: number;
  readonly maxCases: number;
  /** Stop starting new cases after this long. */
  readonly budgetMs: number;
  /** Called before each case with its bytes (the long campaign saves them, in case the process dies). */
  readonly beforeCase?: (caseIndex: number, bytes: Buffer) => void;
}

export async function runCampaign(target: FuzzTarget, seeds: readonly Buffer[], workDir: string, options: CampaignOptions): Promise<CampaignResult> {
  const start = Date.now();
  const typed: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  let ok = 0;
  let cases = 0;
  let slowestMs = 0;
  const dir = mkdtempSync(join(workDir, `${target.name}-`));
  try {
    await target.setup?.(dir);
    const expected = [...readdirSync(dir), target.file].sort();
    for (; cases < options.maxCases && Date.now() - start < options.budgetMs; cases++) {
      const rnd = seededRandom(options.seed * 1_000_003 + cases);
      const seedInput = seeds[Math.floor(rnd() * seeds.length)]!;
      const { bytes, steps } = mutate(seedInput, rnd);
      options.beforeCase?.(cases, bytes);
      const path = join(dir, target.file);
      writeFileSync(path, bytes);
      const fail = (kind: FuzzFailure['kind'], message: string) =>
        failures.push({ reader: target.name, seed: options.seed, caseIndex: cases, kind, message, steps, bytes });

      const caseStart = Date.now();
      let outcome: { error?: unknown } = {};
      try {
        await target.read(path, dir);
      } catch (error) {
        outcome = { error };
      }
      const ms = Date.now() - caseStart;
      slowestMs = Math.max(slowestMs, ms);

      const { error } = outcome;
      if (error === undefined) ok++;
      else if (!(error instanceof BridgeTowerError)) fail('untyped', String((error as Error)?.stack ?? error));
      else if (error.code === 'E_INTERNAL') fail('internal', error.message);
      else typed[error.code] = (typed[error.code] ?? 0) + 1;
      if (ms > CASE_TIME_BOUND_MS) fail('slow', `took ${ms} ms (bound ${CASE_TIME_BOUND_MS} ms)`);
      const rss = process.memoryUsage().rss;
      if (rss > MEMORY_BOUND_BYTES) fail('memory', `resident memory reached ${rss} bytes (bound ${MEMORY_BOUND_BYTES})`);
      const left = readdirSync(dir).sort();
      if (left.join('\n') !== expected.join('\n')) {
        fail('partial-output', `the reader left ${left.filter((f) => !expected.includes(f)).join(', ') || 'a changed folder'}`);
        for (const extra of left.filter((f) => !expected.includes(f))) rmSync(join(dir, extra), { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { reader: target.name, seed: options.seed, cases, ok, typed, failures, slowestMs, elapsedMs: Date.now() - start };
}
