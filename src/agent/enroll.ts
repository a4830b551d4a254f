/**
 * Enrollment, the agent's first contact with the server: POST /agent/v1/enroll with the one-time token,
 * the identity public key and the host facts; the answer names the instance and carries the server's
 * grant-signing key to pin. Plain node:http(s) with a timeout, a bounded response and, for https, the
 * operator's CA bundle. With several server URLs (replicas of one Keyward) they are tried in order until
 * one answers. The token is sent in the body only and never logged or put in an error.
 */
import http from 'node:http';
import https from 'node:https';
import {
  AgentProtocolError,
  ENROLL_PATH,
  MAX_AGENT_MESSAGE_BYTES,
  parseEnrollResponse,
  type EnrollRequest,
  type EnrollResponse,
} from '../agent-channel/index.js';
import { AgentError } from './agent-error.js';
import { isEd25519RawKey } from './agent-state.js';

/** How to reach the server for enrollment. */
export interface EnrollTarget {
  /** Base URL, http: or https:, without a trailing slash. */
  readonly serverUrl: string;
  /** PEM CA bundle to trust for https (default: Node's built-in roots). */
  readonly ca?: string | Buffer;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Enrolls; resolves with the validated response. Throws `Agent.EnrollmentRejected` (with `serverCode`)
 * when the server refuses the request (4xx), `Agent.EnrollmentFailed` for anything that may pass on a
 * later try (network, timeout, 5xx, a response that is not Keyward's).
 */
export async function enroll(target: EnrollTarget, request: EnrollRequest): Promise<EnrollResponse> {
  const url = `${target.serverUrl}${ENROLL_PATH}`;
  const { status, body } = await postJson(url, JSON.stringify(request), target);
  if (status === 200) {
    let response: EnrollResponse;
    try {
      response = parseEnrollResponse(body);
    } catch (err) {
      if (!(err instanceof AgentProtocolError)) throw err;
      throw new AgentError(
        'Agent.EnrollmentFailed',
        `${url} answered with an invalid enrollment response: ${err.message}`,
      );
    }
    if (!isEd25519RawKey(response.grantSigningPublicKey)) {
      throw new AgentError(
        'Agent.EnrollmentFailed',
        `${url} sent a grant-signing key that is not a 32-byte Ed25519 key`,
      );
    }
    return response;
  }
  const ecs = ecsError(body);
  const what = ecs === undefined ? `HTTP ${status}` : `${ecs.code}: ${ecs.message} (HTTP ${status})`;
  // 4xx is the server's considered refusal (bad token, revoked...); 408/429 and 5xx may pass on a retry.
  const permanent = status >= 400 && status < 500 && status !== 408 && status !== 429;
  throw new AgentError(
    permanent ? 'Agent.EnrollmentRejected' : 'Agent.EnrollmentFailed',
    `enrollment refused by ${url}: ${what}`,
    ecs === undefined ? undefined : { serverCode: ecs.code },
  );
}

/** Where an enrollment through several server URLs ended. */
export interface EnrolledThrough {
  /** The server URL that accepted the enrollment. */
  readonly serverUrl: string;
  readonly response: EnrollResponse;
}

/**
 * Enrolls through the first of `serverUrls` that answers, in order. A failure that may pass on another
 * try (`Agent.EnrollmentFailed`: network, timeout, 408, 429, 5xx, an answer that is not Keyward's) moves
 * to the next URL, after `onFailover` is told; a refusal (`Agent.EnrollmentRejected`, such as a spent
 * token) is final: every replica shares the same tokens, so asking another could not change the answer.
 * When every URL fails, the error is `Agent.EnrollmentFailed` naming each (with one URL: its own error).
 */
export async function enrollWithAny(
  serverUrls: readonly string[],
  target: Omit<EnrollTarget, 'serverUrl'>,
  request: EnrollRequest,
  onFailover: (serverUrl: string, err: AgentError) => void = () => undefined,
): Promise<EnrolledThrough> {
  const failures: AgentError[] = [];
  for (const [i, serverUrl] of serverUrls.entries()) {
    try {
      return { serverUrl, response: await enroll({ ...target, serverUrl }, request) };
    } catch (err) {
      const retryable = err instanceof AgentError && err.code === 'Agent.EnrollmentFailed';
      if (!retryable || target.signal?.aborted === true) throw err;
      failures.push(err);
      if (i < serverUrls.length - 1) onFailover(serverUrl, err);
    }
  }
  const [only] = failures;
  if (failures.length === 1 && only !== undefined) throw only;
  throw new AgentError(
    'Agent.EnrollmentFailed',
    `no server URL answered the enrollment: ${failures.map((f) => f.message).join('; ')}`,
    { cause: failures.at(-1) },
  );
}

/** Code and message of an ECS error body (`{RequestId, Code, Message, ...}`), cleaned for printing. */
function ecsError(body: Buffer): { code: string; message: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { Code: code, Message: message } = parsed as { Code?: unknown; Message?: unknown };
  if (typeof code !== 'string' || !/^[A-Za-z0-9.]{1,64}$/.test(code)) return undefined;
  const text = typeof message === 'string' ? message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500) : '';
  return { code, message: text };
}

function postJson(
  url: string,
  body: string,
  target: EnrollTarget,
): Promise<{ status: number; body: Buffer }> {
  const isHttps = url.startsWith('https:');
  const options: https.RequestOptions = {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      accept: 'application/json',
    },
    timeout: target.timeoutMs,
    ...(target.signal !== undefined && { signal: target.signal }),
    ...(isHttps && target.ca !== undefined && { ca: target.ca }),
  };
  return new Promise((resolve, reject) => {
    const failed = (why: string, cause?: unknown): void => {
      reject(new AgentError('Agent.EnrollmentFailed', `cannot enroll with ${url}: ${why}`, { cause }));
    };
    const req = (isHttps ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_AGENT_MESSAGE_BYTES) {
          req.destroy();
          failed(`the response is larger than ${MAX_AGENT_MESSAGE_BYTES} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
      res.on('error', (err) => {
        failed(err.message, err);
      });
    });
    // The timeout event only reports inactivity; destroying the request turns it into an error.
    req.on('timeout', () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      // An untrusted certificate is the usual first-install mistake: say what fixes it.
      const hint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)
        ? ' (pass the CA that signed the server certificate with --ca FILE)'
        : '';
      failed(`${err.message}${hint}`, err);
    });
    req.end(body);
  });
}
