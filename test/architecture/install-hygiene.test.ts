import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * `npm ci` on the supported Node versions prints no EBADENGINE warning: every locked package's
 * `engines.node` admits both the oldest Node this package claims (package.json `engines`) and the
 * Node running the tests. A dependency update that needs a newer Node fails here, with its name,
 * instead of warning every user at install time.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const readJson = (file: string) => JSON.parse(readFileSync(`${ROOT}/${file}`, 'utf8')) as Record<string, any>;

type Version = [number, number, number];

function parseVersion(text: string): Version {
  const [major = 0, minor = 0, patch = 0] = text.replace(/^v/, '').split('.').map((part) => (part === 'x' || part === '*' ? 0 : Number.parseInt(part, 10)));
  return [major, minor, patch];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** One comparator of a semver range (`>=14.17`, `^20.3.0`, `20.x`, `18`, `*`) against `v`. */
function satisfiesComparator(v: Version, comparator: string): boolean {
  const match = comparator.match(/^(>=|<=|>|<|\^|~|=)?\s*v?([\dx*.]+)$/);
  if (!match) throw new Error(`unparsed engines comparator '${comparator}'`);
  const [, op = '', raw] = match;
  if (raw === '*' || raw === 'x') return true;
  const bound = parseVersion(raw!);
  const parts = raw!.split('.').filter((p) => p !== 'x' && p !== '*').length;
  const c = compare(v, bound);
  switch (op) {
    case '>=': return c >= 0;
    case '>': return c > 0;
    case '<=': return c <= 0;
    case '<': return c < 0;
    case '^': return c >= 0 && (bound[0] > 0 ? v[0] === bound[0] : v[1] === bound[1]);
    case '~': return c >= 0 && v[0] === bound[0] && v[1] === bound[1];
    default: // `20`, `20.x`, `=20.1.0`: the given parts must match
      return v.slice(0, parts).every((n, i) => n === bound[i]);
  }
}

export function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version);
  return range.split('||').some((alternative) => {
    const comparators = alternative.trim().replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1').split(/\s+/).filter(Boolean);
    return comparators.length === 0 || comparators.every((c) => satisfiesComparator(v, c));
  });
}

describe('install hygiene', () => {
  it('reads semver ranges as npm does for the forms the lockfile uses', () => {
    assert.equal(satisfies('20.3.0', '^18.17.0 || ^20.3.0 || >=21.0.0'), true);
    assert.equal(satisfies('20.2.9', '^18.17.0 || ^20.3.0 || >=21.0.0'), false);
    assert.equal(satisfies('20.20.2', '>=22'), false);
    assert.equal(satisfies('20.20.2', '>=16 || 14 >=14.17'), true);
    assert.equal(satisfies('20.0.0', '20.x || 22.x'), true);
    assert.equal(satisfies('21.0.0', '20 || >=22'), false);
    assert.equal(satisfies('20.0.0', '>= 10.x'), true);
  });

  it("every locked package's engines.node admits the oldest supported Node and this one", () => {
    const declared = readJson('package.json').engines?.node as string;
    const oldest = declared.match(/^>=\s*([\d.]+)$/)?.[1];
    assert.ok(oldest, `package.json engines.node should be '>=X.Y.Z', got '${declared}'`);
    const lock = readJson('package-lock.json');
    const refused: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages as Record<string, { engines?: unknown; version?: string }>)) {
      const range = entry.engines && typeof entry.engines === 'object' ? (entry.engines as { node?: string }).node : undefined;
      if (!path || !range) continue;
      for (const node of [oldest, process.versions.node]) {
        if (!satisfies(node, range)) refused.push(`${path.replace(/^.*node_modules\//, '')}@${entry.version} wants node ${range}; Node ${node} is supported`);
      }
    }
    assert.deepEqual(refused, [], 'npm ci would print EBADENGINE for these: pin an older version in package.json "overrides", or raise engines.node');
  });

  it("npm's configuration holds no key npm does not know (onnxruntime-node's download is denied in allowScripts)", () => {
    const npmrc = readFileSync(`${ROOT}/.npmrc`, 'utf8');
    const keys = npmrc.split('\n').filter((line) => line.trim() && !line.startsWith('#')).map((line) => line.split('=')[0]!.trim());
    assert.deepEqual(keys.filter((key) => !['fund', 'audit'].includes(key)), []);
    assert.equal(readJson('package.json').allowScripts?.['onnxruntime-node'], false);
  });
});
