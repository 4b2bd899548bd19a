import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BridgeTowerError, type ErrorCode } from '../../common/errors.js';
import { mapHuggingFaceName } from '../../convert/huggingface/hf-name-map.js';
import { openHuggingFaceRepo, type HfRepoReason } from '../../convert/huggingface/read-hf-repo.js';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/** One row of shared/fixtures/bridgetower-hf/key_mapping.json; `original` null/empty/— = no counterpart. */
interface KeyMappingRow {
  hf: string;
  original: string | null;
  note: string;
  dtype: string;
  shape: number[];
}

const MODELS = ['itm', 'itm-bin', 'mlm', 'contrastive'] as const;

const dir = mkdtempSync(join(tmpdir(), 'hf-repo-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** A throwaway Hugging Face folder: config.json (unless null) and a model.safetensors of the given names. */
function makeRepo(names: string[], config: Record<string, unknown> | null = { model_type: 'bridgetower' }): string {
  const repo = join(dir, `repo${counter++}`);
  mkdirSync(repo);
  if (config) writeFileSync(join(repo, 'config.json'), JSON.stringify(config));
  const tensors = names.map((name) => ({ name, dtype: 'float32' as const, shape: [2], data: Buffer.alloc(8) }));
  writeSafetensors(join(repo, 'model.safetensors'), tensors);
  return repo;
}

function keyMapping(t: Parameters<typeof sharedFixture>[0], model: string): KeyMappingRow[] | undefined {
  const path = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'key_mapping.json');
  if (!path) return undefined;
  return (JSON.parse(readFileSync(path, 'utf8')) as Record<string, KeyMappingRow[]>)[model];
}

const hasOriginal = (row: KeyMappingRow) => row.original !== null && row.original !== '' && row.original !== '—';

/** A predicate for assert.throws: the code, and details holding `details` (`reason` among them). */
function isError(code: ErrorCode, details: { reason: HfRepoReason } & Record<string, unknown>) {
  return (err: unknown) => {
    assert.ok(err instanceof BridgeTowerError, String(err));
    assert.equal(err.code, code, err.message);
    assert.deepEqual(Object.fromEntries(Object.keys(details).map((key) => [key, err.details[key]])), details, err.message);
    return true;
  };
}

describe('the name table agrees with key_mapping.json', () => {
  for (const model of MODELS) {
    test(`every ${model} tensor name maps to the original name key_mapping.json gives`, (t) => {
      const rows = keyMapping(t, model);
      if (!rows) return;
      for (const row of rows) {
        const mapping = mapHuggingFaceName(row.hf);
        if (hasOriginal(row)) {
          assert.ok(mapping.kind === 'mapped' || mapping.kind === 'ignored', `${row.hf} is ${mapping.kind}`);
          assert.equal(mapping.canonical, row.original, row.hf);
        } else if (mapping.kind === 'mapped') {
          assert.equal(mapping.hfOnly, true, `${row.hf} has no original, so it must be HF-only`);
          assert.equal(mapping.canonical, row.hf, 'an HF-only tensor keeps its HF name');
        } else {
          assert.equal(mapping.kind, 'ignored', row.hf);
        }
      }
    });
  }

  test('a name outside the table is unknown', () => {
    assert.deepEqual(mapHuggingFaceName('bridgetower.text_model.encoder.layer.0.attention.self.rotary.weight'), { kind: 'unknown' });
    assert.deepEqual(mapHuggingFaceName('vqa_classifier.0.weight'), { kind: 'unknown' });
  });
});

describe('opening the Hugging Face fixtures', () => {
  for (const model of MODELS) {
    test(`the ${model} folder yields exactly its mapped tensors, with the stored shapes`, (t) => {
      const rows = keyMapping(t, model);
      const repoDir = sharedFixture(t, 'fixtures', 'bridgetower-hf', model);
      if (!rows || !repoDir) return;
      const repo = openHuggingFaceRepo(repoDir);
      const expected = new Map<string, KeyMappingRow>();
      for (const row of rows) {
        const mapping = mapHuggingFaceName(row.hf);
        if (mapping.kind === 'mapped') expected.set(mapping.canonical, row);
      }
      assert.deepEqual([...repo.tensors.keys()].sort(), [...expected.keys()].sort());
      for (const [canonical, tensor] of repo.tensors) {
        const row = expected.get(canonical)!;
        assert.equal(tensor.sourceName, row.hf);
        assert.deepEqual(tensor.view.shape, row.shape, canonical);
        assert.equal(tensor.view.dtype, row.dtype, canonical);
      }
    });
  }

  test('logit_scale becomes temperature with the negExp value transform', (t) => {
    const repoDir = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'contrastive');
    if (!repoDir) return;
    const temperature = openHuggingFaceRepo(repoDir).tensors.get('temperature');
    assert.ok(temperature, 'temperature is present');
    assert.equal(temperature.sourceName, 'logit_scale');
    assert.equal(temperature.transform, 'negExp');
    assert.deepEqual(mapHuggingFaceName('logit_scale'), {
      kind: 'mapped',
      canonical: 'temperature',
      transform: 'negExp',
      note: 'temperature = exp(-logit_scale)',
    });
  });

  test('the HF-only contrastive cross-modal head is kept under its own name', (t) => {
    const repoDir = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'contrastive');
    if (!repoDir) return;
    const repo = openHuggingFaceRepo(repoDir);
    assert.equal(repo.tensors.get('itc_cross_modal_head.fc.weight')?.sourceName, 'itc_cross_modal_head.fc.weight');
    assert.equal(repo.tensors.get('itc_cross_modal_head.fc.bias')?.sourceName, 'itc_cross_modal_head.fc.bias');
    assert.deepEqual(repo.ignored, []);
  });

  test("itm-bin's legacy position_ids buffers are reported as ignored, not loaded", (t) => {
    const repoDir = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm-bin');
    if (!repoDir) return;
    const repo = openHuggingFaceRepo(repoDir);
    assert.deepEqual(repo.ignored.map((i) => i.name).sort(), [
      'bridgetower.text_model.embeddings.position_ids',
      'bridgetower.vision_model.visual.embeddings.position_ids',
    ]);
    assert.ok(repo.ignored.every((i) => /legacy buffer/.test(i.reason)));
    assert.ok(!repo.tensors.has('text_transformer.embeddings.position_ids'));
    assert.equal(repo.files[0]?.format, 'torch-zip');
  });

  test('config.json is parsed with the fields BridgeTower uses', (t) => {
    const repoDir = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'contrastive');
    if (!repoDir) return;
    const { config } = openHuggingFaceRepo(repoDir);
    assert.equal(config.model_type, 'bridgetower');
    assert.deepEqual(config.architectures, ['BridgeTowerForContrastiveLearning']);
    assert.equal(config.hidden_size, 64);
    assert.equal(config.num_hidden_layers, 3);
    assert.equal(config.layer_norm_eps, 1e-5);
    assert.equal(config.contrastive_hidden_size, 32);
    assert.equal(config.logit_scale_init_value, 2.6592);
    assert.equal(config.text_config.vocab_size, 1000);
    assert.equal(config.text_config.max_position_embeddings, 42);
    assert.equal(config.vision_config.patch_size, 16);
    assert.equal(config.vision_config.image_size, 48);
  });

  test('a sharded repo (model.safetensors.index.json) yields the same tensors as the single file', (t) => {
    const source = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm');
    if (!source) return;
    const all = [...readSafetensors(join(source, 'model.safetensors'))].map(([name, v]) => ({ name, ...v }));
    const repo = join(dir, `sharded${counter++}`);
    mkdirSync(repo);
    copyFileSync(join(source, 'config.json'), join(repo, 'config.json'));
    const half = Math.floor(all.length / 2);
    const shards = { 'model-00001-of-00002.safetensors': all.slice(0, half), 'model-00002-of-00002.safetensors': all.slice(half) };
    const weightMap: Record<string, string> = {};
    for (const [file, tensors] of Object.entries(shards)) {
      writeSafetensors(join(repo, file), tensors);
      for (const { name } of tensors) weightMap[name] = file;
    }
    writeFileSync(join(repo, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const sharded = openHuggingFaceRepo(repo);
    assert.equal(sharded.files.length, 2);
    assert.deepEqual([...sharded.tensors.keys()].sort(), [...openHuggingFaceRepo(source).tensors.keys()].sort());
  });
});

