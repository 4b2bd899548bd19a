import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BridgeTowerError } from '../../common/errors.js';
import { claimsToBeBundle, readBundleConfig, writeBundleConfig, type BundleConfig } from '../../bundle/config.js';
import { readLabels, writeBundleLabels } from '../../bundle/labels.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { inspectCheckpoint } from '../../convert/inspect.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A predicate for assert.throws: the code, `details.reason` and (when given) `details.field`. */
function refused(code: string, reason: string, field?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof BridgeTowerError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.details.reason, reason, error.message);
    if (field !== undefined) assert.equal(error.details.field, field, error.message);
    return true;
  };
}

describe('config.json through its schema', () => {
  let root: string;
  let demo: string;
  let config: BundleConfig;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'bridgetower-bundle-config-'));
    demo = join(root, 'demo');
    await buildDemoBundle(demo);
    config = readBundleConfig(demo);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** A copy of the demo bundle's folder whose config.json is `edit`ed as raw JSON. */
  let copies = 0;
  const withConfig = (edit: (json: Record<string, any>) => void): string => {
    const dir = join(root, `copy-${copies++}`);
    cpSync(demo, dir, { recursive: true });
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, any>;
    edit(json);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    return dir;
  };

  it('reads the config the converter wrote, labels included', () => {
    assert.equal(config.format, 'bridgetower-bundle');
    assert.deepEqual(Object.keys(readLabels(demo, config.labels)).sort(), ['nlvr2', 'snli', 'vqa']);
  });

  it('refuses a field it does not know, naming its path', () => {
    const dir = withConfig((json) => void (json.tasks.vqa.max_txt_len = 40));
    assert.throws(() => readBundleConfig(dir), refused('E_BUNDLE', 'unknown_field', 'tasks.vqa.max_txt_len'));
  });

  it('refuses a task it does not know', () => {
    const dir = withConfig((json) => void (json.tasks.caption = { head: 'vqa', max_text_len: 40 }));
    assert.throws(() => readBundleConfig(dir), refused('E_BUNDLE', 'unknown_field', 'tasks.caption'));
  });

  it('refuses a missing field, naming its path', () => {
    const dir = withConfig((json) => void delete json.architecture.vision.patch_size);
    assert.throws(() => readBundleConfig(dir), refused('E_BUNDLE', 'missing_field', 'architecture.vision.patch_size'));
  });

  it('says what a bad field should hold and what it holds', () => {
    const dir = withConfig((json) => void (json.tasks.vqa.max_text_len = 0));
    assert.throws(() => readBundleConfig(dir), (error: BridgeTowerError) => {
      refused('E_BUNDLE', 'invalid_field', 'tasks.vqa.max_text_len')(error);
      assert.match(error.message, /config\.json: tasks\.vqa\.max_text_len: expected a positive integer, got 0/);
      return true;
    });
  });

  it('refuses a config of another format, and a newer format_version with the upgrade advice even when it adds fields', () => {
    assert.throws(() => readBundleConfig(withConfig((json) => void (json.format = 'other'))), refused('E_BUNDLE', 'not_a_bundle'));
    const newer = withConfig((json) => Object.assign(json, { format_version: 2, shards: ['a'] }));
    assert.throws(() => readBundleConfig(newer), (error: BridgeTowerError) => {
      refused('E_BUNDLE', 'format_too_new')(error);
      assert.match(error.message, /has format_version 2; this bridgetower-node reads up to 1: upgrade bridgetower-node/);
      return true;
    });
  });

  it('reads the fine_tune section that fine-tune writes, and refuses one with an unknown field', () => {
    const fineTune = { base_bundle: config.name, task: 'vqa', step: 6, epoch: 1, train: 'train.jsonl', options: { lr: 1e-5, seed: 0 }, metrics: { vqa_score: 50, empty: null } };
    assert.deepEqual(readBundleConfig(withConfig((json) => void (json.fine_tune = fineTune))).fine_tune, fineTune);
    const typo = withConfig((json) => void (json.fine_tune = { ...fineTune, stpe: 6 }));
    assert.throws(() => readBundleConfig(typo), refused('E_BUNDLE', 'unknown_field', 'fine_tune.stpe'));
  });

  it('writes nothing when the config it is given does not fit the schema', (t) => {
    const dir = tempDir(t);
    const bad = { ...structuredClone(config), tasks: { vqa: { head: 'vqa' as const, max_text_len: -1 } } };
    assert.throws(() => writeBundleConfig(dir, bad), refused('E_INTERNAL', 'invalid_field', 'tasks.vqa.max_text_len'));
    assert.equal(existsSync(join(dir, 'config.json')), false);
    writeBundleConfig(dir, config);
    assert.deepEqual(readBundleConfig(dir), config);
  });

  it('inspect reports a damaged bundle as a damaged bundle, not as a Hugging Face folder', () => {
    const dir = withConfig((json) => void delete json.weights);
    assert.throws(() => inspectCheckpoint(dir), refused('E_BUNDLE', 'missing_field', 'weights'));
  });

  it('takes a folder for a bundle when its config says so, damaged or not', (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'damaged'));
    writeFileSync(join(dir, 'damaged', 'config.json'), JSON.stringify({ format: 'bridgetower-bundle', format_version: 1 }));
    mkdirSync(join(dir, 'hf'));
    writeFileSync(join(dir, 'hf', 'config.json'), JSON.stringify({ model_type: 'bridgetower' }));
    assert.equal(claimsToBeBundle(join(dir, 'damaged')), true);
    assert.equal(claimsToBeBundle(join(dir, 'hf')), false);
    assert.equal(claimsToBeBundle(join(dir, 'absent')), false);
  });
});

describe('labels.json through its schema', () => {
  const labelsFile = (t: { after(fn: () => void): void }, content: string): string => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'labels.json'), content);
    return dir;
  };

  it('reads back what writeBundleLabels wrote', (t) => {
    const dir = tempDir(t);
    writeBundleLabels(dir, { vqa: ['yes', 'no'], snli: ['contradiction', 'neutral', 'entailment'] });
    assert.deepEqual(readLabels(dir, 'labels.json'), { vqa: ['yes', 'no'], snli: ['contradiction', 'neutral', 'entailment'] });
  });

  it('refuses a task it does not know with E_LABELS', (t) => {
    const dir = labelsFile(t, JSON.stringify({ vqa: ['yes'], gqa: ['no'] }));
    assert.throws(() => readLabels(dir, 'labels.json'), refused('E_LABELS', 'unknown_field', 'gqa'));
  });

  it('refuses a label that is not a string, naming its index', (t) => {
    const dir = labelsFile(t, JSON.stringify({ vqa: ['yes', 2] }));
    assert.throws(() => readLabels(dir, 'labels.json'), refused('E_LABELS', 'invalid_field', 'vqa.1'));
  });

  it('refuses a file that is not JSON', (t) => {
    assert.throws(() => readLabels(labelsFile(t, '{"vqa": ['), 'labels.json'), refused('E_LABELS', 'not_json'));
  });
});
