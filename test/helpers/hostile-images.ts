import sharp from 'sharp';
import type { SeededRandom } from './seeded-random.js';

/** Every format the server accepts, as sharp writes it. */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** A small valid picture in every accepted format (a gradient, so that no encoder shortcuts a flat image). */
export async function validImages(): Promise<Record<ImageFormat, Buffer>> {
  const width = 40;
  const height = 30;
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) pixels.set([(i * 7) % 256, (i * 3) % 256, (i * 11) % 256], i * 3);
  const raw = () => sharp(pixels, { raw: { width, height, channels: 3 } });
  const entries = await Promise.all(IMAGE_FORMATS.map(async (format) => [format, await raw().toFormat(format).toBuffer()] as const));
  return Object.fromEntries(entries) as Record<ImageFormat, Buffer>;
}

/** Ways to break an image file, each a function of the file and the random source. */
const CORRUPTIONS: Record<string, (image: Buffer, rng: SeededRandom) => Buffer> = {
  truncated: (image, rng) => image.subarray(0, rng.int(Math.max(1, image.length - 1))),
  'header only': (image) => image.subarray(0, Math.min(image.length, 16)),
  'header bytes flipped': (image, rng) => flip(image, rng, 0, Math.min(64, image.length)),
  'body bytes flipped': (image, rng) => flip(image, rng, Math.min(64, image.length - 1), image.length),
  'middle zeroed': (image, rng) => {
    const copy = Buffer.from(image);
    const start = rng.int(copy.length);
    copy.fill(0, start, Math.min(copy.length, start + 1 + rng.int(256)));
    return copy;
  },
  'garbage appended': (image, rng) => Buffer.concat([image, rng.bytes(1 + rng.int(512))]),
  'magic then garbage': (image, rng) => Buffer.concat([image.subarray(0, 12), rng.bytes(rng.int(2048))]),
  'doubled': (image) => Buffer.concat([image, image]),
};

function flip(image: Buffer, rng: SeededRandom, from: number, to: number): Buffer {
  const copy = Buffer.from(image);
  for (let n = 1 + rng.int(8); n > 0 && to > from; n--) {
    const at = from + rng.int(to - from);
    copy[at] = copy[at]! ^ (1 + rng.int(255));
  }
  return copy;
}

/** A corrupt copy of one of `images`, and what was done to it. */
export function corruptImage(images: Record<ImageFormat, Buffer>, rng: SeededRandom): { what: string; bytes: Buffer } {
  const format = rng.pick(IMAGE_FORMATS);
  const [how, corrupt] = rng.pick(Object.entries(CORRUPTIONS));
  return { what: `${format} ${how}`, bytes: corrupt(images[format], rng) };
}

/**
 * Decompression bombs: headers that claim far more pixels than the server decodes (50 M), over a
 * few bytes of data; the server must refuse them from the header, before allocating the pixels.
 */
export function imageBombs(images: Record<ImageFormat, Buffer>): Record<string, Buffer> {
  return {
    'png 60000 x 60000': png(60_000, 60_000),
    'gif 65535 x 65535': gif(65_535, 65_535),
    'jpeg 65000 x 65000': jpegWithSize(images.jpeg, 65_000, 65_000),
  };
}

/** A PNG whose IHDR says `width × height` (8-bit RGB), with one small IDAT. */
function png(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  // A zlib stream of zeros: the start of an all-black image.
  const idat = Buffer.from([0x78, 0x9c, 0x63, 0x60, 0x18, 0x05, 0xa3, 0x60, 0x14, 0x0c, 0x77, 0x00, 0x00]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GIF89a whose screen and one frame are `width × height`, with a minimal LZW stream. */
function gif(width: number, height: number): Buffer {
  const screen = Buffer.alloc(7);
  screen.writeUInt16LE(width, 0);
  screen.writeUInt16LE(height, 2);
  screen.set([0x80, 0, 0], 4); // a global colour table of 2 entries
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(width, 5);
  descriptor.writeUInt16LE(height, 7);
  return Buffer.concat([Buffer.from('GIF89a', 'latin1'), screen, Buffer.from([0, 0, 0, 255, 255, 255]), descriptor.subarray(0, 10), Buffer.from([0x02, 0x02, 0x44, 0x01, 0x00, 0x3b])]);
}

/** A valid JPEG with its SOF segment's size rewritten. */
function jpegWithSize(jpeg: Buffer, width: number, height: number): Buffer {
  const copy = Buffer.from(jpeg);
  for (let at = 2; at + 9 < copy.length; ) {
    if (copy[at] !== 0xff) break;
    const marker = copy[at + 1]!;
    const length = copy.readUInt16BE(at + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      copy.writeUInt16BE(height, at + 5);
      copy.writeUInt16BE(width, at + 7);
      return copy;
    }
    at += 2 + length;
  }
  throw new Error('no SOF segment in the JPEG');
}
