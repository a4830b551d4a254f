/**
 * The signing HTTP client of Keyward's API, used by the CLI, the tests and the benchmarks.
 *
 * It sends `POST /` with every parameter in an `application/x-www-form-urlencoded` body and nothing in the
 * query string, so that passwords, MFA codes and key material never appear in a URL (which proxies, load
 * balancers and access logs record). The headers `host`, `x-acs-action`, `x-acs-version`, `x-acs-date`,
 * `x-acs-signature-nonce`, `x-acs-content-sha256` (the SHA-256 of that body), `content-type` and
 * `authorization` are signed by `signAcs3` (the same canonicalisation the server verifies with), so the
 * signature covers the body. Responses are JSON; HTTP ≥ 400 becomes an `RpcError` carrying the server's
 * error code.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import { signAcs3 } from '../rpc/signature/acs3.js';
import { percentEncode } from '../rpc/signature/percent-encode.js';

/**
 * node:https (and TLS under it) is loaded only for an https endpoint: loading it costs a few milliseconds
 * of every CLI command's start, which a command talking plain http need not pay.
 */
const requireBuiltin = createRequire(import.meta.url);
function loadHttps(): typeof https {
  return requireBuiltin('node:https') as typeof https;
}

/** The API version sent when the caller names none. */
export const DEFAULT_API_VERSION = '2014-05-26';

/** Default time allowed for one call (connect, send, full response), in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The media type of the request body that carries the parameters. */
const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded';

/** Largest response body accepted, in bytes. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/**
 * Codes of failures detected by the client itself (they never come from the server, whose codes are in
 * the error registry): the server could not be reached, the call timed out or was aborted, or the answer
 * was not a Keyward JSON response.
 */
export const RPC_CLIENT_ERROR_CODES = [
  'NetworkError',
  'Timeout',
  'Aborted',
  'InvalidResponse',
  'ResponseTooLarge',
] as const;

/** One of `RPC_CLIENT_ERROR_CODES`. */
export type RpcClientErrorCode = (typeof RPC_CLIENT_ERROR_CODES)[number];

/** A failed call: the server's error code and status, or a client-side code with status 0. */
export class RpcError extends Error {
  /** The server's `Code` (e.g. `KeyPair.AlreadyExist`) or one of `RPC_CLIENT_ERROR_CODES`. */
  readonly code: string;
  /** The HTTP status, or 0 when no response was received. */
  readonly status: number;
  /** The server's `RequestId`, when it sent one. */
  readonly requestId?: string;
  /** The parsed error body (`{ RequestId, HostId, Code, Message, Recommend, … }`), or the raw text. */
  readonly data: unknown;
  /** From the `x-acs-retry-after` header of a throttled answer, in milliseconds. */
  readonly retryAfterMs?: number;

