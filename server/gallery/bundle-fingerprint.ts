import { createHash } from 'node:crypto';
import { readBundleConfig, type BundleConfig } from '../../bundle/config.js';

/**
 * What makes two bundles' image encodings interchangeable: the source weights (their sha256 from
 * the provenance), how they were converted (dtype, a resized position table) and how images are
 * preprocessed and encoded (architecture, preprocessing). Conversion details that do not change
 * the numbers (`converted_at`, `converter`, `config_source` notes, graph file lists) are left out,
 * so re-converting the same checkpoint the same way keeps a gallery valid.
 */
export function bundleFingerprint(config: BundleConfig): string {
  const identity = {
    sources: config.provenance.sources.map((source) => source.sha256),
    source_kind: config.provenance.source_kind,
    image_size_resized_from: config.provenance.image_size_resized_from ?? null,
    dtype: config.weights.dtype,
    architecture: withoutKey(config.architecture, 'config_source'),
    preprocessing: config.preprocessing,
  };
  return createHash('sha256').update(canonicalJson(identity)).digest('hex');
}

/** `bundleFingerprint` of the bundle folder `dir` (reads its config.json). */
export function readBundleFingerprint(dir: string): string {
  return bundleFingerprint(readBundleConfig(dir));
}

/** JSON with object keys sorted at every level, so equal values hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function withoutKey(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return value.map((item) => withoutKey(item, key));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k]) => k !== key)
        .map(([k, v]) => [k, withoutKey(v, key)]),
    );
  }
  return value;
}
