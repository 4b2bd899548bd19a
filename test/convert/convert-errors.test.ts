import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt, writeTinySafetensors } from '../helpers/tiny-checkpoints.js';

function rejectsWith(code: string, ...patterns: RegExp[]) {
  return (error: any) => {
    assert.equal(error.code, code, error.message);
    for (const p of patterns) assert.match(error.message, p);
    return true;
  };
}

describe('conversion refuses what it cannot account for, and leaves nothing behind', () => {
  it('a tensor upstream never writes is an error that names it', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    weights.set('extra_head.fc.weight', { shape: [2, 2], values: new Float32Array(4) });
    const ckpt = writeTinyCkpt(dir, weights);
    await assert.rejects(
      convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'out'), textConfig: writeTextConfig(dir, arch) }),
      rejectsWith('E_UNKNOWN_TENSOR', /extra_head\.fc\.weight/),
    );
    assert.equal(existsSync(join(dir, 'out')), false);
  });

  it('every missing parameter is listed at once', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    weights.delete('cross_modal_text_layers.1.output.dense.weight');
    weights.delete('cross_modal_image_link_tower.0.LayerNorm.bias');
    const ckpt = writeTinyCkpt(dir, weights);
    await assert.rejects(
      convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'out'), textConfig: writeTextConfig(dir, arch) }),
      rejectsWith('E_MISSING_TENSOR', /cross_modal_text_layers\.1\.output\.dense\.weight/, /cross_modal_image_link_tower\.0\.LayerNorm\.bias/),
    );
    assert.deepEqual(readdirSync(dir).sort(), ['text-config.json', 'tiny.ckpt']);
  });

  it('a tensor whose shape disagrees with the architecture is named with both shapes', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    weights.set('cross_modal_image_layers.0.intermediate.dense.bias', { shape: [100], values: new Float32Array(100) });
    const ckpt = writeTinyCkpt(dir, weights);
    await assert.rejects(
      convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'out'), textConfig: writeTextConfig(dir, arch) }),
      rejectsWith('E_ARCHITECTURE', /cross_modal_image_layers\.0\.intermediate\.dense\.bias is \[100\], expected \[256\]/),
    );
  });

  it('hyper-parameters that contradict the weights are an error', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights, { hidden_size: 768, num_layers: 6 });
    await assert.rejects(
      convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'out'), textConfig: writeTextConfig(dir, arch) }),
      rejectsWith('E_ARCHITECTURE', /hidden_size: hyper-parameters say 768, weights say 64/, /num_layers: hyper-parameters say 6, weights say 2/),
    );
  });

  it('an existing output folder is kept unless --force, and a bundle is replaced whole with it', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights);
    const out = join(dir, 'out');
    await convertCheckpoint({ checkpoint: ckpt, out, textConfig: writeTextConfig(dir, arch), graphs: false, name: 'first' });
    writeFileSync(join(out, 'stale.txt'), 'left in the old bundle');
    await assert.rejects(convertCheckpoint({ checkpoint: ckpt, out, textConfig: writeTextConfig(dir, arch) }), rejectsWith('E_USAGE', /already exists/, /--force/));
    assert.equal(readFileSync(join(out, 'stale.txt'), 'utf8'), 'left in the old bundle');
    await convertCheckpoint({ checkpoint: ckpt, out, textConfig: writeTextConfig(dir, arch), force: true });
    assert.deepEqual(readdirSync(out).sort(), ['config.json', 'labels.json', 'model.safetensors', 'onnx']);
    assert.equal(readdirSync(dir).filter((f) => f.includes('partial')).length, 0);
  });

  it('--force does not replace a folder that is not a bundle', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const ckpt = writeTinyCkpt(dir, weights);
    const out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'user data');
    await assert.rejects(convertCheckpoint({ checkpoint: ckpt, out, textConfig: writeTextConfig(dir, arch), force: true }), rejectsWith('E_USAGE', /is not a bundle/, /nothing was deleted/));
    assert.deepEqual(readdirSync(out), ['keep.txt']);
    assert.equal(readFileSync(join(out, 'keep.txt'), 'utf8'), 'user data');
  });

  it('an unreadable checkpoint path is an E_IO error naming it', async (t) => {
    const dir = tempDir(t);
    await assert.rejects(convertCheckpoint({ checkpoint: join(dir, 'nope.ckpt'), out: join(dir, 'out') }), rejectsWith('E_IO', /nope\.ckpt/));
  });

  it('a text encoder of unknown width without hyper-parameters asks for --text-config', async (t) => {
    const dir = tempDir(t);
    const { weights } = tinyWeights();
    const file = writeTinySafetensors(dir, weights);
    await assert.rejects(convertCheckpoint({ checkpoint: file, out: join(dir, 'out') }), rejectsWith('E_ARCHITECTURE', /--text-config/));
  });

  it('a bundle\'s own weights convert again to identical tensors (round trip)', async (t) => {
    const dir = tempDir(t);
    const { arch, weights } = tinyWeights();
    const textConfig = writeTextConfig(dir, arch);
    const first = join(dir, 'first');
    await convertCheckpoint({ checkpoint: writeTinyCkpt(dir, weights), out: first, textConfig });
    const second = join(dir, 'second');
    await convertCheckpoint({ checkpoint: join(first, 'model.safetensors'), out: second, textConfig });
    const a = readSafetensors(join(first, 'model.safetensors'));
    const b = readSafetensors(join(second, 'model.safetensors'));
    assert.equal(a.size, weights.size);
    for (const [name, tensor] of a) assert.ok(tensor.data.equals(b.get(name)!.data), name);
  });
});
