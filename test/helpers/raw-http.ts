import { connect } from 'node:net';

/** One HTTP/1.1 answer as it came over the wire. */
export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Sends `bytes` as they are over a fresh TCP connection and reads the first answer: for requests
 * that `fetch` refuses to send (bad request lines, oversized or invalid headers, missing Host),
 * which only Node's parser sees. Rejects on a timeout, saying it was one.
 */
export function sendRaw(url: string, bytes: string | Buffer, timeoutMs = 30_000): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  // The answer to a HEAD has a Content-Length but no body.
  const head = (typeof bytes === 'string' ? bytes : bytes.toString('latin1', 0, 5)).startsWith('HEAD ');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      const response = error ? undefined : parseResponse(Buffer.concat(chunks), { head });
      if (!error && !response) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (response) resolve(response);
      else reject(error);
    };
    const timer = setTimeout(() => finish(new Error(`timeout: no complete answer within ${timeoutMs} ms (got ${Buffer.concat(chunks).length} bytes)`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      finish();
    });
    // The server may close (or reset) as soon as it has answered a request it could not parse.
    socket.on('error', () => finish(new Error(`the connection failed before a complete answer (got ${Buffer.concat(chunks).length} bytes)`)));
    socket.on('close', () => finish(new Error(`the connection closed before a complete answer (got ${Buffer.concat(chunks).length} bytes: ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))})`)));
    socket.write(bytes);
  });
}

/** The first complete answer in `data` (skipping `100 Continue`), or undefined while it is incomplete; `head`: the answer to a HEAD (no body). */
export function parseResponse(data: Buffer, { head = false } = {}): RawResponse | undefined {
  let start = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', start);
    if (end < 0) return undefined;
    const lines = data.subarray(start, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
    if (status === 100) {
      start = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = end + 4;
    if (head) return { status, headers, body: Buffer.alloc(0) };
    if (headers['transfer-encoding'] === 'chunked') return dechunk(data.subarray(bodyStart), status, headers);
    const length = Number(headers['content-length'] ?? 0);
    if (data.length < bodyStart + length) return undefined;
    return { status, headers, body: data.subarray(bodyStart, bodyStart + length) };
  }
}

function dechunk(data: Buffer, status: number, headers: Record<string, string>): RawResponse | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return { status, headers, body: Buffer.concat(parts) };
    if (data.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** A request as raw bytes: `head` is the request line; a body gets its Content-Length unless `headers` set one. */
export function rawRequest(head: string, headers: Record<string, string>, body: string | Buffer = ''): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const all = { host: '127.0.0.1', ...(bytes.length > 0 ? { 'content-length': String(bytes.length) } : {}), ...headers };
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}`);
  return Buffer.concat([Buffer.from(`${head}\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bytes]);
}
