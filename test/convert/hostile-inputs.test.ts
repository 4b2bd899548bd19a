import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { buildFolderAtomically, writeFileAtomically } from '../../bundle/atomic-dir.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { MAX_INFLATION_RATIO } from '../../convert/zip/zip-reader.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';
import { writeTorchCheckpoint } from '../helpers/torch-writer.js';

// Hostile files and file-system failures around conversion (issue #11, items 2, 6 and 7).

async function rejection(promise: Promise<unknown>): Promise<BridgeTowerError> {
  let caught: unknown;
  await assert.rejects(promise, (err) => ((caught = err), true));
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String((caught as Error)?.stack ?? caught)}`);
  return caught;
}

function refusal(fn: () => unknown): BridgeTowerError {
  let caught: unknown;
  assert.throws(fn, (err) => ((caught = err), true));
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String((caught as Error)?.stack ?? caught)}`);
  return caught;
}

/** The PID of a process that has exited (its number is free again, barring a rare reuse). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

test('a stride-0 [25000, 25000] view of a one-element storage is refused before 2.5 GB are materialized', (t) => {
  const path = join(tempDir(t), 'expand.ckpt');
  writeTorchCheckpoint(path, {
    tensors: [{ name: 'w', dtype: 'float32', shape: [25_000, 25_000], strides: [0, 0], data: Buffer.alloc(4) }],
    wrapInStateDict: false,
  });
  const error = refusal(() => openTorchCheckpoint(path));
  assert.equal(error.code, 'E_TENSOR_LAYOUT');
  assert.equal(error.details.reason, 'view_exceeds_storage');
  assert.match(error.message, /625000000 elements, more than the 1/);
});

test('a view with as many elements as its storage, transposed, still opens', (t) => {
  const path = join(tempDir(t), 'transposed.ckpt');
  writeTorchCheckpoint(path, {
    tensors: [{ name: 'w', dtype: 'float32', shape: [3, 2], strides: [1, 3], data: Buffer.alloc(24) }],
    wrapInStateDict: false,
  });
  assert.deepEqual(openTorchCheckpoint(path).tensors.get('w')!.shape, [3, 2]);
});

test(`a deflated data.pkl that would inflate more than ${MAX_INFLATION_RATIO}× is refused before inflating`, (t) => {
  const path = join(tempDir(t), 'bomb.ckpt');
  // PROTO 2, BINBYTES of 8 MiB zeros, STOP: a valid pickle that deflates ~1000×.
  const size = 8 << 20;
  const header = Buffer.from([0x80, 0x02, 0x42, 0, 0, 0, 0]);
  header.writeUInt32LE(size, 3);
  writeTorchCheckpoint(path, { tensors: [], rawPickle: Buffer.concat([header, Buffer.alloc(size), Buffer.from('.')]), deflate: ['data.pkl'] });
  const error = refusal(() => openTorchCheckpoint(path));
  assert.deepEqual([error.code, error.details.reason], ['E_CHECKPOINT_FORMAT', 'inflation_ratio'], error.message);
});

test('a named pipe given as the checkpoint is refused at once (opening it would block forever)', (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'model.ckpt');
  const made = spawnSync('mkfifo', [fifo]);
  if (made.status !== 0) return t.skip('mkfifo is not available here');
  const result = runCli(['convert', fifo, '--out', join(dir, 'out'), '--json']);
  assert.notEqual(result.code, -1, 'convert timed out: it blocked opening the FIFO');
  assert.equal(result.code, 2, result.stderr);
  const body = JSON.parse(result.stdout);
  assert.equal(body.error.details.reason, 'not_regular_file');
  assert.match(body.error.message, /named pipe/);
});

test('--out as a symbolic link to nothing is a usage error before any work, not an ENOTDIR crash at the end', async (t) => {
  const dir = tempDir(t);
  const link = join(dir, 'bundle');
  symlinkSync(join(dir, 'gone'), link);
  let filled = false;
  const error = await rejection(buildFolderAtomically(link, { overwrite: false }, async () => void (filled = true)));
  assert.deepEqual([error.code, error.details.reason], ['E_USAGE', 'dangling_symlink']);
  assert.match(error.message, /gone/);
  assert.equal(filled, false);
});

test('a full disk while writing a bundle is E_IO saying which file system to free, and leaves no partial folder', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'bundle');
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  const error = await rejection(
    buildFolderAtomically(target, { overwrite: false }, async (temp) => {
      writeFileSync(join(temp, 'model.safetensors'), 'partial bytes');
      throw enospc;
    }),
  );
  assert.deepEqual([error.code, error.details.reason, error.details.errno], ['E_IO', 'disk_full', 'ENOSPC']);
  assert.match(error.message, new RegExp(`free space on the file system that holds ${dir}`));
  assert.deepEqual(readdirSync(dir), []);

  const file = join(dir, 'model.ckpt');
  const fileError = await rejection(writeFileAtomically(file, { overwrite: false }, () => { throw enospc; }));
  assert.equal(fileError.details.reason, 'disk_full');
  assert.deepEqual(readdirSync(dir), []);
});

test("a dead process's hidden .partial folder is removed by the next build of the same target; a live one's is kept", async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'bundle');
  const stale = join(dir, `.bundle.partial-${deadPid()}-0badc0de`);
  const live = join(dir, `.bundle.partial-${process.pid}-feedf00d`);
  const otherTarget = join(dir, `.other.partial-${deadPid()}-12345678`);
  for (const folder of [stale, live, otherTarget]) mkdirSync(folder);
  await buildFolderAtomically(target, { overwrite: false }, async (temp) => writeFileSync(join(temp, 'config.json'), '{}'));
  assert.equal(existsSync(stale), false, 'the killed run’s partial folder is still there');
  assert.equal(existsSync(live), true, 'a running build’s partial folder was removed');
  assert.equal(existsSync(otherTarget), true, 'another target’s partial folder was touched');
  assert.equal(existsSync(join(target, 'config.json')), true);
});

test('convert-ckpt removes what a kill -9 of an earlier run on the same --out left behind', (t) => {
  const dir = tempDir(t);
  const { arch, weights } = tinyWeights();
  const ckpt = writeTinyCkpt(dir, weights);
  const stale = join(dir, `.bundle.partial-${deadPid()}-0badc0de`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'model.safetensors'), 'half a file');
  const result = runCli([ckpt, '--out', join(dir, 'bundle'), '--text-config', writeTextConfig(dir, arch), '--json'], { preset: 'convert' });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '', 'nothing but the JSON summary is printed under --json');
  assert.equal(existsSync(stale), false);
});
