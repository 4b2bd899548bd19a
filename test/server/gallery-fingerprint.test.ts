import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { readBundleConfig, type BundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { bundleFingerprint, readBundleFingerprint } from '../../server/gallery/bundle-fingerprint.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('the bundle fingerprint that keys a gallery', () => {
  let config: BundleConfig;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridgetower-fingerprint-'));
    try {
      await buildDemoBundle(join(dir, 'demo'));
      config = readBundleConfig(join(dir, 'demo'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const variant = (edit: (copy: BundleConfig) => void): string => {
    const copy = structuredClone(config);
    edit(copy);
    return bundleFingerprint(copy);
  };

  it('is a sha256 hex digest that ignores when and by which converter version the bundle was made', () => {
    assert.match(bundleFingerprint(config), /^[0-9a-f]{64}$/);
    assert.equal(
      variant((c) => {
        c.provenance.converted_at = '2001-01-01T00:00:00Z';
        c.provenance.converter = 'bridgetower-node 9.9.9';
        c.architecture.text.config_source = 'somewhere else';
      }),
      bundleFingerprint(config),
    );
  });

  it('changes with the source weights, the weight dtype and the preprocessing', () => {
    const base = bundleFingerprint(config);
    assert.notEqual(variant((c) => void (c.provenance.sources[0]!.sha256 = '0'.repeat(64))), base);
    assert.notEqual(variant((c) => void (c.weights.dtype = 'float16')), base);
    assert.notEqual(variant((c) => void (c.preprocessing.resize = 'shorter_side_center_crop')), base);
  });

  it('does not depend on the key order of config.json', (t) => {
    const dir = tempDir(t);
    const reordered = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(config)) as Record<string, unknown>).reverse());
    writeFileSync(join(dir, 'config.json'), JSON.stringify(reordered));
    assert.notEqual(readFileSync(join(dir, 'config.json'), 'utf8'), JSON.stringify(config));
    assert.equal(readBundleFingerprint(dir), bundleFingerprint(config));
  });
});
