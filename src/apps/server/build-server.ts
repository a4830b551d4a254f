/**
 * Composes the HTTP server from its parts. `buildServer` returns a Fastify app that is not yet listening,
 * so tests can `inject()` requests without a socket; `run-server.ts` makes it listen.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AccessKeyStore } from '../../accounts/index.js';
import {
  Authorizer,
  type AuthorizationDecision,
  type ConsoleSignIn,
  type MfaStore,
  type PolicyStore,
  type UserStore,
} from '../../identity/index.js';
import {
  registerAgentDownloadRoutes,
  registerEnrollRoute,
  type AgentDownloads,
  type AgentGateway,
  type EnrollmentService,
  type InstanceService,
} from '../../instances/index.js';
import type { KeyPairService } from '../../keypairs/index.js';
import {
  TERMINAL_PATH,
  TerminalAccess,
  type LogonGrantRepository,
  type LogonService,
  type TerminalGateway,
  type TerminalTickets,
} from '../../logon/index.js';
import type { Clock } from '../../platform/clock.js';
import { handleClientError, handleError } from '../../platform/http/error-response.js';
import { AppError } from '../../platform/errors.js';
import { newRequestId } from '../../platform/ids.js';
import { accessKeyActions } from '../../rpc/actions/access-key-actions.js';
import { bindingActions } from '../../rpc/actions/binding-actions.js';
import { instanceActions } from '../../rpc/actions/instance-actions.js';
import { keyPairActions } from '../../rpc/actions/key-pair-actions.js';
import { logonActions } from '../../rpc/actions/logon-actions.js';
import { tunnelActions } from '../../rpc/actions/tunnel-actions.js';
import { AGENT_TUNNEL_PATH } from '../../agent-channel/index.js';
import { TUNNEL_PATH, type AgentTunnels, type TunnelGateway } from '../../tunnels/index.js';
import { auditActions } from '../../rpc/actions/audit-actions.js';
import { sessionActions } from '../../rpc/actions/session-actions.js';
import type { SessionRecordings } from '../../sessions/index.js';
import type { AuditLog } from '../../audit/index.js';
import {
  registerConsoleAssets,
  registerConsoleRoutes,
  type SignInLimiter,
  type ConsoleAssets,
  type ConsoleSessions,
} from '../../console/index.js';
import { decisionAuditEvent } from './audit-sinks.js';
import { ramPolicyActions } from '../../rpc/actions/ram-policy-actions.js';
import { ramUserActions } from '../../rpc/actions/ram-user-actions.js';
import { RequestAuthenticator } from '../../rpc/authenticate.js';
import { RpcDispatcher } from '../../rpc/rpc-dispatcher.js';
import { MAX_BODY_BYTES, registerRpcRoutes } from '../../rpc/rpc-routes.js';
import type { NonceStore } from '../../rpc/signature/nonce-cache.js';

/** Request line plus headers: a 16 KiB PublicKeyBody, percent-encoded in the query, must fit. */
export const MAX_HEADER_BYTES = 64 * 1024;

export interface ServerDeps {
  readonly logger: Logger;
  /** The hash-chained audit log: every authorization decision goes to it. */
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly accessKeys: AccessKeyStore;
  /** RAM users, their MFA devices, and policies: the API actions and policy enforcement read them. */
  readonly identity: {
    readonly users: UserStore;
    readonly mfa: MfaStore;
    readonly policies: PolicyStore;
  };
  readonly keyPairs: KeyPairService;
  readonly nonces: NonceStore;
  readonly regions: ReadonlySet<string>;
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  /** `/healthz` answers 503 until this says ready (the first start still has the account to create). */
  readonly readiness?: { readonly ready: boolean };
  /**
   * Enrolled instances: their RPC actions, the agent enrollment route and the agent WebSocket gateway
   * (attached to the app's HTTP server here, closed with 1001 before the server closes).
   */
  readonly instances?: {
    readonly service: InstanceService;
    readonly enrollment: EnrollmentService;
    readonly gateway: AgentGateway;
  };
  /**
   * The agent's one-line install: GET /agent/v1/install.sh and the executables (no credentials needed).
   * `publicUrl` goes into the installer; absent, each request's scheme and Host.
   */
  readonly agentDownloads?: { readonly downloads: AgentDownloads; readonly publicUrl?: string };
  /** The web console's session API (sign-in, CSRF, terminal tickets). */
  readonly console?: {
    readonly sessions: ConsoleSessions;
    readonly signIn: ConsoleSignIn;
    /** Sign-in attempts and lockouts, shared by every replica. */
    readonly limiter: SignInLimiter;
    /** The built page and bundles; without them only the console's JSON API is served. */
    readonly assets?: ConsoleAssets;
  };
  /** Password-free logon: its RPC actions and the terminal WebSocket (needs `instances`). */
  readonly logon?: {
    readonly service: LogonService;
    readonly grants: LogonGrantRepository;
    readonly tickets: TerminalTickets;
    readonly terminal: TerminalGateway;
    /** Session rows and recordings (DescribeSessions, GetSessionRecording, VerifySessionRecording). */
    readonly sessions?: SessionRecordings;
    /** SSH through the agent: StartSshTunnel, `/tunnel/v1/connect` and the agents' `/agent/v1/tunnel`. */
    readonly tunnels?: {
      readonly gateway: TunnelGateway;
      readonly agents: AgentTunnels;
      readonly publicUrl?: string;
    };
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Names of every RPC action served (tests loop over them to prove enforcement on each). */
    rpcActionNames: readonly string[];
  }
}

