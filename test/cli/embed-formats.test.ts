import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * `bridgetower embed --format npy|parquet`: the same embeddings as the JSON Lines output, in files
 * that their formats' readers accept (the .npy header parsed as NumPy's format document specifies
 * it, and by numpy itself where python3 has it; the Parquet table read back with hyparquet, an
 * independent reader), and resumable from every state an interrupted run can leave.
 */

const root = tempDir({ after });
const bundle = join(root, 'demo');
const texts = join(root, 'captions.txt');
const CAPTIONS = ['a red square', 'a blue circle', 'a green triangle', 'two yellow stars', 'a white cat', 'a black dog', 'an orange sunset'];
let reference: Array<{ id: string; kind: string; embedding: number[] }>;

const embed = (out: string, format: string, file = texts) => runCli(['embed', '--bundle', bundle, '--texts', file, '--out', out, '--format', format, '--batch-size', '3']);

before(async () => {
  await buildDemoBundle(bundle);
  writeFileSync(texts, `${CAPTIONS.join('\n')}\n`);
  const out = join(root, 'reference.jsonl');
  const run = embed(out, 'jsonl');
  assert.equal(run.code, 0, run.stderr);
  reference = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(reference.length, CAPTIONS.length);
});

/** An .npy file read as https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html specifies. */
function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const bytes = readFileSync(file);
  assert.deepEqual([...bytes.subarray(0, 6)], [0x93, ...Buffer.from('NUMPY')], 'magic string');
  assert.deepEqual([bytes[6], bytes[7]], [1, 0], 'format version 1.0');
  const headerLength = bytes.readUInt16LE(8);
  assert.equal((10 + headerLength) % 64, 0, 'data starts on a 64-byte boundary');
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  assert.ok(header.endsWith('\n'));
  assert.match(header, /'descr': '<f4'/);
  assert.match(header, /'fortran_order': False/);
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header)!.slice(1).map(Number);
  const body = bytes.subarray(10 + headerLength);
  assert.equal(body.length, shape[0]! * shape[1]! * 4, 'exactly rows × dims float32 values follow the header');
  return { shape, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length)) };
}

function assertNpyEqualsReference(out: string, sidecar: string): void {
  const { shape, data } = readNpy(out);
  const dims = reference[0]!.embedding.length;
  assert.deepEqual(shape, [reference.length, dims]);
  const ids = readFileSync(sidecar, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(ids, reference.map((r) => ({ id: r.id, kind: r.kind })), 'line i of the sidecar names row i');
  reference.forEach((r, i) => {
    const error = Math.max(...r.embedding.map((v, k) => Math.abs(v - data[i * dims + k]!)));
    assert.ok(error <= 1e-6, `row ${i} (${r.id}) differs from the JSON Lines output by ${error}`);
  });
}

async function readParquet(file: string) {
  const buffer = await asyncBufferFromFile(file);
  const metadata = await parquetMetadataAsync(buffer);
  const rows = (await parquetReadObjects({ file: buffer })) as Array<{ id: string; kind: string; embedding: number[] }>;
  return { metadata, rows };
}

async function assertParquetEqualsReference(out: string): Promise<void> {
  const { metadata, rows } = await readParquet(out);
  assert.equal(Number(metadata.num_rows), reference.length);
  const leaves = parquetSchema(metadata).children.map((c) => [c.element.name, c.element.converted_type ?? c.element.type]);
  assert.deepEqual(leaves, [['id', 'UTF8'], ['kind', 'UTF8'], ['embedding', 'LIST']]);
  assert.deepEqual(rows.map((r) => [r.id, r.kind]), reference.map((r) => [r.id, r.kind]), 'every id once, in input order');
  rows.forEach((row, i) => {
    // FLOAT columns hold exactly the float32 values the JSON Lines output prints.
    assert.deepEqual(row.embedding, Array.from(Float32Array.from(reference[i]!.embedding)), row.id);
  });
}

describe('bridgetower embed --format npy', () => {
  it('writes a float32 matrix with the JSON Lines embeddings and an ids sidecar, row i ↔ line i', () => {
    const out = join(root, 'full.npy');
    const run = embed(out, 'npy');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /7 embedded, 0 already in .*full\.npy \+ .*full\.ids\.jsonl/);
    assertNpyEqualsReference(out, join(root, 'full.ids.jsonl'));
  });

  it('numpy.load reads it with the same shape and values (where python3 has numpy)', (t) => {
    const out = join(root, 'full.npy');
    const probe = spawnSync('python3', ['-c', `import numpy as n, json, sys; a = n.load(sys.argv[1]); print(json.dumps({"shape": list(a.shape), "dtype": str(a.dtype), "first": [float(v) for v in a[0]]}))`, out], { encoding: 'utf8' });
    if (probe.status !== 0) {
      t.skip('python3 with numpy is not installed');
      return;
    }
    const loaded = JSON.parse(probe.stdout);
    assert.deepEqual(loaded.shape, [reference.length, reference[0]!.embedding.length]);
    assert.equal(loaded.dtype, 'float32');
    assert.deepEqual(loaded.first, Array.from(Float32Array.from(reference[0]!.embedding)));
  });

  it('resumes from each state a kill can leave: rows without ids, ids without the header count, a torn id line', () => {
    const dims = reference[0]!.embedding.length;
    const row = (i: number) => Buffer.from(Float32Array.from(reference[i]!.embedding).buffer);
    const idLine = (i: number) => `${JSON.stringify({ id: reference[i]!.id, kind: reference[i]!.kind })}\n`;
    const states: Array<[string, (npy: string, ids: string) => void, RegExp]> = [
      // The batch's rows were written, its ids not: the rows are cut off and embedded again.
      ['rows-only', (npy) => appendFileSync(npy, Buffer.concat([row(3), row(4).subarray(0, dims * 2)])), /cut off .*rows-only\.npy after row 3/],
      // Rows and ids written, the header not yet: both are kept and the count rewritten.
      ['no-header', (npy, ids) => { appendFileSync(npy, row(3)); appendFileSync(ids, idLine(3)); }, /^3 embedded, 4 already in/m],
      ['torn-id', (npy, ids) => { appendFileSync(npy, row(3)); appendFileSync(ids, idLine(3).slice(0, 10)); }, /cut off a torn last line of .*torn-id\.ids\.jsonl/],
    ];
    const firstThree = join(root, 'first-three.txt');
    writeFileSync(firstThree, `${CAPTIONS.slice(0, 3).join('\n')}\n`);
    for (const [name, interrupt, message] of states) {
      // Ids are "<file name>:<line>": the partial run reads a copy named like the full input.
      const dir = tempDir({ after }, `npy-${name}-`);
      const input = join(dir, 'captions.txt');
      writeFileSync(input, readFileSync(firstThree));
      const out = join(dir, `${name}.npy`);
      const sidecar = join(dir, `${name}.ids.jsonl`);
      assert.equal(embed(out, 'npy', input).code, 0);
      interrupt(out, sidecar);
      writeFileSync(input, readFileSync(texts));
      const run = embed(out, 'npy', input);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, message, name);
      assertNpyEqualsReference(out, sidecar);
    }
  });

  it('an ids sidecar without its matrix, or a matrix of another width, is refused with what to do', () => {
    const dir = tempDir({ after }, 'npy-refused-');
    writeFileSync(join(dir, 'lonely.ids.jsonl'), '');
    const lonely = embed(join(dir, 'lonely.npy'), 'npy');
    assert.equal(lonely.code, 2);
    assert.match(lonely.stderr, /lonely\.ids\.jsonl exists but .*lonely\.npy does not: remove/);
    const wide = join(dir, 'wide.npy');
    const header = Buffer.alloc(128, 0x20);
    Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(header);
    header.writeUInt16LE(118, 8);
    header.write("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }", 10, 'latin1');
    header[127] = 0x0a;
    writeFileSync(wide, header);
    const run = embed(wide, 'npy');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /holds 7-dimensional embeddings but this bundle gives 32/);
  });
});