describe('folders that are not convertible', () => {
  test('an extra unknown tensor fails, listing every unknown name', () => {
    const repo = makeRepo(['itm_score.fc.bias', 'bridgetower.extra_adapter.weight', 'vqa_head.bias']);
    assert.throws(() => openHuggingFaceRepo(repo), (err: unknown) => {
      assert.ok(err instanceof BridgeTowerError);
      assert.equal(err.code, 'E_UNKNOWN_TENSOR');
      assert.equal(err.details.reason, 'unknown_tensor');
      assert.deepEqual(err.details.unknown, ['bridgetower.extra_adapter.weight', 'vqa_head.bias']);
      return true;
    });
  });

  test('a folder without config.json fails, saying what to provide', () => {
    const repo = makeRepo(['itm_score.fc.bias'], null);
    assert.throws(() => openHuggingFaceRepo(repo), isError('E_CHECKPOINT_FORMAT', { reason: 'no_config', dir: repo }));
  });

  test('a folder without weights fails, naming the files it looked for', () => {
    const repo = join(dir, `empty${counter++}`);
    mkdirSync(repo);
    writeFileSync(join(repo, 'config.json'), JSON.stringify({ model_type: 'bridgetower' }));
    assert.throws(() => openHuggingFaceRepo(repo), isError('E_CHECKPOINT_FORMAT', { reason: 'no_weights', dir: repo }));
  });

  test('a config.json of another model type is refused', () => {
    const repo = makeRepo(['itm_score.fc.bias'], { model_type: 'clip' });
    assert.throws(() => openHuggingFaceRepo(repo), isError('E_ARCHITECTURE', { reason: 'not_bridgetower', model_type: 'clip' }));
  });

  test('a config.json field of the wrong type is refused, naming it', () => {
    const repo = makeRepo(['itm_score.fc.bias'], { model_type: 'bridgetower', text_config: { hidden_size: '64' } });
    assert.throws(() => openHuggingFaceRepo(repo), isError('E_CHECKPOINT_FORMAT', { reason: 'invalid_field', field: 'text_config.hidden_size', value: '64' }));
  });

  test("fields missing from config.json take transformers' defaults", () => {
    const { config } = openHuggingFaceRepo(makeRepo(['itm_score.fc.bias']));
    assert.equal(config.text_config.vocab_size, 50265);
    assert.equal(config.vision_config.image_size, 288);
    assert.equal(config.num_hidden_layers, 6);
  });

  test('a shard index that points outside the folder is refused', () => {
    const repo = join(dir, `escape${counter++}`);
    mkdirSync(repo);
    writeFileSync(join(repo, 'config.json'), JSON.stringify({ model_type: 'bridgetower' }));
    writeFileSync(join(repo, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'itm_score.fc.bias': '../other.safetensors' } }));
    assert.throws(() => openHuggingFaceRepo(repo), isError('E_CHECKPOINT_FORMAT', { reason: 'shard_outside_folder', tensor: 'itm_score.fc.bias' }));
  });
});
