import { BridgeTowerError } from '../../common/errors.js';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { commandPrecision, PRECISION_OPTION } from '../precision-option.js';
import { canFeedDtype, fromOrtTensor, graphNames, openGraph, reportCudaFallback, toOrtTensor } from '../../runtime/session.js';
import type { Command } from '../run-command.js';
import { didYouMean } from '../suggest.js';

export const runGraphCommand: Command = {
  summary: 'run one ONNX graph of a bundle on tensors from a safetensors file',
  usage: `
Usage: bridgetower run-graph <bundle> <graph> --inputs <in.safetensors> --out <out.safetensors> [--device cpu|cuda] [--precision fp32|int8|fp16|auto] [--no-optimize]

Feeds every graph input from the tensor of the same name in --inputs (extra tensors are
ignored) and writes every output to --out. For parity checks and for debugging inputs.
--precision picks the graph variant (default auto: int8 on cpu, fp16 on cuda, else what the
bundle has; docs/precision.md); every variant has the same graph and input names.

Examples:
  bridgetower run-graph bundles/vqa text_encoder --inputs batch.safetensors --out text.safetensors
  bridgetower run-graph bundles/vqa vqa.onnx --inputs batch.safetensors --out logits.safetensors
`,
  options: { inputs: { type: 'string' }, out: { type: 'string' }, device: { type: 'string' }, ...PRECISION_OPTION, 'no-optimize': { type: 'boolean' } },
  async run({ values, positionals }) {
    if (positionals.length !== 2) throw new BridgeTowerError('E_USAGE', 'expected <bundle> <graph>; see --help');
    if (!values.inputs || !values.out) throw new BridgeTowerError('E_USAGE', '--inputs and --out are required');
    const device = values.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new BridgeTowerError('E_USAGE', `--device must be cpu or cuda, got '${device}'`);
    const [bundle, graph] = positionals as [string, string];
    const precision = commandPrecision(bundle, values.precision, device);
    const graphs = graphNames(bundle, precision);
    if (graphs.length && !graphs.includes(graph.replace(/\.onnx$/, ''))) {
      const guess = didYouMean(graph, graphs);
      throw new BridgeTowerError('E_USAGE', `bundle '${bundle}' has no graph '${graph}'${guess ? `: did you mean ${guess}?` : '.'} Its graphs: ${graphs.join(', ')}`, { graphs });
    }
    const opened = await openGraph(bundle, graph, { device, precision, optimization: values['no-optimize'] ? 'disabled' : 'all' });
    if (opened.fallbackReason) reportCudaFallback(`graph ${positionals[1]}`, opened.fallbackReason);
    const session = opened.session;
    const tensors = readSafetensors(values.inputs);
    const missing = session.inputNames.filter((name) => !tensors.has(name));
    if (missing.length > 0) {
      throw new BridgeTowerError('E_USAGE', `${values.inputs} lacks the graph input(s) ${missing.join(', ')} (the graph takes ${session.inputNames.join(', ')})`);
    }
    const feeds = Object.fromEntries(session.inputNames.map((name) => {
      const t = tensors.get(name)!;
      if (!canFeedDtype(t.dtype)) throw new BridgeTowerError('E_USAGE', `${values.inputs}: input ${name} is ${t.dtype}, which no graph takes (use float32, int64 or the graph's own input type)`, { input: name, dtype: t.dtype });
      return [name, toOrtTensor(t.dtype, t.shape, t.data)];
    }));
    let results;
    try {
      results = await session.run(feeds);
    } catch (error) {
      // Wrong shapes or dtypes: ONNX Runtime's message says which input and what it expected.
      throw new BridgeTowerError('E_USAGE', `graph ${positionals[1]} rejected the inputs: ${(error as Error).message}`);
    }
    writeSafetensors(values.out, session.outputNames.map((name) => ({ name, ...fromOrtTensor(results[name]!) })));
    process.stdout.write(`${session.outputNames.map((n) => `${n} [${results[n]!.dims.join(', ')}]`).join('\n')}\n`);
  },
};
