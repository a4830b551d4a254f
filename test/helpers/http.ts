/**
 * Raw HTTP for the tests that need to control every byte: hand-signed requests (signAcs3), replays of a
 * request the SDK sent (captured by a recording proxy), unsigned and oversized requests.
 */
import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { signAcs3 } from '../../src/rpc/signature/acs3.js';

export interface RawRequest {
  readonly method: string;
  /** Path and query, e.g. `/?RegionId=local`. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body?: Buffer;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly json: Record<string, unknown> | undefined;
}

/** Sends one request on a fresh connection to `hostPort` (127.0.0.1:PORT) and reads the whole answer. */
export function sendRaw(hostPort: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(`http://${hostPort}`);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers: req.headers,
        agent: false,
        setHost: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | undefined;
          try {
            const parsed: unknown = JSON.parse(text);
            if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

export interface SignOptions {
  readonly hostPort: string;
  readonly action: string;
  readonly version?: string;
  readonly query: ReadonlyArray<readonly [string, string]>;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly dateMs?: number;
  readonly nonce?: string;
  readonly body?: Buffer;
  readonly contentType?: string;
}

/** A request signed with Keyward's `signAcs3` (the SDK's ACS3-HMAC-SHA256 canonicalisation). */
export function signedRequest(opts: SignOptions): RawRequest & { authorization: string } {
  const signed = signAcs3({
    host: opts.hostPort,
    action: opts.action,
    version: opts.version ?? '2014-05-26',
    query: opts.query,
    accessKeyId: opts.accessKeyId,
    accessKeySecret: opts.accessKeySecret,
    dateMs: opts.dateMs ?? Date.now(),
    nonce: opts.nonce ?? randomUUID().replaceAll('-', ''),
    ...(opts.body !== undefined && { body: opts.body }),
    ...(opts.contentType !== undefined && { contentType: opts.contentType }),
  });
  const body = opts.body ?? Buffer.alloc(0);
  return {
    method: 'POST',
    path: signed.queryString === '' ? '/' : `/?${signed.queryString}`,
    headers: { ...signed.headers, 'content-length': String(body.length) },
    body,
    authorization: signed.headers['authorization'] ?? '',
  };
}

/** A request as it arrived at the recording proxy. */
export interface RecordedRequest extends RawRequest {
  readonly body: Buffer;
}

export interface RecordingProxy {
  /** `127.0.0.1:PORT` of the proxy: give this to the SDK as its endpoint. */
  readonly hostPort: string;
  readonly recorded: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * A tiny HTTP proxy in front of `targetHostPort` that records every request (method, path with query,
 * headers, body) and forwards it unchanged, `host` header included.
 */
export async function startRecordingProxy(targetHostPort: string): Promise<RecordingProxy> {
  const target = new URL(`http://${targetHostPort}`);
  const recorded: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name] = value;
      }
      const entry: RecordedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers,
        body: Buffer.concat(chunks),
      };
      recorded.push(entry);
      const upstream = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: entry.method,
          path: entry.path,
          headers: entry.headers,
          agent: false,
          setHost: false,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
      upstream.end(entry.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    hostPort: `127.0.0.1:${port}`,
    recorded,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/** RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ stay literal. */
export function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface V1SignOptions {
  readonly hostPort: string;
  readonly method: 'GET' | 'POST';
  readonly action: string;
  readonly version?: string;
  readonly params: ReadonlyArray<readonly [string, string]>;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly nonce?: string;
  /** Epoch ms of the Timestamp parameter (default now). */
  readonly dateMs?: number;
  /** Send the parameters (signature included) in a form-encoded body instead of the query. */
  readonly inBody?: boolean;
}

/**
 * A request signed with the legacy v1 signature, written here from Alibaba Cloud's documentation (not with
 * Keyward's code): StringToSign = METHOD&%2F&encode(sorted k=v joined by &), HMAC-SHA1 with secret + "&".
 */
export function signedV1Request(opts: V1SignOptions): RawRequest {
  const pairs: Array<[string, string]> = [
    ['Action', opts.action],
    ['Version', opts.version ?? '2014-05-26'],
    ['Format', 'JSON'],
    ['AccessKeyId', opts.accessKeyId],
    ['SignatureMethod', 'HMAC-SHA1'],
    ['SignatureVersion', '1.0'],
    ['SignatureNonce', opts.nonce ?? randomUUID()],
    ['Timestamp', new Date(opts.dateMs ?? Date.now()).toISOString().replace(/\.\d{3}Z$/, 'Z')],
    ...opts.params.map(([k, v]): [string, string] => [k, v]),
  ];
  const canonical = pairs
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const stringToSign = `${opts.method}&${rfc3986('/')}&${rfc3986(canonical)}`;
  const signature = createHmac('sha1', `${opts.accessKeySecret}&`).update(stringToSign).digest('base64');
  const encoded = `${canonical}&Signature=${rfc3986(signature)}`;
  if (opts.inBody === true) {
    const body = Buffer.from(encoded);
    return {
      method: opts.method,
      path: '/',
      headers: {
        host: opts.hostPort,
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': String(body.length),
      },
      body,
    };
  }
  return { method: opts.method, path: `/?${encoded}`, headers: { host: opts.hostPort } };
}
