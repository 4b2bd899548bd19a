import type { Precision } from '../library/precision.js';
import type { Device, RuntimeOptions } from '../runtime/session.js';
import type { ItcFormat } from './gallery/itc-codec.js';
import type { CacheStorage } from './scheduling/image-cache.js';

/** Every `bridgetower serve` setting, with the CLI flag of each; defaults in `DEFAULT_SERVER_OPTIONS`. */
export interface ServerOptions extends Pick<RuntimeOptions, 'threads'> {
  /** Bundle folders to serve (`serve <bundle>...`; `npm start`: the bundles under ./bundles, the demo only when there is no other). */
  bundles: string[];
  host: string; // --host
  port: number; // --port
  device: Device; // --device cpu|cuda
  /** Graph precision variant (--precision fp32|int8|fp16|auto): auto = int8 on the CPU, fp16 on CUDA, else what each bundle has. */
  precision: Precision;
  /** Largest batch a stage runs (--max-batch). */
  maxBatch: number;
  /** How long a stage waits to fill a batch (--max-delay-ms). */
  maxDelayMs: number;
  /** Requests admitted and not yet answered, preprocessing included; past it: 503 + Retry-After (--max-queue). */
  maxQueue: number;
  /** Per-request deadline; past it: 504 and dropped from the queue (--request-timeout-ms). */
  requestTimeoutMs: number;
  /** Byte budget of the image-encoding cache (--cache-mb; 0 disables it). */
  cacheMb: number;
  /** Where the gallery database lives (--data-dir) when --gallery is not given. */
  dataDir: string;
  /** The gallery backend (--gallery): sqlite:<path>, postgres://… or memory:; undefined: sqlite:<dataDir>/gallery.sqlite. */
  gallery?: string;
  /** Byte budget of the image-encoder outputs kept for re-ranking gallery candidates (--gallery-cache-mb). */
  galleryCacheMb: number;
  /** How that cache holds the encodings (--gallery-cache-dtype): float32, or float16 in half the bytes. */
  galleryCacheDtype: CacheStorage;
  /** How ITC features are stored (--gallery-itc): float32, or int8 with a per-vector scale. */
  galleryItc: ItcFormat;
  /** From this many items on, candidate search uses the HNSW index (--gallery-ann-threshold). */
  galleryAnnThreshold: number;
  /** Bearer token (--api-key or BRIDGETOWER_API_KEY); undefined: no authentication. */
  apiKey?: string;
  /** What the key protects (--auth): the gallery's write routes, or every route. */
  auth: 'writes' | 'all';
  /** Per-client rate limit (--rate-limit N per --rate-window-ms); false disables it. */
  rateLimit: { max: number; timeWindowMs: number } | false;
  /** Allowed CORS origins (--cors); false: CORS off. */
  cors: string[] | false;
  /** Largest request body, JSON or multipart (--body-limit-mb). */
  bodyLimitBytes: number;
  /** Largest single multipart file / base64 image, encoded bytes. */
  maxImageBytes: number;
  logger: boolean;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'bundles'> = {
  host: '0.0.0.0',
  port: 8080,
  device: 'cpu',
  precision: 'auto',
  maxBatch: 8,
  maxDelayMs: 5,
  maxQueue: 64,
  requestTimeoutMs: 30_000,
  cacheMb: 256,
  dataDir: './data',
  galleryCacheMb: 512,
  galleryCacheDtype: 'float32',
  galleryItc: 'float32',
  galleryAnnThreshold: 50_000,
  auth: 'writes',
  rateLimit: false,
  cors: false,
  bodyLimitBytes: 25 * 1024 * 1024,
  maxImageBytes: 20 * 1024 * 1024,
  logger: true,
};
