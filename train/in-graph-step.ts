import ort from 'onnxruntime-node';
import { collectGarbage } from '../common/collect-garbage.js';
import { residentBuffer, type FlatLayout } from './flat-parameters.js';
import { runTraining, trainingFeeds, type BatchTensors } from './gradient-step.js';
import { stepScalars } from './optimizer/adamw.js';
import { ACC_OUT_PREFIX, ACC_PREFIX, ADAMW_IO, buildOptimizerGraphs, GRAD_SCALE, GRAD_SQUARES } from './optimizer-graph.js';
import type { MicroBatchResult, StepRunner } from './step-runner.js';
import { openTrainingSession, REPORT_PREFIX, type SessionChoice, type TrainingGraph } from './training-graph.js';

/**
 * `--optimizer-in-graph on`: every micro-batch is one run of a graph of train/optimizer-graph.ts.
 * A step's earlier micro-batches add their scaled gradients into `acc` inside the graph; its last
 * one also runs the AdamW update there, so a run moves the parameters, the running sum and the
 * moments in and the updated parameters and moments out, and no gradient ever leaves the graph
 * (docs/fine-tune.md "Devices" counts the bytes).
 *
 * Outputs land in the caller's buffers (preallocated fetches). `acc_out` and `m_out`/`v_out` are
 * written over their own inputs: the only nodes reading `acc.<name>`, `m.<name>` and `v.<name>`
 * are ancestors of the node producing the matching output, so every read is done before that
 * write. `param_out` cannot be: the forward and backward read a parameter after its update may
 * already have run, so the updated values go to a second buffer, which becomes the parameters.
 */
export class InGraphStepRunner implements StepRunner {
  steps = 0;

  private constructor(
    private readonly training: TrainingGraph,
    private readonly layout: FlatLayout,
    private readonly accumulation: number,
    private readonly accumulateSession: ort.InferenceSession | undefined,
    private readonly stepSession: ort.InferenceSession,
    readonly m: Float32Array,
    readonly v: Float32Array,
    /** The running sum of the step's scaled gradients (accumulation > 1 only). */
    private readonly acc: Float32Array | undefined,
    /** Where the next update writes the parameters; swapped with the current ones after each step. */
    private spare: Float32Array,
  ) {}

  static async open(training: TrainingGraph, layout: FlatLayout, accumulation: number, session: SessionChoice = {}): Promise<InGraphStepRunner> {
    const graphs = buildOptimizerGraphs(training, layout, accumulation);
    const open = (graph: typeof graphs.step) => openTrainingSession({ graph, graphDir: training.graphDir, ...(training.recompute ? { recompute: training.recompute } : {}) }, session);
    const stepSession = await open(graphs.step);
    const accumulateSession = graphs.accumulate ? await open(graphs.accumulate) : undefined;
    const buffer = () => residentBuffer(layout.total);
    return new InGraphStepRunner(training, layout, accumulation, accumulateSession, stepSession, buffer(), buffer(), accumulateSession ? buffer() : undefined, buffer());
  }

  restore(m: Float32Array, v: Float32Array, steps: number): void {
    this.m.set(m);
    this.v.set(v);
    this.steps = steps;
  }

  async microBatch(batch: BatchTensors, params: Float32Array, dropoutSeed: number, lrFactor?: number): Promise<MicroBatchResult> {
    const feeds = trainingFeeds(this.training, batch, params, this.layout, dropoutSeed);
    const fetches: Record<string, ort.Tensor | null> = {};
    const session = lrFactor === undefined ? this.accumulateSession! : this.stepSession;
    for (const name of session.outputNames) fetches[name] = null;
    if (this.acc) {
      feeds[GRAD_SCALE] = new ort.Tensor('float32', Float32Array.of(1 / this.accumulation), [1]);
      this.bind(feeds, ACC_PREFIX, this.acc);
      if (lrFactor === undefined) this.bind(fetches, ACC_OUT_PREFIX, this.acc);
    }
    if (lrFactor !== undefined) {
      const t = this.steps + 1;
      for (const range of this.layout.groups) {
        const { stepSize, decayAlpha } = stepScalars(range.group.lr * lrFactor, range.group.weightDecay, t);
        feeds[`${ADAMW_IO.stepSize}${range.group.group}`] = new ort.Tensor('float32', Float32Array.of(stepSize), [1]);
        feeds[`${ADAMW_IO.decayAlpha}${range.group.group}`] = new ort.Tensor('float32', Float32Array.of(decayAlpha), [1]);
      }
      this.bind(feeds, ADAMW_IO.m, this.m);
      this.bind(feeds, ADAMW_IO.v, this.v);
      this.bind(fetches, ADAMW_IO.paramOut, this.spare);
      this.bind(fetches, ADAMW_IO.mOut, this.m);
      this.bind(fetches, ADAMW_IO.vOut, this.v);
    }
    const { loss, reports, squares } = await this.runKeeping(session, feeds, fetches);
    // The binding returned a copy of every output it wrote into our buffers (the running sum, or
    // the parameters and both moments): free them before the next forward (common/collect-garbage.ts).
    collectGarbage();
    if (lrFactor === undefined) return { loss, reports };

    this.acc?.fill(0);
    this.steps++;
    const updated = this.spare;
    this.spare = params;
    return { loss, reports, stepped: { params: updated, gradNorm: Math.sqrt(squares!) } };
  }

  /** One run; keeps the loss, the reports and the gradients' total sum of squares, dropping the rest of the results. */
  private async runKeeping(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): Promise<Omit<MicroBatchResult, 'stepped'> & { squares?: number }> {
    const results = await runTraining(this.training, session, feeds, fetches);
    const loss = (results.loss!.data as Float32Array)[0]!;
    const reports = new Map(this.training.reports.map((name) => [name, results[`${REPORT_PREFIX}${name}`]!]));
    const perTensor = results[GRAD_SQUARES]?.data as Float32Array | undefined;
    if (!perTensor) return { loss, reports };
    // Each tensor's sum of squares is float32 (in the graph); their total is float64, like l2Norm.
    let squares = 0;
    for (const s of perTensor) squares += s;
    return { loss, reports, squares };
  }

  /** `<prefix><name>` for every trainable parameter, as a view of `buffer` at the parameter's slot. */
  private bind(into: Record<string, ort.Tensor | null>, prefix: string, buffer: Float32Array): void {
    for (const p of this.training.parameters) into[`${prefix}${p.name}`] = new ort.Tensor('float32', this.layout.view(buffer, p.name), p.shape);
  }

  async release(): Promise<void> {
    await Promise.all([this.stepSession.release(), this.accumulateSession?.release()]);
  }
}
