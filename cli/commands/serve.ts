import { BridgeTowerError } from '../../common/errors.js';
import { DEFAULT_BUNDLE_ROOT } from '../../bundle/bundle-folders.js';
import { readBundleConfig } from '../../bundle/config.js';
import { ITC_FORMATS } from '../../server/gallery/itc-codec.js';
import { CACHE_STORAGES } from '../../server/scheduling/image-cache.js';
import { PRECISIONS } from '../../library/precision.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../../server/options.js';
import { startServer } from '../../server/start.js';
import { defaultBundles } from '../default-bundles.js';
import type { Command } from '../run-command.js';

const MIB = 1024 * 1024;

export const serveCommand: Command = {
  summary: 'serve bundles over HTTP (VQA, entailment, NLVR2, ITM, embeddings, gallery search)',
  usage: `
Usage: bridgetower serve [<bundle>...] [options]

Serves the bundles over HTTP. Without a bundle, serves every bundle under ./${DEFAULT_BUNDLE_ROOT}: the
demo bundle (random weights: its answers are meaningless) only when there is no other; with no
bundle at all, it builds the demo into ./${DEFAULT_BUNDLE_ROOT}/demo.
API docs at /docs (OpenAPI document at /openapi.json), demo page at /.

Options:
  --host <addr>              address to listen on (default ${DEFAULT_SERVER_OPTIONS.host})
  --port <n>                 port (default ${DEFAULT_SERVER_OPTIONS.port})
  --device cpu|cuda          where the sessions run (default ${DEFAULT_SERVER_OPTIONS.device}; cuda falls back to cpu, with a warning)
  --precision fp32|int8|fp16|auto which precision variant of each bundle's graphs to serve (default ${DEFAULT_SERVER_OPTIONS.precision}:
                             int8 on cpu, fp16 on cuda, else what the bundle has; docs/precision.md)
  --max-batch <n>            largest batch a stage runs (default ${DEFAULT_SERVER_OPTIONS.maxBatch})
  --max-delay-ms <ms>        how long a stage waits to fill a batch (default ${DEFAULT_SERVER_OPTIONS.maxDelayMs})
  --max-queue <n>            requests admitted and not yet answered; past it 503 + Retry-After (default ${DEFAULT_SERVER_OPTIONS.maxQueue})
  --request-timeout-ms <ms>  per-request deadline; past it 504 (default ${DEFAULT_SERVER_OPTIONS.requestTimeoutMs})
  --cache-mb <n>             image-encoding cache budget, 0 disables it (default ${DEFAULT_SERVER_OPTIONS.cacheMb})
  --threads <n>              ONNX Runtime intra-op threads (default: one per core)
  --data-dir <dir>           where the gallery database lives without --gallery (default ${DEFAULT_SERVER_OPTIONS.dataDir})
  --gallery <url>            gallery backend: sqlite:<path> (default: <data-dir>/gallery.sqlite), postgres://<user>@<host>/<db>
                             (shared by replicas; ?host=/run/postgresql for a unix socket) or memory:
  --gallery-cache-mb <n>     budget of image encodings kept for re-ranking search candidates (default ${DEFAULT_SERVER_OPTIONS.galleryCacheMb})
  --gallery-cache-dtype float32|float16 how that cache holds encodings: float16 takes half the bytes, re-ranking scores within 1e-3 (default ${DEFAULT_SERVER_OPTIONS.galleryCacheDtype})
  --gallery-itc float32|int8 how gallery ITC features are stored (default ${DEFAULT_SERVER_OPTIONS.galleryItc})
  --gallery-ann-threshold <n> items from which search uses the HNSW index instead of an exact scan (default ${DEFAULT_SERVER_OPTIONS.galleryAnnThreshold})
  --api-key <key>            bearer token (or the BRIDGETOWER_API_KEY environment variable, which keeps it out of ps)
  --auth writes|all          what the key protects: the gallery's write routes, or every route but /healthz (/health), /readyz and the demo page (default ${DEFAULT_SERVER_OPTIONS.auth})
  --rate-limit <n>           requests per client per window; off by default
  --rate-window-ms <ms>      the rate limit's window (default 60000)
  --cors <origin,...>        allowed CORS origins ('*' for any); CORS is off by default
  --body-limit-mb <n>        largest request body, JSON or multipart (default ${DEFAULT_SERVER_OPTIONS.bodyLimitBytes / MIB})

Examples:
  bridgetower serve ${DEFAULT_BUNDLE_ROOT}/vqa --port 8080
  BRIDGETOWER_API_KEY=secret bridgetower serve ${DEFAULT_BUNDLE_ROOT}/vqa ${DEFAULT_BUNDLE_ROOT}/retrieval --device cuda --auth all
  curl -s localhost:8080/vqa -F image=@cat.jpg -F question='what is on the sofa?'
`,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    device: { type: 'string' },
    precision: { type: 'string' },
    'max-batch': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    'max-queue': { type: 'string' },
    'request-timeout-ms': { type: 'string' },
    'cache-mb': { type: 'string' },
    threads: { type: 'string' },
    'data-dir': { type: 'string' },
    gallery: { type: 'string' },
    'gallery-cache-mb': { type: 'string' },
    'gallery-cache-dtype': { type: 'string' },
    'gallery-itc': { type: 'string' },
    'gallery-ann-threshold': { type: 'string' },
    'api-key': { type: 'string' },
    auth: { type: 'string' },
    'rate-limit': { type: 'string' },
    'rate-window-ms': { type: 'string' },
    cors: { type: 'string' },
    'body-limit-mb': { type: 'string' },
  },
  async run({ values, positionals }) {
    // Flags first: a bad flag must not cost a demo build.
    const options = serverOptionsFromFlags(values, positionals);
    if (options.bundles.length === 0) options.bundles = await defaultBundles();
    for (const dir of options.bundles) readBundleConfig(dir);
    const server = await startServer(options);
    await server.stopped;
  },
};

