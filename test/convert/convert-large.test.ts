import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { BundleConfig } from '../../bundle/config.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';
import { demoArchitecture } from '../../convert/demo/demo-architecture.js';
import { assertChildFinished, childTimeoutMs } from '../helpers/child-timeout.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

const CHILD = fileURLToPath(new URL('../helpers/convert-in-child.ts', import.meta.url));

const CONVERT_TIMEOUT_MS = childTimeoutMs(120_000);

function peakRss(...args: string[]): number {
  const result = spawnSync(process.execPath, ['--import', 'tsx', CHILD, ...args], { encoding: 'utf8', timeout: CONVERT_TIMEOUT_MS });
  assertChildFinished(result, 'the conversion child', CONVERT_TIMEOUT_MS);
  assert.equal(result.status, 0, result.stderr);
  return (JSON.parse(result.stdout) as { maxRssBytes: number }).maxRssBytes;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('large checkpoints', () => {
  it('a ~380 MB checkpoint converts while holding far less than the checkpoint in memory', async (t) => {
    const dir = tempDir(t);
    // A mid-size model: many ~1–40 MB storages, like the real ones (whose largest is 154 MB).
    const arch = demoArchitecture();
    Object.assign(arch.text, { hidden_size: 512, num_layers: 8, num_heads: 8, intermediate_size: 2048, vocab_size: 20000 });
    Object.assign(arch.vision, { width: 512, num_layers: 8, num_heads: 8, mlp_size: 2048 });
    Object.assign(arch.cross_modal, { hidden_size: 512, num_layers: 4, num_heads: 8, intermediate_size: 2048 });
    arch.heads = { itm: { input_size: 1024 } };
    const ckpt = writeTinyCkpt(dir, randomStateDict(arch, 7));
    const size = statSync(ckpt).size;
    assert.ok(size > 350e6, `checkpoint is ${size} bytes`);
    const textConfig = writeTextConfig(dir, arch);
    const out = join(dir, 'bundle');

    const baseline = peakRss(ckpt, out, textConfig, '--open-only');
    const converting = peakRss(ckpt, out, textConfig);
    const growth = converting - baseline;
    t.diagnostic(`peak RSS: ${(baseline / 1e6).toFixed(0)} MB opening, ${(converting / 1e6).toFixed(0)} MB converting a ${(size / 1e6).toFixed(0)} MB checkpoint`);
    assert.ok(growth < 0.4 * size, `conversion grew RSS by ${(growth / 1e6).toFixed(0)} MB for a ${(size / 1e6).toFixed(0)} MB checkpoint`);

    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as BundleConfig;
    assert.equal(config.provenance.sources[0]!.sha256, await sha256File(ckpt));
    assert.equal(config.provenance.sources[0]!.bytes, size);
    assert.equal(openSafetensors(join(out, 'model.safetensors')).tensors.size, config.weights.tensors);
  });
});
