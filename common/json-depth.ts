/**
 * How deeply a parsed JSON value nests, measured without recursion and stopping at `limit + 1`:
 * JSON.parse accepts thousands of levels, and any recursive reader after it (serializers,
 * validators, JSON.stringify) would then overflow the stack with an untyped RangeError.
 */
export function jsonDepthExceeds(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) pending.push([child, depth + 1]);
  }
  return false;
}
