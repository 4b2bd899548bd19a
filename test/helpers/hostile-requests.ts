import { corruptImage, IMAGE_FORMATS, type ImageFormat } from './hostile-images.js';
import { rawRequest } from './raw-http.js';
import type { SeededRandom } from './seeded-random.js';

/**
 * A seeded generator of malformed and hostile HTTP requests for the server, as raw bytes (so that
 * requests `fetch` would refuse to send are possible too). Each request starts from a valid one
 * and is broken in one of the ways below; some stay valid by chance, and may be answered 2xx.
 */
export interface HostileRequest {
  /** Category and detail, e.g. "json/wrong type: top_k = true". */
  label: string;
  bytes: Buffer;
}

export interface HostileContext {
  rng: SeededRandom;
  images: Record<ImageFormat, Buffer>;
  bombs: Record<string, Buffer>;
  /** The server's API key (it protects the gallery's writes). */
  apiKey: string;
  bodyLimitBytes: number;
}

type Body = Record<string, unknown>;
interface Target {
  method: string;
  path: string;
  body?: Body;
}

const TEXT_FIELDS = ['question', 'hypothesis', 'statement', 'text'];

/** Strings that trip decoders, trimmers and length checks. */
const UNICODE_EDGES = [
  '\u0000', '\ud800', '\udfff', '\ufeff', '\u200b\u200b', '\u202e evil', 'e\u0301\u0301\u0301', '🧪'.repeat(300), '\uffff\ufffe', 'a\u2028b\u2029c',
  '\u3000\u3000', 'ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ', 'Z̷̢̛͓a̸̡͇l̵̛g̶o̵', '\t\n\r', '%00%2e%2e', '<script>alert(1)</script>', "' OR 1=1 --", '${jndi:ldap://x}', '..\\..\\windows',
];

/** Values of the wrong type, or at the edges of the right one. */
function hostileValue(rng: SeededRandom): unknown {
  const values: Array<() => unknown> = [
    () => null, () => true, () => 0, () => -1, () => 1.5, () => 1e308, () => -1e-308, () => 2 ** 53 + 1, () => 101, () => 1001, () => 10_001,
    () => '', () => ' ', () => 'x'.repeat(1 + rng.int(20_000)), () => [], () => ({}), () => [[]], () => ({ a: 1 }), () => ['a', 1, null],
    () => rng.pick(UNICODE_EDGES), () => Array.from({ length: 65 + rng.int(100) }, () => 't'), () => nested(10 + rng.int(2000), rng.chance(0.5)),
    () => 'data:image/png;base64,', () => 'data:image/png,abc', () => '!!!not base64!!!', () => 'QUJD=', () => 'QUJDR', () => 'A'.repeat(4 * rng.int(64) + 1),
  ];
  return rng.pick(values)();
}

/** `[[[…]]]` or `{"a":{"a":…}}`, `depth` deep. */
function nested(depth: number, arrays: boolean): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = arrays ? [value] : { a: value };
  return value;
}

function imageString(ctx: HostileContext): string {
  const format = ctx.rng.pick(IMAGE_FORMATS);
  const base64 = ctx.images[format].toString('base64');
  return ctx.rng.chance(0.3) ? `data:image/${format};base64,${base64}` : base64;
}

/** A valid request for a random route. */
function validTarget(ctx: HostileContext): Target {
  const { rng } = ctx;
  const image = () => imageString(ctx);
  const text = () => rng.pick(['a cat on a sofa', 'what colour is it?', 'two dogs', 'Is it red?']);
  const id = () => rng.pick(['cat-01.jpg', 'a', 'x:y_z.1', 'Z'.repeat(128)]);
  const targets: Array<() => Target> = [
    () => ({ method: 'POST', path: '/vqa', body: { image: image(), question: text(), top_k: 1 + rng.int(5) } }),
    () => ({ method: 'POST', path: '/entailment', body: { image: image(), hypothesis: text() } }),
    () => ({ method: 'POST', path: '/nlvr2', body: { images: [image(), image()], statement: text() } }),
    () => ({ method: 'POST', path: '/itm', body: { image: image(), texts: [text(), text()] } }),
    () => ({ method: 'POST', path: '/itm', body: { images: [image(), image()], text: text() } }),
    () => ({ method: 'POST', path: '/embed', body: rng.chance(0.5) ? { image: image() } : { text: text() } }),
    () => ({ method: 'POST', path: '/search', body: { text: text(), k: 1 + rng.int(5), candidates: 1 + rng.int(4) } }),
    () => ({ method: 'PUT', path: `/gallery/${id()}`, body: { image: image() } }),
    () => ({ method: 'DELETE', path: `/gallery/${id()}` }),
    () => ({ method: 'GET', path: rng.pick(['/healthz', '/readyz', '/metrics', '/openapi.json', '/']) }),
  ];
  return rng.pick(targets)();
}

