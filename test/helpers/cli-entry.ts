// What bin/bridgetower.js and bin/convert-ckpt.js do, from the TypeScript sources (for tests).
import { main } from '../../cli/main.js';

const preset = process.env.TEST_CLI_PRESET || undefined;
process.exitCode = await main(process.argv.slice(2), preset);
