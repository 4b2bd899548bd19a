import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import type { EmbedInput, ModelService, RequestContext } from '../server/model-service.js';
import type { EmbeddingKind, EmbeddingOutput } from './embed-output/embedding-output.js';

/**
 * `bridgetower embed`: items from a folder of images, a JSON Lines file of pairs, or a text file,
 * embedded in batches and appended to an output (embed-output/: JSON Lines, .npy, Parquet). A
 * restart asks the output which ids it holds and skips them; each output repairs what a kill can
 * leave, so it never holds an id twice or half a record.
 */

export interface BulkItem {
  id: string;
  /** Where the item comes from, for messages: `pairs.jsonl:12`, `images/cat.png`. */
  where: string;
  text?: string;
  /** Path of the image file. */
  imagePath?: string;
}

export interface Skipped {
  id: string;
  where: string;
  reason: string;
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

/** Every image file of the folder (sorted, recursively); its id is its path relative to the folder. */
export function imageItems(dir: string): BulkItem[] {
  const walk = (sub: string): string[] =>
    readdirSync(join(dir, sub), { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .flatMap((entry) => (entry.isDirectory() ? walk(join(sub, entry.name)) : IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase()) ? [join(sub, entry.name)] : []));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BridgeTowerError('E_USAGE', `--images ${dir} is not a folder: give a folder of image files`);
  return walk('').map((path) => ({ id: path, where: join(dir, path), imagePath: join(dir, path) }));
}

/**
 * `{"id", "text"?, "image"?}` per line (image paths relative to the file's folder). A line that is
 * not such an object, or a repeated id, is fatal (the file needs fixing); a line with neither text
 * nor image is skipped and reported.
 */
export function pairItems(file: string, skipped: Skipped[]): BulkItem[] {
  const items: BulkItem[] = [];
  const seen = new Map<string, number>();
  readLines(file).forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new BridgeTowerError('E_USAGE', `${where}: not a JSON object: each line must be {"id": …, "text": …, "image": "<path>"}`);
    }
    const { id, text, image } = (row ?? {}) as Record<string, unknown>;
    if (typeof row !== 'object' || Array.isArray(row) || (typeof id !== 'string' && typeof id !== 'number')) {
      throw new BridgeTowerError('E_USAGE', `${where}: each line needs an "id" (string or number): {"id": …, "text": …, "image": "<path>"}`);
    }
    const key = String(id);
    if (seen.has(key)) throw new BridgeTowerError('E_USAGE', `${where}: id ${JSON.stringify(key)} was already used on line ${seen.get(key)}: ids must be unique`);
    seen.set(key, i + 1);
    const hasText = typeof text === 'string' && text.trim() !== '';
    const hasImage = typeof image === 'string' && image !== '';
    if (!hasText && !hasImage) {
      skipped.push({ id: key, where, reason: 'neither a non-empty "text" nor an "image"' });
      return;
    }
    items.push({ id: key, where, ...(hasText ? { text } : {}), ...(hasImage ? { imagePath: resolve(dirname(file), image) } : {}) });
  });
  return items;
}

/** One text per line; its id is `<file name>:<line>`. Empty lines are skipped and reported. */
export function textItems(file: string, skipped: Skipped[]): BulkItem[] {
  const lines = readLines(file);
  return lines.flatMap((line, i) => {
    const item = { id: `${basename(file)}:${i + 1}`, where: `${file}:${i + 1}` };
    if (line.trim() !== '') return [{ ...item, text: line }];
    // The empty string after a final newline is no line.
    if (i < lines.length - 1) skipped.push({ ...item, reason: 'an empty line (no text)' });
    return [];
  });
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  } catch (error) {
    throw new BridgeTowerError('E_IO', `cannot read ${file}: ${(error as Error).message}`);
  }
}

export interface BulkProgress {
  /** Items written or skipped so far, of the items to do this run. */
  (done: number, total: number): void;
}

export interface BulkSummary {
  total: number;
  embedded: number;
  alreadyDone: number;
  skipped: Skipped[];
  /** What the output cut off or rewrote to undo an interrupted run. */
  repairs: readonly string[];
  dims: number | undefined;
}

const kindOf = (item: EmbedInput): EmbeddingKind => (item.image === undefined ? 'text' : item.text === undefined ? 'image' : 'pair');

/**
 * Embeds the items not yet in `output`, `batchSize` at a time, appending each finished batch. An
 * image that cannot be read or decoded skips its item (reported), never the batch.
 */
export async function bulkEmbed(service: ModelService, items: readonly BulkItem[], output: EmbeddingOutput, options: { batchSize: number; skipped: Skipped[]; onProgress?: BulkProgress; ctx: () => RequestContext }): Promise<BulkSummary> {
  const todo = items.filter((item) => !output.done.has(item.id));
  const summary: BulkSummary = { total: items.length, embedded: 0, alreadyDone: items.length - todo.length, skipped: options.skipped, repairs: output.repairs, dims: undefined };
  for (let start = 0; start < todo.length; start += options.batchSize) {
    const batch = todo.slice(start, start + options.batchSize);
    const ready: Array<{ item: BulkItem; input: EmbedInput }> = [];
    for (const item of batch) {
      const input = readInput(item, summary.skipped);
      if (input) ready.push({ item, input });
    }
    const embeddings = await embedSkippingBadImages(service, ready, summary.skipped, options.ctx);
    output.append(embeddings.map(({ item, input, embedding }) => ({ id: item.id, kind: kindOf(input), embedding })));
    summary.embedded += embeddings.length;
    summary.dims ??= embeddings[0]?.embedding.length;
    options.onProgress?.(Math.min(start + options.batchSize, todo.length), todo.length);
  }
  await output.finish();
  return summary;
}

function readInput(item: BulkItem, skipped: Skipped[]): EmbedInput | undefined {
  if (item.imagePath === undefined) return { text: item.text! };
  let image: Uint8Array;
  try {
    image = new Uint8Array(readFileSync(item.imagePath));
  } catch (error) {
    skipped.push({ id: item.id, where: item.where, reason: `cannot read image ${item.imagePath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
    return undefined;
  }
  return item.text === undefined ? { image } : { text: item.text, image };
}

/** The batch as one request; if it fails on a bad image, item by item, skipping those that fail. */
async function embedSkippingBadImages(service: ModelService, ready: Array<{ item: BulkItem; input: EmbedInput }>, skipped: Skipped[], ctx: () => RequestContext) {
  if (ready.length === 0) return [];
  try {
    const embeddings = await service.embed(ready.map((r) => r.input), ctx());
    return ready.map((r, i) => ({ ...r, embedding: embeddings[i]! }));
  } catch (error) {
    if (!isImageError(error)) throw error;
  }
  const results = [];
  for (const r of ready) {
    try {
      const [embedding] = await service.embed([r.input], ctx());
      results.push({ ...r, embedding: embedding! });
    } catch (error) {
      if (!isImageError(error)) throw error;
      skipped.push({ id: r.item.id, where: r.item.where, reason: (error as Error).message });
    }
  }
  return results;
}

const isImageError = (error: unknown) => error instanceof BridgeTowerError && error.code.startsWith('E_IMAGE');
