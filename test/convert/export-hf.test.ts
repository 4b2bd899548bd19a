import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import type { BundleConfig } from '../../bundle/config.js';
import { openSafetensors, readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { exportHuggingFace } from '../../convert/export/export-hf.js';
import { openTorchCheckpoint } from '../../convert/torch/read-torch-checkpoint.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const HF = ['fixtures', 'bridgetower-hf'];
const TINY = ['fixtures', 'bridgetower-tiny'];
/** What save_pretrained and the tokenizer/processor savers wrote into every HF fixture folder. */
const HF_TEXT_FILES = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

/** An HF fixture folder converted to a bundle (its own tokenizer), or undefined outside ../shared. */
async function hfBundle(t: any, model: string) {
  const source = sharedFixture(t, ...HF, model);
  if (!source) return undefined;
  const dir = tempDir(t);
  const bundle = join(dir, 'bundle');
  await convertCheckpoint({ checkpoint: source, out: bundle, tokenizer: source, graphs: false });
  return { dir, source, bundle };
}

async function tinyBundle(t: any, name: string, options: { dtype?: 'fp16' } = {}) {
  const ckpt = sharedFixture(t, ...TINY, `${name}.ckpt`);
  const textConfig = sharedFixture(t, ...TINY, 'roberta-tiny', 'config.json');
  if (!ckpt || !textConfig) return undefined;
  const dir = tempDir(t);
  const bundle = join(dir, 'bundle');
  await convertCheckpoint({ checkpoint: ckpt, out: bundle, textConfig, graphs: false, ...options });
  return { dir, bundle };
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

function editBundleConfig(bundle: string, edit: (config: BundleConfig) => void): void {
  const path = join(bundle, 'config.json');
  const config = readJson(path) as BundleConfig;
  edit(config);
  writeFileSync(path, JSON.stringify(config));
}

/** Every tensor of an HF fixture's pytorch_model.bin: dtype, shape and bytes. */
function readBin(path: string) {
  const file = openTorchCheckpoint(path);
  const fd = openSync(path, 'r');
  try {
    return new Map([...file.tensors].map(([name, view]) => [name, { dtype: view.dtype, shape: view.shape, data: readTensorBytes(fd, view) }]));
  } finally {
    closeSync(fd);
  }
}

function assertSameTensors(actual: ReturnType<typeof readSafetensors>, expected: ReadonlyMap<string, { dtype: string; shape: readonly number[]; data: Uint8Array }>) {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    const got = actual.get(name)!;
    assert.deepEqual([got.dtype, got.shape], [tensor.dtype, [...tensor.shape]], name);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(tensor.data)), `${name}: bytes differ`);
  }
}

const isError = (code: string, pattern: RegExp) => (err: unknown) => err instanceof BridgeTowerError && err.code === code && pattern.test(err.message);

describe('export-hf: Hugging Face fixtures come back as transformers wrote them', () => {
  for (const model of ['itm', 'mlm', 'contrastive']) {
    it(`${model}: config.json, model.safetensors and the tokenizer/processor files are byte-identical to the fixture's`, async (t) => {
      const made = await hfBundle(t, model);
      if (!made) return;
      const out = join(made.dir, 'hf');
      await exportHuggingFace({ bundle: made.bundle, out });
      assertSameTensors(readSafetensors(join(out, 'model.safetensors')), readSafetensors(join(made.source, 'model.safetensors')));
      for (const file of ['model.safetensors', ...HF_TEXT_FILES]) {
        assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(made.source, file))), `${file} differs from the fixture's`);
      }
      assert.deepEqual(readdirSync(out).sort(), ['model.safetensors', ...HF_TEXT_FILES].sort());
    });

    it(`${model}: without the source config.json in the bundle, the architecture alone gives the fixture's config.json`, async (t) => {
      const made = await hfBundle(t, model);
      if (!made) return;
      editBundleConfig(made.bundle, (c) => delete c.provenance.hf_config);
      const out = join(made.dir, 'hf');
      await exportHuggingFace({ bundle: made.bundle, out });
      assert.deepEqual(readJson(join(out, 'config.json')), readJson(join(made.source, 'config.json')));
    });
  }

  it("itm-bin: config.json keeps the source's key set; model.safetensors holds the .bin's tensors minus its legacy position_ids buffers", async (t) => {
    const made = await hfBundle(t, 'itm-bin');
    if (!made) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out });
    assert.ok(readFileSync(join(out, 'config.json')).equals(readFileSync(join(made.source, 'config.json'))));
    const bin = readBin(join(made.source, 'pytorch_model.bin'));
    const buffers = ['bridgetower.text_model.embeddings.position_ids', 'bridgetower.vision_model.visual.embeddings.position_ids'];
    for (const name of buffers) assert.equal(bin.get(name)?.dtype, 'int64', `${name} is in the .bin`);
    assertSameTensors(readSafetensors(join(out, 'model.safetensors')), new Map([...bin].filter(([name]) => !buffers.includes(name))));
    assert.deepEqual(summary.left_out, []);
  });

  it('round trip: HF folder → bundle → export-hf → bundle gives the same architecture and bit-identical tensors', async (t) => {
    const made = await hfBundle(t, 'contrastive');
    if (!made) return;
    const out = join(made.dir, 'hf');
    await exportHuggingFace({ bundle: made.bundle, out });
    const again = join(made.dir, 'again');
    await convertCheckpoint({ checkpoint: out, out: again, tokenizer: out, graphs: false });
    const [a, b] = [made.bundle, again].map((d) => readJson(join(d, 'config.json')) as BundleConfig);
    assert.deepEqual(b!.architecture, a!.architecture);
    assert.deepEqual(b!.preprocessing, a!.preprocessing);
    const [wa, wb] = [made.bundle, again].map((d) => readSafetensors(join(d, 'model.safetensors')));
    assertSameTensors(wb!, wa!);
    assert.ok(readFileSync(join(again, 'tokenizer.json')).equals(readFileSync(join(made.bundle, 'tokenizer.json'))));
  });
});

