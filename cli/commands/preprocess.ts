import { readFileSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import type { Command } from '../run-command.js';

export const preprocessCommand: Command = {
  summary: "turn images into the pixel_values a bundle's model would get",
  usage: `
Usage: bridgetower preprocess <bundle> --image <file> [--image <file> …] --out <pixel_values.safetensors>

The same code path as the server: decode (EXIF orientation applied), bicubic resize exactly as
Pillow does to the bundle's image size (square, or shorter side + center crop for pre-training
bundles, or BridgeTowerImageProcessor's steps for Hugging Face bundles), /255, CLIP mean/std. Writes one float32 tensor 'pixel_values' [N, 3, S, S], ready for
\`bridgetower run-graph\`.

Example:
  bridgetower preprocess bundles/vqa --image cat.jpg --out pixel_values.safetensors
`,
  options: { image: { type: 'string', multiple: true }, out: { type: 'string' } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new BridgeTowerError('E_USAGE', 'expected exactly one <bundle>; see --help');
    const images: string[] = values.image ?? [];
    if (images.length === 0 || !values.out) throw new BridgeTowerError('E_USAGE', '--image and --out are required; see --help');
    const pre = BundlePreprocessor.open(positionals[0]!);
    const bytes = images.map((path) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new BridgeTowerError('E_IO', `cannot read image '${path}': ${(error as Error).message}`, { path });
      }
    });
    const batch = await pre.pixelBatch(bytes);
    writeSafetensors(values.out, [{ name: 'pixel_values', dtype: 'float32', shape: batch.dims, data: new Uint8Array(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength) }]);
    process.stdout.write(`pixel_values [${batch.dims.join(', ')}] → ${values.out}\n`);
  },
};
