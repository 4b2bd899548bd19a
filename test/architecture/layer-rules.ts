/**
 * The project's layers and what each may import: the one copy of the dependency rules.
 * docs/architecture.md shows the same matrix (a test checks that they agree), and
 * `dependency-rules.test.ts` holds every source file to it.
 *
 * A file belongs to the layer of its top folder. Imports inside a layer are always allowed.
 */
export const LAYERS = ['common', 'client', 'bundle', 'models', 'preprocess', 'runtime', 'convert', 'train', 'library', 'server', 'cli', 'bench', 'test'] as const;
export type Layer = (typeof LAYERS)[number];

/** Layer → the other layers it may import. Data flows down: nothing imports `cli` or `bench`. */
export const ALLOWED_IMPORTS: Readonly<Record<Layer, readonly Layer[]>> = {
  common: [],
  // The HTTP client runs in browsers too: it imports nothing of the project (nor of Node).
  client: [],
  bundle: ['common'],
  models: ['bundle', 'common'],
  preprocess: ['bundle', 'common'],
  runtime: ['models', 'bundle', 'common'],
  convert: ['models', 'bundle', 'common'],
  train: ['runtime', 'models', 'preprocess', 'bundle', 'common'],
  // The package's entry: the model object over runtime/ + preprocess/, and thin wrappers over convert/ and train/.
  library: ['train', 'convert', 'runtime', 'preprocess', 'models', 'bundle', 'common'],
  server: ['library', 'runtime', 'preprocess', 'bundle', 'common'],
  cli: ['server', 'library', 'train', 'convert', 'runtime', 'preprocess', 'models', 'bundle', 'common'],
  // Benches and tests drive every layer; benches reuse the tests' fixture writers.
  bench: ['test', 'cli', 'server', 'library', 'client', 'train', 'convert', 'runtime', 'preprocess', 'models', 'bundle', 'common'],
  test: ['cli', 'server', 'library', 'client', 'train', 'convert', 'runtime', 'preprocess', 'models', 'bundle', 'common'],
};

/**
 * Third-party packages with a home: each may be imported only from these layers (and from tests
 * and benches). ONNX Runtime sessions are opened by `runtime/` (and training's own sessions), the
 * pickle reader belongs to the converter, HTTP to the server.
 */
export const PACKAGE_HOMES: Readonly<Record<string, readonly Layer[]>> = {
  'onnxruntime-node': ['runtime', 'train'],
  pickleparser: ['convert'],
  'apache-arrow': ['train'],
  sharp: ['preprocess'],
  '@huggingface/tokenizers': ['preprocess'],
  protobufjs: ['models'],
  fastify: ['server'],
  '@fastify/cors': ['server'],
  '@fastify/multipart': ['server'],
  '@fastify/rate-limit': ['server'],
  '@fastify/swagger': ['server'],
  '@fastify/swagger-ui': ['server'],
  'fastify-type-provider-zod': ['server'],
  'better-sqlite3': ['server'],
  'prom-client': ['server'],
  'cli-progress': ['cli'],
  // bridgetower embed --format parquet (cli/embed-output/parquet-output.ts).
  hyparquet: ['cli'],
  'hyparquet-writer': ['cli'],
};
