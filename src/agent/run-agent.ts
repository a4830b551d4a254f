/**
 * The agent's main loop: open the state directory, enroll on the first run, then stay connected to the
 * gateway for ever (or, with `once`, until the first desired state is applied and acknowledged),
 * reconnecting to any of the server URLs it is given (the replicas of one Keyward) on the schedule of
 * ./backoff.ts: a random one first, the next one quickly after a failure or a drop, a jittered
 * exponential pause once all have failed. Revocation (4403) and a refused identity (4401) stop it with an
 * error instead of retrying. While the server is unreachable nothing on the host is undone: the last
 * applied state stays in force. Everything from outside (host library, clock, randomness,
 * logger, the user id that must own the state) is a parameter, so tests run it in-process.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  CLOSE_CODES,
  HEARTBEAT_TIMEOUT_MS,
  type AppliedState,
  type HostFacts,
} from '../agent-channel/index.js';
import type { Clock } from '../platform/clock.js';
import { AgentError } from './agent-error.js';
import {
  MAX_SERVER_URLS,
  openStateDir,
  saveState,
  serverUrlsOverlap,
  type AgentIdentity,
  type AgentState,
  type AppliedRecord,
} from './agent-state.js';
import { DEFAULT_BACKOFF, ReconnectBackoff, type BackoffPolicy } from './backoff.js';
import { AgentChannel, type ChannelClose } from './channel.js';
import { DesiredApplier, outcomeOf } from './desired-applier.js';
import { enrollWithAny } from './enroll.js';
import { TunnelRelay } from './tunnel-relay.js';
import { collectHostFacts, type HostFactsSources } from './host-facts.js';
import type { AgentHostBinder } from './host-binder-port.js';
import {
  GrantKeeper,
  GrantStore,
  GrantUseReporter,
  type LogFollower,
  type LogonReadiness,
  type SshdLogEntry,
} from './logon/index.js';

/** What the agent is told to do (validated by the caller: src/apps/agent/agent-config.ts). */
export interface RunAgentOptions {
  /**
   * The server's base URLs, http: or https:, without a trailing slash: one (a single server or a load
   * balancer) or several replicas of one Keyward, at most MAX_SERVER_URLS, no two alike.
   */
  readonly serverUrls: readonly string[];
  readonly stateDir: string;
  /** The enrollment token (needed only on the first run); or `tokenFile`, read only then. */
  readonly token?: string;
  readonly tokenFile?: string;
  /** The OS user whose logons the agent manages. */
  readonly loginUser: string;
  /** `host:port` to report for sshd instead of the discovered one. */
  readonly sshAddress?: string;
  /** PEM CA bundle for the https server URLs. */
  readonly ca?: string | Buffer;
  readonly agentVersion: string;
  /** Apply the first desired state, acknowledge it, and return. */
  readonly once?: boolean;
  /**
   * Enroll the host if it is not enrolled yet (an enrolled host keeps its identity), then return without
   * connecting: what an installer runs before it starts the service.
   */
  readonly enrollOnly?: boolean;
  /** Bound on the whole `once` run (default 60 s). */
  readonly onceTimeoutMs?: number;
  readonly enrollTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
  /** Silence after which a connection is given up (default HEARTBEAT_TIMEOUT_MS). */
  readonly heartbeatTimeoutMs?: number;
  readonly backoff?: BackoffPolicy;
  /** Aborting stops the agent: the current apply finishes, the connection closes, runAgent resolves. */
  readonly signal?: AbortSignal;
}

/** What the agent runs with. */
export interface AgentDeps {
  readonly binder: AgentHostBinder;
  readonly clock: Clock;
  /** Uniform in [0, 1), for the first server URL and the backoff jitter. */
  readonly random: () => number;
  readonly logger: Logger;
  /** The user id that must own the state directory (default: the running user). */
  readonly uid?: number;
  /** Where host facts come from (default: the real host). */
  readonly factSources?: HostFactsSources;
  /** One-time logons (absent: grants are refused as Host.LogonNotReady). */
  readonly logon?: AgentLogonPort;
}

