/**
 * Runs one conversion (or, with `--open-only`, just opens the checkpoint) in this fresh process and
 * prints its peak RSS, so tests can measure the converter's memory apart from the test runner's.
 *   node --import tsx test/helpers/convert-in-child.ts <checkpoint> <out> <text-config.json> [--open-only]
 */
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { openCheckpointSource } from '../../convert/sources/open-source.js';
import { peakResidentBytes } from '../../common/peak-memory.js';

const [checkpoint, out, textConfig, mode] = process.argv.slice(2);
if (mode === '--open-only') openCheckpointSource(checkpoint!);
else await convertCheckpoint({ checkpoint: checkpoint!, out: out!, textConfig: textConfig! });
process.stdout.write(JSON.stringify({ maxRssBytes: peakResidentBytes() }));
