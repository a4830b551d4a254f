// RpcClient against a loopback server inside the test: what it sends verifies as ACS3, and every kind of
// failure becomes an RpcError with a code a caller can act on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { checkAcs3Request, verifyAcs3Signature } from '../rpc/signature/acs3.js';
import { parseQueryString, type SignedRequestInput } from '../rpc/signature/signed-request.js';
import { RpcClient, RpcError } from './index.js';

const ACCESS_KEY_ID = 'LTAIclientTest01';
const SECRET = 'client-test-secret';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, input: SignedRequestInput) => void;

interface TestServer {
  readonly endpoint: string;
  readonly received: SignedRequestInput[];
  readonly server: http.Server;
  close(): Promise<void>;
}

async function startServer(handler: Handler): Promise<TestServer> {
  const received: SignedRequestInput[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
    });
    req.on('end', () => {
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const input: SignedRequestInput = {
        method: req.method ?? '',
        path: q === -1 ? rawUrl : rawUrl.slice(0, q),
        query: q === -1 ? [] : parseQueryString(rawUrl.slice(q + 1)),
        form: parseQueryString(Buffer.concat(chunks).toString('utf8')),
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      received.push(input);
      handler(req, res, input);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    received,
    server,
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

function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** A client of the loopback test server; 60 s unless the test is about timeouts (a busy CI machine). */
function client(endpoint: string, extra: { timeoutMs?: number; regionId?: string } = {}): RpcClient {
  return new RpcClient({
    endpoint,
    accessKeyId: ACCESS_KEY_ID,
    accessKeySecret: SECRET,
    timeoutMs: 60_000,
    ...extra,
  });
}

async function rpcErrorOf(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

test('a call is sent as a signed POST / with its parameters in the form body, and verifies', async () => {
  const srv = await startServer((_req, res) => {
    json(res, 200, { RequestId: 'r-1', TotalCount: 0 });
  });
  const c = client(srv.endpoint, { regionId: 'cn-hangzhou' });
  try {
    const answer = await c.call<{ RequestId: string; TotalCount: number }>('DescribeKeyPairs', {
      KeyPairName: "a b!'()*+é~",
      PageSize: 50,
      IncludePublicKey: true,
      ResourceGroupId: undefined,
    });
    assert.deepEqual(answer, { RequestId: 'r-1', TotalCount: 0 });
    const [input] = srv.received;
    assert.ok(input !== undefined);
    assert.equal(input.method, 'POST');
    assert.equal(input.path, '/');
    assert.deepEqual(input.query, []);
    assert.equal(input.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.deepEqual(input.form, [
      ['RegionId', 'cn-hangzhou'],
      ['KeyPairName', "a b!'()*+é~"],
      ['PageSize', '50'],
      ['IncludePublicKey', 'true'],
    ]);
    assert.equal(input.headers['x-acs-version'], '2014-05-26');
    assert.equal(input.headers.host, new URL(srv.endpoint).host);
    const claims = checkAcs3Request(input, Date.now());
    assert.equal(claims.accessKeyId, ACCESS_KEY_ID);
    assert.equal(claims.action, 'DescribeKeyPairs');
    assert.match(claims.nonce, /^[0-9a-f]{32}$/);
    assert.equal(verifyAcs3Signature(claims, SECRET), true);
    assert.equal(verifyAcs3Signature(claims, 'other'), false);
    // The signature covers the body: the same headers over a changed body fail the ACS3 check.
    const tampered = { ...input, body: Buffer.from(input.body.toString('utf8').replace('50', '10')) };
    assert.throws(() => checkAcs3Request(tampered, Date.now()), { code: 'SignatureDoesNotMatch' });
  } finally {
    c.close();
    await srv.close();
  }
});

test('the default region is not added when the parameters name RegionId, even as undefined', async () => {
  const srv = await startServer((_req, res) => {
    json(res, 200, { RequestId: 'r' });
  });
  const c = client(srv.endpoint, { regionId: 'cn-hangzhou' });
  try {
    await c.call('RebootInstance', { InstanceId: 'i-1', RegionId: undefined }, { version: '2014-05-26' });
    await c.call('DescribeKeyPairs', { RegionId: 'cn-beijing' });
    assert.deepEqual(srv.received[0]?.form, [['InstanceId', 'i-1']]);
    assert.deepEqual(srv.received[1]?.form, [['RegionId', 'cn-beijing']]);
  } finally {
    c.close();
    await srv.close();
  }
});

test('successive calls reuse one keep-alive connection and each carries a fresh nonce', async () => {
  const ports = new Set<number>();
  const srv = await startServer((req, res) => {
    ports.add(req.socket.remotePort ?? 0);
    json(res, 200, { RequestId: 'r' });
  });
  const c = client(srv.endpoint);
  try {
    for (let i = 0; i < 3; i++) await c.call('DescribeKeyPairs', { RegionId: 'cn-hangzhou' });
    assert.equal(ports.size, 1);
    const nonces = new Set(srv.received.map((input) => input.headers['x-acs-signature-nonce']));
    assert.equal(nonces.size, 3);
  } finally {
    c.close();
    await srv.close();
  }
});

test('a call whose idle keep-alive connection was dropped is resent on a new connection', async () => {
  const requestsPerSocket = new Map<Socket, number>();
  const srv = await startServer((req, res) => {
    const count = (requestsPerSocket.get(req.socket) ?? 0) + 1;
    requestsPerSocket.set(req.socket, count);
    if (count === 2) {
      req.socket.destroy(); // as if the server closed the idle connection just as the client reused it
      return;
    }
    json(res, 200, { RequestId: `r-${srv.received.length}` });
  });
  const c = client(srv.endpoint);
  try {
    await c.call('DescribeKeyPairs', { RegionId: 'cn-hangzhou' });
    const answer = await c.call('DescribeKeyPairs', { RegionId: 'cn-hangzhou' });
    assert.equal(answer.RequestId, 'r-3');
    assert.equal(srv.received.length, 3);
    assert.notEqual(
      srv.received[1]?.headers['x-acs-signature-nonce'],
      srv.received[2]?.headers['x-acs-signature-nonce'],
    );
  } finally {
    c.close();
    await srv.close();
  }
});

test('a 4xx JSON error becomes an RpcError with the code, status and request id', async () => {
  const body = {
    RequestId: 'r-404',
    HostId: '127.0.0.1',
    Code: 'InvalidKeyPairName.NotFound',
    Message: 'The key pair does not exist.',
    Recommend: '',
  };
  const srv = await startServer((_req, res) => {
    json(res, 404, body);
  });
  const c = client(srv.endpoint);
  try {
    const err = await rpcErrorOf(c.call('AttachKeyPair', { RegionId: 'cn-hangzhou', KeyPairName: 'nope' }));
    assert.equal(err.code, 'InvalidKeyPairName.NotFound');
    assert.equal(err.status, 404);
    assert.equal(err.requestId, 'r-404');
    assert.deepEqual(err.data, body);
    assert.equal(err.retryAfterMs, undefined);
  } finally {
    c.close();
    await srv.close();
  }
});

test('a throttled answer carries its retry-after in milliseconds', async () => {
  const srv = await startServer((_req, res) => {
    json(
      res,
      429,
      { RequestId: 'r', Code: 'Throttling.User', Message: 'slow down' },
      { 'x-acs-retry-after': '1500' },
    );
  });
  const c = client(srv.endpoint);
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'Throttling.User');
    assert.equal(err.status, 429);
    assert.equal(err.retryAfterMs, 1500);
  } finally {
    c.close();
    await srv.close();
  }
});

test('a non-JSON error body becomes a readable RpcError', async () => {
  const srv = await startServer((_req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><body>Bad Gateway</body></html>');
  });
  const c = client(srv.endpoint);
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'InvalidResponse');
    assert.equal(err.status, 502);
    assert.match(err.message, /Bad Gateway/);
  } finally {
    c.close();
    await srv.close();
  }
});

test('a success answer that is not a JSON object is an InvalidResponse', async () => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('[1,2');
  });
  const c = client(srv.endpoint);
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'InvalidResponse');
    assert.equal(err.status, 200);
  } finally {
    c.close();
    await srv.close();
  }
});

