import { BridgeTowerError } from '../../common/errors.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { bulkEmbed, imageItems, pairItems, textItems, type BulkItem, type Skipped } from '../bulk-embed.js';
import { itemProgress } from '../progress.js';
import type { Command } from '../run-command.js';

export const embedCommand: Command = {
  summary: 'embed a folder of images, a JSON Lines file of image–text pairs or a text file into a JSON Lines file for a vector store (resumable)',
  usage: `
Usage: bridgetower embed --bundle <dir> (--images <dir> | --pairs <file.jsonl> | --texts <file>) --out <file.jsonl> [options]

Writes one JSON object per line: {"id": "...", "kind": "text"|"image"|"pair", "embedding": [...]}
(L2-normalised). Inputs:
  --images <dir>      every image file under the folder; id = its path relative to the folder
  --pairs <file>      JSON Lines {"id", "text"?, "image"?} (image paths relative to the file);
                      both text and image = the pair's joint embedding (Hugging Face contrastive
                      bundles only)
  --texts <file>      one text per line; id = <file name>:<line>
Resumable: run the same command again after an interruption; ids already in --out are skipped
and a torn last line is cut off. A line that is not JSON, has no id or repeats an id is fatal;
an unreadable or undecodable image and a line with neither text nor image are skipped and listed
in the summary.

Options:
  --bundle <dir>       the bundle (with ITC heads)
  --out <file>         the JSON Lines file to append to
  --format jsonl       the only format (load it into LanceDB or pgvector: docs/embeddings.md)
  --batch-size <n>     items per batch (default 32)
  --device <d>         cpu (default), cuda, …
  --threads <n>        ONNX Runtime intra-op threads
  --json               print the summary as JSON (no progress bar)

Examples:
  bridgetower embed --bundle bundles/contrastive --images photos/ --out photos.jsonl
  bridgetower embed --bundle bundles/contrastive --pairs frames.jsonl --out frames.jsonl --batch-size 16
`,
  options: {
    bundle: { type: 'string' },
    images: { type: 'string' },
    pairs: { type: 'string' },
    texts: { type: 'string' },
    out: { type: 'string' },
    format: { type: 'string', default: 'jsonl' },
    'batch-size': { type: 'string', default: '32' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run({ values }) {
    if (!values.bundle) throw new BridgeTowerError('E_USAGE', '--bundle is required; see --help');
    if (!values.out) throw new BridgeTowerError('E_USAGE', '--out is required; see --help');
    if (values.format !== 'jsonl') throw new BridgeTowerError('E_USAGE', `--format ${values.format}: only jsonl is written (npy and parquet are not implemented yet)`);
    const sources = (['images', 'pairs', 'texts'] as const).filter((s) => values[s] !== undefined);
    if (sources.length !== 1) throw new BridgeTowerError('E_USAGE', `give exactly one of --images, --pairs, --texts (got ${sources.length === 0 ? 'none' : sources.map((s) => `--${s}`).join(', ')})`);
    const batchSize = Number(values['batch-size']);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) throw new BridgeTowerError('E_USAGE', `--batch-size ${values['batch-size']}: give a whole number from 1 to 1024`);
    const skipped: Skipped[] = [];
    const source = sources[0]!;
    const items: BulkItem[] = source === 'images' ? imageItems(values.images) : source === 'pairs' ? pairItems(values.pairs, skipped) : textItems(values.texts, skipped);

    const threads = values.threads === undefined ? undefined : Number(values.threads);
    const service = await BundleService.open(values.bundle, { device: values.device, ...(threads ? { threads } : {}), maxBatch: batchSize, maxDelayMs: 1, maxQueue: 4, cacheMb: 0 });
    const progress = itemProgress('embedding', !values.json);
    let summary;
    try {
      // A bulk run has no request deadline.
      summary = await bulkEmbed(service, items, values.out, { batchSize, skipped, onProgress: (done, total) => progress.update(done, total), ctx: () => ({ deadline: Number.POSITIVE_INFINITY }) });
    } finally {
      progress.stop();
      await service.close();
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, out: values.out, ...summary }, null, 2)}\n`);
      return;
    }
    const lines = [
      `${summary.embedded} embedded, ${summary.alreadyDone} already in ${values.out}, ${summary.skipped.length} skipped${summary.dims ? `; ${summary.dims} dimensions` : ''} → ${values.out}`,
      ...(summary.repairedTornLine ? [`cut off a torn last line of ${values.out} (an interrupted run); its item was embedded again`] : []),
      ...summary.skipped.map((s) => `skipped ${JSON.stringify(s.id)} (${s.where}): ${s.reason}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
