/**
 * The broker's SSH client (DESIGN.md §5): connects to an instance's sshd with ssh2, accepts only the host
 * keys the agent reported at enrollment (ssh2 accepts any host key unless given a `hostVerifier`, so one is
 * always given, and only the pinned key types are offered), never forwards an agent, and authenticates with
 * a one-time key held by a one-key signing agent. The private key is an unexported KeyObject; `forget()`
 * drops the only reference as soon as authentication ends, so it cannot sign again.
 *
 * Nagle is off on the socket: with it, every SSH round trip of the handshake can stall on a delayed ACK
 * (measured ≈ 129 ms per logon with it, ≈ 52 ms without). sshd's side keeps Nagle until the session
 * starts, so its host key announcement is answered at once with an ignore message rather than with ssh2's
 * request for proofs, whose answer would go unanswered (answerHostKeyAnnouncement).
 */
import { sign, type KeyObject } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import ssh2, { type Client as Ssh2Client, type ParsedKey } from 'ssh2';
import type { HostKey } from '../instances/index.js';
import { AppError } from '../platform/errors.js';
import { checkDialAddress, type SshTargetPolicy } from './ssh-target.js';

const { Client, BaseAgent } = ssh2;

/** How long the broker waits for TCP connect + SSH handshake + authentication. */
export const DEFAULT_BROKER_READY_TIMEOUT_MS = 10_000;

/**
 * sshd closes new connections at random once more than `MaxStartups` (10 by default) are unauthenticated,
 * counted by its listener, which learns of each authentication a moment after the client does; so even
 * below the broker's per-instance cap a busy host can drop a connection right after accepting it. Such a
 * drop — TCP connected, closed before the key exchange, so nothing was offered — is retried this many times
 * after a short random pause.
 */
const EARLY_DROP_RETRIES = 3;

/** A connection sshd closed after accepting it and before the key exchange (see EARLY_DROP_RETRIES). */
class EarlyDrop extends Error {
  constructor(readonly appError: AppError) {
    super(appError.message);
  }
}

/** Host key algorithms ssh2 can verify, by pinned key type. */
const HOST_KEY_ALGORITHMS: Readonly<Record<string, readonly string[]>> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256'],
};

/** Holds one private key and signs with it until told to forget it. */
class OneKeyAgent extends BaseAgent {
  #key: KeyObject | undefined;
  readonly #publicKeyLine: string;

  constructor(privateKey: KeyObject, publicKeyLine: string) {
    super();
    this.#key = privateKey;
    this.#publicKeyLine = publicKeyLine;
  }