function authHeader(ctx: HostileContext): Record<string, string> {
  const { rng } = ctx;
  const variants = [`Bearer ${ctx.apiKey}`, `bearer ${ctx.apiKey}`, `Bearer ${ctx.apiKey}x`, 'Bearer', 'Bearer ', `Basic ${ctx.apiKey}`, 'Bearer \u00ff\u00fe', `Bearer ${'k'.repeat(8000)}`, 'Bearer a b c'];
  return rng.chance(0.6) ? { authorization: rng.pick(variants) } : {};
}

function jsonRequest(ctx: HostileContext, target: Target, label: string, text?: string, headers: Record<string, string> = {}): HostileRequest {
  const body = text ?? (target.body === undefined ? '' : JSON.stringify(target.body));
  const type: Record<string, string> = body === '' ? {} : { 'content-type': 'application/json' };
  return { label, bytes: rawRequest(`${target.method} ${target.path} HTTP/1.1`, { connection: 'close', ...type, ...authHeader(ctx), ...headers }, body) };
}

/** The categories, each a generator; picked uniformly. */
const CATEGORIES: Record<string, (ctx: HostileContext) => HostileRequest> = {
  valid: (ctx) => {
    const target = validTarget(ctx);
    return jsonRequest(ctx, target, `valid ${target.method} ${target.path}`);
  },

  'json field mutation': (ctx) => {
    const { rng } = ctx;
    let target = validTarget(ctx);
    while (!target.body) target = validTarget(ctx);
    const body: Body = { ...target.body };
    const keys = Object.keys(body);
    const what: string[] = [];
    for (let n = 1 + rng.int(3); n > 0; n--) {
      const key = rng.pick(keys);
      const action = rng.int(5);
      if (action === 0) {
        delete body[key];
        what.push(`drop ${key}`);
      } else if (action === 1) {
        const extra = rng.pick(['topk', 'Image', 'model', '__proto__', 'constructor', ...TEXT_FIELDS, rng.pick(UNICODE_EDGES)]);
        body[extra] = hostileValue(rng);
        what.push(`add ${JSON.stringify(extra).slice(0, 20)}`);
      } else {
        body[key] = hostileValue(rng);
        what.push(`${key} = ${JSON.stringify(body[key])?.slice(0, 24)}`);
      }
    }
    return jsonRequest(ctx, target, `json/${target.path}: ${what.join(', ')}`, JSON.stringify(body));
  },

  'json text mutation': (ctx) => {
    const { rng } = ctx;
    let target = validTarget(ctx);
    while (!target.body) target = validTarget(ctx);
    const text = JSON.stringify(target.body);
    const cut = rng.int(text.length);
    const mutations: Record<string, () => string> = {
      truncated: () => text.slice(0, cut),
      'byte inserted': () => text.slice(0, cut) + String.fromCharCode(rng.int(256)) + text.slice(cut),
      'char replaced': () => text.slice(0, cut) + rng.pick(['"', '{', '}', ',', ':', '\\', ']', ' ']) + text.slice(cut + 1),
      'BOM first': () => `\ufeff${text}`,
      'trailing garbage': () => `${text}}{`,
      'duplicate key': () => text.replace(/^\{/, '{"image":1,'),
      'NaN literal': () => text.replace(/^\{/, '{"top_k":NaN,'),
      'single quotes': () => text.replace(/"/g, "'"),
      'lone surrogate escape': () => text.replace(/"([a-z])/, '"\\ud800$1'),
      'prototype pollution': () => text.replace(/^\{/, '{"__proto__":{"polluted":1},'),
      'constructor pollution': () => text.replace(/^\{/, '{"constructor":{"prototype":{"polluted":1}},'),
      'top-level array': () => `[${text}]`,
      'top-level scalar': () => rng.pick(['null', '1', '"x"', 'true', '']),
      'deep array': () => `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      'deep object value': () => `{"text":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`,
    };
    const [how, mutate] = rng.pick(Object.entries(mutations));
    return jsonRequest(ctx, target, `json text/${target.path}: ${how}`, mutate());
  },

  'huge body': (ctx) => {
    const { rng } = ctx;
    const over = rng.chance(0.5);
    const size = over ? ctx.bodyLimitBytes + 1 + rng.int(ctx.bodyLimitBytes) : Math.floor(ctx.bodyLimitBytes * 0.9);
    const filler = rng.pick(['A', 'x', '!']);
    const text = JSON.stringify({ image: filler.repeat(size), question: 'q' });
    return jsonRequest(ctx, { method: 'POST', path: '/vqa' }, `huge body: ${size} bytes of '${filler}'`, text);
  },

  'image payload': (ctx) => {
    const { rng } = ctx;
    const bomb = rng.chance(0.25);
    const [what, bytes] = bomb ? rng.pick(Object.entries(ctx.bombs)) : (({ what: w, bytes: b }) => [w, b] as const)(corruptImage(ctx.images, rng));
    const route = rng.pick([
      (image: string) => ({ method: 'POST', path: '/vqa', body: { image, question: 'what is it?' } }),
      (image: string) => ({ method: 'POST', path: '/embed', body: { image } }),
      (image: string) => ({ method: 'PUT', path: '/gallery/bomb', body: { image } }),
      (image: string) => ({ method: 'POST', path: '/nlvr2', body: { images: [image, imageString(ctx)], statement: 's' } }),
    ]);
    if (rng.chance(0.5)) return multipartRequest(ctx, route('').path, route('').method, [['image', { bytes }], ['question', 'what is it?']], `image multipart: ${what}`);
    return jsonRequest(ctx, route(bytes.toString('base64')), `image json: ${bomb ? 'bomb ' : ''}${what}`);
  },

  multipart: (ctx) => multipartOddity(ctx),

  'headers and content types': (ctx) => {
    const { rng } = ctx;
    const target = validTarget(ctx);
    const body = target.body === undefined ? '' : JSON.stringify(target.body);
    const line = `${target.method} ${target.path} HTTP/1.1`;
    const oddities: Record<string, () => Buffer> = {
      'content type': () =>
        rawRequest(line, { connection: 'close', 'content-type': rng.pick(['text/plain', 'application/xml', 'application/json; charset=latin1', 'application/json;;', 'multipart/mixed', 'application/x-www-form-urlencoded', ';', 'application/vnd.api+json', 'APPLICATION/JSON', '*/*', 'image/png']) }, body),
      'content encoding': () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'content-encoding': rng.pick(['gzip', 'br', 'deflate', 'identity, gzip']) }, body),
      'shorter content-length': () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'content-length': String(rng.int(Math.max(1, body.length))) }, body),
      'invalid content-length': () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'content-length': rng.pick(['-1', 'abc', '1e3', '0x10', '2, 3']) }, body),
      'chunked body': () => Buffer.concat([rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'transfer-encoding': 'chunked' }), Buffer.from(`${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`)]),
      'bad chunk size': () => Buffer.concat([rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'transfer-encoding': 'chunked' }), Buffer.from('zz\r\n{}\r\n0\r\n\r\n')]),
      'TE with CL': () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'content-length': '5' }, '0\r\n\r\n'),
      'oversized header': () => rawRequest(line, { connection: 'close', 'x-padding': 'p'.repeat(17_000 + rng.int(10_000)) }),
      'many headers': () => rawRequest(line, { connection: 'close', ...Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v'])) }, body),
      'header token': () => rawRequest(line, { connection: 'close', [rng.pick(['x a', 'x\u0001', '(x)', 'x:y'])]: 'v' }),
      'obs-text value': () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', 'x-latin': '\u00ff\u00e9\u0080' }, body),
      'no host': () => Buffer.from(`GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n`),
      'odd host': () => rawRequest(line, { connection: 'close', host: rng.pick(['', 'a'.repeat(2000), '[::1', 'evil.example:99999']), 'content-type': 'application/json' }, body),
      'bare LF': () => Buffer.from(`GET /healthz HTTP/1.1\nhost: x\nconnection: close\n\n`),
      expect: () => rawRequest(line, { connection: 'close', 'content-type': 'application/json', expect: rng.pick(['100-continue', 'teapot', '']) }, body),
      upgrade: () => rawRequest(line, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }),
      'request line': () => Buffer.from(`${rng.pick(['GARBAGE', 'GET / HTTP/9.9', 'get /healthz HTTP/1.1', 'GET  /healthz  HTTP/1.1', 'GET /healthz', '\x16\x03\x01\x02\x00\x01', 'GET /health\x7fz HTTP/1.1'])}\r\nhost: x\r\nconnection: close\r\n\r\n`, 'latin1'),
      method: () => rawRequest(`${rng.pick(['PATCH', 'TRACE', 'PROPFIND', 'CONNECT', 'HEAD', 'OPTIONS', 'GET', 'SEARCH'])} ${target.path} HTTP/1.1`, { connection: 'close' }),
    };
    const [how, build] = rng.pick(Object.entries(oddities));
    return { label: `headers/${target.path}: ${how}`, bytes: build() };
  },

  'paths and ids': (ctx) => {
    const { rng } = ctx;
    const id = rng.pick([
      '', '.', '..', '%2e%2e', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%2f..%2fetc', 'a'.repeat(129), 'b'.repeat(600), '%C3%BC', '%F0%9F%98%80', '%00', 'a%2Fb', 'a%20b', 'CON', 'x?y', 'id#frag', '%zz', '%', '-', ':::', 'a'.repeat(100_000).slice(0, 300), '%ud800',
    ]);
    const path = rng.pick([`/gallery/${id}`, `/gallery/${id}/more`, `/../../etc/passwd`, `/docs/static/../../package.json`, `/docs/static/${id}`, `/vqa/${id}`, `/${id}`, `/search?${id}=1`, `/gallery/x?model=${id}`, `/metrics?${'q'.repeat(rng.int(12_000))}`, '//healthz', '/healthz/', '/HEALTHZ', '/readyz?verbose']);
    const method = rng.pick(['GET', 'PUT', 'DELETE', 'POST']);
    const body = method === 'PUT' || method === 'POST' ? JSON.stringify({ image: imageString(ctx) }) : undefined;
    return jsonRequest(ctx, { method, path }, `path: ${method} ${path.slice(0, 60)}`, body);
  },
};

export const CATEGORY_NAMES = Object.keys(CATEGORIES);

/** The next hostile request. */
export function hostileRequest(ctx: HostileContext): HostileRequest {
  return CATEGORIES[ctx.rng.pick(CATEGORY_NAMES)]!(ctx);
}

type Part = [string, string | { bytes: Buffer; filename?: string; type?: string }];

/** A multipart/form-data request with the parts as given, with an honest Content-Length. */
function multipartRequest(ctx: HostileContext, path: string, method: string, parts: Part[], label: string, options: { boundary?: string; contentType?: string; tail?: string; eol?: string } = {}): HostileRequest {
  const boundary = options.boundary ?? `----hostile${ctx.rng.int(1e9)}`;
  const eol = options.eol ?? '\r\n';
  const chunks: Buffer[] = [];
  for (const [name, value] of parts) {
    chunks.push(Buffer.from(`--${boundary}${eol}`));
    if (typeof value === 'string') chunks.push(Buffer.from(`content-disposition: form-data; name="${name}"${eol}${eol}${value}${eol}`));
    else {
      chunks.push(Buffer.from(`content-disposition: form-data; name="${name}"; filename="${value.filename ?? 'image.bin'}"${eol}content-type: ${value.type ?? 'application/octet-stream'}${eol}${eol}`));
      chunks.push(value.bytes, Buffer.from(eol));
    }
  }
  chunks.push(Buffer.from(options.tail ?? `--${boundary}--${eol}`));
  const headers = { connection: 'close', 'content-type': options.contentType ?? `multipart/form-data; boundary=${boundary}`, ...authHeader(ctx) };
  return { label, bytes: rawRequest(`${method} ${path} HTTP/1.1`, headers, Buffer.concat(chunks)) };
}

function multipartOddity(ctx: HostileContext): HostileRequest {
  const { rng } = ctx;
  const image = () => ({ bytes: ctx.images[rng.pick(IMAGE_FORMATS)] });
  const oddities: Record<string, () => HostileRequest> = {
    'valid form': () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['question', 'what is it?'], ['top_k', String(1 + rng.int(3))]], 'multipart: valid /vqa'),
    'no boundary': () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['question', 'q']], 'multipart: no boundary', { contentType: 'multipart/form-data' }),
    'wrong boundary': () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['question', 'q']], 'multipart: wrong boundary', { contentType: 'multipart/form-data; boundary=other' }),
    'overlong boundary': () => multipartRequest(ctx, '/embed', 'POST', [['text', 't']], 'multipart: 200-character boundary', { boundary: 'b'.repeat(200) }),
    unterminated: () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['question', 'q']], 'multipart: no closing boundary', { tail: '' }),
    'bare LF': () => multipartRequest(ctx, '/embed', 'POST', [['text', 't']], 'multipart: LF line ends', { eol: '\n' }),
    'file for a text field': () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['question', image()]], 'multipart: question as a file'),
    'text for the image': () => multipartRequest(ctx, '/vqa', 'POST', [['image', rng.pick(['', 'abc', '!!!', imageString(ctx)])], ['question', 'q']], 'multipart: image as a field'),
    'duplicate image': () => multipartRequest(ctx, '/vqa', 'POST', [['image', image()], ['image', image()], ['question', 'q']], 'multipart: two images for one'),
    'long field name': () => multipartRequest(ctx, '/embed', 'POST', [['t'.repeat(500), 'x'], ['text', 't']], 'multipart: 500-character field name'),
    'too many parts': () => multipartRequest(ctx, '/itm', 'POST', [['image', image()], ...Array.from({ length: 200 }, (): Part => ['texts', 't'])], 'multipart: 201 parts'),
    'too many files': () => multipartRequest(ctx, '/itm', 'POST', [...Array.from({ length: 70 }, (): Part => ['images', image()]), ['text', 't']], 'multipart: 70 files'),
    'traversal filename': () => multipartRequest(ctx, '/gallery/f', 'PUT', [['image', { ...image(), filename: '../../../etc/passwd' }]], 'multipart: filename ../../../etc/passwd'),
    'json part': () => multipartRequest(ctx, '/embed', 'POST', [['text', { bytes: Buffer.from(rng.pick(['{bad', '"t"', '[1,2]'])), type: 'application/json', filename: '' }]], 'multipart: application/json part'),
    'proto field': () => multipartRequest(ctx, '/embed', 'POST', [['__proto__', 'x'], ['text', 't']], 'multipart: field __proto__'),
    'unknown field': () => multipartRequest(ctx, '/embed', 'POST', [['text', 't'], [rng.pick(UNICODE_EDGES), 'x']], 'multipart: unicode field name'),
    'numbers as text': () => multipartRequest(ctx, '/search', 'POST', [['text', 't'], ['k', rng.pick(['1e3', '-1', '0x10', ' 5 ', 'NaN', '3.5', ''])]], 'multipart: odd number field'),
  };
  const [, build] = rng.pick(Object.entries(oddities));
  return build();
}
