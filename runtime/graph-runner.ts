import { Worker } from 'node:worker_threads';
import { BridgeTowerError, ERROR_CODES, type ErrorCode } from '../common/errors.js';
import { graphSet, type GraphSet } from './graph-set.js';
import { reportCudaFallback, type RuntimeOptions } from './session.js';
import type { Device } from './session.js';
import { transferables, type FromWorker, type GraphSignature, type Tensors, type ToWorker, type WireError, type WorkerConfig } from './graph-protocol.js';

export type { GraphSignature, TensorType, Tensors, WireTensor } from './graph-protocol.js';

/**
 * Device, threads and precision variant of the worker's sessions; a CUDA fallback is reported
 * through `warn`. `graphs` is the variant's files when the caller has resolved them already
 * (else they are resolved here from `precision`: runtime/graph-set.ts).
 */
export type GraphRunnerOptions = Pick<RuntimeOptions, 'device' | 'threads' | 'warn' | 'precision'> & { graphs?: GraphSet };

/** How long close() waits for the worker to release its sessions before terminating it. */
const CLOSE_GRACE_MS = 10_000;

interface PendingRun {
  resolve: (outputs: Tensors) => void;
  reject: (error: unknown) => void;
}

/**
 * The main thread's handle on a bundle's ONNX Runtime sessions, which live in a worker thread
 * (`graph-worker.ts`) so that a long run never blocks the event loop. `run` transfers the feeds'
 * buffers to the worker (the caller's arrays are detached afterwards) and gets the outputs'
 * buffers back the same way: nothing is copied between the threads.
 */
export class GraphRunner {
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 0;
  private failure: BridgeTowerError | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    /** The execution provider the sessions run on. */
    readonly provider: Device,
    /** Whether CUDA was asked for but could not be used (the sessions run on the CPU). */
    readonly fellBack: boolean,
    /** ONNX Runtime's reason for refusing CUDA, when it did. */
    readonly fallbackReason: string | undefined,
    /** Inputs and outputs of every open graph. */
    readonly signatures: Readonly<Record<string, GraphSignature>>,
    /** The precision variant (and int8 weight set) the graphs were read from. */
    readonly graphs: GraphSet,
  ) {
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    worker.on('error', (error) => this.fail(new BridgeTowerError('E_BUNDLE', `the ONNX Runtime worker failed: ${error.message}`)));
    worker.on('exit', (code) => this.fail(new BridgeTowerError('E_BUNDLE', `the ONNX Runtime worker exited (code ${code})${this.closing ? '' : ' unexpectedly'}`)));
    worker.unref(); // referenced only while runs are pending: an idle runner does not keep the process alive
  }

  /** Starts the worker, opens and warms up each graph (`<variant dir>/<graph>.onnx`: runtime/graph-set.ts). */
  static async open(bundleDir: string, graphs: readonly string[], options: GraphRunnerOptions = {}): Promise<GraphRunner> {
    const set = options.graphs ?? graphSet(bundleDir, options.precision);
    const config: WorkerConfig = { bundleDir, set, graphs: [...graphs], device: options.device ?? 'cpu', ...(options.threads ? { threads: options.threads } : {}) };
    const worker = startWorker(config);
    let settle!: { resolve: (ready: Extract<FromWorker, { type: 'ready' }>) => void; reject: (error: unknown) => void };
    const opened = new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => (settle = { resolve, reject }));
    const onMessage = (message: FromWorker): void => {
      if (message.type === 'ready') settle.resolve(message);
      else if (message.type === 'open-failed') settle.reject(rebuildError(message.error, `cannot open the graphs of '${bundleDir}'`));
    };
    const onError = (error: Error): void => settle.reject(new BridgeTowerError('E_BUNDLE', `the ONNX Runtime worker for '${bundleDir}' failed to start: ${error.message}`, { bundleDir }));
    const onExit = (code: number): void => settle.reject(new BridgeTowerError('E_BUNDLE', `the ONNX Runtime worker for '${bundleDir}' exited (code ${code}) while opening the graphs`, { bundleDir }));
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    let ready: Extract<FromWorker, { type: 'ready' }>;
    try {
      ready = await opened;
    } catch (error) {
      await worker.terminate();
      throw error;
    } finally {
      // Only these listeners: Worker keeps internal ones (they start its message port).
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    }
    if (ready.fellBack) reportCudaFallback(`bundle '${bundleDir}'`, ready.fallbackReason ?? 'no reason given', options.warn);
    return new GraphRunner(worker, ready.provider, ready.fellBack, ready.fallbackReason, ready.signatures, set);
  }

  /**
   * Runs one graph on `feeds` and resolves with the outputs named in `fetches` (default: all).
   * The feeds' buffers are transferred: do not use those arrays afterwards.
   */
  run(graph: string, feeds: Tensors, fetches?: string[]): Promise<Tensors> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new BridgeTowerError('E_USAGE', `the graph runner is closed; graph ${graph} cannot run`, { graph }));
    if (!this.signatures[graph]) {
      return Promise.reject(new BridgeTowerError('E_INTERNAL', `graph ${graph} is not open in this runner (open: ${Object.keys(this.signatures).join(', ')})`, { graph }));
    }
    const id = this.nextId++;
    return new Promise<Tensors>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      const message: ToWorker = { type: 'run', id, graph, feeds, ...(fetches ? { fetches } : {}) };
      this.worker.postMessage(message, transferables(feeds));
    });
  }

  /** Lets the runs already sent finish, releases the sessions and stops the worker. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.failure) {
        await this.worker.terminate();
        return;
      }
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.worker.ref();
      this.worker.postMessage({ type: 'close' } satisfies ToWorker);
      const grace = setTimeout(() => void this.worker.terminate(), CLOSE_GRACE_MS);
      await exited;
      clearTimeout(grace);
    })();
    return this.closing;
  }

  private onMessage(message: FromWorker): void {
    if (message.type !== 'result' && message.type !== 'failed') return;
    const run = this.pending.get(message.id);
    if (!run) return;
    this.pending.delete(message.id);
    if (this.pending.size === 0 && !this.closing) this.worker.unref();
    if (message.type === 'result') run.resolve(message.outputs);
    else run.reject(rebuildError(message.error, 'graph run failed'));
  }

  /** The worker is gone: every pending and later run fails with the reason. */
  private fail(error: BridgeTowerError): void {
    if (this.closing && this.pending.size === 0) return;
    this.failure ??= error;
    for (const run of this.pending.values()) run.reject(this.failure);
    this.pending.clear();
  }
}

/**
 * The worker runs from the same place as this file: from the compiled `dist/`, or from the
 * TypeScript sources under tsx. Workers do not inherit the loader hooks that `--import tsx`
 * registered on the main thread, and on Node 20 a worker's own `execArgv: ['--import', 'tsx']`
 * does not apply them to its entry module either; so from sources the worker starts from a
 * two-line ES module that registers tsx's hooks in the worker, then imports the .ts entry.
 */
function startWorker(config: WorkerConfig): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./graph-worker.js', import.meta.url), { workerData: config });
  const entry = new URL('./graph-worker.ts', import.meta.url).href;
  const bootstrap = [
    `const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});`,
    'register();',
    `await import(${JSON.stringify(entry)});`,
  ].join('\n');
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), { workerData: config });
}

function rebuildError(error: WireError, context: string): BridgeTowerError {
  if (error.code && error.code in ERROR_CODES) return new BridgeTowerError(error.code as ErrorCode, error.message, error.details ?? {});
  return new BridgeTowerError('E_BUNDLE', `${context}: ${error.message}`, error.details ?? {});
}
