import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { BridgeTowerError, type ErrorCode } from './errors.js';

/**
 * File-system failures as E_IO errors that say what to do, keyed by errno (`details.reason` is the
 * row's reason). A full disk during a multi-gigabyte conversion is the common one: the message
 * names the folder whose file system needs space.
 */
const ERRNO_ADVICE: Readonly<Record<string, { reason: string; advice: (path: string) => string }>> = {
  ENOSPC: { reason: 'disk_full', advice: (p) => `the disk is full: free space on the file system that holds ${dirname(p)} (see \`df -h ${dirname(p)}\`), or write to another --out` },
  EDQUOT: { reason: 'quota_exceeded', advice: (p) => `your disk quota is used up: free space under your quota, or write ${dirname(p)} elsewhere` },
  EROFS: { reason: 'read_only_fs', advice: (p) => `${dirname(p)} is on a read-only file system: choose another --out` },
  EACCES: { reason: 'permission_denied', advice: (p) => `permission denied: check the permissions of ${dirname(p)}, or choose another --out` },
  EPERM: { reason: 'permission_denied', advice: (p) => `operation not permitted on ${p}: check its permissions, or choose another --out` },
  ENOTDIR: { reason: 'not_a_folder', advice: (p) => `a part of ${p} is not a folder (a file or a broken symbolic link): fix the path or choose another --out` },
  EMFILE: { reason: 'too_many_open_files', advice: () => 'too many open files: raise the limit (`ulimit -n`) and retry' },
};

/** An errno error (ENOSPC, EACCES, …) from `action` on `path` as a BridgeTowerError; other errors pass through. */
export function fileSystemError(error: unknown, action: string, path: string): unknown {
  if (error instanceof BridgeTowerError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return error;
  const row = ERRNO_ADVICE[code];
  const why = row ? row.advice(path) : (error as Error).message;
  return new BridgeTowerError('E_IO', `cannot ${action} ${path}: ${why} (${code})`, { path, errno: code, reason: row?.reason ?? 'io_error' });
}

/**
 * Refuses a path that is not a regular file before it is opened: opening a FIFO blocks until some
 * other process writes to it (forever, for a reader), and a device or socket is no checkpoint.
 */
export function requireRegularFile(path: string, what: string, code: ErrorCode): number {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new BridgeTowerError('E_IO', `cannot open ${what} ${path}: ${(error as Error).message}`, { path });
  }
  if (!stat.isFile()) {
    const kind = stat.isFIFO() ? 'a named pipe (FIFO)' : stat.isSocket() ? 'a socket' : stat.isDirectory() ? 'a folder' : 'a device';
    throw new BridgeTowerError(code, `${what} '${path}' is ${kind}, not a regular file: give the path of the file itself`, {
      path,
      reason: 'not_regular_file',
    });
  }
  return stat.size;
}
