/**
 * The terminal WebSocket, `GET /terminal/v1/connect`: a broker logon bridged to a client (the console's
 * xterm.js, or any WebSocket client).
 *
 * Handshake: the client offers two subprotocols, `keyward-terminal-v1` and `ticket.<ticket>` (a ticket from
 * StartTerminalSession; in a header rather than the URL so it never reaches an access log). A browser's
 * Origin, when sent, must be this server's own. The ticket is redeemed before the upgrade is accepted.
 *
 * Then the broker logs on: a one-time Ed25519 key made in memory, a signed grant installed by the agent,
 * an ssh2 connection with the instance's pinned host keys, authentication, the key forgotten and its grant
 * destroyed at once (the 60-second deadline is the backstop), a shell with a pty.
 *
 * Frames: binary frames are terminal bytes in both directions. Text frames are JSON control messages:
 *   client → {"type":"resize","cols":N,"rows":N}
 *   server → {"type":"status","phase":"connecting"}
 *            {"type":"ready","sessionId","instanceId","osUser","keyExpiresAt","sessionExpiresAt","idleTimeoutSeconds",
 *             "timings"}   timings: ms per phase of the logon on the server's side (LogonTimings)
 *            {"type":"error","code","message"}           then close 4000 + the HTTP status of the code
 *            {"type":"exit","reason","exitCode"?,"signal"?} then close 1000
 * Back-pressure both ways: the shell's output is paused while the client is more than HIGH_WATER_BYTES
 * behind, and the client's socket is paused while the shell's input is full.
 * Limits: a session ends after `maxSessionSeconds` (default 6 h) and after `idleTimeoutSeconds` (default
 * 30 min) with no byte in either direction.
 *
 * Recording (with `sessions`, src/sessions): each bridged session gets a `terminal_sessions` row and, unless
 * recording is off, an asciicast v2 recording of its output (input too with `--record-input`) and resizes.
 * A session whose recording is required (`--session-recording required`, or the caller's policy allows the
 * logon only with `ecs-workbench:SessionRecording` true) does not go on unrecorded: it shows no output
 * before its recording's file is open (the row is written alongside, not waited for), when a write fails it
 * ends with `Session.RecordingFailed` (close 4500), and output that would pass the size limit is not shown
 * but ends it with `Session.RecordingLimit` (4413). Otherwise the recording stops (failed, truncated) and
 * the session goes on, re-checked as unrecorded. `session.closed` carries the recording's state, size and
 * SHA-256 once the file is synced and closed.
 *
 * Access is not decided once: with `watchAccess`, the caller's right to log on is checked again when the
 * ticket is redeemed (before any key is made) and then every TERMINAL_RECHECK_INTERVAL_MS for every open
 * session (terminal-access.ts). A session that may no longer stay open gets
 * {"type":"error","code":"Logon.AccessRevoked",…} and close 4403. If the checks fail (the database is
 * unreachable) for MAX_UNVERIFIED_MS, the sessions end with `ServiceUnavailable` (4503): fail closed.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Clock } from '../platform/clock.js';
import { AppError, isAppError } from '../platform/errors.js';
import { refuseUpgrade } from '../platform/http/refuse-upgrade.js';
import { brokerConnect } from './broker.js';
import { HandshakeLimiter } from './handshake-limiter.js';
import type { LogonAuditSink } from './logon-audit.js';
import type { LogonService } from './logon-service.js';
import { makeOneTimeKey, type OneTimeKey } from './one-time-key.js';
import { INTERRUPTED_REASON, type LiveSession, type SessionRecordings } from '../sessions/index.js';
import { TERMINAL_RECHECK_INTERVAL_MS, type TerminalAccessCheck } from './terminal-access.js';
import type { TerminalTarget, TerminalTickets } from './terminal-tickets.js';

export const TERMINAL_PATH = '/terminal/v1/connect';
export const TERMINAL_SUBPROTOCOL = 'keyward-terminal-v1';
export const DEFAULT_MAX_SESSION_SECONDS = 6 * 60 * 60;
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 30 * 60;
const HIGH_WATER_BYTES = 1024 * 1024;
/** Largest frame a client may send (keystrokes and pastes; a paste over this is split by any client). */
const MAX_CLIENT_FRAME_BYTES = 256 * 1024;
const MAX_COLS = 1000;
const MAX_ROWS = 1000;
/** How long an open session may go without a successful access check before it is closed. */
export const MAX_UNVERIFIED_MS = 30_000;