  constructor(
    code: string,
    status: number,
    message: string,
    extra: {
      requestId?: string | undefined;
      data?: unknown;
      retryAfterMs?: number | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'RpcError';
    this.code = code;
    this.status = status;
    if (extra.requestId !== undefined) this.requestId = extra.requestId;
    this.data = extra.data;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

/** Options of `RpcClient`. */
export interface RpcClientOptions {
  /** `http://host:port` or `https://host:port`, without a path. */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  /** Sent as `RegionId` when the call's parameters have no `RegionId` key at all. */
  readonly regionId?: string;
  /** Time allowed for one call, default `DEFAULT_TIMEOUT_MS`. */
  readonly timeoutMs?: number;
  /** Extra trusted CA certificate(s) (PEM) for an https endpoint. */
  readonly ca?: string | Buffer;
  /** The agent to use instead of the client's own keep-alive agent. */
  readonly agent?: http.Agent;
}

/** Parameter values of a call; `undefined` ones are omitted. */
export type RpcParams = Readonly<Record<string, string | number | boolean | undefined>>;

/** Per-call options of `RpcClient.call`. */
export interface RpcCallOptions {
  /** Default `DEFAULT_API_VERSION`. */
  readonly version?: string;
  readonly signal?: AbortSignal;
}

const NETWORK_ERROR_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the server',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed by the server',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted (pass its CA)',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain is not trusted (pass its CA)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not trusted (pass its CA)',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not match the host name',
};

/** A failure before a complete response, raised in the request callbacks and turned into an RpcError. */
class CallFailure extends Error {
  constructor(
    readonly code: RpcClientErrorCode,
    message: string,
    cause: unknown,
    readonly retryable: boolean,
  ) {
    super(message, { cause });
  }
}

interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Signs and sends ECS-style RPC calls to one Keyward endpoint. */
export class RpcClient {
  readonly #url: URL;
  readonly #host: string;
  readonly #accessKeyId: string;
  readonly #accessKeySecret: string;
  readonly #regionId: string | undefined;
  readonly #timeoutMs: number;
  readonly #agent: http.Agent;
  readonly #ownsAgent: boolean;
  readonly #transport: typeof http | typeof https;
  readonly #ca: string | Buffer | undefined;

  /** @throws Error when the endpoint is not an `http(s)://host[:port]` URL or the timeout is not positive. */
  constructor(opts: RpcClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.endpoint);
    } catch {
      throw new Error(
        `The endpoint "${opts.endpoint}" is not a URL; use http://host:port or https://host:port.`,
      );
    }
    if (
      (url.protocol !== 'http:' && url.protocol !== 'https:') ||
      (url.pathname !== '/' && url.pathname !== '') ||
      url.search !== '' ||
      url.hash !== '' ||
      url.username !== '' ||
      url.password !== ''
    ) {
      throw new Error(
        `The endpoint "${opts.endpoint}" must be http://host:port or https://host:port, with no path.`,
      );
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new Error(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    this.#url = url;
    this.#host = url.host;
    this.#accessKeyId = opts.accessKeyId;
    this.#accessKeySecret = opts.accessKeySecret;
    this.#regionId = opts.regionId;
    this.#timeoutMs = timeoutMs;
    const secure = url.protocol === 'https:';
    const tls = secure ? loadHttps() : undefined;
    this.#transport = tls ?? http;
    this.#ca = opts.ca;
    if (opts.agent !== undefined) {
      this.#agent = opts.agent;
      this.#ownsAgent = false;
    } else {
      this.#agent =
        tls !== undefined ? new tls.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
      this.#ownsAgent = true;
    }
  }

  /** The extra trusted CA certificate(s) this client was given, for other connections to the same server. */
  get ca(): string | Buffer | undefined {
    return this.#ca;
  }

  /** The endpoint this client talks to, e.g. `http://127.0.0.1:8080`. */
  get endpoint(): string {
    return this.#url.origin;
  }

  /**
   * Calls `action` with `params` and returns the parsed JSON answer. `T` is the caller's description of
   * that answer; it is not checked.
   *
   * @throws RpcError with the server's code on HTTP ≥ 400, or with a `RPC_CLIENT_ERROR_CODES` code when the
   *   server cannot be reached, does not answer in time, the call is aborted or the answer is not JSON.
   */
  async call<T = Record<string, unknown>>(
    action: string,
    params: RpcParams,
    opts: RpcCallOptions = {},
  ): Promise<T> {
    const form = Buffer.from(formBody(this.#paramPairs(params)), 'utf8');
    const version = opts.version ?? DEFAULT_API_VERSION;
    let response: RawResponse;
    try {
      response = await this.#send(action, version, form, opts.signal);
    } catch (err) {
      // A keep-alive socket the server closed while idle fails at once on reuse; the request never
      // reached the server, so send it again, freshly signed, on a new connection.
      if (!(err instanceof CallFailure) || !err.retryable) throw this.#toRpcError(err);
      try {
        response = await this.#send(action, version, form, opts.signal);
      } catch (again) {
        throw this.#toRpcError(again);
      }
    }
    return this.#parse(response) as T;
  }

  /** Closes the idle keep-alive connections of the client's own agent (not of an agent passed in). */
  close(): void {
    if (this.#ownsAgent) this.#agent.destroy();
  }

  #paramPairs(params: RpcParams): Array<[string, string]> {
    const pairs: Array<[string, string]> = [];
    if (this.#regionId !== undefined && !Object.hasOwn(params, 'RegionId'))
      pairs.push(['RegionId', this.#regionId]);
    for (const [name, value] of Object.entries(params)) {
      if (value === undefined) continue;
      if (typeof value === 'number' && !Number.isFinite(value)) {
        throw new TypeError(`Parameter ${name} is ${value}; pass a finite number.`);
      }
      pairs.push([name, String(value)]);
    }
    return pairs;
  }

  #send(
    action: string,
    version: string,
    form: Buffer,
    signal: AbortSignal | undefined,
  ): Promise<RawResponse> {
    // Nothing goes in the query string; the body's SHA-256 (x-acs-content-sha256) and its content-type
    // are signed, so the parameters are covered by the signature as they would be in the query.
    const signed = signAcs3({
      host: this.#host,
      action,
      version,
      query: [],
      body: form,
      contentType: FORM_CONTENT_TYPE,
      accessKeyId: this.#accessKeyId,
      accessKeySecret: this.#accessKeySecret,
      dateMs: Date.now(),
      nonce: randomUUID().replaceAll('-', ''),
    });
    return new Promise<RawResponse>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(new CallFailure('Aborted', `The call to ${this.endpoint} was aborted.`, signal.reason, false));
        return;
      }
      let settled = false;
      const finish = (outcome: { ok: RawResponse } | { failure: CallFailure }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if ('ok' in outcome) resolve(outcome.ok);
        else reject(outcome.failure);
      };
      const req = this.#transport.request({
        protocol: this.#url.protocol,
        hostname: this.#url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: this.#url.port,
        method: 'POST',
        path: '/',
        agent: this.#agent,
        ...(this.#ca === undefined ? {} : { ca: this.#ca }),
        headers: {
          ...signed.headers,
          accept: 'application/json',
          'content-length': String(form.length),
          'user-agent': `keyward-client (Node.js ${process.version})`,
        },
      });
      const fail = (failure: CallFailure): void => {
        finish({ failure });
        req.destroy();
      };
      const timer = setTimeout(() => {
        fail(
          new CallFailure(
            'Timeout',
            `${this.endpoint} did not answer within ${this.#timeoutMs} ms.`,
            undefined,
            false,
          ),
        );
      }, this.#timeoutMs);
      const onAbort = (): void => {
        fail(new CallFailure('Aborted', `The call to ${this.endpoint} was aborted.`, signal?.reason, false));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        const reason = NETWORK_ERROR_TEXT[code] ?? err.message;
        const hint = code === 'ECONNREFUSED' ? ' — is `keyward server` running?' : '';
        const retryable = req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE');
        finish({
          failure: new CallFailure(
            'NetworkError',
            `cannot reach ${this.endpoint}: ${reason}${hint}`,
            err,
            retryable,
          ),
        });
      });
      req.on('response', (res) => {
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > MAX_RESPONSE_BYTES) {
          fail(this.#tooLarge(res.statusCode ?? 0));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            fail(this.#tooLarge(res.statusCode ?? 0));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          finish({ ok: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) } });
        });
        res.on('error', (err) => {
          finish({
            failure: new CallFailure(
              'NetworkError',
              `${this.endpoint} broke off its answer: ${err.message}`,
              err,
              false,
            ),
          });
        });
      });
      req.end(form);
    });
  }

  #tooLarge(status: number): CallFailure {
    return new CallFailure(
      'ResponseTooLarge',
      `The answer of ${this.endpoint} (HTTP ${status}) exceeds ${MAX_RESPONSE_BYTES} bytes.`,
      undefined,
      false,
    );
  }

