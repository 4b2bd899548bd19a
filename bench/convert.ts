/**
 * Convert bench: a full-size BASE checkpoint (~1.3 GB, random weights) → bundle. Reports wall time,
 * MB/s and peak RSS of the conversion next to reading the same file once and copying it once (the
 * I/O any conversion must do), measured alternately in fresh child processes in one run.
 *
 *   npm run bench:convert                  # warm page cache
 *   npm run bench:convert -- --cold        # drop the page cache before each run (root)
 *   npm run bench:convert -- --reps 3
 * Peak RSS includes the Node + tsx baseline (~95 MB): compare against the `read` row.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const CHUNK = 16 << 20;

async function child(mode: string, ckpt: string, out: string): Promise<void> {
  const started = performance.now();
  if (mode === 'read') {
    const fd = openSync(ckpt, 'r');
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let position = 0, n; (n = readSync(fd, buffer, 0, CHUNK, position)) > 0; position += n);
    closeSync(fd);
  } else if (mode === 'copy' || mode === 'copy+fsync') {
    const input = openSync(ckpt, 'r');
    const output = openSync(out, 'w');
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let position = 0, n; (n = readSync(input, buffer, 0, CHUNK, position)) > 0; position += n) writeSync(output, buffer, 0, n);
    // The converter fsyncs model.safetensors before publishing the bundle; this is the fair floor.
    if (mode === 'copy+fsync') fsyncSync(output);
    closeSync(input);
    closeSync(output);
  } else {
    const { convertCheckpoint } = await import('../convert/convert-checkpoint.js');
    await convertCheckpoint({ checkpoint: ckpt, out, force: true });
  }
  const ms = performance.now() - started;
  const { peakResidentBytes } = await import('../common/peak-memory.js');
  process.stdout.write(JSON.stringify({ ms, maxRssBytes: peakResidentBytes() }));
}

const MODES = ['read', 'copy', 'copy+fsync', 'convert'];

/** Empties the page cache (root only) so that a run reads from the disk, as a first conversion does. */
function dropPageCache(): void {
  execFileSync('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches']);
}

function runChild(mode: string, ckpt: string, out: string, cold: boolean): { ms: number; maxRssBytes: number } {
  rmSync(out, { recursive: true, force: true });
  if (cold) dropPageCache();
  const stdout = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', mode, ckpt, out], { encoding: 'utf8', maxBuffer: 1 << 20 });
  rmSync(out, { recursive: true, force: true });
  return JSON.parse(stdout) as { ms: number; maxRssBytes: number };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { child: { type: 'string' }, reps: { type: 'string', default: '2' }, keep: { type: 'boolean' }, cold: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.child) return child(values.child, positionals[0]!, positionals[1]!);

  const outDir = join(here, 'out');
  mkdirSync(outDir, { recursive: true });
  const ckpt = join(outDir, 'base_vqa_random.ckpt');
  const { writeBaseCheckpoint } = await import('./base-checkpoint.js');
  let t = performance.now();
  writeBaseCheckpoint(ckpt);
  const size = statSync(ckpt).size;
  console.error(`wrote ${ckpt}: ${(size / 1e9).toFixed(2)} GB in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const cold = values.cold ?? false;
  const results: Record<string, Array<{ ms: number; maxRssBytes: number }>> = Object.fromEntries(MODES.map((m) => [m, []]));
  runChild('read', ckpt, join(outDir, 'warm'), cold); // warm the page cache so every mode sees the same cache state
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (const mode of MODES) {
      results[mode]!.push(runChild(mode, ckpt, join(outDir, `${mode}.out`), cold));
      console.error(`  ${mode} #${rep + 1}: ${(results[mode]!.at(-1)!.ms / 1000).toFixed(2)} s`);
    }
  }
  const best = (mode: string) => results[mode]!.reduce((a, b) => (b.ms < a.ms ? b : a));
  const read = best('read');
  const line = (mode: string) => {
    const r = best(mode);
    return `| ${mode} | ${(r.ms / 1000).toFixed(2)} | ${(size / 1e6 / (r.ms / 1000)).toFixed(0)} | ${(r.ms / read.ms).toFixed(2)}× | ${(r.maxRssBytes / 1e6).toFixed(0)} | ${(r.maxRssBytes / size).toFixed(2)}× |`;
  };
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
  console.log(`checkpoint: ${(size / 1e9).toFixed(3)} GB (BASE VQA shapes, fp32), best of ${values.reps} alternating runs, ${cold ? 'page cache dropped before each run (cold)' : 'warm page cache'}`);
  console.log('| mode | wall s | MB/s | vs read | peak RSS MB | RSS / ckpt |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const mode of MODES) console.log(line(mode));
  if (!values.keep) rmSync(ckpt);
}

await main();
