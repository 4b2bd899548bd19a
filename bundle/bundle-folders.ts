import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { BUNDLE_FILES, BUNDLE_FORMAT, claimsToBeBundle, readBundleConfig, type BundleConfig } from './config.js';

/**
 * Where bundles live by default: `serve` serves every bundle under it, `demo`, `convert` and the
 * examples write into it. Relative to the working directory (in the Docker image, `/` — so the
 * volume is `/bundles`). Generated, never committed: .gitignore and .dockerignore ignore it whole.
 */
export const DEFAULT_BUNDLE_ROOT = 'bundles';

/**
 * Where bundles went before they had their own folder. `models/` is the model-definition source
 * code now; `serve` only looks there to tell the user to move what it finds.
 */
export const LEGACY_BUNDLE_ROOT = 'models';

/** The folder under the bundle root that `serve` builds the demo bundle into, and `demo` writes by default. */
export const DEMO_BUNDLE_FOLDER = 'demo';

/** The file name of the random checkpoint the demo bundle is converted from; its provenance keeps it. */
export const DEMO_CHECKPOINT_FILE = 'bridgetower-demo.safetensors';
/** The demo bundle's name starts with this (and says its answers are meaningless). */
export const DEMO_BUNDLE_NAME_PREFIX = 'bridgetower-demo';

/** Whether a bundle has random demo weights (built by `demo`, or fine-tuned from such a bundle). */
export function isDemoBundle(config: Pick<BundleConfig, 'name' | 'provenance'>): boolean {
  return (config.name ?? '').startsWith(DEMO_BUNDLE_NAME_PREFIX) || (config.provenance?.sources ?? []).some((s) => s.file === DEMO_CHECKPOINT_FILE);
}

/**
 * The bundles directly under `root` (one folder each, those whose config.json says it is a
 * bundle), in name order; none when `root` is absent. Only the name and provenance are read here
 * (to tell the demo from a real bundle): a damaged bundle is still listed, and opening it to serve
 * fails loudly, naming the field, instead of it vanishing from what `serve` serves.
 */
export function findBundles(root: string): Array<{ dir: string; config: Pick<BundleConfig, 'name' | 'provenance'> }> {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(root, entry.name))
    .sort()
    .filter(claimsToBeBundle)
    .map((dir) => ({ dir, config: readBundleIdentity(dir) }));
}

/** A bundle's name and provenance, read without validating the rest of its config.json. */
function readBundleIdentity(dir: string): Pick<BundleConfig, 'name' | 'provenance'> {
  try {
    const raw = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.config), 'utf8')) as Partial<BundleConfig>;
    return { name: typeof raw.name === 'string' ? raw.name : '', provenance: raw.provenance as BundleConfig['provenance'] };
  } catch {
    return { name: '', provenance: undefined as unknown as BundleConfig['provenance'] };
  }
}

/**
 * `--force` replaces an existing folder only when nothing of value can be lost: the folder is empty,
 * is a bundle, or passes `alsoReplaceable` (fine-tune's run folders). Anything else — a source
 * folder, a home directory, a file — is refused before anything is deleted.
 */
export function assertReplaceable(target: string, alsoReplaceable: (dir: string) => boolean = () => false): void {
  if (!existsSync(target)) return;
  if (!statSync(target).isDirectory()) {
    throw new BridgeTowerError('E_USAGE', `output '${target}' is a file, not a bundle folder; --force only replaces a bundle folder: choose another --out`, { path: target });
  }
  if (readdirSync(target).length === 0 || claimsToBeBundle(target) || alsoReplaceable(target)) return;
  throw new BridgeTowerError(
    'E_USAGE',
    `output '${target}' is not a bundle (no ${BUNDLE_FILES.config} with "format": "${BUNDLE_FORMAT}") and not empty; --force only replaces a bundle folder, so nothing was deleted: choose another --out (e.g. ${join(DEFAULT_BUNDLE_ROOT, '<name>')}) or empty that folder yourself`,
    { path: target },
  );
}