/** An open (bridged) session, as the access checks see it. */
interface OpenSession {
  readonly target: TerminalTarget;
  /** Whether the session is being recorded now (`ecs-workbench:SessionRecording` of its re-checks). */
  recording(): boolean;
  verifiedAtMs: number;
  close(error: AppError): void;
}

export interface TerminalGatewayDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly tickets: TerminalTickets;
  readonly logon: LogonService;
  readonly audit: LogonAuditSink;
  readonly maxSessionSeconds?: number;
  readonly idleTimeoutSeconds?: number;
  /** SSH handshakes in flight per instance (below sshd's MaxStartups); 8 by default. */
  readonly handshakesPerInstance?: number;
  /** Session rows and recordings; absent: sessions are neither listed nor recorded. */
  readonly sessions?: SessionRecordings;
  /** Tunnels through the agent, for instances whose SshRoute is `tunnel` or `auto` (src/tunnels). */
  readonly tunnels?: () => BrokerTunnels | undefined;
}

/** What the broker needs of src/tunnels: a byte stream to the instance's sshd through its agent. */
export interface BrokerTunnels {
  openForBroker(
    t: {
      readonly accountId: string;
      readonly regionId: string;
      readonly instanceId: string;
      readonly osUser: string;
      readonly caller: string;
      readonly requestId: string;
      readonly sourceIp: string;
    },
    signal?: AbortSignal,
  ): Promise<Duplex>;
}

/** Reads `cols`/`rows` bounds (shared with StartTerminalSession). */
export function checkTerminalSize(cols: number, rows: number): void {
  if (
    !Number.isInteger(cols) ||
    cols < 1 ||
    cols > MAX_COLS ||
    !Number.isInteger(rows) ||
    rows < 1 ||
    rows > MAX_ROWS
  ) {
    throw new AppError(
      'InvalidParameter',
      `The terminal size must be 1–${MAX_COLS} columns and 1–${MAX_ROWS} rows.`,
    );
  }
}

export class TerminalGateway {
  readonly #d: TerminalGatewayDeps;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Set<WebSocket>();
  readonly #maxSessionMs: number;
  readonly #idleMs: number;
  readonly #handshakes: HandshakeLimiter;
  readonly #open = new Map<string, OpenSession>();
  #access: TerminalAccessCheck | undefined;
  #accessTimer: NodeJS.Timeout | undefined;
  #checking = false;
  #closing = false;

