/**
 * Training-step memory bench: peak RSS per step of a VQA training step, for each cause of step-2
 * growth switched on alone (docs/fine-tune.md, "Memory"), each in a fresh child process
 * (test/helpers/training-memory-probe.ts), next to the peak-memory model (train/memory-model.ts).
 * Models: the demo bundle (`tiny`), the demo architecture at 256 wide, 4 + 2 layers, 128 px
 * (`small`, test/helpers/scaled-bundle.ts), or any float32 VQA bundle (`--bundle`).
 *
 *   node --import tsx bench/train-memory.ts                                  # tiny and small, every configuration, 3 steps
 *   node --import tsx bench/train-memory.ts --models small --batch 8 --steps 4
 *   node --import tsx bench/train-memory.ts --bundle bench/out/train/bundle-384 --batch 2 --configs before,after --text-len 50
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BridgeTowerError } from '../common/errors.js';
import { buildDemoBundle } from '../convert/demo/demo-bundle.js';
import { buildScaledBundle, SMALL_SCALE } from '../test/helpers/scaled-bundle.js';
import { runMemoryProbe } from '../test/helpers/memory-probe-runner.js';
import type { ProbeOptions } from '../test/helpers/training-memory-probe.js';
import type { TrainSubset } from '../train/train-subsets.js';

/** One row per configuration: which causes are on. `after` is what fine-tune does now. */
const CONFIGS: Record<string, { memoryPattern: boolean; outputs: ProbeOptions['outputs']; what: string }> = {
  before: { memoryPattern: true, outputs: 'allocated', what: 'memory pattern on; ONNX Runtime allocates the gradients, JavaScript copies them into the flat buffer (as before)' },
  'pattern-off': { memoryPattern: false, outputs: 'allocated', what: 'only the memory pattern off' },
  'outputs-collected': { memoryPattern: true, outputs: 'allocated-gc', what: 'only the dropped outputs collected before the next run' },
  'outputs-into': { memoryPattern: true, outputs: 'into', what: 'only the gradients written into the flat buffer' },
  after: { memoryPattern: false, outputs: 'into', what: 'memory pattern off and gradients into the flat buffer (the trainer now)' },
};

const MODELS: Record<string, (dir: string) => Promise<void>> = {
  tiny: (dir) => buildDemoBundle(dir, { force: true }).then(() => undefined),
  small: (dir) => buildScaledBundle(dir, SMALL_SCALE),
};

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'tiny,small' },
    bundle: { type: 'string' },
    configs: { type: 'string', default: Object.keys(CONFIGS).join(',') },
    batch: { type: 'string', default: '4' },
    'text-len': { type: 'string', default: '40' },
    steps: { type: 'string', default: '3' },
    train: { type: 'string', default: 'all' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const configs = args.configs.split(',');
const unknown = configs.find((c) => !CONFIGS[c]);
if (unknown) throw new BridgeTowerError('E_USAGE', `--configs: '${unknown}' is none of ${Object.keys(CONFIGS).join(', ')}`);


const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)}`;

async function main(): Promise<void> {
  const bundles: [string, string][] = [];
  if (args.bundle) bundles.push([args.bundle, args.bundle]);
  else {
    for (const model of args.models.split(',')) {
      const build = MODELS[model];
      if (!build) throw new BridgeTowerError('E_USAGE', `--models: '${model}' is none of ${Object.keys(MODELS).join(', ')}`);
      const dir = join(tmpdir(), `bridgetower-train-memory-${model}`);
      if (!existsSync(join(dir, 'config.json'))) await build(dir);
      bundles.push([model, dir]);
    }
  }
  const flags = ['avx512_vnni', 'avx_vnni', 'avx2'].filter((f) => new RegExp(`\\b${f}\\b`).test(readFileSync('/proc/cpuinfo', 'utf8')));
  const rows: object[] = [];
  if (!args.json) {
    console.log(`Peak RSS per training step (MB), VQA --train ${args.train}, micro-batch ${args.batch}, text ${args['text-len']}; ${cpus()[0]?.model} × ${cpus().length}, flags ${flags.join(' ')}\n`);
    console.log('| model | configuration | after open | step peaks | step 2 − step 1 | model: moments + gradients + activations | measured step peak − after open |\n| --- | --- | --- | --- | --- | --- | --- |');
  }
  for (const [model, bundle] of bundles) {
    for (const config of configs) {
      const c = CONFIGS[config]!;
      const options: ProbeOptions = { bundle, batch: Number(args.batch), textLength: Number(args['text-len']), steps: Number(args.steps), train: args.train as TrainSubset, memoryPattern: c.memoryPattern, outputs: c.outputs, ...(args.threads ? { threads: Number(args.threads) } : {}) };
      const { setup, steps } = await runMemoryProbe(options);
      const e = setup.estimate;
      const modelled = e.moments + e.gradients + e.activations;
      const peak = Math.max(...steps.map((s) => s.peak));
      rows.push({ model, config, setup, steps });
      if (!args.json) console.log(`| ${model} | ${config} | ${mb(setup.afterOpen)} | ${steps.map((s) => mb(s.peak)).join(', ')} | ${(100 * (steps[1]!.peak / steps[0]!.peak - 1)).toFixed(1)} % | ${mb(modelled)} (${mb(e.moments)} + ${mb(e.gradients)} + ${mb(e.activations)}) | ${mb(peak - setup.afterOpen)} |`);
    }
  }
  if (!args.json) console.log(`\n${configs.map((c) => `- ${c}: ${CONFIGS[c]!.what}`).join('\n')}`);
  else console.log(JSON.stringify({ flags, rows }, null, 2));
}

await main();
