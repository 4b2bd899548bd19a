/**
 * A real `bridgetower serve` on 127.0.0.1 in its own process, for the hostile-request suite: the
 * suite measures this process's memory alone, and a crash here cannot take the test runner with it.
 * Usage: node --import tsx test/helpers/hostile-server.ts <options as JSON>; prints its URL, then
 * serves until SIGTERM.
 */
import { startServer } from '../../server/start.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../../server/options.js';

const overrides = JSON.parse(process.argv[2] ?? '{}') as Partial<ServerOptions>;
const server = await startServer({ ...DEFAULT_SERVER_OPTIONS, bundles: [], logger: false, host: '127.0.0.1', port: 0, ...overrides });
process.stdout.write(`${JSON.stringify({ url: server.url, pid: process.pid })}\n`);
