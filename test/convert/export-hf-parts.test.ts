import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { VALUE_TRANSFORMS } from '../../bundle/tensors/canonical-tensor.js';
import { encodeFloat16, encodeFloat32, toFloat32 } from '../../bundle/tensors/dtype-convert.js';
import { huggingFaceNameOf } from '../../convert/export/hf-names.js';
import { invertTransform } from '../../convert/export/inverse-transform.js';
import { pythonJsonDumps, pythonNumber } from '../../convert/export/python-json.js';
import { qualifyHuggingFaceNames } from '../../convert/huggingface/hf-name-map.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

describe('the HF name table run backwards', () => {
  it('every tensor of every HF fixture (key_mapping.json) gets its HF name back from its original name', (t) => {
    const path = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'key_mapping.json');
    if (!path) return;
    const mapping = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Array<{ hf: string; original: string | null; dtype: string }>>;
    let checked = 0;
    for (const rows of Object.values(mapping)) {
      for (const { hf, original, dtype } of rows) {
        if (dtype === 'int64') continue; // legacy buffers: transformers ≥ 4.31 does not save them
        // HF-only tensors have no original; the bundle keeps them under their HF name.
        const canonical = original && original !== '(none)' ? original : hf;
        assert.equal(huggingFaceNameOf(canonical)?.hf, hf, canonical);
        checked++;
      }
    }
    assert.ok(checked > 1200, `checked ${checked}`);
  });

  it('temperature becomes logit_scale with the transform to invert; upstream-only tensors have no HF name', () => {
    assert.deepEqual(huggingFaceNameOf('temperature'), { hf: 'logit_scale', transform: 'negExp' });
    for (const name of ['vqa_classifier.0.weight', 'rank_output.weight', 'vit_model.ln_final.bias', 'vit_model.visual.proj', 'text_transformer.embeddings.position_ids']) {
      assert.equal(huggingFaceNameOf(name), undefined, name);
    }
  });

  it("a bare BridgeTowerModel checkpoint's names get the base-model prefix; prefixed ones are left alone", () => {
    const bare = qualifyHuggingFaceNames(['text_model.embeddings.word_embeddings.weight', 'cross_modal_text_transform.weight']);
    assert.equal(bare('cross_modal_text_transform.weight'), 'bridgetower.cross_modal_text_transform.weight');
    const prefixed = qualifyHuggingFaceNames(['bridgetower.text_model.embeddings.word_embeddings.weight', 'itm_score.fc.weight']);
    assert.equal(prefixed('itm_score.fc.weight'), 'itm_score.fc.weight');
    const foreign = qualifyHuggingFaceNames(['encoder.layer.0.weight']);
    assert.equal(foreign('encoder.layer.0.weight'), 'encoder.layer.0.weight');
  });
});

describe('inverting a value transform', () => {
  // What the converter computes from a stored logit_scale (convert/write-weights.ts): float32, then the bundle dtype.
  const forward = (dtype: 'float32' | 'float16', logitScale: number) => {
    const encode = dtype === 'float32' ? encodeFloat32 : encodeFloat16;
    return encode([Math.fround(VALUE_TRANSFORMS.negExp(logitScale))]);
  };

  /** Stored logit_scales: float32 densely over [-4, 7]; every float16 with |x| ≤ 11. */
  const logitScales = {
    float32: Array.from({ length: 110_001 }, (_, i) => Math.fround(-4 + i * 1e-4)),
    float16: Array.from({ length: 0x7c00 * 2 }, (_, i) => toFloat32('float16', Buffer.from(Uint16Array.of(i < 0x7c00 ? i : 0x8000 | (i - 0x7c00)).buffer))[0]!).filter(
      (x) => Math.abs(x) <= 11,
    ),
  };

  for (const dtype of ['float32', 'float16'] as const) {
    it(`${dtype}: every temperature a logit_scale converts to gives back a logit_scale that converts to it again`, () => {
      for (const logitScale of logitScales[dtype]) {
        const temperature = forward(dtype, logitScale);
        const back = toFloat32(dtype, invertTransform('negExp', dtype, temperature))[0]!;
        assert.ok(forward(dtype, back).equals(temperature), `logit_scale ${logitScale} → T → ${back} does not convert to the same T`);
      }
    });
  }

  it('the fixture value 2.1 comes back exactly', () => {
    const logitScale = Math.fround(2.1);
    const back = toFloat32('float32', invertTransform('negExp', 'float32', forward('float32', logitScale)))[0];
    assert.equal(back, logitScale);
  });
});

describe("JSON as Python's json.dumps(indent=2, sort_keys=True) writes it", () => {
  it("numbers follow Python's float repr", () => {
    const cases: Array<[number, string]> = [
      [1e-5, '1e-05'],
      [1e-12, '1e-12'],
      [2.6592, '2.6592'],
      [0.1, '0.1'],
      [1 / 255, '0.00392156862745098'],
      [0.0001, '0.0001'],
      [1.5e-7, '1.5e-07'],
      [1e16, '1e+16'],
      [123456.5, '123456.5'],
      [-0.25, '-0.25'],
      [42, '42'],
    ];
    for (const [value, text] of cases) assert.equal(pythonNumber(value), text, String(value));
  });

  it('keys are sorted, nesting is indented by two, non-ASCII is escaped unless told otherwise', () => {
    const value = { b: [1, { z: true, a: null }], a: 'é', c: {}, d: [] };
    assert.equal(pythonJsonDumps(value), '{\n  "a": "\\u00e9",\n  "b": [\n    1,\n    {\n      "a": null,\n      "z": true\n    }\n  ],\n  "c": {},\n  "d": []\n}');
    assert.equal(pythonJsonDumps({ a: 'é' }, { ensureAscii: false }), '{\n  "a": "é"\n}');
  });
});