  constructor(deps: TerminalGatewayDeps) {
    this.#d = deps;
    this.#maxSessionMs = (deps.maxSessionSeconds ?? DEFAULT_MAX_SESSION_SECONDS) * 1000;
    this.#idleMs = (deps.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS) * 1000;
    this.#handshakes = new HandshakeLimiter(deps.handshakesPerInstance);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: () => TERMINAL_SUBPROTOCOL,
    });
  }

  get idleTimeoutSeconds(): number {
    return this.#idleMs / 1000;
  }

  get maxSessionSeconds(): number {
    return this.#maxSessionMs / 1000;
  }

  /** Number of open terminal sockets. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      socket.destroy();
    });
    if (this.#closing) {
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req)) {
      refuseUpgrade(
        socket,
        new AppError(
          'Logon.TicketInvalid',
          'The terminal can only be opened from pages served by this server.',
        ),
      );
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const ticket = offered.find((p) => p.startsWith('ticket.'))?.slice('ticket.'.length);
    if (!offered.includes(TERMINAL_SUBPROTOCOL) || ticket === undefined) {
      this.#refuseTicket(socket);
      return;
    }
    this.#d.tickets.redeem(ticket).then(
      (target) => {
        // A tunnel's ticket (StartSshTunnel, session id `tn-…`) opens no terminal.
        if (target === undefined || target.sessionId.startsWith('tn-')) this.#refuseTicket(socket);
        else this.#accept(req, socket, head, target);
      },
      (err: unknown) => {
        this.#d.logger.warn({ err }, 'could not redeem a terminal ticket');
        refuseUpgrade(
          socket,
          new AppError('ServiceUnavailable', 'The terminal cannot be opened right now; retry.'),
        );
      },
    );
  }

  #refuseTicket(socket: Duplex): void {
    refuseUpgrade(
      socket,
      new AppError(
        'Logon.TicketInvalid',
        `Open the terminal with the subprotocols "${TERMINAL_SUBPROTOCOL}" and "ticket.<ticket>", using a ticket ` +
          'from StartTerminalSession that is less than 30 seconds old and not used before.',
      ),
    );
  }

  #accept(req: IncomingMessage, socket: Duplex, head: Buffer, target: TerminalTarget): void {
    if (this.#closing) {
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      // A client's bad frame (oversized, malformed) is an 'error' then a close: never a crash.
      ws.on('error', (err) => {
        this.#d.logger.info({ err: err.message, sessionId: target.sessionId }, 'terminal socket error');
      });
      this.#sessions.add(ws);
      ws.once('close', () => this.#sessions.delete(ws));
      void this.#run(ws, target);
    });
  }

  /**
   * Checks the caller's access when a ticket is redeemed and every `intervalMs` while a session is open,
   * closing the sessions `access` refuses (see the module header).
   */
  watchAccess(access: TerminalAccessCheck, intervalMs = TERMINAL_RECHECK_INTERVAL_MS): void {
    this.#access = access;
    clearInterval(this.#accessTimer);
    this.#accessTimer = setInterval(() => {
      void this.#recheck(access);
    }, intervalMs);
    this.#accessTimer.unref();
  }

  async #recheck(access: TerminalAccessCheck): Promise<void> {
    if (this.#checking || this.#open.size === 0) return;
    this.#checking = true;
    const open = [...this.#open.values()];
    try {
      const refused = await access.check(open.map((s) => ({ ...s.target, sessionRecording: s.recording() })));
      const now = this.#d.clock.nowMs();
      for (const s of open) {
        const error = refused.get(s.target.sessionId);
        if (error === undefined) s.verifiedAtMs = now;
        else s.close(error);
      }
    } catch (err) {
      this.#d.logger.warn({ err }, 'could not check the access of open terminal sessions');
      const now = this.#d.clock.nowMs();
      for (const s of open) {
        if (now - s.verifiedAtMs < MAX_UNVERIFIED_MS) continue;
        s.close(
          new AppError(
            'ServiceUnavailable',
            'The terminal session was closed because access to the instance could not be checked for ' +
              `${String(MAX_UNVERIFIED_MS / 1000)} seconds; open it again.`,
          ),
        );
      }
    } finally {
      this.#checking = false;
    }
  }

  /** Ends every session with 1001. */
  close(): void {
    this.#closing = true;
    clearInterval(this.#accessTimer);
    for (const ws of this.#sessions) {
      sendJson(ws, { type: 'exit', reason: 'server-shutdown' });
      ws.close(1001, 'server shutdown');
    }
  }

  async #run(ws: WebSocket, t: TerminalTarget): Promise<void> {
    const started = this.#d.clock.nowMs();
    const phases = new PhaseClock();
    const ref = { accountId: t.accountId, instanceId: t.instanceId };
    let shell: ClientChannel | undefined;
    let grantId = '';
    let clientGone = false;
    ws.once('close', () => {
      clientGone = true;
    });
    sendJson(ws, { type: 'status', phase: 'connecting' });
    let releaseSlot: (() => void) | undefined;
    let early: EarlyTunnel | undefined;
    const recorded = this.#d.sessions?.recording ?? false;
    try {
      // A ticket's decision is up to 30 s old: check again before a key is made.
      const refused = await this.#access?.check([{ ...t, sessionRecording: recorded }]).then(
        (denied) => denied.get(t.sessionId),
        (err: unknown) => {
          this.#d.logger.warn({ err, sessionId: t.sessionId }, 'could not check terminal access');
          throw new AppError(
            'ServiceUnavailable',
            'Access to the instance cannot be checked right now; retry.',
          );
        },
      );
      if (refused !== undefined) throw refused;
      phases.mark('accessCheck');
      // Whether the session may go on unrecorded, asked while the logon proceeds. Unknown is required.
      const recordingRequired = this.#recordingRequired(t, recorded);
      // The grant is issued before the wait for a handshake slot, so recording it and the agent installing it
      // overlap the wait instead of holding a slot: only TCP connect, key exchange and authentication do.
      // The tunnel route takes its slot as the grant starts instead, and opens the tunnel alongside it.
      let key: OneTimeKey | undefined = makeOneTimeKey();
      const tunnels = this.#d.tunnels?.();
      const grant = await this.#d.logon.issue(
        {
          accountId: t.accountId,
          regionId: t.regionId,
          instanceId: t.instanceId,
          osUser: t.osUser,
          publicKey: key.publicKeyLine,
          kind: 'broker',
          caller: t.caller,
          requestId: t.requestId,
          sourceIp: t.sourceIp,
        },
        {
          // The tunnel route: the agent's dial-back and sshd's start overlap the grant (EarlyTunnel).
          onInstance: (instance) => {
            if (instance.sshRoute === 'tunnel' && tunnels !== undefined) {
              early = new EarlyTunnel(this.#handshakes, tunnels, t);
            }
          },
        },
      );
      grantId = grant.grantId;
      phases.add('grantRecord', grant.timings.recordMs);
      phases.add('grantInstall', grant.timings.installMs);
      phases.mark('grantOther');
      releaseSlot = await (early?.slot ?? this.#handshakes.acquire(t.instanceId));
      phases.mark('handshakeSlot');
      const id = grant.grantId;
      const connecting = brokerConnect({
        route: grant.instance.sshRoute,
        ...(tunnels !== undefined && {
          openTunnel: () => early?.take() ?? tunnels.openForBroker(t),
        }),
        instanceId: t.instanceId,
        sshAddress: grant.instance.sshAddress,
        hostKeys: grant.instance.hostKeys,
        targetPolicy: this.#d.logon.sshTargetPolicy,
        username: t.osUser,
        privateKey: key.privateKey,
        publicKeyLine: key.publicKeyLine,
        onAuthenticationEnded: (ok) => {
          if (ok) this.#d.logon.markUsed(id, t.accountId, t.instanceId, t.caller);
          void this.#d.logon.release(id, t.instanceId, ok ? 'used' : 'authentication-failed');
        },
        onPhase: (phase) => {
          phases.mark(phase === 'tcp' ? 'tcpConnect' : 'keyExchange');
        },
      });
      // From here only the broker's signing agent holds the private key, until authentication ends.
      key = undefined;
      const client = await connecting.finally(() => {
        releaseSlot?.();
      });
      phases.mark('authentication');
      if (clientGone) {
        client.end();
        return;
      }
      shell = await new Promise<ClientChannel>((resolve, reject) => {
        client.shell({ term: 'xterm-256color', cols: t.cols, rows: t.rows }, (err, channel) => {
          if (err !== undefined && err !== null) reject(err);
          else resolve(channel);
        });
      });
      phases.mark('shellOpen');
      const required = await recordingRequired;
      this.#bridge(
        ws,
        client,
        shell,
        t,
        grant.grantId,
        grant.expiresAtMs,
        started,
        phases.timings(),
        required,
      );
    } catch (err) {
      early?.abandon();
      releaseSlot?.();
      const appErr = isAppError(err)
        ? err
        : new AppError('Logon.SshdUnreachable', `The shell could not be opened: ${(err as Error).message}`);
      if (!isAppError(err)) this.#d.logger.warn({ err, sessionId: t.sessionId }, 'terminal logon failed');
      sendJson(ws, { type: 'error', code: appErr.code, message: appErr.message });
      ws.close(4000 + appErr.status, appErr.code.slice(0, 100));
      if (grantId !== '') {
        this.#d.audit.record({
          event: 'session.closed',
          grantId,
          ...ref,
          sessionId: t.sessionId,
          reason: `failed:${appErr.code}`,
          seconds: 0,
        });
      }
    }
  }

  /** Whether `t`'s session must be recorded: the operator's mode, else the caller's policies. */
  async #recordingRequired(t: TerminalTarget, recorded: boolean): Promise<boolean> {
    const sessions = this.#d.sessions;
    if (sessions === undefined || !recorded) return false;
    if (sessions.mode === 'required') return true;
    const probe = this.#access?.recordingRequired?.(t);
    if (probe === undefined) return false;
    return probe.catch((err: unknown) => {
      this.#d.logger.warn({ err, sessionId: t.sessionId }, 'could not check whether recording is required');
      return true;
    });
  }

  #bridge(
    ws: WebSocket,
    client: { end(): void },
    shell: ClientChannel,
    t: TerminalTarget,
    grantId: string,
    keyExpiresAtMs: number,
    startedMs: number,
    timings: LogonTimings,
    recordingRequired: boolean,
  ): void {
    const ref = { grantId, accountId: t.accountId, instanceId: t.instanceId };
    const live: LiveSession | undefined = this.#d.sessions?.begin({
      id: t.sessionId,
      accountId: t.accountId,
      regionId: t.regionId,
      instanceId: t.instanceId,
      osUser: t.osUser,
      caller: t.caller,
      sourceIp: t.sourceIp,
      grantId,
      startedAt: new Date(this.#d.clock.nowMs()).toISOString(),
      cols: t.cols,
      rows: t.rows,
      recordingRequired,
      onRecordingFailure: () => {
        if (!recordingRequired) return;
        end(
          'recording-failed',
          new AppError(
            'Session.RecordingFailed',
            'The session was closed because its recording could not be written, and recording is required ' +
              'for it. Tell the Keyward operator (the recordings directory may be full or unwritable).',
          ),
        );
      },
      onSwept: () => {
        end(
          INTERRUPTED_REASON,
          new AppError(
            'Session.Interrupted',
            'The session was closed: the Keyward server bridging it stopped responding long enough for ' +
              'another replica to close it as interrupted (its recording ends there). Connect again.',
          ),
        );
      },
    });
    this.#d.audit.record({
      event: 'session.opened',
      ...ref,
      sessionId: t.sessionId,
      caller: t.caller,
      osUser: t.osUser,
      sourceIp: t.sourceIp,
      recorded: live?.recording ?? false,
      recordingRequired,
    });
    const sessionEndsMs = startedMs + this.#maxSessionMs;
    sendJson(ws, {
      type: 'ready',
      sessionId: t.sessionId,
      instanceId: t.instanceId,
      osUser: t.osUser,
      keyExpiresAt: new Date(keyExpiresAtMs).toISOString(),
      sessionExpiresAt: new Date(sessionEndsMs).toISOString(),
      idleTimeoutSeconds: this.#idleMs / 1000,
      timings,
    });

    let reason = 'client-closed';
    let ended = false;
    let exitCode: number | undefined;
    let exitSignal: string | undefined;
    /** Ends the session; with `error`, the terminal is told the code and message and closed 4000 + status. */
    const end = (why: string, error?: AppError): void => {
      if (ended) return;
      ended = true;
      reason = why;
      clearTimeout(maxTimer);
      clearTimeout(idleTimer);
      this.#open.delete(t.sessionId);
      if (ws.readyState === WebSocket.OPEN && error !== undefined) {
        sendJson(ws, { type: 'error', code: error.code, message: error.message });
        ws.close(4000 + error.status, error.code.slice(0, 100));
      } else if (ws.readyState === WebSocket.OPEN) {
        sendJson(ws, {
          type: 'exit',
          reason,
          ...(exitCode !== undefined && { exitCode }),
          ...(exitSignal !== undefined && { signal: exitSignal }),
        });
        ws.close(1000, reason);
      }
      shell.close();
      client.end();
      const endedMs = this.#d.clock.nowMs();
      const closed = {
        event: 'session.closed',
        ...ref,
        sessionId: t.sessionId,
        reason,
        seconds: Math.round((endedMs - startedMs) / 1000),
      } as const;
      if (live === undefined) {
        this.#d.audit.record(closed);
        return;
      }
      // The digest is known once the last write is fsynced: the event waits for it. A session another
      // replica swept has its `session.closed` already, with the digest its recording is cut back to.
      live.end(reason, endedMs, startedMs).then(
        ({ swept, ...rec }) => {
          if (!swept) this.#d.audit.record({ ...closed, ...rec });
        },
        (err: unknown) => {
          this.#d.logger.warn({ err, sessionId: t.sessionId }, 'could not close a session recording');
          this.#d.audit.record({
            ...closed,
            recordingState: 'failed',
            recordingBytes: null,
            recordingSha256: null,
          });
        },
      );
    };
    const maxTimer = setTimeout(() => {
      end('max-session-length');
    }, this.#maxSessionMs);
    const idleTimer = setTimeout(() => {
      end('idle-timeout');
    }, this.#idleMs);
    const activity = (): void => {
      idleTimer.refresh();
    };
    this.#open.set(t.sessionId, {
      target: t,
      recording: () => live?.recording ?? false,
      verifiedAtMs: this.#d.clock.nowMs(),
      close: (error) => {
        end(error.code === 'Logon.AccessRevoked' ? 'access-revoked' : 'access-unverified', error);
      },
    });

    // A session that must be recorded shows nothing before its recording's file is open: a file that cannot
    // be created ends it before any output (a session that may go on unrecorded does not wait).
    let awaitingFile = live !== undefined && recordingRequired;
    const resumeShell = (): void => {
      if (
        !awaitingFile &&
        ws.bufferedAmount < HIGH_WATER_BYTES / 2 &&
        live?.backlogged !== true &&
        shell.isPaused()
      ) {
        shell.resume();
      }
    };
    if (awaitingFile && live !== undefined) {
      shell.pause();
      shell.stderr.pause();
      void live.opened().then(() => {
        awaitingFile = false;
        if (ended) return;
        shell.stderr.resume();
        resumeShell();
      });
    }
    /** Records a chunk, then shows it; a chunk recording must hold but cannot (the limit) ends the session. */
    const show = (chunk: Buffer, stream: 'stdout' | 'stderr'): void => {
      if (ended) return;
      if (live !== undefined && !live.output(chunk, stream)) {
        end(
          'recording-limit',
          new AppError(
            'Session.RecordingLimit',
            'The session was closed because its recording reached the size limit, and recording is ' +
              'required for it. Open a new session to go on.',
          ),
        );
        return;
      }
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(chunk, { binary: true }, resumeShell);
      if (ws.bufferedAmount > HIGH_WATER_BYTES) shell.pause();
      if (live?.backlogged === true) {
        // The disk is slower than the shell: wait for the recording rather than hold its backlog in memory.
        shell.pause();
        void live.drained().then(resumeShell);
      }
    };
    shell.on('data', (chunk: Buffer) => {
      activity();
      show(chunk, 'stdout');
    });
    shell.stderr.on('data', (chunk: Buffer) => {
      activity();
      show(chunk, 'stderr');
    });
    shell.on('error', (err: Error) => {
      this.#d.logger.warn({ err: err.message, sessionId: t.sessionId }, 'terminal channel error');
      end('channel-error');
    });
    shell.on('exit', (code: number | null, signal?: string) => {
      if (typeof code === 'number') exitCode = code;
      if (typeof signal === 'string') exitSignal = signal;
    });
    shell.on('close', () => {
      end('shell-exited');
    });
    shell.on('drain', () => {
      if (ws.isPaused) ws.resume();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      activity();
      const buf = toBuffer(data);
      if (isBinary) {
        live?.input(buf);
        if (!shell.write(buf)) ws.pause();
        return;
      }
      const resize = parseResize(buf);
      if (resize === undefined) {
        sendJson(ws, { type: 'error', code: 'InvalidParameter', message: 'Unknown control message.' });
        return;
      }
      live?.resize(resize.cols, resize.rows);
      shell.setWindow(resize.rows, resize.cols, 0, 0);
    });
    ws.on('close', () => {
      end(ended ? reason : 'client-closed');
    });
  }
}

