import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BundleConfig } from '../../bundle/config.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const HF = ['fixtures', 'bridgetower-hf'];

async function convertHf(t: any, model: string) {
  const dir = sharedFixture(t, ...HF, model);
  if (!dir) return undefined;
  const out = join(tempDir(t), model);
  await convertCheckpoint({ checkpoint: dir, out });
  return {
    config: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig,
    weights: readSafetensors(join(out, 'model.safetensors')),
  };
}

describe('converting Hugging Face BridgeTower folders', () => {
  it('keeps Hugging Face semantics: LayerNorm eps 1e-5 everywhere, from its config.json', async (t) => {
    const bundle = await convertHf(t, 'mlm');
    if (!bundle) return;
    const a = bundle.config.architecture;
    assert.equal(a.semantics, 'huggingface');
    assert.equal(a.text.layer_norm_eps, 1e-5);
    assert.equal(a.text.num_heads, 4);
    assert.equal(a.cross_modal.layer_norm_eps, 1e-5);
    assert.equal(a.cross_modal.first_layer_norm_eps, 1e-5);
    assert.equal(a.cross_modal.link_tower_layer_norm_eps, 1e-5);
    assert.equal(a.cross_modal.num_heads, 4);
    assert.equal(a.heads.mlm?.layer_norm_eps, 1e-5);
    assert.equal(a.vision.width, 128);
    assert.equal(a.vision.num_heads, 2);
    assert.equal(a.vision.image_size, 48);
  });

  it('maps every parameter to its upstream name with unchanged values', async (t) => {
    const bundle = await convertHf(t, 'itm');
    const source = sharedFixture(t, ...HF, 'itm', 'model.safetensors');
    if (!bundle || !source) return;
    const original = readSafetensors(source);
    const mapping = JSON.parse(readFileSync(sharedFixture(t, ...HF, 'key_mapping.json')!, 'utf8')) as Record<string, Array<{ hf: string; original: string }>>;
    for (const { hf, original: name } of mapping.itm!) {
      assert.ok(bundle.weights.has(name), `${hf} → ${name} missing`);
      assert.ok(bundle.weights.get(name)!.data.equals(original.get(hf)!.data), `${name} differs from ${hf}`);
    }
    assert.equal(bundle.weights.size, mapping.itm!.length);
  });

  it('pytorch_model.bin and model.safetensors of the same weights give identical bundles', async (t) => {
    const a = await convertHf(t, 'itm');
    const b = await convertHf(t, 'itm-bin');
    if (!a || !b) return;
    assert.deepEqual([...a.weights.keys()].sort(), [...b.weights.keys()].sort());
    for (const [name, tensor] of a.weights) assert.ok(tensor.data.equals(b.weights.get(name)!.data), name);
    assert.deepEqual(a.config.architecture, b.config.architecture);
    const ignored = b.config.provenance.ignored.map((i) => i.name).sort();
    assert.deepEqual(ignored, ['bridgetower.text_model.embeddings.position_ids', 'bridgetower.vision_model.visual.embeddings.position_ids']);
  });

  it('turns the contrastive logit_scale into upstream temperature = exp(-logit_scale)', async (t) => {
    const bundle = await convertHf(t, 'contrastive');
    if (!bundle) return;
    const temperature = toFloat64Array('float32', bundle.weights.get('temperature')!.data)[0]!;
    // The fixture's logit_scale is 2.1 (README): T = exp(-2.1) = 0.12245644…, rounded to float32.
    assert.equal(temperature, Math.fround(Math.exp(-Math.fround(2.1))));
    const heads = bundle.config.architecture.heads;
    assert.deepEqual(heads.itc, { dim: 32, image_source: 'cross_modal_transform' });
    assert.deepEqual(heads.itc_cross_modal, { dim: 32 });
    assert.ok(bundle.weights.has('itc_cross_modal_head.fc.weight'));
  });
});
