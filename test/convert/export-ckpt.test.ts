import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BundleConfig } from '../../bundle/config.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { exportCheckpoint } from '../../convert/export/export-ckpt.js';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { readKeysFile } from '../helpers/keys-file.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';
import { asBytes, tinyWeights, writeTextConfig, type TinyWeights } from '../helpers/tiny-checkpoints.js';
import { writeTorchCheckpoint } from '../helpers/torch-writer.js';

const TINY = ['fixtures', 'bridgetower-tiny'];
const HF = ['fixtures', 'bridgetower-hf'];

/** Every entry of a checkpoint: dtype, shape and the bytes of its values (row-major). */
function readCheckpoint(path: string) {
  const checkpoint = openTorchCheckpoint(path);
  const fd = openSync(path, 'r');
  try {
    const tensors = new Map([...checkpoint.tensors].map(([name, view]) => [name, { dtype: view.dtype, shape: view.shape, data: readTensorBytes(fd, view) }]));
    return { tensors, metadata: checkpoint.metadata as Record<string, any> };
  } finally {
    closeSync(fd);
  }
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * A tiny Lightning checkpoint with upstream's whole state dict: the parameters the forward pass
 * reads plus what upstream's modules register besides (position_ids buffer, RoBERTa pooler, CLIP
 * text-tower leftovers), as the released checkpoints carry them.
 */
function writeUpstreamTinyCkpt(dir: string, weights: TinyWeights, hparams: Record<string, unknown> = {}): string {
  const extras: TinyWeights = new Map([
    ['text_transformer.pooler.dense.weight', { shape: [64, 64], values: new Float32Array(64 * 64).map((_, i) => Math.sin(i)) }],
    ['text_transformer.pooler.dense.bias', { shape: [64], values: new Float32Array(64).map((_, i) => Math.cos(i)) }],
    ['vit_model.positional_embedding', { shape: [8, 32], values: new Float32Array(256).map((_, i) => i / 256) }],
    ['vit_model.ln_final.weight', { shape: [32], values: new Float32Array(32).fill(1.5) }],
    ['vit_model.ln_final.bias', { shape: [32], values: new Float32Array(32).fill(-0.25) }],
  ]);
  const positions = BigInt64Array.from({ length: 52 }, (_, i) => BigInt(i));
  const path = join(dir, 'tiny.ckpt');
  writeTorchCheckpoint(path, {
    tensors: [
      ...[...weights, ...extras].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape: [...shape], data: asBytes(values) })),
      { name: 'text_transformer.embeddings.position_ids', dtype: 'int64', shape: [1, 52], data: Buffer.from(positions.buffer) },
    ],
    extra: { epoch: 2, global_step: 20, 'pytorch-lightning_version': '1.5.10', hyper_parameters: { config: { tokenizer: 'roberta-demo', temperature: 0.07, max_text_len: 40, ...hparams } } },
  });
  return path;
}

async function tinyBundle(t: any, options: { dtype?: 'fp32' | 'fp16'; hparams?: Record<string, unknown>; upstreamComplete?: boolean; edit?: Parameters<typeof tinyWeights>[0] } = {}) {
  const dir = tempDir(t);
  const { arch, weights } = tinyWeights(options.edit);
  const textConfig = writeTextConfig(dir, arch);
  let ckpt: string;
  if (options.upstreamComplete === false) {
    ckpt = join(dir, 'tiny.ckpt');
    writeTorchCheckpoint(ckpt, {
      tensors: [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape: [...shape], data: asBytes(values) })),
      extra: { hyper_parameters: { config: { tokenizer: 'roberta-demo', ...options.hparams } } },
    });
  } else {
    ckpt = writeUpstreamTinyCkpt(dir, weights, options.hparams);
  }
  const bundle = join(dir, 'bundle');
  await convertCheckpoint({ checkpoint: ckpt, out: bundle, textConfig, graphs: false, ...(options.dtype ? { dtype: options.dtype } : {}) });
  return { dir, ckpt, bundle, textConfig };
}

