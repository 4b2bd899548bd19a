import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ERROR_CODES } from '../../common/errors.js';
import { HTTP_ERROR_CODES } from '../../server/schemas/errors.js';
import { startServer, type RunningServer } from '../../server/start.js';
import { documentedErrors, envelopeViolation } from '../helpers/documented-errors.js';
import { parseResponse, rawRequest, sendRaw, type RawResponse } from '../helpers/raw-http.js';
import { FakeModelService, memoryGallery, testOptions } from './http-fakes.js';

const DOCUMENTED = documentedErrors();
const KEY = 'hostile-key';

/** Asserts a documented error in the envelope, and returns its message. */
function assertError(response: RawResponse, status: number, code: string): string {
  const body = response.body.toString('utf8');
  assert.equal(envelopeViolation(response.status, response.headers['content-type'], body, DOCUMENTED), undefined);
  assert.equal(response.status, status, body);
  const { error } = JSON.parse(body) as { error: { code: string; message: string } };
  assert.equal(error.code, code);
  return error.message;
}

describe("docs/server.md's error table", () => {
  it('lists every HTTP error code with the status the server sends', () => {
    for (const [code, status] of Object.entries(HTTP_ERROR_CODES)) assert.equal(DOCUMENTED.get(code), status, code);
  });

  it("gives the model's own codes the status common/errors.ts gives them", () => {
    for (const [code, status] of DOCUMENTED) {
      if (code in ERROR_CODES && !(code in HTTP_ERROR_CODES)) assert.equal(status, ERROR_CODES[code as keyof typeof ERROR_CODES].httpStatus, code);
    }
  });
});

