/**
 * The known name a mistyped one most likely meant: the closest within 2 edits (a typo, a missing
 * or doubled letter), else the only one it is a prefix of (`keep` → `keep-checkpoints`).
 * Undefined when nothing is close or the guess would be ambiguous.
 */
export function didYouMean(input: string, known: readonly string[]): string | undefined {
  const scored = known.map((name) => ({ name, distance: editDistance(input, name) })).filter((c) => c.distance <= 2);
  const best = Math.min(...scored.map((c) => c.distance));
  const closest = scored.filter((c) => c.distance === best);
  if (closest.length === 1) return closest[0]!.name;
  const extended = known.filter((name) => input.length >= 2 && name.startsWith(input));
  return extended.length === 1 ? extended[0] : undefined;
}

/** Levenshtein distance: insertions, deletions and substitutions, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}
