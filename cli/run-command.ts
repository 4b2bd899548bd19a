import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BridgeTowerError } from '../common/errors.js';

export interface Command {
  /** One line for `bridgetower --help`. */
  summary: string;
  /** Full usage text with copy-paste examples. */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Record<string, any>; positionals: string[] }): Promise<void>;
}

/**
 * Parses arguments, runs the command, and turns every failure into one clear line on stderr
 * (or a JSON object with `--json`) and the error code's exit status. A stack trace is shown only
 * for unexpected errors, which are bugs.
 */
export async function runCommand(name: string, command: Command, argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${command.usage.trim()}\n`);
      return 0;
    }
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: command.options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new BridgeTowerError('E_USAGE', `${(error as Error).message}\n\n${command.usage.trim()}`);
    }
    await command.run(parsed as { values: Record<string, any>; positionals: string[] });
    return 0;
  } catch (error) {
    if (error instanceof BridgeTowerError) {
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message: error.message, details: error.details } }, null, 2)}\n`);
      else process.stderr.write(`${name}: error [${error.code}]: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`${name}: unexpected error (this is a bug; please report it):\n${(error as Error).stack ?? String(error)}\n`);
    return 70;
  }
}
