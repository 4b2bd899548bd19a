import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BridgeTowerError } from '../common/errors.js';
import { didYouMean } from './suggest.js';

export interface Command {
  /** One line for `bridgetower --help`. */
  summary: string;
  /** Full usage text with copy-paste examples. */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Resolves to the exit status when it is not 0 (or to nothing: success). */
  run(args: { values: Record<string, any>; positionals: string[] }): Promise<number | void>;
}

/** parseArgs' complaint as a usage error; an unknown flag gets the closest real one instead of the whole usage. */
function usageError(name: string, command: Command, error: NodeJS.ErrnoException): BridgeTowerError {
  const unknown = error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(error.message)?.[1] : undefined;
  if (unknown === undefined) return new BridgeTowerError('E_USAGE', `${error.message}\n\n${command.usage.trim()}`);
  const flag = unknown.replace(/=.*$/, '');
  const guess = didYouMean(flag.replace(/^-+/, ''), Object.keys(command.options));
  const hint = guess ? `did you mean --${guess}?` : `\`${name} --help\` lists the options`;
  return new BridgeTowerError('E_USAGE', `unknown option '${flag}': ${hint}`, { option: flag, ...(guess ? { suggestion: `--${guess}` } : {}) });
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
      throw usageError(name, command, error as NodeJS.ErrnoException);
    }
    return (await command.run(parsed as { values: Record<string, any>; positionals: string[] })) ?? 0;
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
