/**
 * The web console's session API, `/console/api/*` (JSON in, JSON out, errors in the ECS error shape):
 *   POST /console/api/sign-in    {userName, password, totpCode?} → session cookie + {CsrfToken, …}
 *   GET  /console/api/session    who is signed in: {SignedIn: true, …}, or 200 {SignedIn: false} (a page's
 *                                first question, not an error)
 *   POST /console/api/sign-out   (CSRF)
 *   POST /console/api/terminal   (CSRF) {instanceId, osUser?, cols?, rows?} → a terminal ticket: the API's
 *                                StartTerminalSession run as the signed-in user
 *   POST /console/api/call/NAME  (CSRF) {Param: "value", …} → the API action NAME run as the signed-in user:
 *                                the same parameters, policy checks, audit and response body as the API
 * Every state change needs the session's CSRF token in `x-keyward-csrf`, and a browser's Origin (when
 * sent) must be this server's own; the cookie is HttpOnly and SameSite=Strict (Secure under TLS). Sign-in
 * is rate limited with lockout (sign-in-limiter.ts); every sign-in, success or failure, is audited.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/index.js';
import type { Authorizer, ConsoleSignIn, RequestFacts } from '../identity/index.js';
import type { LogonService, TerminalTickets } from '../logon/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import {
  BACKGROUND_HEADER,
  CSRF_HEADER,
  SESSION_COOKIE,
  SESSION_LIFETIME_MS,
  type ConsoleSession,
  type ConsoleSessions,
} from './console-sessions.js';
import type { RpcDispatcher } from '../rpc/rpc-dispatcher.js';
import { SECURITY_HEADERS } from './console-assets.js';
import type { SignInLimiter } from './sign-in-limiter.js';

const MAX_JSON_BYTES = 4096;

export interface ConsoleRouteDeps {
  readonly signIn: ConsoleSignIn;
  readonly sessions: ConsoleSessions;
  readonly limiter: SignInLimiter;
  readonly authorizer: Authorizer;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly regionId: string;
  readonly tls: boolean;
  readonly logon?: { readonly service: LogonService; readonly tickets: TerminalTickets };
  readonly dispatcher: RpcDispatcher;
}

/** Largest console API call body (an imported public key or a policy document fits many times over). */
const MAX_CALL_BYTES = 64 * 1024;
const ACTION_NAME = /^[A-Z][A-Za-z0-9]{1,63}$/;
const PARAM_NAME = /^[A-Za-z][A-Za-z0-9.]{0,127}$/;
const MAX_CALL_PARAMS = 200;

/** Parses an action call's body: a flat JSON object of parameter names to string values. */
function callParams(request: FastifyRequest): Array<[string, string]> {
  const entries = Object.entries(jsonObject(request, MAX_CALL_BYTES));
  if (entries.length > MAX_CALL_PARAMS) {
    throw new AppError('InvalidParameter', `At most ${MAX_CALL_PARAMS} parameters are taken.`);
  }
  return entries.map(([k, v]) => {
    if (!PARAM_NAME.test(k)) {
      throw new AppError('InvalidParameter', `${JSON.stringify(k.slice(0, 40))} is not a parameter name.`);
    }
    if (typeof v !== 'string') throw new AppError('InvalidParameter', `The parameter ${k} must be a string.`);
    return [k, v];
  });
}

/** The request body as a JSON object of at most `maxBytes`, or a clear error. */
function jsonObject(request: FastifyRequest, maxBytes: number): Record<string, unknown> {
  const raw = request.body;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : '';
  if (text.length > maxBytes) throw new AppError('RequestTooLarge', 'The request body is too large.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text === '' ? '{}' : text);
  } catch {
    throw new AppError('InvalidParameter', 'The request body must be a JSON object.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AppError('InvalidParameter', 'The request body must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

/** Parses a small JSON object body, refusing unknown fields and values other than strings and numbers. */
function jsonBody(request: FastifyRequest, fields: readonly string[]): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(jsonObject(request, MAX_JSON_BYTES))) {
    if (!fields.includes(k))
      throw new AppError('UnknownParameter', `The field "${k.slice(0, 40)}" is not taken here.`);
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new AppError('InvalidParameter', `The field "${k}" must be a string or a number.`);
    }
    out[k] = v;
  }
  return out;
}

