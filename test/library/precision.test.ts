import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRAPH_PRECISIONS, type BundleConfig, type GraphPrecision, type GraphVariant } from '../../bundle/config.js';
import { BridgeTowerError } from '../../common/errors.js';
import { resolvePrecision, type Precision } from '../../library/precision.js';
import type { Device } from '../../runtime/session.js';

const FILES = ['text_encoder.onnx'];
const DIRS: Record<GraphPrecision, string> = { fp32: 'onnx', int8: 'onnx/int8', fp16: 'onnx/fp16' };

/** The parts of a config precision resolution reads: a bundle with `variants` (or, undefined, an old bundle). */
function config(variants: readonly GraphPrecision[] | undefined, dtype: 'float32' | 'float16' = 'float32'): Pick<BundleConfig, 'name' | 'weights' | 'graphs'> {
  const listed = variants && Object.fromEntries(variants.map((p): [GraphPrecision, GraphVariant] => [p, { dir: DIRS[p], files: FILES, weights: 'model.safetensors', bytes: 1 }]));
  return {
    name: 'b',
    weights: { file: 'model.safetensors', dtype, tensors: 1, parameters: 1 },
    graphs: { dir: 'onnx', files: FILES, weights: 'hard link', optimized: false, ...(listed ? { variants: listed } : {}) },
  };
}

const usage = (pattern: RegExp) => (e: unknown) => e instanceof BridgeTowerError && e.code === 'E_USAGE' && pattern.test(e.message);

describe('resolvePrecision: which variant a bundle is opened in', () => {
  // [device, variants the bundle has, what auto opens, whether that is a fallback]
  const AUTO: Array<[Device, GraphPrecision[], GraphPrecision, boolean]> = [
    ['cpu', ['fp32', 'int8', 'fp16'], 'int8', false],
    ['cpu', ['fp32', 'fp16'], 'fp32', true],
    ['cpu', ['fp16'], 'fp16', true],
    ['cuda', ['fp32', 'int8', 'fp16'], 'fp16', false],
    ['cuda', ['fp32', 'int8'], 'fp32', true],
    ['cuda', ['int8'], 'int8', true],
  ];
  for (const [device, has, expected, fellBack] of AUTO) {
    it(`auto on ${device} with ${has.join('+')} opens ${expected}${fellBack ? ', saying it fell back' : ''}`, () => {
      for (const asked of ['auto', undefined] as const) {
        const resolved = resolvePrecision(config(has), asked, device);
        assert.equal(resolved.precision, expected);
        assert.equal(resolved.fellBackFrom !== undefined, fellBack);
        if (fellBack) assert.match(resolved.reason, new RegExp(`no ${resolved.fellBackFrom} graphs .*--variants`));
      }
    });
  }

  for (const precision of GRAPH_PRECISIONS) {
    it(`${precision}, asked explicitly, opens ${precision} on either device when the bundle has it`, () => {
      for (const device of ['cpu', 'cuda'] as const) assert.equal(resolvePrecision(config(GRAPH_PRECISIONS), precision, device).precision, precision);
    });

    it(`${precision} on a bundle without it is refused, naming what it has and --variants`, () => {
      const has = GRAPH_PRECISIONS.filter((p) => p !== precision);
      assert.throws(() => resolvePrecision(config(has), precision), usage(new RegExp(`has ${has.join(', ')} graphs only, not ${precision}.*--variants ${[...has, precision].join(',')}`)));
    });
  }

  it('a bundle converted before variants has one, at its weights dtype', () => {
    assert.equal(resolvePrecision(config(undefined), 'auto').precision, 'fp32');
    assert.equal(resolvePrecision(config(undefined, 'float16'), 'auto', 'cpu').precision, 'fp16');
    assert.throws(() => resolvePrecision(config(undefined), 'int8'), usage(/has fp32 graphs only, not int8/));
  });

  it('an unknown precision is refused, listing the valid ones', () => {
    assert.throws(() => resolvePrecision(config(['fp32']), 'fp8' as Precision), usage(/precision must be one of fp32, int8, fp16, auto, got 'fp8'/));
  });
});
