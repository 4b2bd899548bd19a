import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

/** A converted tiny bundle whose VQA labels, source file and options the test chose itself. */
function convertTiny(t: { after(fn: () => void): void }, extra: string[] = []) {
  const dir = tempDir(t);
  const { arch, weights } = tinyWeights();
  const ckpt = writeTinyCkpt(dir, weights);
  const vqaLabels = Array.from({ length: arch.heads.vqa!.num_labels }, (_, i) => `answer ${i}`);
  const labels = join(dir, 'answers.json');
  writeFileSync(labels, JSON.stringify(vqaLabels));
  const out = join(dir, 'bundle');
  const result = runCli(['convert', ckpt, '--out', out, '--labels', labels, '--text-config', writeTextConfig(dir, arch), '--name', 'tiny-inspect', ...extra]);
  assert.equal(result.code, 0, result.stderr);
  return { out, ckpt, vqaLabels, arch };
}

describe('inspect <bundle>', () => {
  it('reports tasks with their labels, text lengths, preprocessing, graphs with sizes, variants and provenance', (t) => {
    const { out, ckpt, vqaLabels } = convertTiny(t);
    const result = runCli(['inspect', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const { bundle } = JSON.parse(result.stdout);
    assert.equal(bundle.name, 'tiny-inspect');

    const vqa = bundle.tasks.find((x: { task: string }) => x.task === 'vqa');
    assert.deepEqual(vqa.labels, { count: vqaLabels.length, first: vqaLabels.slice(0, 5) });
    // Upstream's fine-tuning text lengths: 50 for the classification tasks, 40 for retrieval.
    assert.equal(vqa.max_text_len, 50);
    assert.equal(bundle.tasks.find((x: { task: string }) => x.task === 'itc').max_text_len, 40);
    assert.deepEqual(bundle.tasks.find((x: { task: string }) => x.task === 'snli').labels.first, ['contradiction', 'neutral', 'entailment']);
    assert.equal(bundle.tasks.find((x: { task: string }) => x.task === 'itm').labels, undefined);

    // CLIP's normalisation constants and the demo architecture's 64-px input.
    assert.equal(bundle.preprocessing.image_size, 64);
    assert.deepEqual(bundle.preprocessing.mean, [0.48145466, 0.4578275, 0.40821073]);
    assert.equal(bundle.preprocessing.resize, 'square');

    assert.ok(bundle.graphs.some((g: { file: string }) => g.file === 'vqa.onnx'));
    for (const g of bundle.graphs) assert.equal(g.bytes, statSync(join(out, 'onnx', g.file)).size, g.file);
    assert.equal(bundle.graphWeights.bytes, statSync(join(out, 'onnx', 'model.safetensors')).size);
    assert.deepEqual(bundle.unlistedGraphFiles, []);
    // Default variants: fp32 in onnx/, int8 in onnx/int8/ with its u8-weight set in onnx/int8-u8/,
    // each measured on disk: its graph files and its own graph-weights.safetensors.
    const names = bundle.graphs.map((g: { file: string }) => g.file);
    const onDisk = (dir: string) => [...names, 'graph-weights.safetensors'].reduce((s: number, f: string) => s + statSync(join(out, dir, f)).size, 0);
    assert.deepEqual(bundle.variants, [
      { precision: 'fp32', dir: 'onnx', files: names.length, bytes: onDisk('onnx') },
      { precision: 'int8', dir: 'onnx/int8', files: names.length, bytes: onDisk('onnx/int8'), u8: { dir: 'onnx/int8-u8', files: names.length, bytes: onDisk('onnx/int8-u8') } },
    ]);

    const source = readFileSync(ckpt);
    assert.equal(bundle.provenance.source_kind, 'lightning-ckpt');
    assert.deepEqual(bundle.provenance.sources, [{ file: 'tiny.ckpt', bytes: source.length, sha256: createHash('sha256').update(source).digest('hex') }]);
  });

  it('prints the same facts as text, with the first labels quoted and the count', (t) => {
    const { out } = convertTiny(t);
    const result = runCli(['inspect', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /vqa +head vqa, text ≤ 50 tokens, 16 labels: "answer 0", "answer 1", "answer 2", "answer 3", "answer 4", …/);
    assert.match(result.stdout, /image: +64×64, resize square, bicubic, mean \[0\.48145466/);
    assert.match(result.stdout, /vqa\.onnx +\d/);
    assert.match(result.stdout, /variants:\n +fp32 +onnx\/, \d+ graphs, [\d.]+ [KMG]iB\n +int8 +onnx\/int8\/, \d+ graphs, [\d.]+ [KMG]iB\n +onnx\/int8-u8\/, \d+ graphs, [\d.]+ [KMG]iB \(u8 weights/);
    assert.match(result.stdout, /provenance: +lightning-ckpt, converted by bridgetower-node/);
  });

  it('a bundle converted before precision variants (no graphs.variants in config.json) lists one variant: its onnx/ graphs at the weight dtype', (t) => {
    const { out } = convertTiny(t, ['--variants', 'fp32']);
    const configPath = join(out, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8'));
    delete config.graphs.variants;
    writeFileSync(configPath, JSON.stringify(config));
    rmSync(join(out, 'onnx', 'graph-weights.safetensors'));
    const result = runCli(['inspect', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const { bundle } = JSON.parse(result.stdout);
    const graphBytes = bundle.graphs.reduce((s: number, g: { bytes: number }) => s + g.bytes, 0) + statSync(join(out, 'onnx', 'model.safetensors')).size;
    assert.deepEqual(bundle.variants, [{ precision: 'fp32', dir: 'onnx', files: bundle.graphs.length, bytes: graphBytes }]);
  });

  it('a bundle converted with --no-graphs and --dtype fp16 lists no graphs and no variants', (t) => {
    const { out } = convertTiny(t, ['--no-graphs', '--dtype', 'fp16']);
    const result = runCli(['inspect', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const { bundle } = JSON.parse(result.stdout);
    assert.deepEqual(bundle.graphs, []);
    assert.deepEqual(bundle.variants, []);
    assert.match(runCli(['inspect', out]).stdout, /graphs:\n +\(none: weights only; convert without --no-graphs/);
  });
});
