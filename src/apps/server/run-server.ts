/**
 * Starts and stops the Keyward server: the composition root. Loads configuration, opens the data
 * directory and database, creates the account on first start, listens, and drains on SIGTERM.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { AccessKeyStore } from '../../accounts/index.js';
import { ConsoleSignIn, MfaStore, PolicyStore, UserStore } from '../../identity/index.js';
import { newReplicaId, PostgresBus, ReplicaRegistry } from '../../cluster/index.js';
import {
  AgentDownloads,
  AgentGateway,
  AgentHub,
  AgentPresence,
  AgentRelay,
  hasGrantSigningKey,
  EnrollmentService,
  EnrollmentTokenRepository,
  InstanceRepository,
  InstanceService,
  loadOrCreateGrantSigningKey,
  RefusalTally,
} from '../../instances/index.js';
import { KeyPairRepository, KeyPairService } from '../../keypairs/index.js';
import { LogonGrantRepository, LogonService, TerminalGateway, TerminalTickets } from '../../logon/index.js';
import { ensureRecordingsDir, SessionRecordings, SessionRepository } from '../../sessions/index.js';
import { AgentTunnels, TunnelGateway, TunnelLimits, type TunnelMisdial } from '../../tunnels/index.js';
import { systemClock, type Clock } from '../../platform/clock.js';
import { SecretBox } from '../../platform/crypto/secret-box.js';
import { openDatabase, openRelaxedPostgres, withStartupLock, type Db } from '../../platform/db/database.js';
import { SourceRateLimiter } from '../../platform/http/source-rate-limiter.js';
import { NonceCache } from '../../rpc/signature/nonce-cache.js';
import { SharedNonceStore } from '../../rpc/signature/shared-nonce-store.js';
import { AuditLog } from '../../audit/index.js';
import { ConsoleAssets, ConsoleSessions, SignInLimiter } from '../../console/index.js';
import { instanceSink, logonSink } from './audit-sinks.js';
import { buildServer } from './build-server.js';
import {
  DATABASE_FILE,
  ensureDataDir,
  INITIAL_CREDENTIALS_FILE,
  loadOrCreateMasterKey,
  loadOrCreateReplicaId,
  writeSecretFile,
} from './data-dir.js';
import { describeDatabase, type ServerConfig } from './server-config.js';

/** The signature skew window of the ECS API, and so how long nonces are remembered. */
export const SIGNATURE_WINDOW_MS = 15 * 60 * 1000;
/** Bound on remembered nonces (about 1,100 signed requests per second sustained over the window). */
export const MAX_REMEMBERED_NONCES = 1_000_000;
/**
 * Bound on one access key's share of them (about 110 signed requests per second over the window): a tenth
 * of the whole, so no one key, even one with no permissions, can throttle the others.
 */
export const MAX_REMEMBERED_NONCES_PER_KEY = 100_000;
/** Connections of a replica's nonce pool (one statement per signed request, never held across awaits). */
const NONCE_POOL_CONNECTIONS = 4;

/** Bounds of the server's shared stores; tests lower them to reach them with a few requests. */
export interface ServerLimits {
  /** Signature nonces held at once, all access keys together (per replica on PostgreSQL). */
  readonly maxRememberedNonces: number;
  /** Signature nonces one access key may hold at once; below `maxRememberedNonces`. */
  readonly maxRememberedNoncesPerKey: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = Object.freeze({
  maxRememberedNonces: MAX_REMEMBERED_NONCES,
  maxRememberedNoncesPerKey: MAX_REMEMBERED_NONCES_PER_KEY,
});

/** Paths that pino must never print, whatever a caller logs by mistake. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  '*.accessKeySecret',
  '*.AccessKeySecret',
  '*.secret',
  '*.PrivateKeyBody',
  '*.privateKeyPem',
  '*.masterKey',
];

/** Creates the server's logger (JSON lines on stdout, secrets redacted). */
export function createLogger(config: Pick<ServerConfig, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'keyward-server' },
    redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
  });
}

export interface RunningServer {
  readonly app: FastifyInstance;
  /** Base URL clients use, e.g. http://127.0.0.1:8080 */
  readonly endpoint: string;
  /** Set when this start created the account: where its credentials were written. */
  readonly initialCredentialsFile?: string;
  /** Stops accepting connections, waits for in-flight requests, closes the database. */
  close(): Promise<void>;
}