/** One structured, secret-free log line per authorization decision (the audit log takes it over). */
/**
 * What a request is answered when the audit event of its decision could not be written: it is not carried
 * out either way. A database that cannot be reached at all (PostgreSQL restarting, say) gives the answer
 * every request gets then, `ServiceUnavailable` with its Retry-After, whichever query met the outage first;
 * anything else (the database refused the event) is `AuditLog.Unavailable`.
 */
export function auditFailure(err: unknown, action: string): AppError {
  if (err instanceof AppError && err.code === 'ServiceUnavailable') return err;
  return new AppError(
    'AuditLog.Unavailable',
    `The audit event of this request could not be written, so ${action} was not carried out. ` +
      'Retry in a moment; if it persists, the server log says why (request id in this answer).',
    { cause: err },
  );
}

function logDecision(logger: Logger, d: AuthorizationDecision): void {
  const fields = {
    audit: true,
    event: 'authorization',
    allowed: d.allowed,
    reason: d.reason,
    principal: d.principalName,
    accountId: d.principal.accountId,
    action: d.action,
    resources: d.resources,
    ...(d.deniedResource !== undefined && { deniedResource: d.deniedResource }),
    ...(d.policyName !== undefined && { policyName: d.policyName, policyType: d.policyType }),
    reqId: d.requestId,
    sourceIp: d.sourceIp,
  };
  if (d.allowed) logger.info(fields, 'authorization allowed');
  else logger.warn(fields, 'authorization denied');
}

