import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { notOurOutput, type EmbeddingOutput, type EmbeddingRecord } from './embedding-output.js';

/**
 * JSON Lines output: a restart reads the file first; ids already written are skipped, and a torn
 * last line (the run was killed mid-write) is cut off, so the file never holds an id twice or
 * half a record. One write per batch: a kill leaves whole lines and at most one torn last line.
 */
export async function openJsonlOutput(out: string): Promise<EmbeddingOutput> {
  const { done, repaired } = resumeJsonl(out, (line) => (JSON.parse(line) as { id?: unknown }).id, 'a JSON Lines file ({"id", "kind", "embedding"})');
  const fd = openSync(out, 'a');
  return {
    done,
    repairs: repaired ? [`cut off a torn last line of ${out} (an interrupted run); its item was embedded again`] : [],
    files: [out],
    append(records) {
      const text = records.map(jsonlLine).join('');
      if (text) writeSync(fd, text);
    },
    async finish() {},
    close: () => closeSync(fd),
  };
}

export const jsonlLine = (r: EmbeddingRecord) => `${JSON.stringify({ id: r.id, kind: r.kind, embedding: Array.from(r.embedding) })}\n`;

/**
 * The ids of the complete lines of `file`, after cutting off a last line without its newline (a
 * torn write). A complete line whose id `idOf` cannot read means the file is not ours: fatal.
 */
export function resumeJsonl(file: string, idOf: (line: string) => unknown, what: string): { done: Set<string>; ids: string[]; repaired: boolean } {
  const done = new Set<string>();
  const ids: string[] = [];
  if (!existsSync(file)) return { done, ids, repaired: false };
  const text = readFileSync(file, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  const repaired = end < text.length;
  if (repaired) truncateFile(file, Buffer.byteLength(text.slice(0, end)));
  text
    .slice(0, end)
    .split('\n')
    .forEach((line, i) => {
      if (line === '') return;
      let id: unknown;
      try {
        id = idOf(line);
      } catch {
        id = undefined;
      }
      if (typeof id !== 'string') throw notOurOutput(`${file}:${i + 1}`, `a line of ${what}`);
      done.add(id);
      ids.push(id);
    });
  return { done, ids, repaired };
}

export function truncateFile(file: string, bytes: number): void {
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}
