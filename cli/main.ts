#!/usr/bin/env node
import { convertCommand } from './commands/convert.js';
import { demoCommand } from './commands/demo.js';
import { preprocessCommand } from './commands/preprocess.js';
import { runGraphCommand } from './commands/run-graph.js';
import { tokenizeCommand } from './commands/tokenize.js';
import { inspectCommand } from './commands/inspect.js';
import { serveCommand } from './commands/serve.js';
import { gradCommand } from './commands/grad.js';
import { exportCkptCommand } from './commands/export-ckpt.js';
import { exportHfCommand } from './commands/export-hf.js';
import { evaluateCommand } from './commands/evaluate.js';
import { predictCommand } from './commands/predict.js';
import { embedCommand } from './commands/embed.js';
import { fineTuneCommand } from './commands/fine-tune.js';
import { fillMaskCommand } from './commands/fill-mask.js';
import { compareVariantsCommand } from './commands/compare-variants.js';
import { runCommand, type Command } from './run-command.js';
import { didYouMean } from './suggest.js';
import { VERSION } from '../common/version.js';

/** Subcommands by name: the whole CLI surface in one table. */
export const COMMANDS: Record<string, Command> = {
  convert: convertCommand,
  inspect: inspectCommand,
  tokenize: tokenizeCommand,
  preprocess: preprocessCommand,
  'run-graph': runGraphCommand,
  demo: demoCommand,
  serve: serveCommand,
  grad: gradCommand,
  'export-ckpt': exportCkptCommand,
  'export-hf': exportHfCommand,
  evaluate: evaluateCommand,
  predict: predictCommand,
  embed: embedCommand,
  'fill-mask': fillMaskCommand,
  'compare-variants': compareVariantsCommand,
  'fine-tune': fineTuneCommand,
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    `bridgetower ${VERSION} — run BridgeTower vision-language models from Node.js`,
    '',
    'Usage: bridgetower <command> [options]   (bridgetower <command> --help for details)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
  ].join('\n');
}

/** Entry for both bins: `convert-ckpt` is `bridgetower convert`. */
export async function main(argv: string[], preset?: string): Promise<number> {
  const [first, ...rest] = preset ? [preset, ...argv] : argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${help()}\n`);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[first];
  if (!command) {
    const guess = didYouMean(first, Object.keys(COMMANDS));
    process.stderr.write(`bridgetower: unknown command '${first}'${guess ? `: did you mean ${guess}?` : ''}\n\n${help()}\n`);
    return 2;
  }
  return runCommand(preset ? 'convert-ckpt' : `bridgetower ${first}`, command, rest);
}
