import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BridgeTowerError } from '../../common/errors.js';

/**
 * Builds a folder atomically: `fill` writes into a hidden temporary folder beside the target, which
 * is renamed into place only once complete. On any failure — an exception, Ctrl-C, SIGTERM — the
 * temporary folder is removed and the target is untouched.
 */
export async function buildFolderAtomically<T>(target: string, options: { overwrite: boolean }, fill: (dir: string) => Promise<T>): Promise<T> {
  const finalPath = resolve(target);
  if (existsSync(finalPath) && !options.overwrite) {
    throw new BridgeTowerError('E_USAGE', `output '${target}' already exists; choose another --out or pass --force to replace it`, { path: target });
  }
  mkdirSync(dirname(finalPath), { recursive: true });
  const temp = join(dirname(finalPath), `.${basename(finalPath)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(temp);
  const cleanup = () => rmSync(temp, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await fill(temp);
    if (existsSync(finalPath)) {
      // Move the old folder aside first so that the swap leaves either the old or the new bundle.
      const old = `${temp}.old`;
      renameSync(finalPath, old);
      renameSync(temp, finalPath);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(temp, finalPath);
    }
    return result;
  } catch (error) {
    cleanup();
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
