import { Worker } from 'node:worker_threads';

/**
 * sha256 of each file, computed on a worker thread. Hashing (about 1 GB/s) is the most expensive
 * step of a conversion after writing; on its own core it overlaps the tensor streaming, and a
 * second sequential read of a file that is being read anyway comes from the page cache.
 * The worker is plain JavaScript so that it runs the same from sources (tsx) and from dist/.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const chunk = Buffer.allocUnsafe(8 << 20);
const digests = [];
for (const path of workerData.paths) {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let position = 0, n; (n = readSync(fd, chunk, 0, chunk.length, position)) > 0; position += n) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  digests.push(hash.digest('hex'));
}
parentPort.postMessage(digests);
`;

export function hashFilesInBackground(paths: readonly string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { paths } });
    worker.once('message', (digests: string[]) => resolve(digests));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`hash worker exited with code ${code}`));
    });
  });
}
