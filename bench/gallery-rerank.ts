export async function runRerankBench(_options: { items: number; workDir: string }): Promise<void> {
  throw new Error('not written yet');
}
