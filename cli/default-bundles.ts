import { isAbsolute, join } from 'node:path';
import { BridgeTowerError, listSome } from '../common/errors.js';
import { DEFAULT_BUNDLE_ROOT, DEMO_BUNDLE_FOLDER, findBundles, isDemoBundle, LEGACY_BUNDLE_ROOT } from '../bundle/bundle-folders.js';
import { buildDemoBundle } from '../convert/demo/demo-bundle.js';

export interface DefaultBundleOptions {
  /** Where bundles live (default ./bundles). */
  root?: string;
  /** Where they lived before (default ./models), looked at only to say so. */
  legacyRoot?: string;
  /** Where the notes go, one line each (default stderr). */
  log?: (line: string) => void;
}

/**
 * The bundles `serve` serves when it is named none: every real bundle under the bundle root. A demo
 * bundle there is served only when there is no real one: beside a real bundle, every route both can
 * answer would demand a "model" field (E_MODEL_REQUIRED) and the demo page would default to random
 * weights. With no bundle at all, the demo is built into <root>/demo. Bundles left under the old
 * ./models location are never served silently.
 */
export async function defaultBundles(options: DefaultBundleOptions = {}): Promise<string[]> {
  const { root = DEFAULT_BUNDLE_ROOT, legacyRoot = LEGACY_BUNDLE_ROOT, log = (line: string) => process.stderr.write(`${line}\n`) } = options;
  const { real, demos } = byKind(findBundles(root));
  reportLegacyBundles(root, legacyRoot, real.length > 0, log);
  if (real.length > 0) {
    for (const demo of demos) log(`serve: skipping the demo bundle ${demo} (random weights) because real bundles are served: ${listSome(real)}; to serve it too, name it: bridgetower serve ${[...real, demo].join(' ')}`);
    return real;
  }
  if (demos.length > 0) return demos;
  const demo = join(root, DEMO_BUNDLE_FOLDER);
  const bar = '!'.repeat(78);
  for (const line of [
    '',
    bar,
    `!! no bundle under ${shown(root)}: building the DEMO bundle into ${shown(demo)}`,
    '!! ITS WEIGHTS ARE RANDOM: EVERY ANSWER THIS SERVER GIVES IS MEANINGLESS.',
    `!! Serve a real model: bridgetower convert <checkpoint> --out ${join(root, '<name>')}`,
    '!! (once a real bundle is there, the demo is no longer served)',
    bar,
    '',
  ]) {
    log(line);
  }
  // Forced: what can be there is an empty folder or an unreadable bundle (a readable one was found
  // above); a folder of anything else is still refused.
  await buildDemoBundle(demo, { force: true });
  return [demo];
}

function byKind(bundles: ReadonlyArray<{ dir: string; config: Parameters<typeof isDemoBundle>[0] }>): { real: string[]; demos: string[] } {
  return {
    real: bundles.filter((b) => !isDemoBundle(b.config)).map((b) => b.dir),
    demos: bundles.filter((b) => isDemoBundle(b.config)).map((b) => b.dir),
  };
}

/**
 * Bundles under the old location (`models/` is source code now) are not served. A real one is an
 * error when nothing else would be served but a demo, a note otherwise; an old demo is a note.
 */
function reportLegacyBundles(root: string, legacyRoot: string, servingReal: boolean, log: (line: string) => void): void {
  const { real, demos } = byKind(findBundles(legacyRoot));
  for (const demo of demos) log(`serve: ignoring ${demo}, a demo bundle an older bridgetower-node built there; the demo now lives in ${join(root, DEMO_BUNDLE_FOLDER)}: delete it (rm -r ${demo})`);
  if (real.length === 0) return;
  const advice = `bundles now go under ${shown(root)}, not ${shown(legacyRoot)} (which holds the model-definition sources): move them (mkdir -p ${root} && mv ${real.join(' ')} ${root}/), or name them: bridgetower serve ${real.join(' ')}`;
  if (!servingReal) throw new BridgeTowerError('E_USAGE', `found ${real.length === 1 ? 'a bundle' : 'bundles'} under ${shown(legacyRoot)} (${listSome(real)}), where serve no longer looks: ${advice}`, { paths: real });
  log(`serve: not serving ${listSome(real)}: ${advice}`);
}

/** A folder as the user would type it: `./bundles` for the relative default, absolute ones as they are. */
function shown(path: string): string {
  return isAbsolute(path) ? path : `./${path}`;
}
