import { BridgeTowerError } from '../../common/errors.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { bulkEmbed, imageItems, pairItems, textItems, type BulkItem, type Skipped } from '../bulk-embed.js';
import { EMBEDDING_FORMATS, openEmbeddingOutput } from '../embed-output/output-formats.js';
import { itemProgress } from '../progress.js';
import { PRECISION_OPTION, precisionFlag, precisionUsage } from '../precision-option.js';
import type { Command } from '../run-command.js';

export const embedCommand: Command = {
  summary: 'embed a folder of images, a JSON Lines file of image–text pairs or a text file into JSON Lines, .npy or Parquet for a vector store (resumable)',
  usage: `
Usage: bridgetower embed --bundle <dir> (--images <dir> | --pairs <file.jsonl> | --texts <file>) --out <file> [--format jsonl|npy|parquet] [options]

Every embedding is L2-normalised; each has an id and a kind (text, image or pair). Formats:
  jsonl     one {"id": "...", "kind": "...", "embedding": [...]} per line (the default)
  npy       <out> is a float32 [rows, dims] NumPy matrix (numpy.load reads it) and
            <out without .npy>.ids.jsonl holds {"id", "kind"} of row i on line i
  parquet   <out> is a Parquet table: id (string), kind (string), embedding (list<float>);
            written when the run completes (until then, batches go to <out>.partial.jsonl)
Inputs:
  --images <dir>      every image file under the folder; id = its path relative to the folder
  --pairs <file>      JSON Lines {"id", "text"?, "image"?} (image paths relative to the file);
                      both text and image = the pair's joint embedding (Hugging Face contrastive
                      bundles only)
  --texts <file>      one text per line; id = <file name>:<line>
Resumable in every format: run the same command again after an interruption; ids already in
--out are skipped and what an interrupted write left (a torn line, rows without ids) is cut off;
adding files to --images and running again embeds only the new ones. A line that is not JSON, has no id or repeats an id is fatal;
an unreadable or undecodable image and a line with neither text nor image are skipped and listed
in the summary.

Options:
  --bundle <dir>       the bundle (with ITC heads)
  --out <file>         the file to append to (created if absent)
  --format <f>         jsonl (default), npy or parquet (loading each into LanceDB or pgvector:
                       docs/embeddings.md)
  --batch-size <n>     items per batch (default 32)
  --device <d>         cpu (default), cuda, …
  --threads <n>        ONNX Runtime intra-op threads
${precisionUsage(23)}
  --json               print the summary as JSON (no progress bar)

Examples:
  bridgetower embed --bundle bundles/contrastive --images photos/ --out photos.jsonl
  bridgetower embed --bundle bundles/contrastive --pairs frames.jsonl --out frames.jsonl --batch-size 16
  bridgetower embed --bundle bundles/contrastive --images photos/ --out photos.npy --format npy
  bridgetower embed --bundle bundles/contrastive --images photos/ --out photos.parquet --format parquet
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
    ...PRECISION_OPTION,
    json: { type: 'boolean', default: false },
  },
  async run({ values }) {
    if (!values.bundle) throw new BridgeTowerError('E_USAGE', '--bundle is required; see --help');
    if (!values.out) throw new BridgeTowerError('E_USAGE', '--out is required; see --help');
    if (!Object.hasOwn(EMBEDDING_FORMATS, values.format!)) throw new BridgeTowerError('E_USAGE', `--format ${values.format}: give one of ${Object.keys(EMBEDDING_FORMATS).join(', ')}`);
    const sources = (['images', 'pairs', 'texts'] as const).filter((s) => values[s] !== undefined);
    if (sources.length !== 1) throw new BridgeTowerError('E_USAGE', `give exactly one of --images, --pairs, --texts (got ${sources.length === 0 ? 'none' : sources.map((s) => `--${s}`).join(', ')})`);
    const batchSize = Number(values['batch-size']);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) throw new BridgeTowerError('E_USAGE', `--batch-size ${values['batch-size']}: give a whole number from 1 to 1024`);
    const skipped: Skipped[] = [];
    const source = sources[0]!;
    const items: BulkItem[] = source === 'images' ? imageItems(values.images) : source === 'pairs' ? pairItems(values.pairs, skipped) : textItems(values.texts, skipped);

    const threads = values.threads === undefined ? undefined : Number(values.threads);
    // The service resolves auto for the device (BundleService logs the choice).
    const service = await BundleService.open(values.bundle, { device: values.device, precision: precisionFlag(values.precision), ...(threads ? { threads } : {}), maxBatch: batchSize, maxDelayMs: 1, maxQueue: 4, cacheMb: 0 });
    const progress = itemProgress('embedding', !values.json);
    let summary;
    let output;
    try {
      output = await openEmbeddingOutput(values.format!, values.out);
      // A bulk run has no request deadline.
      summary = await bulkEmbed(service, items, output, { batchSize, skipped, onProgress: (done, total) => progress.update(done, total), ctx: () => ({ deadline: Number.POSITIVE_INFINITY }) });
    } finally {
      output?.close();
      progress.stop();
      await service.close();
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, out: values.out, format: values.format, files: output.files, ...summary }, null, 2)}\n`);
      return;
    }
    const lines = [
      `${summary.embedded} embedded, ${summary.alreadyDone} already in ${values.out}, ${summary.skipped.length} skipped${summary.dims ? `; ${summary.dims} dimensions` : ''} → ${output.files.join(' + ')}`,
      ...summary.repairs,
      ...summary.skipped.map((s) => `skipped ${JSON.stringify(s.id)} (${s.where}): ${s.reason}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
