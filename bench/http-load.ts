/**
 * The HTTP load generator of the latency and throughput benchmarks: node:http with keep-alive agents, and
 * requests prepared (signed) before the clock starts, so what is timed is the server's work plus loopback
 * HTTP, not the client's signing.
 *
 * One timed request runs from just before `http.request()` is called (the request is then written) to the
 * response's `end` event (the full body received). The body is counted, not parsed, inside the timed region.
 *
 * - `sequentialLatency` sends requests one after another over one keep-alive connection (an agent with one
 *   socket): the latency of a single request with nothing else in flight.
 * - `concurrentThroughput` keeps `concurrency` requests in flight over as many keep-alive connections until
 *   a fixed count is done: requests per second at saturation, and the latency each saw under that load.
 *
 * Every loop is bounded twice: by a request count and by a deadline. Only 127.0.0.1 endpoints are accepted.
 */
import http from 'node:http';

/** One request, ready to send: everything computed (and signed) up front. */
export interface PreparedRequest {
  readonly method: 'GET' | 'POST';
  /** Path with its query string. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** One completed request. */
export interface TimedResponse {
  readonly status: number;
  readonly bytes: number;
  readonly ms: number;
}

/** The outcome of a loop. */
export interface LoadResult {
  /** Latency of each completed request, milliseconds, in completion order. */
  readonly latenciesMs: number[];
  /** Wall time from the first request to the last response, milliseconds. */
  readonly elapsedMs: number;
  /** Requests answered with a status other than the expected one, or failed. */
  readonly errors: number;
  /** First error seen, for the report. */
  readonly firstError: string | undefined;
  /** True when the deadline stopped the loop before the count was reached. */
  readonly truncated: boolean;
  /** Response body bytes of the last response (a sanity check that pages were full). */
  readonly lastBytes: number;
}

/** A keep-alive agent for 127.0.0.1 with at most `sockets` connections. */
export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({
    keepAlive: true,
    maxSockets: sockets,
    maxFreeSockets: sockets,
    scheduling: 'fifo',
  });
}

/** Host and port of a `http://127.0.0.1:PORT` endpoint; throws for anything else. */
export function loopbackTarget(endpoint: string): { hostname: string; port: number; host: string } {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' || url.hostname !== '127.0.0.1' || url.port === '') {
    throw new Error(`the benchmark only targets http://127.0.0.1:PORT, not ${endpoint}`);
  }
  return { hostname: url.hostname, port: Number(url.port), host: url.host };
}

/** Sends one prepared request and times it (see the module comment for what is timed). */
export function timedRequest(
  target: { hostname: string; port: number },
  agent: http.Agent,
  prepared: PreparedRequest,
): Promise<TimedResponse> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({
      hostname: target.hostname,
      port: target.port,
      method: prepared.method,
      path: prepared.path,
      headers: prepared.headers,
      agent,
      timeout: 10_000,
    });
    req.on('timeout', () => {
      req.destroy(new Error('request timed out after 10 s'));
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - t0 });
      });
      res.on('error', reject);
    });
    req.end();
  });
}

export interface LoopOptions {
  readonly target: { hostname: string; port: number };
  /** Builds the i-th request (called before the clock starts for it: sign here). */
  readonly prepare: (i: number) => PreparedRequest;
  readonly count: number;
  readonly expectStatus: number;
  /** Absolute deadline, `performance.now()` milliseconds. */
  readonly deadline: number;
}

/**
 * Sends `count` requests one at a time over one keep-alive connection. Each request is prepared (signed)
 * right before it is sent but outside its timed region.
 */
export async function sequentialLatency(
  opts: LoopOptions & { readonly agent: http.Agent },
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let truncated = false;
  let lastBytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < opts.count; i++) {
    if (performance.now() > opts.deadline) {
      truncated = true;
      break;
    }
    const prepared = opts.prepare(i);
    try {
      const r = await timedRequest(opts.target, opts.agent, prepared);
      lastBytes = r.bytes;
      if (r.status === opts.expectStatus) latenciesMs.push(r.ms);
      else {
        errors++;
        firstError ??= `HTTP ${r.status} for ${prepared.method} ${prepared.path.slice(0, 80)}`;
      }
    } catch (err) {
      errors++;
      firstError ??= err instanceof Error ? err.message : String(err);
    }
  }
  return { latenciesMs, elapsedMs: performance.now() - t0, errors, firstError, truncated, lastBytes };
}

/**
 * Sends `count` requests with `concurrency` in flight. All requests are prepared (signed) before the
 * clock starts, so the client's signing cost is not charged to the throughput figure.
 */
export async function concurrentThroughput(
  opts: LoopOptions & { readonly concurrency: number },
): Promise<LoadResult> {
  const prepared = Array.from({ length: opts.count }, (_, i) => opts.prepare(i));
  const agent = keepAliveAgent(opts.concurrency);
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let truncated = false;
  let lastBytes = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (next >= prepared.length) return;
      if (performance.now() > opts.deadline) {
        truncated = true;
        return;
      }
      const request = prepared[next++];
      if (request === undefined) return;
      try {
        const r = await timedRequest(opts.target, agent, request);
        lastBytes = r.bytes;
        if (r.status === opts.expectStatus) latenciesMs.push(r.ms);
        else {
          errors++;
          firstError ??= `HTTP ${r.status} for ${request.method} ${request.path.slice(0, 80)}`;
        }
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    return { latenciesMs, elapsedMs: performance.now() - t0, errors, firstError, truncated, lastBytes };
  } finally {
    agent.destroy();
  }
}
