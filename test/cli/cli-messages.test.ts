import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { didYouMean } from '../../cli/suggest.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('didYouMean', () => {
  const flags = ['text-config', 'tokenizer', 'labels', 'out', 'keep-checkpoints', 'keep-going'];
  it('suggests the one name within two edits of a typo', () => {
    assert.equal(didYouMean('text-confg', flags), 'text-config');
    assert.equal(didYouMean('tokeniser', flags), 'tokenizer');
  });
  it('suggests the one name a prefix extends, and nothing when two do or nothing is close', () => {
    assert.equal(didYouMean('text', flags), 'text-config');
    assert.equal(didYouMean('keep', flags), undefined);
    assert.equal(didYouMean('frobnicate', flags), undefined);
  });
});

describe('CLI messages', () => {
  it('an unknown flag is a usage error that suggests the real one', () => {
    const result = runCli(['convert', 'x.ckpt', '--text-confg', 'c.json']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown option '--text-confg': did you mean --text-config\?/);
  });

  it('an unknown flag with no close match points to --help', () => {
    const result = runCli(['fine-tune', '--frobnicate']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown option '--frobnicate': `bridgetower fine-tune --help` lists the options/);
  });

  it('an unknown command suggests the closest one', () => {
    const result = runCli(['fine_tune']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown command 'fine_tune': did you mean fine-tune\?/);
  });

  it('run-graph with an unknown graph lists the graphs the bundle has', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    const result = runCli(['run-graph', bundle, 'text_encodr', '--inputs', 'in.safetensors', '--out', 'out.safetensors']);
    assert.equal(result.code, 2, result.stderr);
    // The graphs the demo bundle ships, as its onnx/ folder holds them, sorted.
    const graphs = readdirSync(join(bundle, 'onnx')).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -'.onnx'.length)).sort();
    assert.ok(graphs.includes('text_encoder') && graphs.includes('vqa'));
    assert.ok(result.stderr.includes(`has no graph 'text_encodr': did you mean text_encoder? Its graphs: ${graphs.join(', ')}\n`), result.stderr);
  });
});
