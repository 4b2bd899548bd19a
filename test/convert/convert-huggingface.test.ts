import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BundleConfig } from '../../bundle/config.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { BridgeTowerError } from '../../common/errors.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { dense, loadFixture } from '../helpers/parity.js';
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

describe("converting a Hugging Face folder uses the folder's own tokenizer and image processor", () => {
  const cases = (t: any) => {
    const path = sharedFixture(t, ...HF, 'processor_cases.json');
    return path ? (JSON.parse(readFileSync(path, 'utf8')).cases as Record<string, { caption: string; input_ids: { caption: number[] } }>) : undefined;
  };
  /** The itm folder copied without some of its files. */
  const copyWithout = (t: any, ...files: string[]) => {
    const source = sharedFixture(t, ...HF, 'itm');
    if (!source) return undefined;
    const dir = join(tempDir(t), 'itm');
    cpSync(source, dir, { recursive: true });
    for (const file of files) rmSync(join(dir, file));
    return dir;
  };

  it('takes tokenizer.json without --tokenizer, warns nothing about it, and preprocesses as BridgeTowerImageProcessor', async (t) => {
    const dir = sharedFixture(t, ...HF, 'itm');
    const all = cases(t);
    if (!dir || !all) return;
    const out = join(tempDir(t), 'bundle');
    const summary = await convertCheckpoint({ checkpoint: dir, out, graphs: false });
    assert.deepEqual(summary.warnings.filter((w) => /tokenizer|preprocessor/.test(w)), []);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig;
    assert.equal(config.tokenizer, 'tokenizer.json');
    assert.equal(config.preprocessing.resize, 'hf_processor');
    const preprocessor = BundlePreprocessor.open(out);
    for (const [photo, c] of Object.entries(all)) assert.deepEqual([...preprocessor.encodeTexts([c.caption]).inputIds].map(Number), c.input_ids.caption, photo);
  });

  it('builds the tokenizer from vocab.json + merges.txt (with tokenizer_config.json) when there is no tokenizer.json', async (t) => {
    const dir = copyWithout(t, 'tokenizer.json');
    const all = cases(t);
    if (!dir || !all) return;
    const out = join(tempDir(t), 'bundle');
    const summary = await convertCheckpoint({ checkpoint: dir, out, graphs: false });
    assert.deepEqual(summary.warnings.filter((w) => /tokenizer/.test(w)), []);
    const preprocessor = BundlePreprocessor.open(out);
    for (const [photo, c] of Object.entries(all)) assert.deepEqual([...preprocessor.encodeTexts([c.caption]).inputIds].map(Number), c.input_ids.caption, photo);
  });

  it('refuses vocab.json + merges.txt that tokenizer_config.json says belong to another tokenizer class', async (t) => {
    const dir = copyWithout(t, 'tokenizer.json');
    if (!dir) return;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer' }));
    await assert.rejects(
      convertCheckpoint({ checkpoint: dir, out: join(tempDir(t), 'bundle'), graphs: false }),
      (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_TOKENIZER' && /BertTokenizer.*pass --tokenizer/.test(error.message),
    );
  });

  it('still warns, naming what is missing, when the folder has no tokenizer files', async (t) => {
    const dir = copyWithout(t, 'tokenizer.json', 'merges.txt');
    if (!dir) return;
    const out = join(tempDir(t), 'bundle');
    const summary = await convertCheckpoint({ checkpoint: dir, out, graphs: false });
    assert.match(summary.warnings.join('\n'), /no --tokenizer given and .* lacks merges\.txt/);
    assert.equal(existsSync(join(out, 'tokenizer.json')), false);
  });

  it('gives a bundle that serve accepts and whose ITM probability on a photograph is transformers\'', async (t) => {
    const dir = sharedFixture(t, ...HF, 'itm');
    const goldens = sharedFixture(t, ...HF, 'itm', 'expected_processor.safetensors');
    const image = sharedFixture(t, 'fixtures', 'images', 'astronaut.jpg');
    const all = cases(t);
    if (!dir || !goldens || !image || !all) return;
    const out = join(tempDir(t), 'bundle');
    await convertCheckpoint({ checkpoint: dir, out });
    const service = await BundleService.open(out, { device: 'cpu', precision: 'fp32', maxBatch: 4, maxDelayMs: 1, maxQueue: 8, cacheMb: 16, log: () => {} });
    try {
      const [probability] = await service.itm({ pairs: [{ image: readFileSync(image), text: all['astronaut.jpg']!.caption }] }, { deadline: Date.now() + 10 * 60_000 });
      const logits = dense(loadFixture(goldens), 'astronaut.jpg.logits').data;
      const expected = 1 / (1 + Math.exp(logits[0]! - logits[1]!));
      assert.ok(Math.abs(probability! - expected) <= 1e-4, `ITM probability ${probability}, transformers' ${expected}`);
    } finally {
      await service.close();
    }
  });
});
