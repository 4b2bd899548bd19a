import type { FastifyInstance } from 'fastify';
import { BridgeTowerError } from '../common/errors.js';
import { buildServer, type ServerDeps } from './app.js';
import type { ServerOptions } from './options.js';

export interface RunningServer {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Stops accepting connections, lets in-flight and queued requests finish, closes the models. */
  stop(reason?: string): Promise<void>;
  /** Resolves once the server has stopped (after `stop()` or SIGTERM / SIGINT). */
  readonly stopped: Promise<void>;
}

/** How long shutdown may take beyond the request timeout before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Builds the server, listens, and logs where. SIGTERM / SIGINT stop it gracefully: no new
 * connections, in-flight requests and the runtime's queued work finish (`service.close()`), then
 * the process exits; a second signal, or a shutdown that outlasts the request timeout, exits at once.
 */
export async function startServer(options: ServerOptions, deps?: ServerDeps): Promise<RunningServer> {
  const app = await buildServer(options, deps);
  let url: string;
  try {
    url = await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use: choose another with --port' : code === 'EACCES' ? 'permission denied: choose a port above 1023 with --port' : (error as Error).message;
    throw new BridgeTowerError('E_USAGE', `cannot listen on ${options.host}:${options.port}: ${why}`, { host: options.host, port: options.port });
  }
  app.log.info(`bridgetower serving on ${url}: API docs at ${url}/docs, demo page at ${url}/`);

  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  const stop = (reason = 'stop requested'): Promise<void> => {
    stopping ??= (async () => {
      app.log.info(`${reason}: no longer accepting requests; finishing queued work`);
      try {
        await app.close();
        app.log.info('stopped');
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        markStopped();
      }
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      app.log.warn(`${signal} again: exiting without waiting`);
      process.exit(130);
    }
    setTimeout(() => {
      app.log.error(`shutdown took longer than ${options.requestTimeoutMs + SHUTDOWN_GRACE_MS} ms: exiting`);
      process.exit(1);
    }, options.requestTimeoutMs + SHUTDOWN_GRACE_MS).unref();
    stop(signal).then(
      // Exit even if some handle outlives the server (the timer only fires if the loop is still alive).
      () => setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref(),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { app, url, stop, stopped };
}
