import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BridgeTowerError } from '../common/errors.js';
import { assertReplaceable } from './bundle-folders.js';

/**
 * Builds a folder atomically: `fill` writes into a hidden temporary folder beside the target, which
 * is renamed into place only once complete. On any failure — an exception, Ctrl-C, SIGTERM — the
 * temporary folder is removed and the target is untouched. `overwrite` replaces only an empty
 * folder or a bundle (`assertReplaceable`), checked before anything is written.
 */
export async function buildFolderAtomically<T>(target: string, options: { overwrite: boolean }, fill: (dir: string) => Promise<T>): Promise<T> {
  const finalPath = resolve(target);
  refuseExisting(target, finalPath, options);
  assertReplaceable(target);
  mkdirSync(dirname(finalPath), { recursive: true });
  const temp = tempPathBeside(finalPath);
  mkdirSync(temp);
  return withCleanup(temp, async () => {
    const result = await fill(temp);
    if (existsSync(finalPath)) {
      assertReplaceable(target); // again: something else may have written there meanwhile
      // Move the old folder aside first so that the swap leaves either the old or the new bundle.
      const old = `${temp}.old`;
      renameSync(finalPath, old);
      renameSync(temp, finalPath);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(temp, finalPath);
    }
    return result;
  });
}

/**
 * Writes a file atomically: `fill` writes a hidden temporary file beside the target, renamed over
 * it only once complete (a rename replaces a file in one step). On failure or a signal the
 * temporary file is removed and the target is untouched. A target folder that cannot be created
 * or written is an E_IO error.
 */
export async function writeFileAtomically<T>(target: string, options: { overwrite: boolean }, fill: (path: string) => Promise<T> | T): Promise<T> {
  const finalPath = resolve(target);
  refuseExisting(target, finalPath, options);
  if (existsSync(finalPath) && statSync(finalPath).isDirectory()) {
    throw new BridgeTowerError('E_USAGE', `output '${target}' is a folder; name the file to write (e.g. ${join(target, 'model.ckpt')})`, { path: target });
  }
  try {
    mkdirSync(dirname(finalPath), { recursive: true });
  } catch (error) {
    throw new BridgeTowerError('E_IO', `cannot create the folder of '${target}': ${(error as Error).message}`, { path: target });
  }
  const temp = tempPathBeside(finalPath);
  return withCleanup(temp, async () => {
    const result = await fill(temp);
    try {
      renameSync(temp, finalPath);
    } catch (error) {
      throw new BridgeTowerError('E_IO', `cannot move the finished file into place as '${target}': ${(error as Error).message}`, { path: target });
    }
    return result;
  });
}

function refuseExisting(target: string, finalPath: string, options: { overwrite: boolean }): void {
  if (existsSync(finalPath) && !options.overwrite) {
    throw new BridgeTowerError('E_USAGE', `output '${target}' already exists; choose another --out or pass --force to replace it`, { path: target });
  }
}

function tempPathBeside(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Runs `work`; on an exception or SIGINT/SIGTERM meanwhile, removes `temp` (file or folder). */
async function withCleanup<T>(temp: string, work: () => Promise<T>): Promise<T> {
  const cleanup = () => rmSync(temp, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await work();
  } catch (error) {
    cleanup();
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