function parseResize(buf: Buffer): { cols: number; rows: number } | undefined {
  if (buf.length > 256) return undefined;
  let msg: unknown;
  try {
    msg = JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof msg !== 'object' || msg === null) return undefined;
  const o = msg as Record<string, unknown>;
  if (Object.keys(o).some((k) => k !== 'type' && k !== 'cols' && k !== 'rows')) return undefined;
  if (o['type'] !== 'resize') return undefined;
  const cols = o['cols'];
  const rows = o['rows'];
  if (typeof cols !== 'number' || typeof rows !== 'number') return undefined;
  try {
    checkTerminalSize(cols, rows);
  } catch {
    return undefined;
  }
  return { cols, rows };
}

function sendJson(ws: WebSocket, msg: Record<string, unknown>): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** True when `origin` names the scheme, host and port the request was sent to. */
function sameOrigin(origin: string, req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined) return false;
  const scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  return origin === `${scheme}://${host}`;
}

/**
 * The broker's tunnel, opened while its grant is recorded and installed (the instance's route is `tunnel`)
 * instead of after: the agent's dial-back and sshd's start for the connection (a process start on the
 * host) then overlap the grant. The handshake slot is taken first, since the agent connects to sshd as it
 * dials back, a connection sshd counts against MaxStartups as it does the broker's own. The tunnel is
 * authorized as a client's is, by the ticket and the access check made before the grant (the tunnel
 * gateway reads the instance again); the SSH session on it waits for the installed grant as before.
 */
