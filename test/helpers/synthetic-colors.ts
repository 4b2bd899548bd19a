import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../train/rng.js';

/**
 * Small tasks that need both the image and the text, for the learning tests: each picture is one
 * colour. VQA: half the questions ask "what color is the picture?" (answer: the colour), half "is
 * the picture colorful?" (yes for red, green, blue; no for white, black). The text alone cannot
 * know the colour, the picture alone cannot know which kind of answer is asked for.
 */
export const COLORS: Readonly<Record<string, readonly [number, number, number]>> = {
  red: [220, 30, 30],
  green: [30, 190, 60],
  blue: [30, 60, 220],
  white: [245, 245, 245],
  black: [15, 15, 15],
};
const NAMES = Object.keys(COLORS);
/** Bright and dark pictures (by luminance: a linear function of the pixels, quick to learn). */
const BRIGHT = ['white', 'green', 'silver'];
const DARK = ['black', 'blue', 'charcoal'];
const SHADES: Readonly<Record<string, readonly [number, number, number]>> = { ...COLORS, silver: [200, 200, 200], charcoal: [50, 50, 50] };

interface Picture {
  file: string;
  top: string;
  bottom: string;
}

async function writePicture(dir: string, name: string, top: string, bottom: string, size: number): Promise<Picture> {
  const pixels = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) {
    const [r, g, b] = SHADES[y < size / 2 ? top : bottom]!;
    for (let x = 0; x < size; x++) pixels.set([r, g, b], (y * size + x) * 3);
  }
  const file = `${name}.png`;
  writeFileSync(join(dir, file), await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer());
  return { file, top, bottom };
}

async function pictures(dir: string, count: number, seed: number, size: number): Promise<Picture[]> {
  mkdirSync(dir, { recursive: true });
  const rng = Rng.derive(seed, 'synthetic-pictures');
  const out: Picture[] = [];
  for (let i = 0; i < count; i++) {
    const color = NAMES[rng.int(NAMES.length)]!;
    out.push(await writePicture(dir, `p${seed}-${i}`, color, color, size));
  }
  return out;
}

/** Writes `<dir>/<split>.jsonl` and its PNGs for the VQA variant; answers are colour names. */
export async function writeColorVqa(dir: string, split: string, count: number, seed: number, size = 64): Promise<string> {
  const rng = Rng.derive(seed, 'synthetic-vqa');
  const lines = (await pictures(join(dir, 'images'), count, seed, size)).map((p, i) => {
    const color = p.top;
    const yesNo = i % 2 === 1;
    const question = yesNo ? 'is the picture colorful?' : 'what color is the picture?';
    const answer = yesNo ? (['red', 'green', 'blue'].includes(color) ? 'yes' : 'no') : color;
    return JSON.stringify({ image: `images/${p.file}`, question, question_id: seed * 100000 + i, answers: Array(10).fill(answer) });
  });
  const path = join(dir, `${split}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/**
 * Writes `<dir>/<split>.jsonl` and its PNGs for the SNLI-VE variant: "the picture is bright" is
 * entailed by a white, green or silver picture and contradicted by a black, blue or charcoal one;
 * "the picture shows a <animal>" is neutral whatever the picture. Text alone separates only neutral
 * (≈ 67 %), the picture alone cannot tell neutral hypotheses apart (≈ 67 %): 90 % needs both.
 */
export async function writeColorSnli(dir: string, split: string, count: number, seed: number, size = 64): Promise<string> {
  const rng = Rng.derive(seed, 'synthetic-snli');
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const label = (['entailment', 'contradiction', 'neutral'] as const)[i % 3]!;
    const pool = label === 'entailment' ? BRIGHT : label === 'contradiction' ? DARK : [...BRIGHT, ...DARK];
    const color = pool[rng.int(pool.length)]!;
    const picture = await writePicture(images, `s${seed}-${i}`, color, color, size);
    const hypothesis = label === 'neutral' ? `the picture shows a ${['dog', 'cat', 'person'][rng.int(3)]}` : 'the picture is bright';
    lines.push(JSON.stringify({ image: `images/${picture.file}`, hypothesis, label }));
  }
  const path = join(dir, `${split}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** NLVR2 variant: "both pictures are bright" is true when both are white or green. */
export async function writeColorNlvr2(dir: string, split: string, count: number, seed: number, size = 64): Promise<string> {
  const rng = Rng.derive(seed, 'synthetic-nlvr2');
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const [left, right] = [NAMES[rng.int(NAMES.length)]!, NAMES[rng.int(NAMES.length)]!];
    const a = await writePicture(images, `n${seed}-${i}-l`, left, left, size);
    const b = await writePicture(images, `n${seed}-${i}-r`, right, right, size);
    const label = BRIGHT.includes(left) && BRIGHT.includes(right);
    lines.push(JSON.stringify({ left: `images/${a.file}`, right: `images/${b.file}`, sentence: 'both pictures are bright', label, identifier: `n${seed}-${i}` }));
  }
  const path = join(dir, `${split}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Retrieval variant: one picture per colour, each with two captions naming it. */
export async function writeColorCaptions(dir: string, split: string, seed: number, size = 64): Promise<string> {
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  const lines: string[] = [];
  for (const color of NAMES) {
    const picture = await writePicture(images, `c${seed}-${color}`, color, color, size);
    lines.push(JSON.stringify({ image: `images/${picture.file}`, image_id: color, captions: [`a ${color} picture`, `everything is ${color}`] }));
  }
  const path = join(dir, `${split}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** One letter per colour: a single token of the demo's byte-level tokenizer, so one masked position is the whole colour. */
export const COLOR_LETTERS: Readonly<Record<string, string>> = { red: 'r', green: 'g', blue: 'b', white: 'w', black: 'k' };
const CAPTION_TEMPLATES = ['the picture is @', 'a @ picture', 'all @ here'];

/**
 * Pre-training variant: JSON Lines `{image, caption}`, each picture one colour and its caption
 * naming that colour by its letter (COLOR_LETTERS) in one of a few templates. The letter is the
 * only part of a caption the text cannot predict; the picture decides it. Returns the file and,
 * per line, the caption's colour letter.
 */
export async function writeColorPretraining(dir: string, split: string, count: number, seed: number, size = 64): Promise<{ path: string; letters: string[]; captions: string[] }> {
  const rng = Rng.derive(seed, 'synthetic-pretraining');
  const pics = await pictures(join(dir, 'images'), count, seed, size);
  const captions = pics.map((p) => CAPTION_TEMPLATES[rng.int(CAPTION_TEMPLATES.length)]!.replace('@', COLOR_LETTERS[p.top]!));
  const lines = pics.map((p, i) => JSON.stringify({ image: `images/${p.file}`, caption: captions[i] }));
  const path = join(dir, `${split}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return { path, letters: pics.map((p) => COLOR_LETTERS[p.top]!), captions };
}
