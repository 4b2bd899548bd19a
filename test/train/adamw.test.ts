import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { readSafetensors, toFloat64Array } from '../../convert/safetensors/read-safetensors.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { buildAdamWGraph, stepScalars } from '../../train/optimizer/adamw.js';
import { groupOf, type OptimizerHyperParameters } from '../../train/optimizer/parameter-groups.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

const HP: OptimizerHyperParameters = { learningRate: 1e-3, weightDecay: 0.01, lrMultHead: 50, lrMultCrossModal: 5 };

interface TrainJson {
  param_groups: { index: number; lr: number; weight_decay: number; params: string[] }[];
  params_without_grad: string[];
}

for (const task of ['vqa', 'snli'] as const) {
  describe(`AdamW (transformers 4.17) replay: ${task}`, () => {
    it('puts every parameter in upstream group', (t) => {
      const jsonPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `train_${task}.json`);
      if (!jsonPath) return;
      const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as TrainJson;
      let count = 0;
      for (const g of json.param_groups) {
        for (const name of g.params) {
          const got = groupOf(name, HP);
          assert.ok(got, `${name}: no group`);
          assert.equal(got.group, g.index, `${name}: group ${got.group}, upstream ${g.index}`);
          assert.equal(got.lr, g.lr, `${name}: lr`);
          assert.equal(got.weightDecay, g.weight_decay, `${name}: weight decay`);
          count++;
        }
      }
      assert.ok(count > 0);
    });

    it('reproduces adamw_hf.step1 / step2 bit for bit', async (t) => {
      const jsonPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `train_${task}.json`);
      const goldenPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `train_${task}.safetensors`);
      if (!jsonPath || !goldenPath) return;
      const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as TrainJson;
      const golden = readSafetensors(goldenPath);
      const get = (name: string) => {
        const tensor = golden.get(name);
        assert.ok(tensor, `golden lacks ${name}`);
        return Float32Array.from(toFloat64Array(tensor.dtype, tensor.data));
      };
      const names = [...golden.keys()].filter((k) => k.startsWith('initial.')).map((k) => k.slice('initial.'.length));
      assert.ok(names.length > 0);
      const withoutGrad = new Set(json.params_without_grad);
      // flat buffer over every stored parameter
      const offsets: number[] = [];
      let n = 0;
      for (const name of names) {
        offsets.push(n);
        n += get(`initial.${name}`).length;
      }
      let param: Float32Array = new Float32Array(n);
      let m: Float32Array = new Float32Array(n);
      let v: Float32Array = new Float32Array(n);
      const mask = new Uint8Array(n);
      names.forEach((name, i) => {
        param.set(get(`initial.${name}`), offsets[i]);
        mask.fill(withoutGrad.has(name) ? 0 : 1, offsets[i], offsets[i]! + get(`initial.${name}`).length);
      });
      const session = await ort.InferenceSession.create(serializeModel(buildAdamWGraph()), { executionProviders: ['cpu'] });
      const failures: string[] = [];
      let exact = 0;
      for (const step of [1, 2]) {
        const grad = new Float32Array(n);
        const stepSize = new Float32Array(n);
        const decayAlpha = new Float32Array(n);
        names.forEach((name, i) => {
          const g = get(`adamw_hf.grad_step${step}.${name}`);
          grad.set(g, offsets[i]);
          const group = groupOf(name, HP)!;
          const s = stepScalars(group.lr, group.weightDecay, step);
          stepSize.fill(s.stepSize, offsets[i], offsets[i]! + g.length);
          decayAlpha.fill(s.decayAlpha, offsets[i], offsets[i]! + g.length);
        });
        const out = await session.run({
          param: new ort.Tensor('float32', param, [n]),
          grad: new ort.Tensor('float32', grad, [n]),
          m: new ort.Tensor('float32', m, [n]),
          v: new ort.Tensor('float32', v, [n]),
          step_size: new ort.Tensor('float32', stepSize, [n]),
          decay_alpha: new ort.Tensor('float32', decayAlpha, [n]),
          update_mask: new ort.Tensor('bool', mask, [n]),
        });
        param = out.param_out!.data as Float32Array;
        m = out.m_out!.data as Float32Array;
        v = out.v_out!.data as Float32Array;
        names.forEach((name, i) => {
          const ref = get(`adamw_hf.step${step}.${name}`);
          let bad = 0;
          let maxAbs = 0;
          for (let j = 0; j < ref.length; j++) {
            const got = param[offsets[i]! + j]!;
            if (!Object.is(got, ref[j]!)) {
              bad++;
              maxAbs = Math.max(maxAbs, Math.abs(got - ref[j]!));
            }
          }
          if (bad === 0) exact++;
          else failures.push(`step${step}.${name}: ${bad}/${ref.length} elements differ (max abs ${maxAbs})`);
        });
      }
      t.diagnostic(`${exact}/${names.length * 2} tensors bit-exact`);
      assert.deepEqual(failures, []);
    });
  });
}
