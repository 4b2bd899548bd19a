import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { buildFolderAtomically } from '../../bundle/atomic-dir.js';
import { BUNDLE_FORMAT } from '../../bundle/config.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

const REPO_BUNDLE_SOURCES = fileURLToPath(new URL('../../bundle', import.meta.url));

/** Every file under `dir` with its contents, to compare a folder before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(dir, path)] = readFileSync(path, 'latin1');
    }
  };
  walk(dir);
  return files;
}

const notABundle = (error: any) => error.code === 'E_USAGE' && /is not a bundle/.test(error.message) && /nothing was deleted/.test(error.message);
/** The name in a marker config.json (a stand-in bundle: only its `format` makes it one for --force). */
const markerName = (dir: string) => (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { name: string }).name;
const writeMarker = async (dir: string) => writeFileSync(join(dir, 'config.json'), JSON.stringify({ format: BUNDLE_FORMAT, format_version: 1, name: 'new' }));

describe('--force replaces only an empty folder or a bundle', () => {
  it('a folder of source files is refused before anything is written, and nothing in it is deleted', async (t) => {
    const target = join(tempDir(t), 'sources');
    cpSync(REPO_BUNDLE_SOURCES, target, { recursive: true });
    const before = snapshot(target);
    assert.ok(Object.keys(before).some((f) => f.endsWith('.ts')), 'the copy holds .ts files');
    let filled = false;
    await assert.rejects(buildFolderAtomically(target, { overwrite: true }, async () => void (filled = true)), notABundle);
    assert.equal(filled, false);
    assert.deepEqual(snapshot(target), before);
  });

  it("a folder whose config.json is not a bundle's (a Hugging Face checkpoint folder) is refused", async (t) => {
    const target = join(tempDir(t), 'bridgetower-base');
    mkdirSync(target);
    writeFileSync(join(target, 'config.json'), JSON.stringify({ model_type: 'bridgetower' }));
    writeFileSync(join(target, 'model.safetensors'), 'weights');
    await assert.rejects(buildFolderAtomically(target, { overwrite: true }, writeMarker), notABundle);
    assert.deepEqual(readdirSync(target).sort(), ['config.json', 'model.safetensors']);
  });

  it('a file is refused', async (t) => {
    const target = join(tempDir(t), 'notes.txt');
    writeFileSync(target, 'mine');
    await assert.rejects(buildFolderAtomically(target, { overwrite: true }, writeMarker), (e: any) => e.code === 'E_USAGE' && /is a file/.test(e.message));
    assert.equal(readFileSync(target, 'utf8'), 'mine');
  });

  it('an empty folder is replaced', async (t) => {
    const target = join(tempDir(t), 'empty');
    mkdirSync(target);
    await buildFolderAtomically(target, { overwrite: true }, writeMarker);
    assert.equal(markerName(target), 'new');
  });

  it('a bundle is replaced whole, one of a newer format version too', async (t) => {
    const target = join(tempDir(t), 'bundle');
    mkdirSync(target);
    writeFileSync(join(target, 'config.json'), JSON.stringify({ format: BUNDLE_FORMAT, format_version: 99, name: 'old' }));
    writeFileSync(join(target, 'stale.txt'), 'from the old bundle');
    await buildFolderAtomically(target, { overwrite: true }, writeMarker);
    assert.deepEqual(readdirSync(target), ['config.json']);
    assert.equal(markerName(target), 'new');
  });

  it('a bundle that stops being one while the new folder is built is kept', async (t) => {
    const dir = tempDir(t);
    const target = join(dir, 'bundle');
    mkdirSync(target);
    writeFileSync(join(target, 'config.json'), JSON.stringify({ format: BUNDLE_FORMAT, format_version: 1, name: 'old' }));
    const fill = async (temp: string) => {
      await writeMarker(temp);
      writeFileSync(join(target, 'config.json'), JSON.stringify({ mine: true }));
    };
    await assert.rejects(buildFolderAtomically(target, { overwrite: true }, fill), notABundle);
    assert.deepEqual(JSON.parse(readFileSync(join(target, 'config.json'), 'utf8')), { mine: true });
    assert.deepEqual(readdirSync(dir), ['bundle'], 'the temporary folder is removed');
  });

  it('convert --force into a folder of source files is refused and deletes nothing', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights);
    const out = join(dir, 'sources');
    cpSync(REPO_BUNDLE_SOURCES, out, { recursive: true });
    const before = snapshot(out);
    await assert.rejects(convertCheckpoint({ checkpoint: ckpt, out, textConfig: writeTextConfig(dir, arch), force: true }), notABundle);
    assert.deepEqual(snapshot(out), before);
    assert.equal(readdirSync(dir).filter((f) => f.includes('partial')).length, 0);
  });
});
