/**
 * The worker thread that owns a bundle's ONNX Runtime sessions (started by `GraphRunner`).
 * onnxruntime-node's `run` executes synchronously on the calling thread: a 600 ms batch on the
 * main thread would stop every timer, socket and health check for 600 ms. Here it blocks only
 * this thread. Runs are executed one at a time, in arrival order (each already uses every core).
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { BridgeTowerError } from '../common/errors.js';
import { openGraphIn, type Device } from './session.js';
import { transferables, type FromWorker, type GraphSignature, type Tensors, type ToWorker, type WireError, type WorkerConfig } from './graph-protocol.js';

const port = parentPort;
if (!port) throw new Error('graph-worker.ts runs as a worker thread started by GraphRunner');
const config = workerData as WorkerConfig;
const sessions = new Map<string, ort.InferenceSession>();

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  try {
    port!.postMessage(message, transfer);
  } catch {
    // A buffer ONNX Runtime owns may refuse to be transferred: send a copy instead.
    port!.postMessage(message);
  }
}

function wireError(error: unknown): WireError {
  if (error instanceof BridgeTowerError) return { message: error.message, code: error.code, details: error.details };
  return { message: error instanceof Error ? error.message : String(error) };
}

/**
 * Opens every graph. With CUDA asked for, the first graph tells whether the CUDA provider loads
 * (its libraries, driver and a device are all needed); if it does not, every graph runs on the
 * CPU and the main thread reports the fallback rather than failing the server.
 */
async function openAll(): Promise<{ provider: Device; fallbackReason?: string }> {
  let provider: Device = config.device;
  let fallbackReason: string | undefined;
  for (const graph of config.graphs) {
    // Once CUDA has been refused, the remaining graphs go straight to the CPU.
    const opened = await openGraphIn(config.set, config.bundleDir, graph, { device: provider, ...(config.threads ? { threads: config.threads } : {}) });
    if (opened.fallbackReason) fallbackReason = opened.fallbackReason;
    provider = opened.provider;
    sessions.set(graph, opened.session);
    await warmUp(opened.session);
  }
  return { provider, ...(fallbackReason ? { fallbackReason } : {}) };
}

/**
 * One run on a batch of one with every dynamic dim 1, so that the first request does not pay for
 * ONNX Runtime's lazy allocations and kernel selection. Ones are valid for every int64 input
 * (pad id, attention mask, image token type 1); zeros for the float ones.
 */
async function warmUp(session: ort.InferenceSession): Promise<void> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of session.inputMetadata) {
    if (!input.isTensor) return;
    const dims = input.shape.map((d) => (typeof d === 'number' ? d : 1));
    const size = dims.reduce((a, b) => a * b, 1);
    if (input.type === 'int64') feeds[input.name] = new ort.Tensor('int64', new BigInt64Array(size).fill(1n), dims);
    else if (input.type === 'float32') feeds[input.name] = new ort.Tensor('float32', new Float32Array(size), dims);
    else return; // an input type this runtime never feeds: leave the session cold
  }
  await session.run(feeds);
}

function signature(session: ort.InferenceSession): GraphSignature {
  const info = (m: ort.InferenceSession.ValueMetadata) => ({ name: m.name, type: m.isTensor ? m.type : 'non-tensor', shape: m.isTensor ? [...m.shape] : [] });
  return { inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) };
}

async function run(graph: string, feeds: Tensors, fetches: string[] | undefined): Promise<Tensors> {
  const session = sessions.get(graph);
  if (!session) {
    throw new BridgeTowerError('E_INTERNAL', `graph ${graph} is not open in this runner (open: ${[...sessions.keys()].join(', ')})`, { graph });
  }
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  const results = fetches ? await session.run(ortFeeds, fetches) : await session.run(ortFeeds);
  const outputs: Tensors = {};
  for (const [name, tensor] of Object.entries(results)) {
    if (tensor.type !== 'float32' && tensor.type !== 'int64') {
      throw new BridgeTowerError('E_BUNDLE', `graph ${graph} output ${name} is ${tensor.type}; the runtime reads float32 and int64 outputs only`, { graph, output: name });
    }
    outputs[name] = { type: tensor.type, dims: [...tensor.dims], data: tensor.data as Float32Array | BigInt64Array };
  }
  return outputs;
}

async function closeAll(): Promise<void> {
  for (const session of sessions.values()) await session.release();
  sessions.clear();
}

// Messages are handled strictly in order: a run, then the next; close after the runs before it.
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(async () => {
    if (message.type === 'close') {
      await closeAll();
      post({ type: 'closed' });
      port.close();
      return;
    }
    try {
      const outputs = await run(message.graph, message.feeds, message.fetches);
      post({ type: 'result', id: message.id, outputs }, transferables(outputs));
    } catch (error) {
      post({ type: 'failed', id: message.id, error: wireError(error) });
    }
  });
});

try {
  const opened = await openAll();
  const signatures = Object.fromEntries([...sessions].map(([graph, session]) => [graph, signature(session)]));
  post({ type: 'ready', ...opened, fellBack: config.device === 'cuda' && opened.provider !== 'cuda', signatures });
} catch (error) {
  await closeAll().catch(() => {});
  post({ type: 'open-failed', error: wireError(error) });
}
