import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { fileSystemError } from '../../common/fs-errors.js';

/**
 * A file written front to back by the streaming writers (safetensors, the torch zip): every write
 * goes out completely, `close` makes it durable (fsync) before the caller renames it into place,
 * and `abort` deletes what was written. I/O failures are E_IO errors naming the file.
 */
export class DurableFile {
  private fd: number | undefined;
  /** Bytes written so far (the offset of the next write). */
  position = 0;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'w');
    } catch (err) {
      throw ioError(path, 'create', err);
    }
  }

  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  write(bytes: Uint8Array): void {
    let done = 0;
    try {
      // writeSync may write less than asked (large buffers, pipes); loop until all of it is out.
      while (done < bytes.byteLength) done += writeSync(this.fd!, bytes, done, bytes.byteLength - done, this.position + done);
    } catch (err) {
      throw ioError(this.path, 'write', err);
    }
    this.position += done;
  }

  /** Flushes to disk and closes. */
  close(): void {
    const fd = this.fd!;
    this.fd = undefined;
    try {
      fsyncSync(fd);
    } catch (err) {
      throw ioError(this.path, 'flush', err);
    } finally {
      closeSync(fd);
    }
  }

  /** Closes and deletes the partial file; safe to call at any point, also after a failed write. */
  abort(): void {
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      try {
        closeSync(fd);
      } catch {
        // The file is being discarded; a failing close changes nothing for the caller.
      }
    }
    rmSync(this.path, { force: true });
  }
}

export function ioError(path: string, action: string, err: unknown): BridgeTowerError {
  const typed = fileSystemError(err, action, path);
  return typed instanceof BridgeTowerError ? typed : new BridgeTowerError('E_IO', `cannot ${action} ${path}: ${(err as Error).message}`, { path });
}