describe("what only Node's HTTP parser and Fastify's router see answers in the error envelope", () => {
  let server: RunningServer;
  let gallery: Awaited<ReturnType<typeof memoryGallery>>;
  before(async () => {
    gallery = await memoryGallery();
    server = await startServer(testOptions({ host: '127.0.0.1', port: 0, apiKey: KEY }), { services: [new FakeModelService()], gallery });
  });
  after(() => server.stop());
  const get = (path: string, headers: Record<string, string> = {}) => sendRaw(server.url, rawRequest(`GET ${path} HTTP/1.1`, { connection: 'close', ...headers }));

  it('a URL over the header-size limit is a 431 E_HEADERS_TOO_LARGE', async () => {
    assert.match(assertError(await get(`/${'a'.repeat(20_000)}`), 431, 'E_HEADERS_TOO_LARGE'), /shorten the URL/);
  });

  it('headers over the header-size limit are a 431 E_HEADERS_TOO_LARGE', async () => {
    assertError(await get('/healthz', { 'x-padding': 'p'.repeat(20_000) }), 431, 'E_HEADERS_TOO_LARGE');
  });

  it('a path segment over the router limit is a 414 E_URI_TOO_LONG; a 129-character gallery id is the id rule\'s 400', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    assertError(await sendRaw(server.url, rawRequest(`DELETE /gallery/${'i'.repeat(600)} HTTP/1.1`, { connection: 'close', ...auth })), 414, 'E_URI_TOO_LONG');
    assert.match(assertError(await sendRaw(server.url, rawRequest(`DELETE /gallery/${'i'.repeat(129)} HTTP/1.1`, { connection: 'close', ...auth })), 422, 'E_INVALID_FIELDS'), /128/);
  });

  it('a malformed percent-encoding is a 400 E_BAD_REQUEST, not FST_ERR_BAD_URL', async () => {
    assert.match(assertError(await get('/gallery/%zz'), 400, 'E_BAD_REQUEST'), /percent-encoding/);
  });

  const malformed: Array<[string, string | Buffer, RegExp]> = [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', /HPE_INVALID_METHOD/],
    ['a non-numeric Content-Length', rawRequest('POST /embed HTTP/1.1', { 'content-type': 'application/json', 'content-length': 'ten' }, '{}'), /Content-Length/],
    ['both Content-Length and Transfer-Encoding', rawRequest('POST /embed HTTP/1.1', { 'content-type': 'application/json', 'content-length': '2', 'transfer-encoding': 'chunked' }, '{}'), /Transfer-Encoding/],
    ['a control character in a header name', rawRequest('GET /healthz HTTP/1.1', { 'x-a\x01b': 'c' }), /HPE_INVALID_HEADER_TOKEN/],
  ];
  for (const [what, bytes, reason] of malformed) {
    it(`${what} is a 400 E_BAD_REQUEST naming the parser's reason`, async () => {
      assert.match(assertError(await sendRaw(server.url, bytes), 400, 'E_BAD_REQUEST'), reason);
    });
  }

  it('an HTTP/1.1 request without Host is a 400 with a body, not a bodyless one', async () => {
    assert.match(assertError(await sendRaw(server.url, 'GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n'), 400, 'E_BAD_REQUEST'), /Host/);
  });

  it('an Expect other than 100-continue is a 417 E_EXPECTATION_FAILED; 100-continue is served', async () => {
    const body = JSON.stringify({ text: 't' });
    assertError(await sendRaw(server.url, rawRequest('POST /embed HTTP/1.1', { 'content-type': 'application/json', expect: 'teapot', connection: 'close' }, body)), 417, 'E_EXPECTATION_FAILED');
    assert.equal((await sendRaw(server.url, rawRequest('POST /embed HTTP/1.1', { 'content-type': 'application/json', expect: '100-continue', connection: 'close' }, body))).status, 200);
  });

  it('CONNECT, which Node would drop unanswered, is a 404 E_NOT_FOUND', async () => {
    assert.match(assertError(await sendRaw(server.url, rawRequest('CONNECT example.com:443 HTTP/1.1', {})), 404, 'E_NOT_FOUND'), /not a proxy/);
  });

  it('a path outside the /docs folder is a 404 E_NOT_FOUND, not a 403 with E_BAD_REQUEST', async () => {
    assertError(await get('/docs/static/../../../package.json'), 404, 'E_NOT_FOUND');
  });

  it('DELETE with Content-Type: application/json and an empty body is served', async () => {
    await gallery.put({ id: 'kept', image: new Uint8Array([1, 2, 3]), encoding: { hash: 'h', itc: Float32Array.from([1]), embeds: Float32Array.from([1]) } });
    const response = await fetch(`${server.url}/gallery/kept`, { method: 'DELETE', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } });
    assert.equal(response.status, 200, await response.clone().text());
    assert.deepEqual(await response.json(), { id: 'kept', deleted: true, model: 'fake', precision: 'fp32' });
  });

  it('an empty body with a JSON Content-Type on a route that needs a body is still a 400 that says so', async () => {
    const response = await sendRaw(server.url, rawRequest('POST /embed HTTP/1.1', { 'content-type': 'application/json', 'content-length': '0', connection: 'close' }));
    assert.match(assertError(response, 400, 'E_BAD_REQUEST'), /empty/);
  });
});

describe('shutdown', () => {
  it('a request that arrives while the server shuts down is a 503 E_NOT_READY in the envelope, not Fastify\'s bare 503', async () => {
    const server = await startServer(testOptions({ host: '127.0.0.1', port: 0 }), { services: [new FakeModelService()] });
    const { port } = new URL(server.url);
    // A connection in the middle of its request headers is busy, so the close does not drop it.
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('POST /embed HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stopped = server.stop('test');
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.write(`content-length: 12\r\n\r\n${JSON.stringify({ text: 'a' })}`);
    await closed;
    await stopped;
    const response = parseResponse(Buffer.concat(chunks));
    assert.ok(response, `an answer came back: ${Buffer.concat(chunks).toString('latin1')}`);
    assert.match(assertError(response, 503, 'E_NOT_READY'), /shutting down/);
    assert.equal(response.headers.connection?.toLowerCase(), 'close');
    assert.equal(response.headers['retry-after'], '1');
  });
});