describe('bridgetower embed --format parquet', () => {
  it('writes a Parquet table (id, kind, embedding list<float>) equal to the JSON Lines output, and no partial file', async () => {
    const out = join(root, 'full.parquet');
    const run = embed(out, 'parquet');
    assert.equal(run.code, 0, run.stderr);
    await assertParquetEqualsReference(out);
    assert.equal(existsSync(`${out}.partial.jsonl`), false);
  });

  it('killed mid-run (a partial file with a torn last line, no table yet), a restart completes it with every id once', async () => {
    const out = join(root, 'killed.parquet');
    const lines = readFileSync(join(root, 'reference.jsonl'), 'utf8').split('\n');
    writeFileSync(`${out}.partial.jsonl`, `${lines.slice(0, 2).join('\n')}\n${lines[2]!.slice(0, 30)}`);
    const run = embed(out, 'parquet');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /5 embedded, 2 already in/);
    assert.match(run.stdout, /cut off a torn last line/);
    await assertParquetEqualsReference(out);
  });

  it('a finished table grows by the new items only, and a row in both the table and a leftover partial file is written once', async () => {
    const dir = tempDir({ after }, 'parquet-grow-');
    const input = join(dir, 'captions.txt');
    writeFileSync(input, `${CAPTIONS.slice(0, 4).join('\n')}\n`);
    const out = join(dir, 'grow.parquet');
    assert.equal(embed(out, 'parquet', input).code, 0);
    // Killed between the rename and the partial file's removal: its rows are already in the table.
    const lines = readFileSync(join(root, 'reference.jsonl'), 'utf8').split('\n');
    writeFileSync(`${out}.partial.jsonl`, `${lines.slice(2, 4).join('\n')}\n`);
    writeFileSync(input, readFileSync(texts));
    const run = embed(out, 'parquet', input);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /3 embedded, 4 already in/);
    await assertParquetEqualsReference(out);
  });
});

describe('bridgetower embed --format', () => {
  it('an unknown format is a usage error listing the formats', () => {
    const run = embed(join(root, 'x.csv'), 'csv');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--format csv: give one of jsonl, npy, parquet/);
  });
});
