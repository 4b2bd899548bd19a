/**
 * Long fuzz campaigns with random seeds: `npm run fuzz -- --minutes N [--reader NAME]`.
 * Each reader runs in child processes (a heap limit of --max-old-space-size, and a wall-clock
 * limit), one seed per child for about 20 seconds, so a case that loops or exhausts memory kills
 * only its child. Every failing input is written to .tmp/fuzz-failures/<reader>/<seed>-<case>.bin
 * (with a .json beside it saying what happened), to become a regression test. Prints one table
 * row per reader: cases, outcomes, seeds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runCampaign, type CampaignResult } from './fuzz-campaign.js';
import { FUZZ_TARGETS } from './fuzz-targets.js';

const SELF = fileURLToPath(import.meta.url);
const FAILURES_DIR = resolve('.tmp', 'fuzz-failures');
const CHILD_SECONDS = 20;
const CHILD_HEAP_MB = 1024;

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    reader: { type: 'string' },
    worker: { type: 'string' },
    seed: { type: 'string' },
    seconds: { type: 'string' },
  },
});

if (values.worker) await worker(values.worker, Number(values.seed), Number(values.seconds));
else main();

/** In a child: one campaign, its bytes saved before each case, failures written out, the result on stdout. */
async function worker(name: string, seed: number, seconds: number): Promise<void> {
  const target = FUZZ_TARGETS.find((t) => t.name === name)!;
  const dir = join(FAILURES_DIR, name);
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'bridgetower-fuzz-'));
  try {
    const seeds = await target.seeds(work);
    const current = join(dir, `.current-${seed}.bin`);
    const result = await runCampaign(target, seeds, work, {
      seed,
      maxCases: Number.MAX_SAFE_INTEGER,
      budgetMs: seconds * 1000,
      beforeCase: (caseIndex, bytes) => writeFileSync(current, Buffer.concat([Buffer.from(`${caseIndex}\n`), bytes])),
    });
    rmSync(current, { force: true });
    for (const failure of result.failures) {
      const base = join(dir, `${seed}-${failure.caseIndex}`);
      writeFileSync(`${base}.bin`, failure.bytes);
      writeFileSync(`${base}.json`, `${JSON.stringify({ ...failure, bytes: undefined }, null, 2)}\n`);
    }
    process.stdout.write(`${JSON.stringify({ ...result, failures: result.failures.length })}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main(): void {
  const minutes = Number(values.minutes);
  const targets = values.reader ? FUZZ_TARGETS.filter((t) => t.name === values.reader) : FUZZ_TARGETS;
  if (!(minutes > 0) || targets.length === 0) {
    process.stderr.write(`usage: npm run fuzz -- --minutes N [--reader ${FUZZ_TARGETS.map((t) => t.name).join('|')}]\n`);
    process.exit(2);
  }
  const rows: string[] = ['| reader | cases | ok | typed errors | failures | seeds |', '| --- | ---: | ---: | --- | ---: | --- |'];
  let failed = 0;
  for (const target of targets) {
    const total = { cases: 0, ok: 0, typed: {} as Record<string, number>, failures: 0, seeds: [] as number[] };
    const end = Date.now() + minutes * 60_000;
    while (Date.now() < end) {
      const seed = Math.floor(Math.random() * 2 ** 31);
      const seconds = Math.max(1, Math.min(CHILD_SECONDS, Math.round((end - Date.now()) / 1000)));
      total.seeds.push(seed);
      const child = spawnSync(
        process.execPath,
        [`--max-old-space-size=${CHILD_HEAP_MB}`, '--import', 'tsx', SELF, '--worker', target.name, '--seed', String(seed), '--seconds', String(seconds)],
        { encoding: 'utf8', timeout: (seconds + 60) * 1000, maxBuffer: 1 << 24 },
      );
      const line = child.stdout?.trim().split('\n').pop() ?? '';
      let result: (Omit<CampaignResult, 'failures'> & { failures: number }) | undefined;
      try {
        result = JSON.parse(line);
      } catch {
        result = undefined;
      }
      if (!result) {
        // The child died (out of memory, a hang past its limit): its last case is the culprit.
        const current = join(FAILURES_DIR, target.name, `.current-${seed}.bin`);
        const why = child.error ? String(child.error) : `exit ${child.status} signal ${child.signal}: ${child.stderr.slice(-400)}`;
        if (existsSync(current)) renameSync(current, join(FAILURES_DIR, target.name, `${seed}-crash.bin`));
        writeFileSync(join(FAILURES_DIR, target.name, `${seed}-crash.json`), `${JSON.stringify({ reader: target.name, seed, kind: 'crash', message: why }, null, 2)}\n`);
        total.failures++;
        continue;
      }
      total.cases += result.cases;
      total.ok += result.ok;
      total.failures += result.failures;
      for (const [code, n] of Object.entries(result.typed)) total.typed[code] = (total.typed[code] ?? 0) + n;
    }
    failed += total.failures;
    const typed = Object.entries(total.typed).map(([code, n]) => `${code} ${n}`).join(', ');
    rows.push(`| ${target.name} | ${total.cases} | ${total.ok} | ${typed} | ${total.failures} | ${total.seeds.join(', ')} |`);
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
  if (failed > 0) process.stdout.write(`\n${failed} failing input(s) in ${FAILURES_DIR}\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}