describe('export-ckpt: a bundle back to an upstream Lightning checkpoint', () => {
  it('round trip: ckpt → bundle → ckpt has the original key set, dtypes, shapes and bytes', async (t) => {
    const { dir, ckpt, bundle } = await tinyBundle(t);
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    const original = readCheckpoint(ckpt);
    const exported = readCheckpoint(out);
    assert.deepEqual([...exported.tensors.keys()].sort(), [...original.tensors.keys()].sort());
    for (const [name, tensor] of original.tensors) {
      const copy = exported.tensors.get(name)!;
      assert.deepEqual([copy.dtype, copy.shape], [tensor.dtype, tensor.shape], name);
      assert.ok(copy.data.equals(tensor.data), `${name}: bytes differ`);
    }
    assert.deepEqual([summary.filled, summary.left_out, summary.missing], [[], [], []]);
    assert.equal(summary.tensors, original.tensors.size);
  });

  it('round trip: re-converting the export gives the same architecture and bit-identical weights', async (t) => {
    const { dir, bundle, textConfig } = await tinyBundle(t);
    const out = join(dir, 'exported.ckpt');
    await exportCheckpoint({ bundle, out });
    const again = join(dir, 'again');
    await convertCheckpoint({ checkpoint: out, out: again, textConfig, graphs: false });
    const [a, b] = [bundle, again].map((d) => JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as BundleConfig);
    assert.deepEqual(b!.architecture, a!.architecture);
    assert.deepEqual(b!.tasks, a!.tasks);
    const [wa, wb] = [bundle, again].map((d) => readSafetensors(join(d, 'model.safetensors')));
    assert.deepEqual([...wb!.keys()].sort(), [...wa!.keys()].sort());
    for (const [name, tensor] of wa!) assert.ok(wb!.get(name)!.data.equals(tensor.data), `${name}: bytes differ`);
  });

  it('records Lightning metadata and the source checkpoint config, completed for upstream', async (t) => {
    const { dir, bundle } = await tinyBundle(t, { hparams: { learning_rate: 1e-5, loss_names: { vqa: 1 } } });
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out, epoch: 4, globalStep: 321 });
    const { metadata } = readCheckpoint(out);
    assert.deepEqual(Object.keys(metadata), ['epoch', 'global_step', 'pytorch-lightning_version', 'hyper_parameters']);
    assert.deepEqual([metadata.epoch, metadata.global_step, metadata['pytorch-lightning_version']], [4, 321, '1.5.10']);
    const config = metadata.hyper_parameters.config;
    assert.equal(summary.config_source, 'bundle provenance (the source checkpoint)');
    assert.equal(config.tokenizer, 'roberta-demo');
    assert.equal(config.learning_rate, 1e-5);
    // Keys that size upstream's modules, from the weights.
    assert.deepEqual(
      [config.hidden_size, config.num_layers, config.num_heads, config.mlp_ratio, config.input_text_embed_size, config.input_image_embed_size, config.patch_size, config.image_size, config.vocab_size],
      [64, 2, 4, 4, 64, 64, 16, 64, 261],
    );
    // The demo holds VQA, SNLI-VE, NLVR2, ITM and ITC heads: `loss_names: {vqa: 1}` would build only one.
    assert.deepEqual(config.loss_names, { itm: 0, mlm: 0, itc: 0, itm_itc: 0, irtr_itm_itc: 1, vqa: 1, nlvr2: 1, irtr: 0, snli: 1 });
    assert.ok(summary.config_changes.some((c) => c.startsWith('loss_names:')), summary.config_changes.join('; '));
  });

  it('a source loss_names that builds exactly the bundle\'s heads is kept, completed with zeros', async (t) => {
    const vqaOnly = (a: any) => {
      for (const head of ['snli', 'nlvr2', 'itm', 'itc']) delete a.heads[head];
      a.cross_modal.token_types = 2;
    };
    const { dir, bundle } = await tinyBundle(t, { upstreamComplete: false, edit: vqaOnly, hparams: { loss_names: { vqa: 1 } } });
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    assert.deepEqual(summary.config_changes, []);
    assert.deepEqual(readCheckpoint(out).metadata.hyper_parameters.config.loss_names, { itm: 0, mlm: 0, itc: 0, itm_itc: 0, irtr_itm_itc: 0, vqa: 1, nlvr2: 0, irtr: 0, snli: 0 });
  });

  it('without a source config, builds upstream\'s full sacred config from the architecture', async (t) => {
    const { dir, bundle } = await tinyBundle(t);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as BundleConfig;
    delete config.provenance.upstream_config;
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    const built = readCheckpoint(out).metadata.hyper_parameters.config;
    assert.equal(summary.config_source, 'built from the architecture');
    assert.equal(built.model_type, 'BT');
    assert.equal(built.vqav2_label_size, 16);
    assert.equal(built.head_hidden_scale, 2);
    assert.equal(built.contrastive_hidden_size, 32);
    assert.deepEqual(built.val_transform_keys, ['blip']);
    assert.match(built.tokenizer, /roberta/);
    assert.match(built.vit, /CLIP/);
    assert.ok(summary.warnings.some((w) => /head_hidden_scale/.test(w)), 'the demo heads disagree on head_hidden_scale');
  });

  it('an fp16 bundle exports fp16 tensors, and int64 buffers stay int64', async (t) => {
    const { dir, bundle } = await tinyBundle(t, { dtype: 'fp16' });
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    assert.equal(summary.dtype, 'float16');
    const weights = readSafetensors(join(bundle, 'model.safetensors'));
    const exported = readCheckpoint(out);
    for (const [name, tensor] of exported.tensors) {
      assert.equal(tensor.dtype, name === 'text_transformer.embeddings.position_ids' ? 'int64' : 'float16', name);
      assert.ok(tensor.data.equals(weights.get(name)!.data), `${name}: bytes differ from the bundle's`);
    }
  });

  it('fills what upstream registers but the bundle lacks, and reports it', async (t) => {
    const { dir, bundle } = await tinyBundle(t, { dtype: 'fp16', upstreamComplete: false, edit: (a) => delete a.heads.itc });
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    assert.deepEqual(summary.filled.map((f) => f.name), ['text_transformer.embeddings.position_ids', 'temperature', 'text_transformer.pooler.dense.weight', 'text_transformer.pooler.dense.bias']);
    const { tensors } = readCheckpoint(out);
    const positions = tensors.get('text_transformer.embeddings.position_ids')!;
    assert.deepEqual([positions.dtype, positions.shape], ['int64', [1, 52]]);
    assert.deepEqual([...new BigInt64Array(positions.data.buffer.slice(positions.data.byteOffset, positions.data.byteOffset + positions.data.length))], Array.from({ length: 52 }, (_, i) => BigInt(i)));
    const temperature = tensors.get('temperature')!;
    assert.deepEqual([temperature.dtype, temperature.shape, temperature.data.readUInt16LE(0)], ['float16', [], 0x2c7b]); // 0.07 in float16
    assert.ok(tensors.get('text_transformer.pooler.dense.weight')!.data.every((b) => b === 0));
    // The demo's vision tower is no OpenAI CLIP, so the text-tower leftovers have no knowable size.
    assert.deepEqual(summary.missing.map((m) => m.name), ['vit_model.positional_embedding', 'vit_model.ln_final.weight', 'vit_model.ln_final.bias']);
    assert.match(summary.missing[0]!.reason, /strict=False/);
  });

  it('a config naming an OpenAI CLIP gets its text-tower leftovers at their real sizes', async (t) => {
    const { dir, bundle } = await tinyBundle(t, { upstreamComplete: false, hparams: { vit: 'CLIP-ViT-B/16' } });
    const out = join(dir, 'exported.ckpt');
    const summary = await exportCheckpoint({ bundle, out });
    assert.deepEqual(summary.missing, []);
    const { tensors } = readCheckpoint(out);
    assert.deepEqual(tensors.get('vit_model.positional_embedding')!.shape, [77, 512]);
    assert.deepEqual(tensors.get('vit_model.ln_final.weight')!.shape, [512]);
    assert.ok(tensors.get('vit_model.ln_final.weight')!.data.equals(asBytes(new Float32Array(512).fill(1))), 'LayerNorm weight initialised to ones');
  });

  it('a missing bundle is an E_BUNDLE error and writes nothing', async (t) => {
    const dir = tempDir(t);
    await assert.rejects(exportCheckpoint({ bundle: join(dir, 'nope'), out: join(dir, 'out.ckpt') }), (e: any) => e.code === 'E_BUNDLE' && e.details.reason === 'unreadable' && e.details.path === join(dir, 'nope', 'config.json'));
    assert.deepEqual(readdirSync(dir), []);
  });

  it('an existing output is kept unless --force, which replaces it', async (t) => {
    const { dir, bundle } = await tinyBundle(t);
    const out = join(dir, 'exported.ckpt');
    writeFileSync(out, 'precious');
    await assert.rejects(exportCheckpoint({ bundle, out }), (e: any) => e.code === 'E_USAGE' && /already exists.*--force/.test(e.message));
    assert.equal(readFileSync(out, 'utf8'), 'precious');
    await exportCheckpoint({ bundle, out, force: true });
    assert.equal(openTorchCheckpoint(out).format, 'torch-zip');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('partial')), []);
  });

  it('an unwritable output path is an E_IO error and leaves nothing behind', async (t) => {
    const { dir, bundle } = await tinyBundle(t);
    writeFileSync(join(dir, 'a-file'), '');
    await assert.rejects(exportCheckpoint({ bundle, out: join(dir, 'a-file', 'exported.ckpt') }), (e: any) => e.code === 'E_IO' && /a-file/.test(e.message));
    const folder = join(dir, 'folder.ckpt');
    mkdirSync(folder);
    await assert.rejects(exportCheckpoint({ bundle, out: folder, force: true }), (e: any) => e.code === 'E_USAGE' && /is a folder/.test(e.message));
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('partial') || f.endsWith('.ckpt') && f !== 'tiny.ckpt' && f !== 'folder.ckpt'), []);
  });

  it('a failure while streaming leaves no partial file and no output', async (t) => {
    const { dir, bundle } = await tinyBundle(t);
    const out = join(dir, 'exported.ckpt');
    const weights = join(bundle, 'model.safetensors');
    // The weights shrink under the exporter after its first tensor, as a disk error would look.
    let truncated = false;
    const onProgress = () => {
      if (!truncated) truncateSync(weights, 4096);
      truncated = true;
    };
    await assert.rejects(exportCheckpoint({ bundle, out, onProgress }), (e: any) => e.code === 'E_CHECKPOINT_FORMAT' && e.details.reason === 'truncated');
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('partial')), []);
  });
});

