import { readFileSync } from 'node:fs';

/** One row of the fixtures' `keys_<name>.txt`: what upstream's state dict holds, per entry. */
export interface KeyRow {
  name: string;
  dtype: string;
  shape: number[];
  sha256: string;
  sum: number;
}

export function readKeysFile(path: string): KeyRow[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => {
      const cols = line.split('\t');
      return { name: cols[0]!, dtype: cols[1]!, shape: JSON.parse(cols[2]!) as number[], sha256: cols[9]!, sum: Number(cols[10]) };
    });
}