/** `serve` flags as ServerOptions; every bad value is an E_USAGE that names the flag. */
export function serverOptionsFromFlags(values: Record<string, string | undefined>, bundles: string[], env: NodeJS.ProcessEnv = process.env): ServerOptions {
  const d = DEFAULT_SERVER_OPTIONS;
  const int = (flag: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const text = values[flag];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^\s*\d+\s*$/.test(text) || value < min || value > max) {
      throw new BridgeTowerError('E_USAGE', `--${flag} must be a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? '∞' : max}, got '${text}'`, { flag, value: text });
    }
    return value;
  };
  const choice = <T extends string>(flag: string, choices: readonly T[], fallback: T): T => {
    const text = values[flag];
    if (text === undefined) return fallback;
    if (!(choices as readonly string[]).includes(text)) throw new BridgeTowerError('E_USAGE', `--${flag} must be ${choices.join(' or ')}, got '${text}'`, { flag, value: text });
    return text as T;
  };
  const rateLimit = values['rate-limit'] === undefined ? false : { max: int('rate-limit', 0, 1), timeWindowMs: int('rate-window-ms', 60_000, 1) };
  const cors = values.cors === undefined ? false : values.cors.split(',').map((origin) => origin.trim()).filter(Boolean);
  if (cors !== false && cors.length === 0) throw new BridgeTowerError('E_USAGE', `--cors needs at least one origin (e.g. https://example.com, or '*'), got '${values.cors}'`);
  const bodyLimitBytes = int('body-limit-mb', d.bodyLimitBytes / MIB, 1, 1024) * MIB;
  const threads = values.threads === undefined ? undefined : int('threads', 0, 1, 1024);
  const apiKey = apiKeyFrom(values['api-key'], env.BRIDGETOWER_API_KEY);
  return {
    bundles,
    host: values.host ?? d.host,
    port: int('port', d.port, 0, 65_535),
    device: choice('device', ['cpu', 'cuda'] as const, d.device),
    precision: choice('precision', PRECISIONS, d.precision),
    maxBatch: int('max-batch', d.maxBatch, 1, 1024),
    maxDelayMs: int('max-delay-ms', d.maxDelayMs, 0, 60_000),
    maxQueue: int('max-queue', d.maxQueue, 1),
    requestTimeoutMs: int('request-timeout-ms', d.requestTimeoutMs, 1),
    cacheMb: int('cache-mb', d.cacheMb, 0),
    ...(threads !== undefined ? { threads } : {}),
    dataDir: values['data-dir'] ?? d.dataDir,
    ...(values.gallery !== undefined ? { gallery: values.gallery } : {}),
    galleryCacheMb: int('gallery-cache-mb', d.galleryCacheMb, 0),
    galleryCacheDtype: choice('gallery-cache-dtype', CACHE_STORAGES, d.galleryCacheDtype),
    galleryItc: choice('gallery-itc', ITC_FORMATS, d.galleryItc),
    galleryAnnThreshold: int('gallery-ann-threshold', d.galleryAnnThreshold, 1),
    ...(apiKey !== undefined ? { apiKey } : {}),
    auth: choice('auth', ['writes', 'all'] as const, d.auth),
    rateLimit,
    cors,
    bodyLimitBytes,
    // An image is at most the body it travels in.
    maxImageBytes: Math.min(d.maxImageBytes, bodyLimitBytes),
    logger: d.logger,
  };
}

/**
 * The API key from --api-key, else BRIDGETOWER_API_KEY. A key that is given but empty (an unset
 * shell variable: `--api-key "$KEY"`) is refused: serving without authentication because of a
 * typo in a deployment would fail open, silently.
 */
function apiKeyFrom(flag: string | undefined, env: string | undefined): string | undefined {
  const [source, key] = flag !== undefined ? ['--api-key', flag] : ['BRIDGETOWER_API_KEY', env];
  if (key === undefined) return undefined;
  if (key.trim() === '') {
    throw new BridgeTowerError('E_USAGE', `${source} is empty: give the key (e.g. BRIDGETOWER_API_KEY="$(cat api-key.txt)"), or leave ${source} out to serve without one`, { source });
  }
  return key;
}

