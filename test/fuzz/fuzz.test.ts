import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCampaign } from './fuzz-campaign.js';
import { FUZZ_TARGETS } from './fuzz-targets.js';

// The short fuzz budget of `npm test`: a fixed seed per reader, so a failure here is the same on
// every machine; a few seconds per reader. Long campaigns with random seeds: `npm run fuzz`
// (docs/RELIABILITY.md).

const SEED = 20_240_611;
const MAX_CASES = 400;
const BUDGET_MS = 3_000;

describe('fuzzed readers answer every mutated fixture with a value or a typed error', () => {
  let work: string;
  before(() => void (work = mkdtempSync(join(tmpdir(), 'bridgetower-fuzz-'))));
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const target of FUZZ_TARGETS) {
    test(`${target.name}: mutated inputs give a value or a typed error, in time, with bounded memory and no partial output`, async (t) => {
      const seeds = await target.seeds(work);
      if (seeds.length === 0) return t.skip('its seed fixtures (../shared) are absent');
      for (const seed of seeds) {
        const dir = mkdtempSync(join(work, 'seed-'));
        await target.setup?.(dir);
        writeFileSync(join(dir, target.file), seed);
        await assert.doesNotReject(async () => target.read(join(dir, target.file), dir), 'an unmutated seed must read');
      }
      const result = await runCampaign(target, seeds, work, { seed: SEED, maxCases: MAX_CASES, budgetMs: BUDGET_MS });
      t.diagnostic(`${result.cases} cases in ${result.elapsedMs} ms: ${result.ok} ok, typed ${JSON.stringify(result.typed)}, slowest ${result.slowestMs} ms`);
      assert.ok(result.cases >= 20, `only ${result.cases} cases ran in the budget`);
      assert.deepEqual(
        result.failures.map((f) => `case ${f.caseIndex} (${f.steps.join('+')}): ${f.kind}: ${f.message.split('\n').slice(0, 3).join(' | ')}`),
        [],
      );
    });
  }
});