/** What one-time logons need from the host. */
export interface AgentLogonPort {
  /** Where grant files go. */
  readonly grantsDir: string;
  /** Installs or checks the AuthorizedKeysCommand helper and its sshd drop-in. */
  prepare(): Promise<LogonReadiness>;
  userExists(name: string): Promise<boolean>;
  /**
   * Starts following sshd's log, each accepted-key entry (null for other lines) handed to `onEntry`, so
   * grants used with `keyward ssh` and SendSSHPublicKey are reported used; undefined when off. Absent: not
   * followed.
   */
  followSshdLog?(onEntry: (entry: SshdLogEntry | null) => void): Promise<LogFollower | undefined>;
}

/** How a run ended (a failure is thrown as AgentError instead). */
export interface AgentRunResult {
  readonly instanceId: string;
  /** True when this run enrolled the host. */
  readonly enrolled: boolean;
  /**
   * With `once`: the acknowledged outcome (check `ok`), or null when stopped by the signal before one.
   * Otherwise the last applied state when the agent stopped.
   */
  readonly applied: AppliedState | null;
}

export const DEFAULT_ONCE_TIMEOUT_MS = 60_000;
const TOKEN_FORM = /^[A-Za-z0-9_-]{1,128}$/;

/** Runs the agent until `options.signal` aborts, a permanent failure, or (with `once`) one apply. */
export async function runAgent(options: RunAgentOptions, deps: AgentDeps): Promise<AgentRunResult> {
  const { logger } = deps;
  const stop = new AbortController();
  let timedOut = false;
  const onAbort = (): void => {
    stop.abort();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted === true) stop.abort();
  const onceTimer = options.once
    ? setTimeout(() => {
        timedOut = true;
        stop.abort();
      }, options.onceTimeoutMs ?? DEFAULT_ONCE_TIMEOUT_MS)
    : undefined;
  const checkTimeout = (): void => {
    if (timedOut) {
      throw new AgentError(
        'Agent.OnceTimeout',
        `no desired state was applied and acknowledged within ${options.onceTimeoutMs ?? DEFAULT_ONCE_TIMEOUT_MS} ms`,
      );
    }
  };
  try {
    checkServerUrls(options.serverUrls);
    const opened = openStateDir(options.stateDir, deps.uid ?? process.getuid?.() ?? 0);
    let facts: HostFacts | undefined;
    // Known once the session prepared one-time logons; every later hello reports it.
    const logon: { readiness: LogonReadiness | undefined } = { readiness: undefined };
    const freshFacts = async (): Promise<HostFacts> => {
      try {
        facts = await collectHostFacts(options, deps.binder, deps.factSources, logon.readiness);
      } catch (err) {
        // Keep reporting the last good facts rather than staying away from the server.
        if (facts === undefined) throw err;
        logger.warn({ err }, 'could not refresh the host facts; reporting the previous ones');
      }
      return facts;
    };
    let state = opened.state;
    let enrolled = false;
    if (state === null) {
      state = await enrollHost(
        options,
        opened.dir,
        opened.identity,
        await freshFacts(),
        stop.signal,
        logger,
      ).catch((err: unknown) => {
        checkTimeout();
        throw err;
      });
      enrolled = true;
    } else {
      state = adoptServerUrls(state, options, opened.dir, logger);
    }
    if (options.enrollOnly === true) {
      return { instanceId: state.instanceId, enrolled, applied: null };
    }
    logger.info(
      { instanceId: state.instanceId, regionId: state.regionId, serverUrls: state.serverUrls },
      'agent starting',
    );
    await checkHost(deps.binder, logger);
    const session = new Session(options, deps, opened.dir, opened.identity, state, freshFacts, stop);
    logon.readiness = await session.startGrants();
    const applied = await session.run();
    if (options.once === true && applied === null) checkTimeout();
    return { instanceId: session.state.instanceId, enrolled, applied };
  } finally {
    clearTimeout(onceTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** A programming error in the caller (the config loader checks all this for people). */
function checkServerUrls(urls: readonly string[]): void {
  if (urls.length < 1 || urls.length > MAX_SERVER_URLS || new Set(urls).size !== urls.length) {
    throw new TypeError(`serverUrls must hold 1 to ${MAX_SERVER_URLS} distinct URLs`);
  }
}

/**
 * Checks the configured server URLs against those the host is enrolled with (see serverUrlsOverlap) and
 * records the configured list when it differs, so the next change is checked against this one.
 */
function adoptServerUrls(
  state: AgentState,
  options: RunAgentOptions,
  dir: string,
  logger: Logger,
): AgentState {
  const configured = options.serverUrls;
  if (!serverUrlsOverlap(state.serverUrls, configured)) {
    throw new AgentError(
      'Agent.StateServerMismatch',
      `this host is enrolled with ${state.serverUrls.join(', ')}, not ${configured.join(', ')}; to change ` +
        'the server URLs, keep one the host already knows in the list for one start; to move the host to ' +
        `another Keyward, revoke the instance, remove ${options.stateDir} and enroll again`,
    );
  }
  if (
    configured.length === state.serverUrls.length &&
    configured.every((u, i) => state.serverUrls[i] === u)
  ) {
    return state;
  }
  const next: AgentState = { ...state, serverUrls: configured };
  saveState(dir, next);
  logger.info(
    { previous: state.serverUrls, serverUrls: configured },
    'the server URLs changed; recorded the new list',
  );
  return next;
}

/** Runs the host library's start-up check, if it has one: a problem is logged (applies will report it). */
async function checkHost(binder: AgentHostBinder, logger: Logger): Promise<void> {
  if (binder.check === undefined) return;
  try {
    const result = await binder.check();
    if (result.ok) logger.info({ detail: result.message }, 'host check passed');
    else {
      logger.warn(
        { code: result.code, detail: result.message },
        'the host cannot be managed as it is: binding changes will fail until this is fixed',
      );
    }
  } catch (err) {
    logger.warn({ err }, 'the host check failed');
  }
}

async function enrollHost(
  options: RunAgentOptions,
  dir: string,
  identity: AgentIdentity,
  facts: HostFacts,
  signal: AbortSignal,
  logger: Logger,
): Promise<AgentState> {
  const token = await enrollmentToken(options);
  logger.info({ serverUrls: options.serverUrls, hostname: facts.hostname }, 'enrolling');
  const { serverUrl, response } = await enrollWithAny(
    options.serverUrls,
    {
      timeoutMs: options.enrollTimeoutMs ?? 15_000,
      signal,
      ...(options.ca !== undefined && { ca: options.ca }),
    },
    { token, identityPublicKey: identity.publicKeyBase64, facts },
    (failedUrl, err) => {
      logger.warn(
        { serverUrl: failedUrl, code: err.code, problem: err.message },
        'could not enroll with this server URL; trying the next',
      );
    },
  );
  const state: AgentState = { serverUrls: options.serverUrls, ...response, applied: null };
  saveState(dir, state);
  logger.info(
    { instanceId: state.instanceId, regionId: state.regionId, serverUrl },
    `enrolled; the token is spent${options.tokenFile === undefined ? '' : ` and ${options.tokenFile} may be deleted`}`,
  );
  return state;
}

async function enrollmentToken(options: RunAgentOptions): Promise<string> {
  let token = options.token;
  if (token === undefined && options.tokenFile !== undefined) {
    try {
      token = (await readFile(options.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new AgentError(
        'Agent.TokenInvalid',
        `cannot read the token file ${options.tokenFile}: ${(err as Error).message}`,
      );
    }
  }
  if (token === undefined) {
    throw new AgentError(
      'Agent.TokenRequired',
      'this host is not enrolled yet: pass --token or --token-file',
    );
  }
  if (!TOKEN_FORM.test(token)) {
    // Never echo the token: it may be a secret pasted into the wrong place.
    throw new AgentError('Agent.TokenInvalid', 'the enrollment token is not in the form the server issues');
  }
  return token;
}

/** One enrolled agent's connection loop. */
class Session {
  private channel: AgentChannel | undefined;
  private readonly applier: DesiredApplier;
  private readonly backoff: ReconnectBackoff;
  private onceResult: AppliedState | undefined;
  private readonly grants: GrantKeeper | undefined;
  private sshdLog: LogFollower | undefined;
  /** The server's grant-signing key pinned at enrollment: grants and desired states must verify with it. */
  private readonly serverSigningKey: KeyObject;
  /** SSH tunnels to the host's own sshd (./tunnel-relay.ts). */
  private readonly tunnels: TunnelRelay;
  private lastSshAddress = '';

  constructor(
    private readonly options: RunAgentOptions,
    private readonly deps: AgentDeps,
    private readonly dir: string,
    private readonly identity: AgentIdentity,
    public state: AgentState,
    private readonly facts: () => Promise<HostFacts>,
    private readonly stop: AbortController,
  ) {
    this.serverSigningKey = createPublicKey({
      key: {
        kty: 'OKP',
        crv: 'Ed25519',
        x: Buffer.from(state.grantSigningPublicKey, 'base64').toString('base64url'),
      },
      format: 'jwk',
    });
    this.tunnels = new TunnelRelay({
      instanceId: state.instanceId,
      serverUrls: state.serverUrls,
      ...(options.ca !== undefined && { ca: options.ca }),
      logger: deps.logger,
      sshAddress: () => this.lastSshAddress,
    });
    this.backoff = new ReconnectBackoff(
      options.backoff ?? DEFAULT_BACKOFF,
      deps.random,
      deps.clock,
      state.serverUrls.length,
    );
    this.applier = new DesiredApplier({
      binder: deps.binder,
      logger: deps.logger,
      lastApplied: () => this.state.applied,
      persist: (record: AppliedRecord) => {
        const next = { ...this.state, applied: record };
        saveState(this.dir, next);
        this.state = next;
      },
      ack: (applied) => this.channel?.sendApplied(applied) ?? Promise.resolve(false),
      onAcknowledged: (applied, sent) => {
        if (this.options.once && sent && this.onceResult === undefined) {
          this.onceResult = applied;
          this.channel?.close(1000, 'agent done');
          this.stop.abort();
        }
      },
    });
    if (deps.logon !== undefined && options.once !== true) {
      this.grants = new GrantKeeper({
        store: new GrantStore(deps.logon.grantsDir),
        instanceId: state.instanceId,
        signingKey: this.serverSigningKey,
        logger: deps.logger,
        nowMs: () => deps.clock.nowMs(),
        userExists: (name) => deps.logon?.userExists(name) ?? Promise.resolve(false),
        send: (message) => {
          this.channel?.sendGrantReport(message);
        },
      });
    }
  }

  /** Prepares the host for one-time logons and sweeps grants left by an earlier run. */
  async startGrants(): Promise<LogonReadiness | undefined> {
    const port = this.deps.logon;
    if (this.grants === undefined || port === undefined) return undefined;
    const readiness = await port.prepare();
    await this.grants.start(readiness);
    if (port.followSshdLog !== undefined) await this.#followSshdLog(port.followSshdLog.bind(port));
    return readiness;
  }

  /** Follows sshd's log and reports each use of a one-time key the agent holds (the record only). */
  async #followSshdLog(follow: NonNullable<AgentLogonPort['followSshdLog']>): Promise<void> {
    const grants = this.grants;
    if (grants === undefined) return;
    const reporter = new GrantUseReporter({
      grantForKey: (fingerprint, osUser) => grants.grantForKey(fingerprint, osUser),
      send: (message) => {
        this.channel?.sendGrantReport(message);
      },
      nowMs: () => this.deps.clock.nowMs(),
      logger: this.deps.logger,
    });
    try {
      this.sshdLog = await follow((entry) => {
        reporter.handle(entry);
      });
    } catch (err) {
      // Only the record of use depends on it: the agent goes on without.
      this.deps.logger.error({ err }, 'cannot follow the sshd log; one-time key use is not reported');
    }
  }

  async run(): Promise<AppliedState | null> {
    const { logger } = this.deps;
    const signal = this.stop.signal;
    try {
      while (!signal.aborted) {
        const serverUrl = this.serverUrl();
        const end = await this.connectOnce(serverUrl);
        if (end !== undefined) {
          if (end.code === CLOSE_CODES.revoked) {
            throw new AgentError(
              'Agent.Revoked',
              `the server revoked instance ${this.state.instanceId} (${end.reason || 'no reason given'}); stopping`,
            );
          }
          if (end.code === CLOSE_CODES.authenticationFailed) {
            throw new AgentError(
              'Agent.AuthenticationFailed',
              `the server did not accept this host's identity as ${this.state.instanceId} (${end.reason || 'no reason given'}); stopping`,
            );
          }
        }
        if (signal.aborted) break;
        const delayMs = this.backoff.nextDelayMs();
        logger.warn(
          {
            serverUrl,
            welcomed: end?.welcomed ?? false,
            code: end?.code,
            reason: end?.reason,
            problem: end?.problem,
            retryInMs: delayMs,
            nextServerUrl: this.serverUrl(),
          },
          'disconnected from the server; the host keeps its last applied state',
        );
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    } finally {
      this.grants?.stop();
      this.tunnels.stop();
      this.sshdLog?.stop();
      await this.applier.stop();
      this.channel?.close(1001, 'agent stopping');
    }
    if (this.options.once === true) return this.onceResult ?? null;
    return this.state.applied === null ? null : outcomeOf(this.state.applied);
  }

  /** The server URL the next connection goes to. */
  private serverUrl(): string {
    const url = this.state.serverUrls[this.backoff.urlIndex];
    if (url === undefined) throw new Error('the reconnect schedule points past the server URLs');
    return url;
  }

  /** One connection to `serverUrl`, from dial to close; undefined when it could not even start (facts). */
  private async connectOnce(serverUrl: string): Promise<ChannelClose | undefined> {
    const signal = this.stop.signal;
    let facts: HostFacts;
    try {
      facts = await this.facts();
    } catch (err) {
      this.deps.logger.error({ err }, 'cannot collect the host facts');
      return undefined;
    }
    if (signal.aborted) return undefined;
    this.lastSshAddress = facts.sshAddress;
    const channel = new AgentChannel({
      serverUrl,
      ...(this.options.ca !== undefined && { ca: this.options.ca }),
      instanceId: this.state.instanceId,
      privateKey: this.identity.privateKey,
      serverSigningKey: this.serverSigningKey,
      facts,
      applied: () => (this.state.applied === null ? null : outcomeOf(this.state.applied)),
      heartbeatTimeoutMs: this.options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? 10_000,
      onWelcome: () => {
        this.backoff.connected();
        this.deps.logger.info({ instanceId: this.state.instanceId, serverUrl }, 'connected to the server');
      },
      onDesired: (desired) => {
        this.applier.submit(desired);
      },
      onGrant: (grant, signature) => {
        if (this.grants === undefined) {
          channel.sendGrantReport({
            t: 'grant-result',
            grantId: grant.grantId,
            ok: false,
            code: 'Host.LogonNotReady',
            message: 'One-time logons are not enabled in this agent.',
          });
          return;
        }
        void this.grants.handle(grant, signature);
      },
      onGrantRevoke: (grantId) => {
        void this.grants?.revoke(grantId);
      },
      onTunnelOpen: (message) => {
        this.tunnels.open(message, serverUrl);
      },
    });
    this.channel = channel;
    const onAbort = (): void => {
      channel.close(1001, 'agent stopping');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await channel.closed;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (this.channel === channel) this.channel = undefined;
    }
  }
}
