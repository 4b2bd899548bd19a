import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels up from both source and dist). */
function readVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const json = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'bridgetower-node' && json.version) return json.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
