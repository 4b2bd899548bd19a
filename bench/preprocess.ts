/**
 * Preprocess bench: images per second for decode (sharp) + Pillow-exact bicubic resize + normalize,
 * one image at a time on the main thread (the per-request cost the server pays), at the square
 * eval sizes 384 (SNLI-VE, NLVR2, retrieval) and 576 (VQA). Uses the golden photographs in
 * ../shared/fixtures/images (JPEG and PNG); without them, a generated 640 x 480 photo-like image.
 *
 *   node --import tsx bench/preprocess.ts
 *   node --import tsx bench/preprocess.ts --reps 50 --sizes 384,576,288
 * Times are medians over `reps` runs after `warmup` runs; images/s = 1000 / median total ms.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { PreprocessingConfig } from '../bundle/config.js';
import { decodeImage, normalizeToChw, resizeForModel } from '../preprocess/image.js';
import { SHARED_DIR } from '../test/helpers/shared-fixtures.js';

const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

interface BenchImage {
  name: string;
  bytes: Uint8Array;
}

/** Smooth gradients plus fine texture: compresses and resizes like a photograph, unlike flat colour or noise. */
async function syntheticPhoto(): Promise<BenchImage[]> {
  const width = 640;
  const height = 480;
  const raw = new Uint8Array(width * height * 3);
  let state = 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const grain = (state >>> 27) - 16;
      const at = (y * width + x) * 3;
      raw[at] = Math.max(0, Math.min(255, 128 + 100 * Math.sin(x / 37) * Math.cos(y / 23) + grain));
      raw[at + 1] = Math.max(0, Math.min(255, (x * 255) / width + grain));
      raw[at + 2] = Math.max(0, Math.min(255, (y * 255) / height + grain));
    }
  }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  return [
    { name: 'synthetic 640x480.jpg', bytes: await image.clone().jpeg({ quality: 90 }).toBuffer() },
    { name: 'synthetic 640x480.png', bytes: await image.clone().png().toBuffer() },
  ];
}

async function benchImages(): Promise<BenchImage[]> {
  const dir = join(SHARED_DIR, 'fixtures', 'images');
  const names = ['chelsea', 'coffee', 'astronaut'].flatMap((n) => [`${n}.jpg`, `${n}.png`]);
  if (!names.every((n) => existsSync(join(dir, n)))) {
    console.error(`${relative(process.cwd(), dir)} is missing: using a generated 640 x 480 image`);
    return syntheticPhoto();
  }
  return names.map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { reps: { type: 'string', default: '30' }, warmup: { type: 'string', default: '5' }, sizes: { type: 'string', default: '384,576' } },
  });
  const reps = Number(values.reps);
  const warmup = Number(values.warmup);
  const sizes = values.sizes.split(',').map(Number);
  const images = await benchImages();

  const rows: string[] = [];
  for (const size of sizes) {
    const config: PreprocessingConfig = { image_size: size, resize: 'square', resample: 'bicubic', rescale_factor: 1 / 255, mean: MEAN, std: STD };
    for (const { name, bytes } of images) {
      const decode: number[] = [];
      const resize: number[] = [];
      const normalize: number[] = [];
      const total: number[] = [];
      let dims = '';
      for (let rep = 0; rep < warmup + reps; rep++) {
        const t0 = performance.now();
        const image = await decodeImage(bytes);
        const t1 = performance.now();
        const resized = resizeForModel(image, config);
        const t2 = performance.now();
        normalizeToChw(resized, config);
        const t3 = performance.now();
        if (rep < warmup) continue;
        decode.push(t1 - t0);
        resize.push(t2 - t1);
        normalize.push(t3 - t2);
        total.push(t3 - t0);
        dims = `${image.width}x${image.height}`;
      }
      const ms = (v: number[]) => median(v).toFixed(2);
      rows.push(`| ${name} | ${dims} | ${size} | ${ms(decode)} | ${ms(resize)} | ${ms(normalize)} | ${ms(total)} | ${(1000 / median(total)).toFixed(1)} |`);
    }
  }

  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${loadavg()[0]!.toFixed(1)}; node ${process.version}; sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips})`);
  console.log(`command: node --import tsx bench/preprocess.ts --reps ${reps} --warmup ${warmup} --sizes ${sizes.join(',')}`);
  console.log(`square resize (eval transform), one image at a time, median of ${reps} after ${warmup} warm-up runs\n`);
  console.log('| image | input | S | decode ms | resize ms | normalize ms | total ms | images/s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
}

await main();