/** Starts a server for `config`; resolves once it listens and is ready. */
export async function startServer(
  config: ServerConfig,
  logger: Logger,
  clock: Clock = systemClock,
  limits: ServerLimits = DEFAULT_SERVER_LIMITS,
): Promise<RunningServer> {
  if (limits.maxRememberedNoncesPerKey >= limits.maxRememberedNonces) {
    throw new TypeError(
      'maxRememberedNoncesPerKey must be below maxRememberedNonces: one key must not fill the store',
    );
  }
  ensureDataDir(config.dataDir);
  const dbFile = join(config.dataDir, DATABASE_FILE);
  const sqliteIsNew = config.database === undefined && !existsSync(dbFile);
  const db: Db = await openDatabase(
    config.database === undefined
      ? { kind: 'sqlite', file: dbFile }
      : {
          kind: 'postgres',
          url: config.database.url,
          maxConnections: config.database.maxConnections,
          preparedStatements: config.database.preparedStatements,
          onIdleError: (err) => {
            logger.warn({ err }, 'a pooled database connection failed; it is replaced on next use');
          },
        },
  );
  const replica = new ReplicaRegistry({
    db,
    clock,
    logger,
    id: loadOrCreateReplicaId(config.dataDir, newReplicaId),
  });
  let bus: PostgresBus | undefined;
  let refusals: RefusalTally | undefined;
  // Replicas record signature nonces through a small pool of their own whose commits do not wait for the
  // WAL flush: one round trip per signed request without an fsync (database.ts, docs/high-availability.md).
  const nonceDb =
    config.database === undefined
      ? undefined
      : openRelaxedPostgres({
          kind: 'postgres',
          url: config.database.url,
          maxConnections: NONCE_POOL_CONNECTIONS,
          preparedStatements: config.database.preparedStatements,
          onIdleError: (err) => {
            logger.warn({ err }, 'a pooled database connection failed; it is replaced on next use');
          },
        });
  try {
    // First-start work under the startup lock: on PostgreSQL, replicas starting together create one
    // grant-signing key between them, and a replica whose master key differs stops here, with the reason.
    const { secretBox, grantSigning } = await withStartupLock(db, async () => {
      const databaseIsNew = config.database === undefined ? sqliteIsNew : !(await hasGrantSigningKey(db));
      const masterKey = config.masterKey ?? loadOrCreateMasterKey(config.dataDir, databaseIsNew);
      const box = new SecretBox(masterKey);
      await new AccessKeyStore({ db, secretBox: box, clock }).checkMasterKey();
      return {
        secretBox: box,
        grantSigning: await loadOrCreateGrantSigningKey({ db, secretBox: box, clock }),
      };
    });
    const accessKeys = new AccessKeyStore({ db, secretBox, clock });
    if (grantSigning.created) {
      logger.info(
        { grantSigningPublicKey: grantSigning.key.publicKeyBase64 },
        'created the grant-signing key (stored sealed with the master key)',
      );
    }
    const keyPairs = new KeyPairService({ repository: new KeyPairRepository(db), clock });
    // Before any agent can connect: drop the leases this replica's previous process left behind.
    await replica.start({ sole: config.database === undefined });
    const hub = new AgentHub();
    let relay: AgentRelay | undefined;
    const presence = new AgentPresence({ db, clock, replicas: replica });
    if (config.database !== undefined) {
      bus = new PostgresBus({ url: config.database.url, db, replicaId: replica.id, logger });
      await bus.start();
      relay = new AgentRelay({
        hub,
        presence,
        bus,
        replicaId: replica.id,
        logger,
        liveReplicas: () => replica.liveReplicas(),
      });
    }
    const auditLog = new AuditLog({ db, clock, logger });
    const audit = instanceSink(logger, auditLog);
    const instanceRepository = new InstanceRepository(db);
    // Unauthenticated traffic: counted refusals and per-source limits (docs/security.md).
    refusals = new RefusalTally({ sink: audit, clock, logger });
    refusals.start();
    const sourceLimits = config.sourceLimits;
    const instances = {
      service: new InstanceService({ repository: instanceRepository, keyPairs, hub, presence, audit }),
      enrollment: new EnrollmentService({
        repository: instanceRepository,
        tokens: new EnrollmentTokenRepository(db),
        audit,
        refusals,
        rateLimit: new SourceRateLimiter({ perMinute: sourceLimits.enrollmentsPerMinute }, clock),
        clock,
        grantSigningPublicKey: grantSigning.key.publicKeyBase64,
      }),
      gateway: new AgentGateway({
        logger,
        clock,
        repository: instanceRepository,
        hub,
        presence,
        audit,
        refusals,
        rateLimit: new SourceRateLimiter({ perMinute: sourceLimits.agentConnectsPerMinute }, clock),
        timings: { maxPendingPerSource: sourceLimits.agentPendingPerSource },
        signingKey: grantSigning.key,
      }),
    };
    const logonAudit = logonSink(logger, auditLog);
    const logonGrants = new LogonGrantRepository(db);
    const logonService = new LogonService({
      logger,
      clock,
      grants: logonGrants,
      instances: instanceRepository,
      hub,
      signingKey: grantSigning.key,
      audit: logonAudit,
      keyLifetimeSeconds: config.logon.keyLifetimeSeconds,
      brokerSourceAddresses: config.logon.brokerSourceAddresses,
      sshTargets: {
        allowLoopback: config.logon.allowLoopbackHosts,
        allowlist: config.logon.sshAddressAllowlist,
      },
    });
    await logonService.sweepExpired('expired-while-server-down');
    const tickets = new TerminalTickets({ db, clock });
    // Where the other replicas forward tunnel dials meant for this one: --internal-url, else (set once
    // listening) the listening address when it is a specific one.
    let internalUrl = config.internalUrl;
    const agentTunnels = new AgentTunnels({
      hub,
      logger,
      ...(config.publicUrl !== undefined && { publicUrl: config.publicUrl }),
      ...(relay !== undefined && {
        locate: (m: TunnelMisdial) => relay.locateTunnel(m),
      }),
      internalUrl: () => internalUrl,
    });
    relay?.onTunnelMisdial((m, from) => agentTunnels.misdialed(m, from));
    const tunnelGateway = new TunnelGateway({
      logger,
      clock,
      idleTimeoutSeconds: config.logon.idleTimeoutSeconds,
      tickets,
      logon: logonService,
      agents: agentTunnels,
      limits: new TunnelLimits(config.tunnels),
      audit: logonAudit,
    });
    const nonceBounds = {
      windowMs: SIGNATURE_WINDOW_MS,
      maxEntries: limits.maxRememberedNonces,
      maxEntriesPerKey: limits.maxRememberedNoncesPerKey,
    };
    const nonces =
      config.database === undefined
        ? new NonceCache(nonceBounds)
        : new SharedNonceStore(nonceDb ?? db, nonceBounds);
    const limiter = new SignInLimiter({ db, clock });
    if (config.recording.mode !== 'off') ensureRecordingsDir(config.recording.dir);
    const sessions = new SessionRecordings({
      dir: config.recording.dir,
      mode: config.recording.mode,
      maxBytes: config.recording.maxBytes,
      recordInput: config.recording.recordInput,
      retentionDays: config.recording.retentionDays,
      repository: new SessionRepository(db),
      clock,
      logger,
      replicaId: replica.id,
    });
    const logon = {
      sessions,
      service: logonService,
      grants: logonGrants,
      tickets,
      terminal: new TerminalGateway({
        logger,
        clock,
        tickets,
        logon: logonService,
        audit: logonAudit,
        maxSessionSeconds: config.logon.maxSessionSeconds,
        idleTimeoutSeconds: config.logon.idleTimeoutSeconds,
        sessions,
        tunnels: () => tunnelGateway,
      }),
      tunnels: {
        gateway: tunnelGateway,
        agents: agentTunnels,
        ...(config.publicUrl !== undefined && { publicUrl: config.publicUrl }),
      },
    };
    const tls =
      config.tls === undefined
        ? undefined
        : { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) };
    const readiness = { ready: false };
    const users = new UserStore({ db, clock });
    const mfa = new MfaStore({ db, secretBox, clock });
    const app = buildServer({
      readiness,
      logger,
      audit: auditLog,
      console: {
        sessions: new ConsoleSessions({ db, clock }),
        limiter,
        assets: new ConsoleAssets(),
        signIn: new ConsoleSignIn({ users, mfa, accountId: () => accessKeys.findAccountId() }),
      },
      clock,
      accessKeys,
      identity: {
        users,
        mfa,
        policies: new PolicyStore({ db, clock }),
      },
      keyPairs,
      instances,
      agentDownloads: {
        downloads: new AgentDownloads(
          config.agentDownloadsDir === undefined ? {} : { dir: config.agentDownloadsDir },
        ),
        ...(config.publicUrl !== undefined && { publicUrl: config.publicUrl }),
      },
      logon,
      nonces,
      regions: new Set([config.regionId]),
      ...(tls !== undefined && { tls }),
    });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const endpoint = `${config.tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
    if (internalUrl === undefined && !['0.0.0.0', '::'].includes(address.address)) internalUrl = endpoint;

    // The replica's upkeep, one timer: agent leases checked, expired grants destroyed, old rows pruned.
    replica.onBeat(() => instances.gateway.reconcileLeases());
    replica.onBeat(async () => {
      await logonService.sweepExpired();
    });
    replica.onBeat(async () => {
      if (nonces instanceof SharedNonceStore) await nonces.prune(clock.nowMs());
      await limiter.prune();
    });
    // Recordings past their retention: files deleted, rows marked expired (the audit events stay).
    replica.onBeat(async () => {
      await sessions.expire();
    });
    // Sessions left open by a replica that died (SIGKILL, power loss): closed `interrupted` with the digest
    // of what reached the disk, and audited as such. First, this replica's own sessions that another swept
    // while this one was stalled end here too.
    replica.onBeat(async () => {
      await sessions.endSwept();
      for (const s of await sessions.sweepInterrupted(await replica.liveReplicas())) {
        logonAudit.record({
          event: 'session.closed',
          grantId: s.grantId,
          accountId: s.accountId,
          instanceId: s.instanceId,
          sessionId: s.sessionId,
          reason: s.reason,
          seconds: s.seconds,
          recordingState: s.recordingState,
          recordingBytes: s.recordingBytes,
          recordingSha256: s.recordingSha256,
        });
      }
    });
    await replica.announce(endpoint);

    const initialCredentialsFile = await withStartupLock(db, async () => {
      if ((await accessKeys.findAccountId()) !== undefined) return undefined;
      const credentialsPath = join(config.dataDir, INITIAL_CREDENTIALS_FILE);
      if (existsSync(credentialsPath)) {
        // Left by a first start that died before its account was committed: those keys never existed.
        renameSync(credentialsPath, `${credentialsPath}.stale-${Date.now()}`);
      }
      const created = await accessKeys.createAccount(({ accountId, accessKey }) => {
        writeSecretFile(
          credentialsPath,
          `${JSON.stringify(
            {
              accountId,
              accessKeyId: accessKey.id,
              accessKeySecret: accessKey.secret,
              endpoint,
              regionId: config.regionId,
            },
            null,
            2,
          )}\n`,
        );
      });
      logger.info(
        { accountId: created.accountId, accessKeyId: created.accessKey.id, file: credentialsPath },
        'created the account and its root access key; credentials written to the file (mode 0600)',
      );
      return credentialsPath;
    });
    readiness.ready = true;
    logger.info(
      {
        endpoint,
        regionId: config.regionId,
        dataDir: config.dataDir,
        database: describeDatabase(config.database),
        replicaId: replica.id,
      },
      'keyward server ready',
    );
    let closing: Promise<void> | undefined;
    return {
      app,
      endpoint,
      ...(initialCredentialsFile !== undefined && { initialCredentialsFile }),
      close: () => {
        closing ??= (async () => {
          await app.close();
          await replica.stop();
          await bus?.close();
          refusals?.close();
          await auditLog.drain();
          await nonceDb?.destroy();
          await db.destroy();
        })();
        return closing;
      },
    };
  } catch (err) {
    refusals?.close();
    await replica.stop();
    await bus?.close();
    await nonceDb?.destroy();
    await db.destroy();
    throw err;
  }
}