function str(body: Record<string, string | number>, key: string, max: number): string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > max) {
    throw new AppError('InvalidParameter', `${key} must be a string of at most ${max} characters.`);
  }
  return v;
}

function cookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function registerConsoleRoutes(app: FastifyInstance, deps: ConsoleRouteDeps): void {
  // Every console answer (the page, its bundles, the JSON API and its errors) carries the security headers.
  app.addHook('onSend', (request, reply, payload, done) => {
    if ((request.raw.url ?? '').startsWith('/console')) void reply.headers(SECURITY_HEADERS);
    done(null, payload);
  });
  const cookieAttributes = `Path=/; HttpOnly; SameSite=Strict${deps.tls ? '; Secure' : ''}`;

  const checkOrigin = (request: FastifyRequest): void => {
    const origin = request.headers.origin;
    const expected = `${deps.tls ? 'https' : 'http'}://${request.headers.host ?? ''}`;
    if (origin !== undefined && origin !== expected) {
      throw new AppError('Console.CsrfRejected', 'The request comes from a page on another site.');
    }
  };
  const currentSession = (request: FastifyRequest): Promise<ConsoleSession | undefined> =>
    deps.sessions.find(cookie(request, SESSION_COOKIE), {
      activity: request.headers[BACKGROUND_HEADER] !== '1',
    });
  const sessionOf = async (request: FastifyRequest): Promise<ConsoleSession> => {
    const session = await currentSession(request);
    if (session === undefined) {
      throw new AppError(
        'Console.NotSignedIn',
        'Sign in to the console first; the session may have expired, or ended because the password or ' +
          'MFA device of the user changed.',
      );
    }
    return session;
  };
  const changing = async (request: FastifyRequest): Promise<ConsoleSession> => {
    checkOrigin(request);
    const session = await sessionOf(request);
    const token = request.headers[CSRF_HEADER];
    if (!deps.sessions.csrfMatches(session, typeof token === 'string' ? token : undefined)) {
      throw new AppError(
        'Console.CsrfRejected',
        `Send the session's CSRF token in the ${CSRF_HEADER} header.`,
      );
    }
    return session;
  };
  const facts = (request: FastifyRequest, session: ConsoleSession): RequestFacts => ({
    sourceIp: request.ip,
    secureTransport: deps.tls,
    mfaPresent: session.mfaPresent,
    currentTime: new Date(deps.clock.nowMs()),
    consoleCredentialEpoch: session.credentialEpoch,
  });
  const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store');

  app.post('/console/api/sign-in', async (request, reply) => {
    checkOrigin(request);
    const body = jsonBody(request, ['userName', 'password', 'totpCode']);
    const userName = str(body, 'userName', 64) ?? '';
    const password = str(body, 'password', 256) ?? '';
    const totpCode = str(body, 'totpCode', 16);
    // Reserved before the password is hashed: concurrent guesses count as they arrive (sign-in-limiter.ts).
    const wait = await deps.limiter.reserve(userName, request.ip);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      deps.audit.record({
        type: 'console.signin.locked',
        actor: `user/${userName.slice(0, 64) || '-'}`,
        remoteAddress: request.ip,
      });
      throw new AppError(
        'Console.SignInLocked',
        `Too many failed sign-ins; try again in ${String(Math.ceil(seconds / 60))} minute(s).`,
        { headers: { 'x-acs-retry-after': String(seconds) } },
      );
    }
    const result = await deps.signIn.verifyConsoleSignIn(userName, password, totpCode);
    if (!result.ok) {
      if (result.reason !== 'InvalidCredentials') await deps.limiter.refund(userName, request.ip);
      deps.audit.record({
        type: 'console.signin.failed',
        actor: `user/${userName.slice(0, 64) || '-'}`,
        remoteAddress: request.ip,
        detail: { reason: result.reason },
      });
      if (result.reason === 'MfaCodeRequired') {
        throw new AppError(
          'Console.MfaRequired',
          'This user has MFA: enter the 6-digit code from the authenticator.',
        );
      }
      throw new AppError('Console.InvalidCredentials', 'The user name or password is wrong.');
    }
    await deps.limiter.succeeded(userName, request.ip);
    const session = await deps.sessions.create(
      result.principal,
      result.mfaPresent,
      request.ip,
      result.credentialEpoch,
    );
    deps.audit.record({
      type: 'console.signin.success',
      accountId: result.principal.accountId,
      actor: `user/${result.principal.userName}`,
      remoteAddress: request.ip,
      detail: { mfaPresent: result.mfaPresent },
    });
    void noStore(reply).header(
      'set-cookie',
      `${SESSION_COOKIE}=${session.token}; ${cookieAttributes}; Max-Age=${String(SESSION_LIFETIME_MS / 1000)}`,
    );
    return {
      UserName: result.principal.userName,
      MfaPresent: result.mfaPresent,
      CsrfToken: session.csrfToken,
      ExpiresAt: session.expiresAt,
      RegionId: deps.regionId,
    };
  });

  app.get('/console/api/session', async (request, reply) => {
    void noStore(reply);
    // Signed out is an answer, not a failure: the page asks this on every first visit, and a 401 there
    // would be logged by the browser as a failed resource each time.
    const session = await currentSession(request);
    if (session === undefined) return { SignedIn: false };
    return {
      SignedIn: true,
      UserName: session.principal.userName,
      MfaPresent: session.mfaPresent,
      CsrfToken: session.csrfToken,
      ExpiresAt: session.expiresAt,
      RegionId: deps.regionId,
    };
  });

  app.post('/console/api/sign-out', async (request, reply) => {
    const session = await changing(request);
    await deps.sessions.end(session);
    deps.audit.record({
      type: 'console.signout',
      accountId: session.principal.accountId,
      actor: `user/${session.principal.userName}`,
      remoteAddress: request.ip,
    });
    void noStore(reply).header('set-cookie', `${SESSION_COOKIE}=; ${cookieAttributes}; Max-Age=0`);
    return { SignedOut: true };
  });

  app.post<{ Params: { action: string } }>('/console/api/call/:action', async (request, reply) => {
    const session = await changing(request);
    const name = request.params.action;
    if (!ACTION_NAME.test(name)) {
      throw new AppError('InvalidAction.NotFound', 'The action name is not valid.');
    }
    const params = callParams(request);
    const result = await deps.dispatcher.runAs(
      name,
      params,
      { principal: session.principal },
      facts(request, session),
      request.id,
    );
    request.rpcAction = result.action;
    request.rpcAccessKeyId = result.accessKeyId;
    void noStore(reply);
    return result.body;
  });

  const logon = deps.logon;
  if (logon !== undefined) {
    app.post('/console/api/terminal', async (request, reply) => {
      const session = await changing(request);
      const body = jsonBody(request, ['instanceId', 'osUser', 'cols', 'rows']);
      const instanceId = str(body, 'instanceId', 64);
      if (instanceId === undefined) throw new AppError('MissingParameter', 'instanceId is required.');
      const osUser = str(body, 'osUser', 64);
      const size = (field: string, param: string): [string, string][] => {
        const v = body[field];
        if (v === undefined) return [];
        if (typeof v !== 'number') throw new AppError('InvalidParameter', `${field} must be a number.`);
        return [[param, String(v)]];
      };
      // The API's own action: its parameter checks, authorization (before it acts) and audit.
      const result = await deps.dispatcher.runAs(
        'StartTerminalSession',
        [
          ['RegionId', deps.regionId],
          ['InstanceId', instanceId],
          ...(osUser === undefined ? [] : [['InstanceOSUser', osUser] as [string, string]]),
          ...size('cols', 'Cols'),
          ...size('rows', 'Rows'),
        ],
        { principal: session.principal },
        facts(request, session),
        request.id,
      );
      request.rpcAction = result.action;
      request.rpcAccessKeyId = result.accessKeyId;
      void noStore(reply);
      const { SessionId, WebSocketPath, Subprotocols, TicketExpiresAt, KeyLifetimeSeconds } = result.body;
      return { SessionId, WebSocketPath, Subprotocols, TicketExpiresAt, KeyLifetimeSeconds };
    });
  }
}