describe('export-ckpt with the upstream fixtures', () => {
  const cases: Record<string, { keys: string; dtype?: 'fp16' }> = {
    vqa: { keys: 'keys_vqa.txt' },
    vqa_fp16: { keys: 'keys_vqa_fp16.txt', dtype: 'fp16' },
    irtr: { keys: 'keys_irtr.txt' },
    nlvr2: { keys: 'keys_nlvr2.txt' },
    pt: { keys: 'keys_pt.txt' },
    irtr_itm_itc: { keys: 'keys_irtr_itm_itc.txt' },
  };
  for (const [name, { keys, dtype }] of Object.entries(cases)) {
    it(`${name}.ckpt → bundle → .ckpt holds upstream's state dict: every key, dtype, shape and sha256 of keys_${name}`, async (t) => {
      const ckpt = sharedFixture(t, ...TINY, `${name}.ckpt`);
      const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
      const keysFile = sharedFixture(t, ...TINY, keys);
      const hparams = sharedFixture(t, ...TINY, `hparams_${name.replace('_fp16', '')}.json`);
      if (!ckpt || !textConfig || !keysFile || !hparams) return;
      const dir = tempDir(t);
      await convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'bundle'), textConfig, graphs: false, ...(dtype ? { dtype } : {}) });
      const out = join(dir, `${name}.ckpt`);
      const summary = await exportCheckpoint({ bundle: join(dir, 'bundle'), out });
      const exported = readCheckpoint(out);
      const expected = readKeysFile(keysFile);
      assert.deepEqual([...exported.tensors.keys()].sort(), expected.map((k) => k.name).sort());
      for (const key of expected) {
        const tensor = exported.tensors.get(key.name)!;
        assert.deepEqual([tensor.dtype, tensor.shape], [key.dtype, key.shape], key.name);
        assert.equal(sha256(tensor.data), key.sha256, `${key.name}: values differ from upstream's`);
      }
      assert.deepEqual([summary.filled, summary.missing, summary.left_out, summary.config_changes], [[], [], [], []]);
      assert.deepEqual(exported.metadata.hyper_parameters, JSON.parse(readFileSync(hparams, 'utf8')));
    });
  }

  it('a bundle resized with --image-size exports the resized positional embedding and image_size, and says so', async (t) => {
    const ckpt = sharedFixture(t, ...TINY, 'pt_res32.ckpt');
    const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
    if (!ckpt || !textConfig) return;
    const dir = tempDir(t);
    await convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'bundle'), textConfig, imageSize: 48, graphs: false });
    const summary = await exportCheckpoint({ bundle: join(dir, 'bundle'), out: join(dir, 'pt48.ckpt') });
    const exported = readCheckpoint(join(dir, 'pt48.ckpt'));
    assert.deepEqual(exported.tensors.get('vit_model.visual.positional_embedding')!.shape, [10, 128]);
    assert.equal(exported.metadata.hyper_parameters.config.image_size, 48);
    assert.deepEqual(summary.config_changes, ['image_size: 32 → 48']);
  });

  it("a config built from the architecture has exactly the keys of upstream's sacred config", async (t) => {
    const hparams = sharedFixture(t, ...TINY, 'hparams_vqa.json');
    if (!hparams) return;
    const { dir, bundle } = await tinyBundle(t);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as BundleConfig;
    delete config.provenance.upstream_config;
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    await exportCheckpoint({ bundle, out: join(dir, 'built.ckpt') });
    const built = readCheckpoint(join(dir, 'built.ckpt')).metadata.hyper_parameters.config;
    const upstream = JSON.parse(readFileSync(hparams, 'utf8')).config;
    assert.deepEqual(Object.keys(built).sort(), Object.keys(upstream).sort());
    assert.deepEqual(Object.keys(built.loss_names).sort(), Object.keys(upstream.loss_names).sort());
  });

  it('our zip headers have the fields torch 2.x writes (compared with a torch-saved pytorch_model.bin)', async (t) => {
    const torchFile = sharedFixture(t, ...HF, 'itm-bin', 'pytorch_model.bin');
    const ckpt = sharedFixture(t, ...TINY, 'vqa.ckpt');
    const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
    if (!torchFile || !ckpt || !textConfig) return;
    const dir = tempDir(t);
    await convertCheckpoint({ checkpoint: ckpt, out: join(dir, 'bundle'), textConfig, graphs: false });
    const out = join(dir, 'vqa.ckpt');
    await exportCheckpoint({ bundle: join(dir, 'bundle'), out });
    // Local header bytes 4..26 (versions, flags, method, time, date, CRC and sizes deferred to the data descriptor).
    const headerFields = (bytes: Buffer) => bytes.subarray(4, 26).toString('hex');
    const theirs = readFileSync(torchFile);
    const ours = readFileSync(out);
    assert.equal(headerFields(ours), headerFields(theirs));
    const tail = (bytes: Buffer) => bytes.subarray(bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).subarray(0, 16).toString('hex');
    assert.equal(tail(ours).slice(8), tail(theirs).slice(8), 'ZIP64 end record: size and versions');
  });

  it('a Hugging Face bundle exports upstream names, leaving out HF-only heads and filling upstream buffers', async (t) => {
    const model = sharedFixture(t, ...HF, 'contrastive');
    const mappingFile = sharedFixture(t, ...HF, 'key_mapping.json');
    if (!model || !mappingFile) return;
    const dir = tempDir(t);
    await convertCheckpoint({ checkpoint: model, out: join(dir, 'bundle'), graphs: false });
    const out = join(dir, 'contrastive.ckpt');
    const summary = await exportCheckpoint({ bundle: join(dir, 'bundle'), out });
    const mapping = (JSON.parse(readFileSync(mappingFile, 'utf8')) as Record<string, Array<{ hf: string; original: string | null }>>).contrastive!;
    const upstreamNames = mapping.filter((m) => m.original !== null).map((m) => m.original!);
    const exported = readCheckpoint(out);
    assert.deepEqual([...exported.tensors.keys()].sort(), [...upstreamNames, 'text_transformer.embeddings.position_ids'].sort());
    assert.ok(![...exported.tensors.keys()].some((n) => n.startsWith('bridgetower.') || n === 'logit_scale'));
    assert.deepEqual(summary.left_out.map((l) => l.name).sort(), ['itc_cross_modal_head.fc.bias', 'itc_cross_modal_head.fc.weight']);
    const weights = readSafetensors(join(model, 'model.safetensors'));
    const temperature = exported.tensors.get('temperature')!.data.readFloatLE(0);
    assert.ok(Math.abs(temperature - Math.exp(-weights.get('logit_scale')!.data.readFloatLE(0))) < 1e-7, 'temperature = exp(-logit_scale)');
    assert.equal(exported.metadata.hyper_parameters.config.loss_names.itc, 1);
    assert.ok(summary.warnings.some((w) => /Hugging Face semantics/.test(w)));
  });

  it('an HF ITM bundle gets upstream\'s temperature and position_ids, the same values as its HF source otherwise', async (t) => {
    const model = sharedFixture(t, ...HF, 'itm');
    const mappingFile = sharedFixture(t, ...HF, 'key_mapping.json');
    if (!model || !mappingFile) return;
    const dir = tempDir(t);
    await convertCheckpoint({ checkpoint: model, out: join(dir, 'bundle'), graphs: false });
    const out = join(dir, 'itm.ckpt');
    const summary = await exportCheckpoint({ bundle: join(dir, 'bundle'), out });
    assert.deepEqual(summary.filled.map((f) => f.name), ['text_transformer.embeddings.position_ids', 'temperature']);
    const exported = readCheckpoint(out);
    const source = readSafetensors(join(model, 'model.safetensors'));
    const mapping = (JSON.parse(readFileSync(mappingFile, 'utf8')) as Record<string, Array<{ hf: string; original: string }>>).itm!;
    for (const { hf, original } of mapping) assert.ok(exported.tensors.get(original)!.data.equals(source.get(hf)!.data), `${original} differs from ${hf}`);
    assert.deepEqual(exported.metadata.hyper_parameters.config.loss_names, { itm: 1, mlm: 0, itc: 0, itm_itc: 0, irtr_itm_itc: 0, vqa: 0, nlvr2: 0, irtr: 0, snli: 0 });
  });
});
