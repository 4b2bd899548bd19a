import { seededRandom } from '../convert/demo/random-weights.js';
import type { ComparisonExample } from './variant-comparison.js';

const WORDS = {
  subject: ['a dog', 'two cats', 'a man', 'a red car', 'an old woman', 'a child', 'three birds', 'a white horse'],
  verb: ['sits on', 'runs across', 'looks at', 'sleeps under', 'stands next to', 'jumps over'],
  place: ['the table', 'a green field', 'the window', 'a wooden bench', 'the beach', 'a busy street'],
};

/**
 * `count` reproducible image–text examples from `seed`: images of smooth colour gradients with
 * blocks and noise (not flat colours, so every patch differs), `size` pixels square, and short
 * captions from a small vocabulary. For comparing variants where no data is at hand; real
 * images and texts (`compare-variants --data`) are the better test.
 */
export function syntheticExamples(count: number, seed = 1, size = 96): ComparisonExample[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  return Array.from({ length: count }, () => {
    const base = [random() * 255, random() * 255, random() * 255];
    const slope = [random() * 4 - 2, random() * 4 - 2, random() * 4 - 2];
    const block = { x: Math.floor(random() * size * 0.6), y: Math.floor(random() * size * 0.6), side: Math.floor(size * (0.2 + random() * 0.3)), colour: [random() * 255, random() * 255, random() * 255] };
    const data = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inBlock = x >= block.x && x < block.x + block.side && y >= block.y && y < block.y + block.side;
        for (let c = 0; c < 3; c++) {
          const value = inBlock ? block.colour[c]! : base[c]! + slope[c]! * (c === 0 ? x : c === 1 ? y : x + y);
          data[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value + (random() - 0.5) * 24)));
        }
      }
    }
    return { image: { data, width: size, height: size }, text: `${pick(WORDS.subject)} ${pick(WORDS.verb)} ${pick(WORDS.place)}` };
  });
}