  override getIdentities(cb: (err: Error | undefined, keys?: (ParsedKey | Buffer | string)[]) => void): void {
    cb(undefined, this.#key === undefined ? [] : [this.#publicKeyLine]);
  }

  override sign(
    _pubKey: ParsedKey | Buffer | string,
    data: Buffer,
    options: unknown,
    cb?: (err: Error | undefined, signature?: Buffer) => void,
  ): void {
    const done = (typeof options === 'function' ? options : cb) as (e: Error | undefined, s?: Buffer) => void;
    if (this.#key === undefined) {
      done(new Error('the one-time key is gone'));
      return;
    }
    done(undefined, sign(null, data, this.#key));
  }

  forget(): void {
    this.#key = undefined;
  }
}

/**
 * Makes the broker send the one-time key's signature with its first publickey request, instead of first
 * asking sshd whether the key would do (RFC 4252 §7 allows either; OpenSSH's client asks first). sshd then
 * runs the AuthorizedKeysCommand once per logon instead of twice, and a round trip is saved: the query
 * protects a key that costs something to use (a smart card, a confirming agent), which a one-time key held
 * for this logon is not. ssh2 has no option for it, so its protocol object's `authPK` is wrapped; where
 * ssh2's internals differ the wrapper is not installed (false) and the usual query comes first.
 */
function signWithoutQuery(client: Ssh2Client, agent: OneKeyAgent): boolean {
  type AuthPK = (username: string, key: unknown, keyAlgo?: unknown, cbSign?: unknown) => void;
  const proto = (client as unknown as { _protocol?: { authPK?: AuthPK } })._protocol;
  const original = proto?.authPK;
  if (proto === undefined || typeof original !== 'function' || original.length !== 4) return false;
  proto.authPK = function (this: unknown, username, key, keyAlgo, cbSign) {
    if (cbSign !== undefined || typeof keyAlgo === 'function') {
      original.call(this, username, key, keyAlgo, cbSign);
      return;
    }
    const signNow = (data: Buffer, cb: (signature: Buffer) => void): void => {
      agent.sign(key as ParsedKey, data, {}, (err: Error | undefined, signature?: Buffer) => {
        if (err === undefined && signature !== undefined) cb(signature);
        else client.end(); // the key is gone: the logon ends as a failed authentication
      });
    };
    original.call(this, username, key, keyAlgo, signNow);
  };
  return true;
}

/** The message number of SSH_MSG_IGNORE (RFC 4253 §12). */
const SSH_MSG_IGNORE = 2;

/**
 * Makes the broker answer sshd's announcement of its host keys (`hostkeys-00@openssh.com`, OpenSSH's
 * PROTOCOL §2.5, sent as the session starts) with an `SSH_MSG_IGNORE` instead of a request for proofs.
 *
 * ssh2 asks sshd to prove each announced key (`hostkeys-prove-00@openssh.com`) on its own. The broker has
 * no use for the proofs: it never learns host keys from sshd, it checks the pinned ones, which only the
 * agent reports and a person accepts (OpenSSH's `ssh` ignores the announcement with `UpdateHostKeys no`).
 * The request costs sshd a signature per host key, and its answer is a packet the broker does not answer.
 * sshd's socket has Nagle's algorithm on until the shell starts, so its next packet (the pty request's
 * answer) waits for the ACK of that one, which a receiver with nothing to send delays by up to 40 ms
 * (Linux's delayed ACK). Through the agent's tunnel the answers arrive in the order that makes this wait
 * happen in about half of the logons (+40 ms on the shell channel, seen with tcpdump on the agent's
 * connection to sshd).
 *
 * Not answering at all is worse: the channel's confirmation, which sshd sends right after the announcement,
 * then waits for that delayed ACK in every logon. An `SSH_MSG_IGNORE` (RFC 4253 §11.2: understood and
 * ignored at any time, never answered) carries the ACK at once and asks sshd for nothing. Where ssh2's
 * internals differ, or a key exchange is under way, ssh2's own handling is kept (false, or the proof).
 */
export function answerHostKeyAnnouncement(client: Ssh2Client): boolean {
  type Handler = (proto: unknown, name: string, wantReply: boolean, data: unknown) => void;
  interface Protocol {
    _handlers?: { GLOBAL_REQUEST?: Handler };
    _packetRW?: {
      write?: { allocStart?: number; alloc?: (n: number) => Buffer; finalize?: (p: Buffer) => Buffer };
    };
    _cipher?: { encrypt?: (p: Buffer) => void };
    _kexinit?: unknown;
    requestSuccess?: () => void;
  }
  const proto = (client as unknown as { _protocol?: Protocol })._protocol;
  const handlers = proto?._handlers;
  const original = handlers?.GLOBAL_REQUEST;
  if (
    proto === undefined ||
    handlers === undefined ||
    typeof original !== 'function' ||
    original.length !== 4 ||
    typeof proto.requestSuccess !== 'function'
  ) {
    return false;
  }
  handlers.GLOBAL_REQUEST = function (this: unknown, p, name, wantReply, data) {
    // The packet writer and the cipher are replaced by each key exchange: taken as they are now.
    const writer = proto._packetRW?.write;
    const cipher = proto._cipher;
    if (
      name !== 'hostkeys-00@openssh.com' ||
      proto._kexinit !== undefined ||
      typeof writer?.allocStart !== 'number' ||
      typeof writer.alloc !== 'function' ||
      typeof writer.finalize !== 'function' ||
      typeof cipher?.encrypt !== 'function'
    ) {
      original.call(this, p, name, wantReply, data);
      return;
    }
    // OpenSSH asks no reply (serverloop.c); one is given if asked, as ssh2 does.
    if (wantReply) {
      proto.requestSuccess?.();
      return;
    }
    // SSH_MSG_IGNORE with an empty string (RFC 4253 §11.2), written as ssh2 writes its own packets.
    const start = writer.allocStart;
    const packet = writer.alloc(1 + 4);
    packet[start] = SSH_MSG_IGNORE;
    packet.writeUInt32BE(0, start + 1);
    cipher.encrypt(writer.finalize(packet));
  };
  return true;
}

/** `host:port` or `[v6]:port` → parts. */
export function parseSshAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined || port < 1 || port > 65535) {
    throw new AppError(
      'Logon.SshdUnreachable',
      `The instance's SSH address ${JSON.stringify(address)} is not valid.`,
    );
  }
  return { host, port };
}

export interface BrokerConnectOptions {
  readonly instanceId: string;
  readonly sshAddress: string;
  readonly hostKeys: readonly HostKey[];
  readonly username: string;
  readonly privateKey: KeyObject;
  readonly publicKeyLine: string;
  readonly readyTimeoutMs?: number;
  /** Which addresses may be dialled: checked on every address the SSH address resolves to. */
  readonly targetPolicy: SshTargetPolicy;
  /** Called once authentication has ended (either way), after the key was forgotten. */
  readonly onAuthenticationEnded?: (ok: boolean) => void;
  /** Called when the TCP connection is up (`tcp`) and when the key exchange has ended (`kex`). */
  readonly onPhase?: (phase: 'tcp' | 'kex') => void;
  /**
   * How sshd is reached (the instance's SshRoute): `direct` (default) dials the SSH address; `tunnel` goes
   * through the agent (`openTunnel`); `auto` dials directly within `directTimeoutMs`, and uses the tunnel
   * when that fails or the address may not be dialled. The SSH session is the same either way: pinned host
   * keys, one-time key.
   */
  readonly route?: SshRoute;
  readonly openTunnel?: () => Promise<Duplex>;
  /** `auto`: how long the direct TCP connect may take before the tunnel is used (default 1.5 s). */
  readonly directTimeoutMs?: number;
}

/** How the broker (and clients) reach an instance's sshd. */
export type SshRoute = 'direct' | 'tunnel' | 'auto';
export const DEFAULT_DIRECT_TIMEOUT_MS = 1_500;

/**
 * A TCP socket to `address:port` on which sshd has begun to speak (its `SSH-` version line, left unread for
 * ssh2), or an error within `timeoutMs`. Waiting for the line rather than the TCP connect alone: a NAT or
 * a proxy on the way may accept a connection to an address it cannot reach and close it a moment later.
 */
function sshdAnswersWithin(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: address, port });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      sock.removeListener('readable', onReadable);
      sock.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new Error(`sshd did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReadable = (): void => {
      const chunk = sock.read() as Buffer | null;
      if (chunk === null) return;
      sock.unshift(chunk);
      if (!chunk.subarray(0, 4).equals(Buffer.from('SSH-'))) {
        fail(new Error('what answered is not sshd'));
        return;
      }
      clearTimeout(timer);
      // With no 'readable' listener left the socket flows again once ssh2 listens for 'data'.
      sock.removeListener('readable', onReadable);
      sock.removeAllListeners('error');
      sock.removeAllListeners('end');
      resolve(sock);
    };
    sock.on('readable', onReadable);
    sock.once('end', () => {
      fail(new Error('the connection closed before sshd spoke'));
    });
    sock.once('error', fail);
  });
}

/**
 * Connects and authenticates. Resolves with the ready client; rejects with Logon.SshdUnreachable,
 * Logon.HostKeyMismatch, Logon.AuthenticationFailed or Logon.NoHostKeys.
 */
export function brokerConnect(options: BrokerConnectOptions): Promise<Ssh2Client> {
  // The options hold the private key: only the agent keeps it, so nothing below may capture `options`.
  const agent = new OneKeyAgent(options.privateKey, options.publicKeyLine);
  const o = {
    instanceId: options.instanceId,
    sshAddress: options.sshAddress,
    hostKeys: options.hostKeys,
    username: options.username,
    readyTimeoutMs: options.readyTimeoutMs,
    targetPolicy: options.targetPolicy,
    onPhase: options.onPhase,
    route: options.route ?? 'direct',
    openTunnel: options.openTunnel,
    directTimeoutMs: options.directTimeoutMs ?? DEFAULT_DIRECT_TIMEOUT_MS,
  };
  // Dropped once called: the caller's closure (and whatever its scope holds) must not live as long as
  // the connection.
  let onAuthenticationEnded = options.onAuthenticationEnded;
  const pinned = o.hostKeys.filter((k) => HOST_KEY_ALGORITHMS[k.type] !== undefined);
  if (pinned.length === 0) {
    agent.forget();
    return Promise.reject(
      new AppError(
        'Logon.NoHostKeys',
        `${o.instanceId} has no pinned host key the broker can verify, and the broker never trusts a host key ` +
          "on first use; check sshd's HostKey files on the host and restart its agent.",
      ),
    );
  }
  const pinnedBlobs = pinned.map((k) => Buffer.from(k.publicKey.split(' ')[1] ?? '', 'base64'));
  const { host, port } = parseSshAddress(o.sshAddress);
  let mismatch = false;
  let authEnded = false;
  const endAuth = (ok: boolean): void => {
    if (authEnded) return;
    authEnded = true;
    agent.forget();
    const notify = onAuthenticationEnded;
    onAuthenticationEnded = undefined;
    notify?.(ok);
  };

  /** Where each attempt's byte stream comes from: a TCP socket to the address, or a tunnel. */
  type Source =
    { readonly address: string; first?: Socket | undefined } | { readonly tunnel: () => Promise<Duplex> };
  const tunnelSource = (): Source => {
    const open = o.openTunnel;
    if (open === undefined) {
      throw new AppError(
        'Logon.SshdUnreachable',
        `${o.instanceId} is to be reached through its agent, and tunnels are not available on this server.`,
      );
    }
    return { tunnel: open };
  };
  const chooseSource = async (): Promise<Source> => {
    if (o.route === 'tunnel') return tunnelSource();
    if (o.route === 'direct')
      return { address: await resolveDialAddress(o.instanceId, host, o.targetPolicy) };
    // auto: the direct route when its address may be dialled and answers quickly, else the tunnel.
    let address: string;
    try {
      address = await resolveDialAddress(o.instanceId, host, o.targetPolicy);
    } catch {
      return tunnelSource();
    }
    try {
      return { address, first: await sshdAnswersWithin(address, port, o.directTimeoutMs) };
    } catch {
      return tunnelSource();
    }
  };

  return chooseSource()
    .then((source) => attempt(source, EARLY_DROP_RETRIES))
    .catch((err: unknown) => {
      endAuth(false);
      throw err instanceof EarlyDrop ? err.appError : err;
    });

  function attempt(source: Source, retriesLeft: number): Promise<Ssh2Client> {
    return handshake(source).catch(async (err: unknown) => {
      if (!(err instanceof EarlyDrop) || retriesLeft === 0) throw err;
      await sleep(20 + Math.random() * 80);
      return attempt(source, retriesLeft - 1);
    });
  }

  async function handshake(source: Source): Promise<Ssh2Client> {
    if ('address' in source) {
      const first = source.first;
      source.first = undefined;
      if (first !== undefined) {
        first.setNoDelay(true);
        o.onPhase?.('tcp');
      }
      return handshakeOn(first ?? netConnect({ host: source.address, port }), first !== undefined);
    }
    const stream = await source.tunnel();
    o.onPhase?.('tcp');
    return handshakeOn(stream, true);
  }

  function handshakeOn(sock: Socket | Duplex, alreadyConnected: boolean): Promise<Ssh2Client> {
    return new Promise((resolve, reject) => {
      if ('setNoDelay' in sock) sock.setNoDelay(true);
      if (!alreadyConnected) sock.once('connect', () => o.onPhase?.('tcp'));
      let connected = alreadyConnected;
      let keysExchanged = false;
      let timedOut = false;
      sock.once('connect', () => {
        connected = true;
      });
      const client = new Client();
      client.once('handshake', () => {
        keysExchanged = true;
        o.onPhase?.('kex');
      });
      let settled = false;
      const fail = (err: AppError): void => {
        // Accepted, then closed before the key exchange: sshd shedding load (retried; the key is kept).
        const early =
          connected && !keysExchanged && !timedOut && !mismatch && err.code === 'Logon.SshdUnreachable';
        if (!early) endAuth(false);
        if (settled) return;
        settled = true;
        client.end();
        sock.destroy();
        reject(early ? new EarlyDrop(err) : err);
      };
      sock.on('error', (err) => {
        fail(
          new AppError(
            'Logon.SshdUnreachable',
            `The broker cannot reach sshd of ${o.instanceId} at ${o.sshAddress}: ${(err as NodeJS.ErrnoException).code ?? err.message}.`,
          ),
        );
      });
      client.once('ready', () => {
        endAuth(true);
        if (settled) return;
        settled = true;
        resolve(client);
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (err.level === 'client-timeout') timedOut = true;
        if (mismatch) {
          fail(
            new AppError(
              'Logon.HostKeyMismatch',
              `sshd at ${o.sshAddress} presented a host key that is not one pinned for ${o.instanceId}: the logon ` +
                'is refused. If the host keys were changed on purpose, restart the agent so it reports them, then ' +
                'accept them (keyward instance accept-host-keys).',
            ),
          );
        } else if (err.level === 'client-authentication') {
          fail(
            new AppError(
              'Logon.AuthenticationFailed',
              `sshd of ${o.instanceId} refused the one-time key for ${o.username}; check that sshd runs the ` +
                "Keyward AuthorizedKeysCommand (the agent's log says) and that the host clock is right.",
            ),
          );
        } else {
          fail(
            new AppError(
              'Logon.SshdUnreachable',
              `The SSH connection to ${o.instanceId} at ${o.sshAddress} failed before authentication: ${err.message}.`,
            ),
          );
        }
      });
      client.once('close', () => {
        fail(
          new AppError(
            'Logon.SshdUnreachable',
            `sshd at ${o.sshAddress} closed the connection before authentication.`,
          ),
        );
      });
      client.connect({
        sock,
        username: o.username,
        agent,
        agentForward: false,
        authHandler: [{ type: 'agent', username: o.username, agent }] as never,
        readyTimeout: o.readyTimeoutMs ?? DEFAULT_BROKER_READY_TIMEOUT_MS,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        algorithms: {
          serverHostKey: [...new Set(pinned.flatMap((k) => HOST_KEY_ALGORITHMS[k.type] ?? []))] as never,
        },
        hostVerifier: (key: Buffer) => {
          const ok = pinnedBlobs.some((b) => b.equals(key));
          if (!ok) mismatch = true;
          return ok;
        },
      });
      signWithoutQuery(client, agent);
      answerHostKeyAnnouncement(client);
    });
  }
}

/**
 * Resolves the SSH address's host (a name only when the operator listed it) and checks every address it
 * resolves to: one refused address refuses the logon, so DNS cannot steer the broker to link-local or
 * loopback addresses. Returns the address to dial.
 */
async function resolveDialAddress(
  instanceId: string,
  host: string,
  policy: SshTargetPolicy,
): Promise<string> {
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (err) {
    throw new AppError(
      'Logon.SshdUnreachable',
      `The broker cannot resolve the SSH address of ${instanceId} (${host}): ${(err as NodeJS.ErrnoException).code ?? 'lookup failed'}.`,
    );
  }
  for (const { address } of addresses) {
    const decision = checkDialAddress(address, policy);
    if (!decision.ok) {
      throw new AppError(
        'Logon.SshAddressRefused',
        `The broker does not connect to the SSH address of ${instanceId}: ${decision.reason}.`,
      );
    }
  }
  const first = addresses[0];
  if (first === undefined) {
    throw new AppError(
      'Logon.SshdUnreachable',
      `The SSH address of ${instanceId} (${host}) resolves to nothing.`,
    );
  }
  return first.address;
}
