import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'node:test';
import { assertChildFinished, childTimeoutMs } from '../helpers/child-timeout.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { itUnless } from '../helpers/skipped-suite.js';

/**
 * bench/train.ts's PyTorch anchor is a torch.nn re-implementation of BridgeTower
 * (bench/pytorch/bridgetower_eager.py); bench/pytorch/check_eager.py compares it with the tiny
 * checkpoints' upstream-written outputs, gradients and AdamW steps. PyTorch is not a dependency:
 * without a Python that imports torch (PYTORCH_PYTHON, default /usr/bin/python3) the test is
 * skipped, in CI too; with one, the fixtures must be there (sharedFixture: CI fails without them).
 */

const PYTHON = process.env.PYTORCH_PYTHON ?? '/usr/bin/python3';
const CHECK = fileURLToPath(new URL('../../bench/pytorch/check_eager.py', import.meta.url));
const TIMEOUT_MS = childTimeoutMs(60_000);

function torchMissing(): string | false {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: childTimeoutMs(20_000) });
  if (probe.error || probe.status !== 0) return `${PYTHON} cannot import torch and numpy (apt-get install python3-torch, or set PYTORCH_PYTHON): the PyTorch anchor is optional`;
  return false;
}

interface CheckResult {
  check: string;
  metric: string;
  error: number;
  tolerance: number;
  ok: boolean;
}

describe('the PyTorch anchor of bench/train.ts', () => {
  const it = itUnless(torchMissing());

  it("reproduces upstream's eval outputs, VQA gradients and AdamW steps on the tiny checkpoints", (t) => {
    const fixtures = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'vqa.ckpt');
    if (!fixtures) return;
    const result = spawnSync(PYTHON, [CHECK, '--fixtures', dirname(fixtures), '--json'], { encoding: 'utf8', timeout: TIMEOUT_MS });
    assertChildFinished(result, 'check_eager.py', TIMEOUT_MS);
    const report = JSON.parse(result.stdout) as { checks: number; failed: number; results: CheckResult[] };
    const failed = report.results.filter((r) => !r.ok).map((r) => `${r.check}: ${r.metric} ${r.error} > ${r.tolerance}`);
    t.diagnostic(`${report.checks} checks, ${report.failed} failed`);
    assert.deepEqual(failed, []);
    assert.equal(result.status, 0, result.stderr);
    // every task checkpoint with a task golden, and the training golden, took part
    for (const part of ['vqa: vqa_logits', 'snli: snli_logits', 'nlvr2: nlvr2_logits', 'pt: mlm_logits', 'irtr: rank_scores', 'irtr_itm_itc: itm_rerank_i2t', 'vqa_fp16: vqa_logits', 'train_vqa (hf AdamW): loss before step 1', 'train_vqa (torch AdamW): update after 2 steps, vqa_classifier.3.weight']) {
      assert.ok(report.results.some((r) => r.check === part), `no check '${part}'`);
    }
  });
});