  #toRpcError(err: unknown): RpcError {
    if (err instanceof CallFailure) return new RpcError(err.code, 0, err.message, { cause: err.cause });
    if (err instanceof RpcError) return err;
    return new RpcError('NetworkError', 0, `The call to ${this.endpoint} failed: ${String(err)}`, {
      cause: err,
    });
  }

  #parse(res: RawResponse): Record<string, unknown> {
    const text = res.body.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const isObject = typeof json === 'object' && json !== null && !Array.isArray(json);
    if (res.status >= 200 && res.status < 300) {
      if (!isObject) {
        throw new RpcError(
          'InvalidResponse',
          res.status,
          `${this.endpoint} answered HTTP ${res.status} with a body that is not a JSON object: "${excerpt(text)}"`,
          { data: text },
        );
      }
      return json as Record<string, unknown>;
    }
    const body: Record<string, unknown> = isObject ? (json as Record<string, unknown>) : {};
    const code = typeof body.Code === 'string' && body.Code !== '' ? body.Code : undefined;
    const requestId = typeof body.RequestId === 'string' ? body.RequestId : undefined;
    const retryAfter = Number(firstHeader(res.headers['x-acs-retry-after']));
    const retryAfterMs = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
    if (code === undefined) {
      throw new RpcError(
        'InvalidResponse',
        res.status,
        `${this.endpoint} answered HTTP ${res.status} without a Keyward error body: "${excerpt(text)}"`,
        { requestId, data: isObject ? json : text, retryAfterMs },
      );
    }
    const message = typeof body.Message === 'string' && body.Message !== '' ? body.Message : code;
    throw new RpcError(code, res.status, message, { requestId, data: json, retryAfterMs });
  }
}

/** The `application/x-www-form-urlencoded` body of `pairs`, each name and value RFC 3986-encoded. */
function formBody(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`).join('&');
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= 200 ? flat : `${flat.slice(0, 200)}…`;
}
