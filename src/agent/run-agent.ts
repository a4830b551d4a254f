/**
 * The agent's main loop: open the state directory, enroll on the first run, then stay connected to the
 * gateway for ever (or, with `once`, until the first desired state is applied and acknowledged),
 * reconnecting with jittered exponential backoff. Revocation (4403) and a refused identity (4401) stop
 * it with an error instead of retrying. While the server is unreachable nothing on the host is undone:
 * the last applied state stays in force. Everything from outside (host library, clock, randomness,
 * logger, the user id that must own the state) is a parameter, so tests run it in-process.
 */
import { createPublicKey } from 'node:crypto';
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
  openStateDir,
  saveState,
  type AgentIdentity,
  type AgentState,
  type AppliedRecord,
} from './agent-state.js';
import { DEFAULT_BACKOFF, ReconnectBackoff, type BackoffPolicy } from './backoff.js';
import { AgentChannel, type ChannelClose } from './channel.js';
import { DesiredApplier, outcomeOf } from './desired-applier.js';
import { enroll } from './enroll.js';
import { collectHostFacts, type HostFactsSources } from './host-facts.js';
import type { AgentHostBinder } from './host-binder-port.js';
import { GrantKeeper, GrantStore, type LogonReadiness } from './logon/index.js';

/** What the agent is told to do (validated by the caller: src/apps/agent/agent-config.ts). */
export interface RunAgentOptions {
  /** The server's base URL, http: or https:, without a trailing slash. */
  readonly serverUrl: string;
  readonly stateDir: string;
  /** The enrollment token (needed only on the first run); or `tokenFile`, read only then. */
  readonly token?: string;
  readonly tokenFile?: string;
  /** The OS user whose logons the agent manages. */
  readonly loginUser: string;
  /** `host:port` to report for sshd instead of the discovered one. */
  readonly sshAddress?: string;
  /** PEM CA bundle for an https server. */
  readonly ca?: string | Buffer;
  readonly agentVersion: string;
  /** Apply the first desired state, acknowledge it, and return. */
  readonly once?: boolean;
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
  /** Uniform in [0, 1), for backoff jitter. */
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
    const opened = openStateDir(options.stateDir, deps.uid ?? process.getuid?.() ?? 0);
    let facts: HostFacts | undefined;
    const freshFacts = async (): Promise<HostFacts> => {
      try {
        facts = await collectHostFacts(options, deps.binder, deps.factSources);
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
    } else if (state.serverUrl !== options.serverUrl) {
      throw new AgentError(
        'Agent.StateServerMismatch',
        `this host is enrolled with ${state.serverUrl}, not ${options.serverUrl}; to move it, revoke the ` +
          `instance, remove ${options.stateDir} and enroll again`,
      );
    }
    logger.info(
      { instanceId: state.instanceId, regionId: state.regionId, serverUrl: state.serverUrl },
      'agent starting',
    );
    await checkHost(deps.binder, logger);
    const session = new Session(options, deps, opened.dir, opened.identity, state, freshFacts, stop);
    await session.startGrants();
    const applied = await session.run();
    if (options.once === true && applied === null) checkTimeout();
    return { instanceId: session.state.instanceId, enrolled, applied };
  } finally {
    clearTimeout(onceTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
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
  logger.info({ serverUrl: options.serverUrl, hostname: facts.hostname }, 'enrolling');
  const response = await enroll(
    {
      serverUrl: options.serverUrl,
      timeoutMs: options.enrollTimeoutMs ?? 15_000,
      signal,
      ...(options.ca !== undefined && { ca: options.ca }),
    },
    { token, identityPublicKey: identity.publicKeyBase64, facts },
  );
  const state: AgentState = { version: 1, serverUrl: options.serverUrl, ...response, applied: null };
  saveState(dir, state);
  logger.info(
    { instanceId: state.instanceId, regionId: state.regionId },
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

  constructor(
    private readonly options: RunAgentOptions,
    private readonly deps: AgentDeps,
    private readonly dir: string,
    private readonly identity: AgentIdentity,
    public state: AgentState,
    private readonly facts: () => Promise<HostFacts>,
    private readonly stop: AbortController,
  ) {
    this.backoff = new ReconnectBackoff(options.backoff ?? DEFAULT_BACKOFF, deps.random, deps.clock);
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
        signingKey: createPublicKey({
          key: {
            kty: 'OKP',
            crv: 'Ed25519',
            x: Buffer.from(state.grantSigningPublicKey, 'base64').toString('base64url'),
          },
          format: 'jwk',
        }),
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
  async startGrants(): Promise<void> {
    const port = this.deps.logon;
    if (this.grants === undefined || port === undefined) return;
    await this.grants.start(await port.prepare());
  }

  async run(): Promise<AppliedState | null> {
    const { logger } = this.deps;
    const signal = this.stop.signal;
    try {
      while (!signal.aborted) {
        const end = await this.connectOnce();
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
          { code: end?.code, reason: end?.reason, problem: end?.problem, retryInMs: delayMs },
          'disconnected from the server; the host keeps its last applied state',
        );
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    } finally {
      this.grants?.stop();
      await this.applier.stop();
      this.channel?.close(1001, 'agent stopping');
    }
    if (this.options.once === true) return this.onceResult ?? null;
    return this.state.applied === null ? null : outcomeOf(this.state.applied);
  }

  /** One connection, from dial to close; undefined when it could not even start (facts). */
  private async connectOnce(): Promise<ChannelClose | undefined> {
    const signal = this.stop.signal;
    let facts: HostFacts;
    try {
      facts = await this.facts();
    } catch (err) {
      this.deps.logger.error({ err }, 'cannot collect the host facts');
      return undefined;
    }
    if (signal.aborted) return undefined;
    const channel = new AgentChannel({
      serverUrl: this.state.serverUrl,
      ...(this.options.ca !== undefined && { ca: this.options.ca }),
      instanceId: this.state.instanceId,
      privateKey: this.identity.privateKey,
      facts,
      applied: () => (this.state.applied === null ? null : outcomeOf(this.state.applied)),
      heartbeatTimeoutMs: this.options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? 10_000,
      onWelcome: () => {
        this.backoff.connected();
        this.deps.logger.info({ instanceId: this.state.instanceId }, 'connected to the server');
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
