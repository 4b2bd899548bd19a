import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BridgeTowerError } from '../../common/errors.js';

/**
 * Where the demo page is: beside this module when run from source (`server/demo/`), and in the
 * source tree when run from `dist/server/demo/` (tsc does not copy HTML, so the package and the
 * Docker image ship `server/demo/index.html` next to `dist/`).
 */
const CANDIDATES = [new URL('./index.html', import.meta.url), new URL('../../../server/demo/index.html', import.meta.url)];

let cached: string | undefined;

export function demoPagePath(): string {
  for (const candidate of CANDIDATES) {
    const path = fileURLToPath(candidate);
    if (existsSync(path)) return path;
  }
  const looked = CANDIDATES.map((url) => fileURLToPath(url));
  throw new BridgeTowerError('E_IO', `the demo page is missing: looked for ${looked.join(' and ')}; reinstall bridgetower-node`, { paths: looked });
}

/** The demo page served at `GET /` (one self-contained HTML file), read once. */
export function readDemoPage(): string {
  cached ??= readFileSync(demoPagePath(), 'utf8');
  return cached;
}
