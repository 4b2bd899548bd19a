import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import type { BundleConfig } from '../../bundle/config.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { readKeysFile } from '../helpers/keys-file.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const TINY = ['fixtures', 'bridgetower-tiny'];
const TEXT_CONFIG = [...TINY, 'roberta-tiny', 'config.json'];

/** Facts from the fixture README's "Model dimensions" and hyper-parameter tables. */
const TINY_EXPECTATIONS: Record<string, { visionWidth: number; heads: string[]; tokenTypes: number; tasks: string[] }> = {
  pt: { visionWidth: 128, heads: ['itm', 'mlm'], tokenTypes: 2, tasks: ['itm', 'mlm'] },
  vqa: { visionWidth: 128, heads: ['vqa'], tokenTypes: 2, tasks: ['vqa'] },
  vqa_legacy: { visionWidth: 128, heads: ['vqa'], tokenTypes: 2, tasks: ['vqa'] },
  vqa_fp16: { visionWidth: 128, heads: ['vqa'], tokenTypes: 2, tasks: ['vqa'] },
  snli: { visionWidth: 128, heads: ['snli'], tokenTypes: 2, tasks: ['snli'] },
  nlvr2: { visionWidth: 128, heads: ['nlvr2'], tokenTypes: 3, tasks: ['nlvr2'] },
  irtr_itm_itc: { visionWidth: 64, heads: ['itm', 'itc'], tokenTypes: 2, tasks: ['itm', 'itc'] },
  irtr: { visionWidth: 128, heads: ['itm'], tokenTypes: 2, tasks: ['itm'] },
};

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('converting the tiny upstream checkpoints', () => {
  for (const [name, expected] of Object.entries(TINY_EXPECTATIONS)) {
    it(`${name}.ckpt becomes a bundle holding every state-dict entry with upstream's values`, async (t) => {
      const ckpt = sharedFixture(t, ...TINY, `${name}.ckpt`);
      const textConfig = sharedFixture(t, ...TEXT_CONFIG);
      if (!ckpt || !textConfig) return;
      const out = join(tempDir(t), 'bundle');
      await convertCheckpoint({ checkpoint: ckpt, out, textConfig });
      const weights = readSafetensors(join(out, 'model.safetensors'));
      const keys = readKeysFile(sharedFixture(t, ...TINY, `keys_${name}.txt`)!);
      assert.deepEqual([...weights.keys()].sort(), keys.map((k) => k.name).sort());
      for (const key of keys) {
        const tensor = weights.get(key.name)!;
        assert.deepEqual(tensor.shape, key.shape, key.name);
        if (key.dtype === 'float16') {
          // fp16 checkpoints become fp32 bundles: exact, so the sum of values is unchanged.
          assert.equal(tensor.dtype, 'float32', key.name);
          const sum = toFloat64Array('float32', tensor.data).reduce((a, b) => a + b, 0);
          assert.ok(Math.abs(sum - key.sum) <= 1e-9 * Math.max(1, Math.abs(key.sum)), `${key.name}: sum ${sum} vs ${key.sum}`);
        } else {
          assert.equal(tensor.dtype, key.dtype, key.name);
          assert.equal(sha256(tensor.data), key.sha256, `${key.name} bytes differ from upstream's`);
        }
      }
    });

    it(`${name}.ckpt: the detected architecture is the one upstream built`, async (t) => {
      const ckpt = sharedFixture(t, ...TINY, `${name}.ckpt`);
      const textConfig = sharedFixture(t, ...TEXT_CONFIG);
      if (!ckpt || !textConfig) return;
      const out = join(tempDir(t), 'bundle');
      await convertCheckpoint({ checkpoint: ckpt, out, textConfig });
      const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig;
      const a = config.architecture;
      assert.equal(a.semantics, 'upstream');
      assert.deepEqual(
        { ...a.text, config_source: undefined },
        { vocab_size: 1000, hidden_size: 64, num_layers: 4, num_heads: 4, intermediate_size: 256, max_position_embeddings: 42, type_vocab_size: 1, pad_token_id: 1, layer_norm_eps: 1e-5, config_source: undefined },
      );
      assert.deepEqual(a.vision, {
        width: expected.visionWidth,
        num_layers: 4,
        num_heads: expected.visionWidth / 64,
        patch_size: 16,
        image_size: 48,
        mlp_size: 4 * expected.visionWidth,
        layer_norm_eps: 1e-5,
        layernorm_shared: true,
      });
      assert.deepEqual(a.cross_modal, {
        hidden_size: 64,
        num_layers: 3,
        num_heads: 4,
        intermediate_size: 256,
        layer_norm_eps: 1e-12,
        first_layer_norm_eps: 1e-5,
        link_tower_layer_norm_eps: 1e-5,
        token_types: expected.tokenTypes,
      });
      assert.deepEqual(Object.keys(a.heads).sort(), [...expected.heads].sort());
      assert.deepEqual(Object.keys(config.tasks).sort(), [...expected.tasks].sort());
      for (const task of Object.values(config.tasks)) assert.equal(task.max_text_len, 40, 'hparams max_text_len');
      assert.equal(config.preprocessing.image_size, 48);
      assert.equal(config.provenance.sources[0]!.sha256, sha256(readFileSync(ckpt)));
      assert.equal(config.provenance.upstream_config?.tokenizer, 'roberta-tiny');
    });
  }

  it('VQA, SNLI-VE and NLVR2 heads have upstream sizes (head_hidden_scale 2, 2, 1.5)', async (t) => {
    const textConfig = sharedFixture(t, ...TEXT_CONFIG);
    if (!textConfig) return;
    const heads: Record<string, unknown> = {};
    for (const name of ['vqa', 'snli', 'nlvr2']) {
      const out = join(tempDir(t), name);
      await convertCheckpoint({ checkpoint: sharedFixture(t, ...TINY, `${name}.ckpt`)!, out, textConfig });
      heads[name] = (JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig).architecture.heads;
    }
    assert.deepEqual(heads.vqa, { vqa: { layers: 2, input_size: 128, hidden_size: 256, num_labels: 10, layer_norm_eps: 1e-5 } });
    assert.deepEqual(heads.snli, { snli: { layers: 2, input_size: 128, hidden_size: 256, num_labels: 3, layer_norm_eps: 1e-5 } });
    assert.deepEqual(heads.nlvr2, { nlvr2: { layers: 2, input_size: 256, hidden_size: 192, num_labels: 2, layer_norm_eps: 1e-5 } });
  });

  it('SNLI-VE and NLVR2 bundles get upstream\'s fixed label orders without being asked', async (t) => {
    const textConfig = sharedFixture(t, ...TEXT_CONFIG);
    if (!textConfig) return;
    const snli = join(tempDir(t), 'snli');
    await convertCheckpoint({ checkpoint: sharedFixture(t, ...TINY, 'snli.ckpt')!, out: snli, textConfig });
    assert.deepEqual(JSON.parse(readFileSync(join(snli, 'labels.json'), 'utf8')), { snli: ['contradiction', 'neutral', 'entailment'] });
    const nlvr2 = join(tempDir(t), 'nlvr2');
    await convertCheckpoint({ checkpoint: sharedFixture(t, ...TINY, 'nlvr2.ckpt')!, out: nlvr2, textConfig });
    assert.deepEqual(JSON.parse(readFileSync(join(nlvr2, 'labels.json'), 'utf8')), { nlvr2: ['False', 'True'] });
  });

  it('--image-size resizes the positional embedding exactly as upstream adapt_position_encoding', async (t) => {
    const ckpt = sharedFixture(t, ...TINY, 'pt_res32.ckpt');
    const expectedPath = sharedFixture(t, ...TINY, 'expected_pt_res32_at48.safetensors');
    const textConfig = sharedFixture(t, ...TEXT_CONFIG);
    if (!ckpt || !expectedPath || !textConfig) return;
    const out = join(tempDir(t), 'bundle');
    const summary = await convertCheckpoint({ checkpoint: ckpt, out, textConfig, imageSize: 48 });
    assert.equal(summary.image_size, 48);
    const weights = readSafetensors(join(out, 'model.safetensors'));
    const actual = weights.get('vit_model.visual.positional_embedding')!;
    const expected = readSafetensors(expectedPath).get('positional_embedding_at48')!;
    assert.deepEqual(actual.shape, [10, 128]);
    const a = toFloat64Array('float32', actual.data);
    const e = toFloat64Array('float32', expected.data);
    const maxError = a.reduce((m, v, i) => Math.max(m, Math.abs(v - e[i]!)), 0);
    assert.ok(maxError <= 1e-6, `max abs error ${maxError}`);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig;
    assert.equal(config.architecture.vision.image_size, 48);
    assert.equal(config.preprocessing.image_size, 48);
    assert.equal(config.provenance.image_size_resized_from, 32);
  });

  it('--dtype fp16 stores every float tensor as the nearest float16 and keeps int64 buffers', async (t) => {
    const ckpt = sharedFixture(t, ...TINY, 'vqa.ckpt');
    const textConfig = sharedFixture(t, ...TEXT_CONFIG);
    const fp16Keys = sharedFixture(t, ...TINY, 'keys_vqa_fp16.txt');
    if (!ckpt || !textConfig || !fp16Keys) return;
    const out = join(tempDir(t), 'bundle');
    await convertCheckpoint({ checkpoint: ckpt, out, textConfig, dtype: 'fp16' });
    const weights = readSafetensors(join(out, 'model.safetensors'));
    // vqa_fp16.ckpt is vqa.ckpt cast with torch's .half(): our rounding must give the same bytes.
    for (const key of readKeysFile(fp16Keys)) {
      const tensor = weights.get(key.name)!;
      assert.equal(tensor.dtype, key.dtype, key.name);
      assert.equal(sha256(tensor.data), key.sha256, `${key.name}: float16 rounding differs from torch's`);
    }
  });

  it('a failed conversion (label count mismatch) leaves no output folder behind', async (t) => {
    const ckpt = sharedFixture(t, ...TINY, 'vqa.ckpt');
    const textConfig = sharedFixture(t, ...TEXT_CONFIG);
    if (!ckpt || !textConfig) return;
    const dir = tempDir(t);
    const labels = join(dir, 'labels.json');
    (await import('node:fs')).writeFileSync(labels, JSON.stringify(['yes', 'no']));
    await assert.rejects(convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'bundle'), textConfig, labels }), (e: any) => e.code === 'E_LABELS' && /10/.test(e.message) && /2/.test(e.message));
    assert.deepEqual(readdirSync(dir), ['labels.json']);
    assert.equal(existsSync(join(dir, 'bundle')), false);
  });

  it('a checkpoint naming an unknown text encoder asks for --text-config', async (t) => {
    const ckpt = sharedFixture(t, ...TINY, 'vqa.ckpt');
    if (!ckpt) return;
    const dir = tempDir(t);
    await assert.rejects(convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'bundle') }), (e: any) => e.code === 'E_ARCHITECTURE' && /roberta-tiny/.test(e.message) && /--text-config/.test(e.message));
    assert.deepEqual(readdirSync(dir), []);
  });
});
