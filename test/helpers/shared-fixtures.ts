import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `shared/` folder that sits beside the project's checkout (read-only golden fixtures). */
export const SHARED_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared');

/**
 * Resolves a path under `../shared`. Outside CI a missing file makes the calling test skip with a
 * clear message (a fresh clone has no `../shared`); with `CI` set it is a failure, so parity checks
 * can never pass by being skipped.
 */
export function sharedFixture(t: { skip(message?: string): void }, ...parts: string[]): string | undefined {
  const path = join(SHARED_DIR, ...parts);
  if (existsSync(path)) return path;
  const message = `needs ${path} (the ../shared fixtures), which is absent`;
  if (process.env.CI) throw new Error(`${message}; CI must run with ../shared present`);
  t.skip(`${message} — skipped outside CI`);
  return undefined;
}

export const TINY_DIR = join(SHARED_DIR, 'fixtures', 'bridgetower-tiny');
export const HF_DIR = join(SHARED_DIR, 'fixtures', 'bridgetower-hf');