test('an answer larger than the bound is refused', async () => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(9 * 1024 * 1024) });
    res.write('{');
  });
  const c = client(srv.endpoint);
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'ResponseTooLarge');
  } finally {
    c.close();
    await srv.close();
  }
});

test('a server that does not answer in time gives a Timeout', async () => {
  const srv = await startServer(() => {
    // never answer
  });
  const c = client(srv.endpoint, { timeoutMs: 150 });
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'Timeout');
    assert.equal(err.status, 0);
  } finally {
    c.close();
    await srv.close();
  }
});

test('an aborted call gives Aborted', async () => {
  const srv = await startServer(() => {
    // never answer
  });
  const c = client(srv.endpoint);
  try {
    const controller = new AbortController();
    const pending = c.call('DescribeKeyPairs', {}, { signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 50);
    const err = await rpcErrorOf(pending);
    assert.equal(err.code, 'Aborted');
    const already = await rpcErrorOf(c.call('DescribeKeyPairs', {}, { signal: AbortSignal.abort() }));
    assert.equal(already.code, 'Aborted');
  } finally {
    c.close();
    await srv.close();
  }
});

test('a refused connection gives a NetworkError naming the endpoint', async () => {
  const srv = await startServer(() => undefined);
  const endpoint = srv.endpoint;
  await srv.close();
  const c = client(endpoint);
  try {
    const err = await rpcErrorOf(c.call('DescribeKeyPairs', {}));
    assert.equal(err.code, 'NetworkError');
    assert.equal(err.status, 0);
    assert.ok(err.message.includes(endpoint));
    assert.ok(!err.message.includes(SECRET));
  } finally {
    c.close();
  }
});

test('an endpoint that is not http(s)://host:port is refused at construction', () => {
  for (const endpoint of [
    '127.0.0.1:8080',
    'ftp://127.0.0.1',
    'http://127.0.0.1:8080/api',
    'http://u:p@127.0.0.1',
  ]) {
    assert.throws(() => client(endpoint), endpoint);
  }
});