class EarlyTunnel {
  /** The handshake slot, taken before the tunnel opens. */
  readonly slot: Promise<() => void>;
  #stream: Promise<Duplex> | undefined;
  readonly #abort = new AbortController();

  constructor(
    limiter: HandshakeLimiter,
    tunnels: BrokerTunnels,
    t: Parameters<BrokerTunnels['openForBroker']>[0],
  ) {
    this.slot = limiter.acquire(t.instanceId);
    const stream = this.slot.then(() => {
      if (this.#abort.signal.aborted) {
        throw new AppError('Tunnel.AgentUnreachable', 'The tunnel was given up before the agent opened it.');
      }
      return tunnels.openForBroker(t, this.#abort.signal);
    });
    // Awaited by the SSH connection, or given up by abandon(): never an unhandled rejection.
    stream.catch(() => undefined);
    this.#stream = stream;
  }

  /** The tunnel, the first time only: a retry after sshd dropped the connection opens a new one. */
  take(): Promise<Duplex> | undefined {
    const stream = this.#stream;
    this.#stream = undefined;
    return stream;
  }

  /** The logon failed before the tunnel was taken: it is given up (closed, if it opened) and the slot freed. */
  abandon(): void {
    const stream = this.take();
    if (stream === undefined) return;
    this.#abort.abort();
    void stream
      .then(
        (s) => {
          s.destroy();
        },
        () => undefined,
      )
      .finally(() =>
        this.slot.then((release) => {
          release();
        }),
      );
  }
}

/**
 * Where a broker logon's time went on the server, in ms, in order: the access check, recording the grant
 * (instance read, grant row), the agent installing it (push → answer), the rest of issuing it (audit
 * queueing, key signing), waiting for a handshake slot, TCP connect, key exchange, authentication (sshd
 * running the AuthorizedKeysCommand), the shell channel opening. Sent in the ready frame, so a slow logon
 * says where it was slow.
 */
export type LogonTimings = Readonly<Record<string, number>>;

/** Marks phases on the monotonic clock; each mark is the time since the previous one. */
class PhaseClock {
  #last = performance.now();
  /** Time of phases added since the last mark: inside the interval the next mark closes. */
  #inside = 0;
  readonly #phases: Record<string, number> = {};

  mark(phase: string): void {
    const now = performance.now();
    this.#set(phase, Math.max(0, now - this.#last - this.#inside));
    this.#last = now;
    this.#inside = 0;
  }

  /** A phase measured elsewhere, inside the interval the next mark closes (subtracted from it). */
  add(phase: string, ms: number): void {
    this.#set(phase, ms);
    this.#inside += ms;
  }

  #set(phase: string, ms: number): void {
    this.#phases[phase] = Math.round(ms * 10) / 10;
  }

  timings(): LogonTimings {
    return { ...this.#phases };
  }
}