describe('export-hf: upstream bundles', () => {
  it('an ITM + ITC bundle exports as BridgeTowerForImageAndTextRetrieval with the names and config keys of the HF itm fixture; ITC goes to the head file', async (t) => {
    const made = await tinyBundle(t, 'irtr_itm_itc');
    const itm = sharedFixture(t, ...HF, 'itm');
    if (!made || !itm) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out });
    assert.equal(summary.hf_class, 'BridgeTowerForImageAndTextRetrieval');
    // Both are 4 text / 4 vision / 3 cross-modal layers: the same class has the same state-dict keys.
    assert.deepEqual([...openSafetensors(join(out, 'model.safetensors')).tensors.keys()].sort(), [...openSafetensors(join(itm, 'model.safetensors')).tensors.keys()].sort());
    const config = readJson(join(out, 'config.json'));
    const keysOf = (c: Record<string, any>) => [Object.keys(c).sort(), Object.keys(c.text_config).sort(), Object.keys(c.vision_config).sort()];
    assert.deepEqual(keysOf(config), keysOf(readJson(join(itm, 'config.json'))));
    assert.deepEqual(config.architectures, ['BridgeTowerForImageAndTextRetrieval']);
    assert.equal(config.vision_config.hidden_size, 64);
    assert.deepEqual(summary.head_file, { file: 'bridgetower_heads.safetensors', heads: ['itc'], tensors: 5 });
    const heads = readSafetensors(join(out, 'bridgetower_heads.safetensors'));
    assert.deepEqual([...heads.keys()].sort(), ['itc_image_head.fc.bias', 'itc_image_head.fc.weight', 'itc_text_head.fc.bias', 'itc_text_head.fc.weight', 'logit_scale']);
    const temperature = readSafetensors(join(made.bundle, 'model.safetensors')).get('temperature')!;
    const logitScale = new Float32Array(Uint8Array.from(heads.get('logit_scale')!.data).buffer)[0]!;
    const t0 = new Float32Array(Uint8Array.from(temperature.data).buffer)[0]!;
    assert.equal(Math.fround(Math.exp(-logitScale)), t0, 'exp(-logit_scale) gives the temperature back');
    assert.ok(summary.warnings.some((w) => /eps 1e-12/.test(w)), 'the cross-modal LayerNorm eps difference is reported');
  });

  it("NLVR2: BridgeTowerModel under bare names, HF's 2 token types in model.safetensors, the classifier and the 3-row table in the head file", async (t) => {
    const made = await tinyBundle(t, 'nlvr2');
    if (!made) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out });
    assert.equal(summary.hf_class, 'BridgeTowerModel');
    const model = readSafetensors(join(out, 'model.safetensors'));
    assert.ok([...model.keys()].every((name) => !name.startsWith('bridgetower.')), 'BridgeTowerModel.save_pretrained writes no base-model prefix');
    const bundleTypes = readSafetensors(join(made.bundle, 'model.safetensors')).get('token_type_embeddings.weight')!;
    const types = model.get('token_type_embeddings.weight')!;
    assert.deepEqual([bundleTypes.shape, types.shape], [[3, 64], [2, 64]]);
    assert.ok(Buffer.from(types.data).equals(Buffer.from(bundleTypes.data).subarray(0, 2 * 64 * 4)));
    const heads = readSafetensors(join(out, 'bridgetower_heads.safetensors'));
    assert.ok(Buffer.from(heads.get('token_type_embeddings.weight')!.data).equals(Buffer.from(bundleTypes.data)));
    assert.deepEqual([...heads.keys()].filter((n) => n.startsWith('nlvr2_classifier.')).sort(), ['0.bias', '0.weight', '1.bias', '1.weight', '3.bias', '3.weight'].map((s) => `nlvr2_classifier.${s}`));
    const layouts = JSON.parse((openSafetensors(join(out, 'bridgetower_heads.safetensors')).metadata.__metadata__ as Record<string, string>).bridgetower_heads!);
    assert.deepEqual(Object.keys(layouts), ['nlvr2']);
    assert.deepEqual(layouts.nlvr2.labels, ['False', 'True']);
    assert.equal(layouts.nlvr2.num_labels, 2);
  });

  it('the HF reader takes a bare BridgeTowerModel folder back: same encoder tensors as the bundle', async (t) => {
    const made = await tinyBundle(t, 'snli');
    if (!made) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out });
    const again = join(made.dir, 'again');
    await convertCheckpoint({ checkpoint: out, out: again, graphs: false });
    const original = readSafetensors(join(made.bundle, 'model.safetensors'));
    const back = readSafetensors(join(again, 'model.safetensors'));
    const leftOut = new Set(summary.left_out.map((l) => l.name));
    const encoder = new Map([...original].filter(([name]) => !name.startsWith('snli_classifier.') && !leftOut.has(name)));
    assertSameTensors(back, encoder);
  });

  it('an fp16 bundle exports fp16 weights and says so in config.json', async (t) => {
    const made = await tinyBundle(t, 'vqa_fp16', { dtype: 'fp16' });
    if (!made) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out });
    assert.equal(summary.dtype, 'float16');
    assert.equal(readJson(join(out, 'config.json')).dtype, 'float16');
    for (const file of ['model.safetensors', 'bridgetower_heads.safetensors']) {
      const dtypes = new Set([...openSafetensors(join(out, file)).tensors.values()].map((v) => v.dtype));
      assert.deepEqual([...dtypes], ['float16'], file);
    }
  });

  it('--class picks another class the bundle fills (pt as MaskedLM: ITM to the head file) and refuses one it cannot fill', async (t) => {
    const made = await tinyBundle(t, 'pt');
    if (!made) return;
    const out = join(made.dir, 'hf');
    const summary = await exportHuggingFace({ bundle: made.bundle, out, hfClass: 'BridgeTowerForMaskedLM' });
    assert.equal(readJson(join(out, 'config.json')).architectures[0], 'BridgeTowerForMaskedLM');
    assert.ok(openSafetensors(join(out, 'model.safetensors')).tensors.has('mlm_score.decoder.weight'));
    assert.deepEqual(summary.head_file?.heads, ['itm']);
    await assert.rejects(exportHuggingFace({ bundle: made.bundle, out: join(made.dir, 'c'), hfClass: 'BridgeTowerForContrastiveLearning' }), isError('E_USAGE', /itc/i));
    assert.equal(existsSync(join(made.dir, 'c')), false);
  });
});

