import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BridgeTowerError } from '../common/errors.js';
import { assertReplaceable } from './bundle-folders.js';
import { fileSystemError } from '../common/fs-errors.js';

/**
 * Builds a folder atomically: `fill` writes into a hidden temporary folder beside the target, which
 * is renamed into place only once complete. On any failure — an exception, Ctrl-C, SIGTERM — the
 * temporary folder is removed and the target is untouched. `overwrite` replaces only an empty
 * folder, a bundle, or what `replaceable` accepts (a folder this command wrote before: an HF
 * export), checked before anything is written (`assertReplaceable`).
 */
export async function buildFolderAtomically<T>(
  target: string,
  options: { overwrite: boolean; replaceable?: (dir: string) => boolean },
  fill: (dir: string) => Promise<T>,
): Promise<T> {
  const finalPath = resolve(target);
  refuseExisting(target, finalPath, options);
  assertReplaceable(target, options.replaceable);
  try {
    mkdirSync(dirname(finalPath), { recursive: true });
  } catch (error) {
    throw fileSystemError(error, 'create the folder of', target);
  }
  removeStalePartials(finalPath);
  const temp = tempPathBeside(finalPath);
  try {
    mkdirSync(temp);
  } catch (error) {
    throw fileSystemError(error, 'create a folder beside', target);
  }
  return withCleanup(temp, target, async () => {
    const result = await fill(temp);
    if (existsSync(finalPath)) {
      assertReplaceable(target, options.replaceable); // again: something else may have written there meanwhile
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
  removeStalePartials(finalPath);
  const temp = tempPathBeside(finalPath);
  return withCleanup(temp, target, async () => {
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
  // existsSync follows links: a link to nothing looks absent, and the final rename onto it fails (ENOTDIR).
  if (isDanglingLink(finalPath)) {
    throw new BridgeTowerError(
      'E_USAGE',
      `output '${target}' is a symbolic link to '${readlinkSync(finalPath)}', which does not exist: remove the link, or create its target, or choose another --out`,
      { path: target, reason: 'dangling_symlink' },
    );
  }
  if (existsSync(finalPath) && !options.overwrite) {
    throw new BridgeTowerError('E_USAGE', `output '${target}' already exists; choose another --out or pass --force to replace it`, { path: target });
  }
}

function isDanglingLink(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true && !existsSync(path);
  } catch {
    return false; // e.g. ENOTDIR: a part of the path is a file, which creating its folder reports
  }
}

function tempPathBeside(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * A process killed with SIGKILL (or a machine that lost power) cannot remove its temporary folder:
 * the next build of the same target removes those whose process is gone. A live process's folder
 * (a build running in parallel) is left alone; so is one whose PID was reused, which is harmless.
 */
function removeStalePartials(finalPath: string): void {
  const prefix = `.${basename(finalPath)}.partial-`;
  let names: string[];
  try {
    names = readdirSync(dirname(finalPath));
  } catch {
    return; // an unreadable folder will fail loudly when the build writes into it
  }
  for (const name of names) {
    const pid = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]+(\.old)?$/.exec(name.slice(prefix.length))?.[1] : undefined;
    if (pid !== undefined && !isAlive(Number(pid))) rmSync(join(dirname(finalPath), name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `work`; on an exception or SIGINT/SIGTERM meanwhile, removes `temp` (file or folder). A
 * file-system error (a full disk, a permission) becomes E_IO naming `target` and what to do.
 */
async function withCleanup<T>(temp: string, target: string, work: () => Promise<T>): Promise<T> {
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
    throw fileSystemError(error, 'write', target);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