export function buildServer(deps: ServerDeps): FastifyInstance {
  const common = {
    loggerInstance: deps.logger,
    // One access-log line per request is written by the onResponse hook below, with chosen fields only.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => newRequestId(),
    bodyLimit: MAX_BODY_BYTES,
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle' as const,
    clientErrorHandler: handleClientError,
  };
  const app = (deps.tls !== undefined
    ? Fastify({
        ...common,
        https: { key: deps.tls.key, cert: deps.tls.cert, maxHeaderSize: MAX_HEADER_BYTES },
      })
    : Fastify({ ...common, http: { maxHeaderSize: MAX_HEADER_BYTES } })) as unknown as FastifyInstance;

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request) => {
    throw new AppError(
      'InvalidAction.NotFound',
      `${request.method} ${(request.raw.url ?? '').split('?')[0]?.slice(0, 64) ?? ''} is not served; ` +
        'the API is POST /, the web console GET /console/ and the health check GET /healthz.',
    );
  });
  app.addHook('onResponse', (request, reply, done) => {
    const path = (request.raw.url ?? '').split('?')[0];
    const fields = {
      reqId: request.id,
      method: request.method,
      path,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      ...(request.rpcAction !== undefined && { action: request.rpcAction }),
      ...(request.rpcAccessKeyId !== undefined && { accessKeyId: request.rpcAccessKeyId }),
    };
    if (path === '/healthz') request.log.debug(fields, 'request');
    else request.log.info(fields, 'request');
    done();
  });

  app.get('/healthz', (_request, reply) => {
    if (deps.readiness !== undefined && !deps.readiness.ready) {
      throw new AppError('ServiceUnavailable', 'The server is starting; retry in a moment.');
    }
    void reply.header('cache-control', 'no-store').send({ status: 'ok' });
  });

  const authenticator = new RequestAuthenticator({
    accessKeys: deps.accessKeys,
    nonces: deps.nonces,
    clock: deps.clock,
    users: deps.identity.users,
  });
  const authorizer = new Authorizer({
    policies: deps.identity.policies,
    // The request waits for its decision to be committed: nothing is done that the audit log does not hold.
    onDecision: async (d) => {
      logDecision(deps.logger, d);
      try {
        await deps.audit.append(decisionAuditEvent(d));
      } catch (err) {
        deps.logger.error(
          { err, requestId: d.requestId, action: d.action },
          'could not write an audit event',
        );
        throw auditFailure(err, d.action);
      }
    },
  });
  // Terminal re-checks report refusals only (a pass every 2 s per session would flood the log).
  const reportDecision = (d: AuthorizationDecision): void => {
    logDecision(deps.logger, d);
    deps.audit.record(decisionAuditEvent(d));
  };
  const instances = deps.instances;
  const dispatcher: RpcDispatcher = new RpcDispatcher(
    [
      ...keyPairActions({ keyPairs: deps.keyPairs, regions: deps.regions }),
      ...accessKeyActions({ accessKeys: deps.accessKeys, users: deps.identity.users }),
      ...ramUserActions({ users: deps.identity.users, mfa: deps.identity.mfa }),
      ...ramPolicyActions({
        policies: deps.identity.policies,
        conditionKeys: () => dispatcher.conditionKeyCatalog,
      }),
      ...auditActions({ audit: deps.audit }),
      ...(instances === undefined
        ? []
        : [
            ...instanceActions({
              instances: instances.service,
              enrollment: instances.enrollment,
              regions: deps.regions,
            }),
            ...bindingActions({
              instances: instances.service,
              keyPairs: deps.keyPairs,
              regions: deps.regions,
            }),
            ...(deps.logon === undefined
              ? []
              : [
                  ...logonActions({
                    logon: deps.logon.service,
                    grants: deps.logon.grants,
                    tickets: deps.logon.tickets,
                    instances: instances.service,
                    regions: deps.regions,
                    sessionRecording: deps.logon.sessions?.recording ?? false,
                  }),
                  ...(deps.logon.sessions === undefined
                    ? []
                    : sessionActions({
                        sessions: deps.logon.sessions,
                        audit: deps.audit,
                        regions: deps.regions,
                      })),
                ]),
            ...(deps.logon?.tunnels === undefined
              ? []
              : tunnelActions({
                  logon: deps.logon.service,
                  grants: deps.logon.grants,
                  tickets: deps.logon.tickets,
                  instances: instances.service,
                  regions: deps.regions,
                  sessionRecording: false,
                  ...(deps.logon.tunnels.publicUrl !== undefined && {
                    publicUrl: deps.logon.tunnels.publicUrl,
                  }),
                })),
          ]),
    ],
    authenticator,
    authorizer,
    deps.clock,
  );
  app.decorate('rpcActionNames', dispatcher.actionNames);
  if (deps.console !== undefined) {
    registerConsoleRoutes(app, {
      signIn: deps.console.signIn,
      sessions: deps.console.sessions,
      limiter: deps.console.limiter,
      authorizer,
      audit: deps.audit,
      clock: deps.clock,
      regionId: [...deps.regions][0] ?? 'local',
      tls: deps.tls !== undefined,
      dispatcher,
      ...(deps.logon !== undefined && {
        logon: { service: deps.logon.service, tickets: deps.logon.tickets },
      }),
    });
  }
  if (deps.console?.assets !== undefined) registerConsoleAssets(app, deps.console.assets);
  registerRpcRoutes(app, dispatcher);
  if (deps.agentDownloads !== undefined) {
    registerAgentDownloadRoutes(app, deps.agentDownloads.downloads, {
      ...(deps.agentDownloads.publicUrl !== undefined && { publicUrl: deps.agentDownloads.publicUrl }),
    });
  }
  if (instances !== undefined) {
    registerEnrollRoute(app, instances.enrollment);
    const logon = deps.logon;
    if (logon === undefined) {
      instances.gateway.attach(app.server);
    } else {
      // Open terminals end when their caller may no longer log on (checked again every 2 s).
      // Open client tunnels too, with the same check.
      const access = new TerminalAccess({
        clock: deps.clock,
        policies: deps.identity.policies,
        onDeny: reportDecision,
        users: deps.identity.users,
        accessKeys: deps.accessKeys,
        instances: logon.service,
      });
      logon.terminal.watchAccess(access);
      logon.tunnels?.gateway.watchAccess(access);
      // Two WebSocket endpoints: route upgrades by path; anything else is refused as the gateway would.
      instances.gateway.attach(app.server, false);
      app.server.on('upgrade', (req, socket, head: Buffer) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === TERMINAL_PATH) logon.terminal.handleUpgrade(req, socket, head);
        else if (path === TUNNEL_PATH && logon.tunnels !== undefined)
          logon.tunnels.gateway.handleUpgrade(req, socket, head);
        else if (path === AGENT_TUNNEL_PATH && logon.tunnels !== undefined)
          logon.tunnels.agents.handleUpgrade(req, socket, head);
        else instances.gateway.handleUpgrade(req, socket, head);
      });
    }
    // preClose runs before the HTTP server stops: open WebSockets would otherwise keep it from closing.
    app.addHook('preClose', async () => {
      logon?.terminal.close();
      logon?.tunnels?.gateway.close();
      logon?.service.close();
      await instances.gateway.close();
    });
  }
  return app;
}