describe('export-hf: refusals and atomic writes', () => {
  it("refuses an architecture HF's schema cannot express, naming every option at once", async (t) => {
    const made = await tinyBundle(t, 'irtr');
    if (!made) return;
    editBundleConfig(made.bundle, (c) => {
      c.architecture.vision.layernorm_shared = false;
      c.architecture.cross_modal.num_heads = 2;
    });
    const out = join(made.dir, 'hf');
    await assert.rejects(exportHuggingFace({ bundle: made.bundle, out }), (err: unknown) => {
      assert.ok(err instanceof BridgeTowerError && err.code === 'E_ARCHITECTURE', String(err));
      assert.deepEqual(err.details.options, ['num_heads (HF: text_config.num_attention_heads)', 'vit_layernorm_shared (HF: vision_config.share_layernorm)']);
      assert.match(err.message, /ln_post/);
      return true;
    });
    assert.equal(existsSync(out), false);
  });

  it('an existing --out needs force; force replaces an earlier export but never a folder of other files; a failure midway leaves neither a folder nor a temporary one', async (t) => {
    const made = await tinyBundle(t, 'irtr');
    if (!made) return;
    const out = join(made.dir, 'hf');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'old');
    await assert.rejects(exportHuggingFace({ bundle: made.bundle, out }), isError('E_USAGE', /already exists.*--force/));
    await assert.rejects(exportHuggingFace({ bundle: made.bundle, out, force: true }), isError('E_USAGE', /nothing was deleted/));
    assert.deepEqual(readdirSync(out), ['keep.txt']);
    rmSync(out, { recursive: true });
    await exportHuggingFace({ bundle: made.bundle, out });
    writeFileSync(join(out, 'stale.txt'), 'from before');
    await exportHuggingFace({ bundle: made.bundle, out, force: true });
    assert.equal(existsSync(join(out, 'stale.txt')), false);
    assert.ok(existsSync(join(out, 'model.safetensors')));

    const weights = join(made.bundle, 'model.safetensors');
    truncateSync(weights, readFileSync(weights).length - 1024);
    const fresh = join(made.dir, 'fresh');
    await assert.rejects(exportHuggingFace({ bundle: made.bundle, out: fresh }), (err: unknown) => err instanceof BridgeTowerError);
    assert.deepEqual(readdirSync(made.dir).sort(), ['bundle', 'hf']);
  });
});
