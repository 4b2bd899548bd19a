import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { readBundleConfig, type BundleConfig } from '../bundle/config.js';
import type { TaskName } from '../bundle/tasks.js';
import { batchImages, normalizeToChw, preprocessImage, resizeForModel, type ImageLimits, type RgbImage } from './image.js';
import { TextTokenizer, type EncodedBatch } from './text.js';

/**
 * A bundle's inputs pipeline: its tokenizer with each task's text length, and its image size,
 * resize mode and normalization. The server, `fine-tune`, and the `tokenize` / `preprocess`
 * commands all go through this one object, so they cannot disagree.
 */
export class BundlePreprocessor {
  private constructor(
    readonly config: BundleConfig,
    private readonly tokenizer: TextTokenizer | undefined,
    private readonly limits: Partial<ImageLimits>,
  ) {}

  static open(bundleDir: string, options: { imageLimits?: Partial<ImageLimits>; maxInputChars?: number } = {}): BundlePreprocessor {
    const config = readBundleConfig(bundleDir);
    const tokenizer = config.tokenizer
      ? TextTokenizer.fromFile(join(bundleDir, config.tokenizer), options.maxInputChars !== undefined ? { maxInputChars: options.maxInputChars } : {})
      : undefined;
    return new BundlePreprocessor(config, tokenizer, options.imageLimits ?? {});
  }

  /** Tokens per text for a task: upstream's `max_text_len` (50; 40 for retrieval). */
  maxTextLength(task: TaskName | undefined): number {
    const tasks = this.config.tasks;
    if (task) {
      const spec = tasks[task];
      if (!spec) throw new BridgeTowerError('E_USAGE', `bundle '${this.config.name}' has no ${task} task (it has ${Object.keys(tasks).join(', ') || 'none'})`);
      return spec.max_text_len;
    }
    // No task named: the longest length any task of the bundle allows.
    return Math.max(...Object.values(tasks).map((t) => t.max_text_len), 2);
  }

  /** Token ids and attention mask, padded to the longest text of the batch; errors name a text by `fieldOf(i)`. */
  encodeTexts(texts: readonly string[], task?: TaskName, fieldOf?: (index: number) => string): EncodedBatch {
    const batch = this.requireTokenizer().encodeBatch(texts, this.maxTextLength(task), fieldOf);
    const vocab = this.config.architecture.text.vocab_size;
    const outside = batch.inputIds.findIndex((id) => id >= BigInt(vocab));
    if (outside >= 0) {
      // Only possible with a tokenizer larger than the model's vocabulary (convert-ckpt warns).
      const row = Math.floor(outside / batch.dims[1]);
      throw new BridgeTowerError('E_TOKENIZER', `text ${row} encodes to token id ${batch.inputIds[outside]}, past the model's vocabulary of ${vocab}: the bundle's tokenizer does not belong to this model`, { row });
    }
    return batch;
  }

  /** The id of `<mask>` in the bundle's tokenizer (what fill-mask looks for and the masking collator writes). */
  maskTokenId(): number {
    const id = this.requireTokenizer().tokenId('<mask>');
    if (id === undefined) throw new BridgeTowerError('E_TOKENIZER', `bundle '${this.config.name}''s tokenizer has no <mask> token: convert it again with roberta-base's tokenizer`);
    return id;
  }

  /** Ids back to text, as transformers' `tokenizer.decode`. */
  decode(ids: readonly number[], options: { skipSpecialTokens: boolean }): string {
    return this.requireTokenizer().decode(ids, options);
  }

  private requireTokenizer(): TextTokenizer {
    if (!this.tokenizer) {
      throw new BridgeTowerError('E_BUNDLE', `bundle '${this.config.name}' has no tokenizer.json: convert it again with --tokenizer (roberta-base vocab.json + merges.txt)`);
    }
    return this.tokenizer;
  }

  /** One image's pixel values, [3, S, S] CHW, normalized as upstream's eval transform. */
  pixelValues(bytes: Uint8Array): Promise<Float32Array> {
    return preprocessImage(bytes, this.config.preprocessing, this.limits);
  }

  /**
   * Already-decoded pixels (interleaved RGB, 8 bits a channel, row-major) → [3, S, S]: the same
   * resize and normalization as `pixelValues`, without the decoder (the library's raw-RGB input).
   */
  pixelValuesOfRgb(image: RgbImage): Float32Array {
    const { data, width, height } = image;
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0) || data.length !== width * height * 3) {
      throw new BridgeTowerError('E_USAGE', `a raw RGB image needs data of width × height × 3 bytes; got ${data.length} bytes for ${width}×${height} (${width * height * 3} expected): pass interleaved 8-bit RGB, no alpha`, {
        width,
        height,
        bytes: data.length,
      });
    }
    return normalizeToChw(resizeForModel(image, this.config.preprocessing), this.config.preprocessing);
  }

  /** Several images as one NCHW batch. */
  async pixelBatch(images: readonly Uint8Array[]): Promise<{ data: Float32Array; dims: [number, number, number, number] }> {
    return batchImages(await Promise.all(images.map((bytes) => this.pixelValues(bytes))));
  }
}
