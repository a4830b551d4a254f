/**
 * A one-key SSH agent (draft-miller-ssh-agent) that `keyward ssh` and `keyward proxy` serve to the system's
 * ssh through `IdentityAgent`, so a one-time private key is never written to a file: it lives in this
 * process's memory only, and is dropped once ssh has authenticated with it.
 *
 * - REQUEST_IDENTITIES is answered with the one key, but only once `open()` is called (the grant is
 *   installed on the host): until then the answer is held, so ssh cannot offer the key too early. After
 *   `refuse()` it is answered with FAILURE, and ssh then has no key to offer.
 * - SIGN_REQUEST is answered only for this key and only for an SSH user authentication request
 *   (RFC 4252 §7: byte 50, service "ssh-connection", method "publickey" or OpenSSH's host-bound variant,
 *   this key, and the expected user): the agent signs logons, nothing else.
 * - Everything else (extensions, adding or removing keys, locking) is answered with FAILURE.
 * - When a connection that got a signature closes (ssh authenticated and hung up on the agent), the
 *   agent stops listening, removes its socket and forgets the key.
 *
 * Node built-ins only: `keyward ssh` loads this before anything else of Keyward's.
 */
import { sign, type KeyObject } from 'node:crypto';
import { lstatSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

const SSH_AGENT_FAILURE = 5;
const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENT_IDENTITIES_ANSWER = 12;
const SSH_AGENTC_SIGN_REQUEST = 13;
const SSH_AGENT_SIGN_RESPONSE = 14;
const SSH_MSG_USERAUTH_REQUEST = 50;
/** OpenSSH's agent refuses messages over 256 KiB; so does this one. */
const MAX_MESSAGE_BYTES = 256 * 1024;
/** ssh signs once per logon; a few more allow a retry, never an open-ended signing service. */
const MAX_SIGNATURES = 4;
const MAX_CONNECTIONS = 8;

function sshString(data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function frame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1);
  head[4] = type;
  return Buffer.concat([head, payload]);
}

/** A strict reader of SSH wire strings; throws on a short or overlong field. */
class Reader {
  #at = 0;
  constructor(private readonly buf: Buffer) {}
  byte(): number {
    if (this.#at >= this.buf.length) throw new Error('short');
    return this.buf[this.#at++] ?? 0;
  }
  uint32(): number {
    if (this.#at + 4 > this.buf.length) throw new Error('short');
    const v = this.buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }
  string(): Buffer {
    const n = this.uint32();
    if (this.#at + n > this.buf.length) throw new Error('short');
    const s = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return s;
  }
  get done(): boolean {
    return this.#at === this.buf.length;
  }
}

/** The public key blob (`string "ssh-ed25519", string key`) of an Ed25519 key. */
export function ed25519Blob(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x;
  if (key.asymmetricKeyType !== 'ed25519' || x === undefined) throw new TypeError('an Ed25519 key is needed');
  return Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(Buffer.from(x, 'base64url'))]);
}

/** Whether `data` is a publickey user authentication request by `user` with `blob` (RFC 4252 §7). */
function isLogonRequest(data: Buffer, blob: Buffer, user: string | undefined): boolean {
  try {
    const r = new Reader(data);
    const sessionId = r.string();
    if (sessionId.length === 0 || r.byte() !== SSH_MSG_USERAUTH_REQUEST) return false;
    const requestUser = r.string().toString('utf8');
    if (r.string().toString() !== 'ssh-connection') return false;
    const method = r.string().toString();
    if (method !== 'publickey' && method !== 'publickey-hostbound-v00@openssh.com') return false;
    if (r.byte() !== 1) return false;
    if (r.string().toString() !== 'ssh-ed25519') return false;
    if (!r.string().equals(blob)) return false;
    if (method !== 'publickey') r.string(); // the host key the session is bound to
    return r.done && (user === undefined || requestUser === user);
  } catch {
    return false;
  }
}

export interface OneKeyAgentOptions {
  /** The key (Ed25519, private). */
  readonly privateKey: KeyObject;
  /** The comment ssh shows for the key. */
  readonly comment: string;
  /** The OS user the key may log on as (sign requests for another user are refused). */
  readonly user?: string;
}

export class OneKeyAgent {
  readonly #server: Server;
  readonly #blob: Buffer;
  readonly #comment: string;
  readonly #user: string | undefined;
  #key: KeyObject | undefined;
  #state: 'held' | 'open' | 'refused' = 'held';
  #signatures = 0;
  #path: string | undefined;
  #inode: number | undefined;
  readonly #held: Array<() => void> = [];
  readonly #sockets = new Set<Socket>();
  readonly #finished: Promise<void>;
  #finish!: () => void;

  constructor(opts: OneKeyAgentOptions) {
    this.#key = opts.privateKey;
    this.#blob = ed25519Blob(opts.privateKey);
    this.#comment = opts.comment;
    this.#user = opts.user;
    this.#finished = new Promise((resolve) => (this.#finish = resolve));
    this.#server = createServer((socket) => {
      this.#accept(socket);
    });
    this.#server.maxConnections = MAX_CONNECTIONS;
    // A listen error surfaces synchronously through `listening`; nothing else is expected.
    this.#server.on('error', () => undefined);
  }

  /** The public key blob served. */
  get blob(): Buffer {
    return this.#blob;
  }

  /** Resolves once the key was used and let go of, or the agent was closed. */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /**
   * Listens on `path` (a Unix socket; its directory must be private to the user). Synchronous: the
   * socket accepts connections when this returns. Throws when the path cannot be bound (e.g. it exists).
   */
  listen(path: string): void {
    this.#server.listen({ path, exclusive: true });
    if (!this.#server.listening) {
      throw Object.assign(new Error(`cannot listen on ${path}`), { code: 'EADDRINUSE' });
    }
    this.#path = path;
    this.#inode = lstatSync(path).ino;
  }

  /**
   * The socket is also reachable as `path` now (a hard link the caller made): that name is the one
   * removed on close (and only while it is still this socket), the listening name having been removed.
   */
  movedTo(path: string): void {
    this.#path = path;
  }

  /** Answers held and future identity requests with the key. */
  open(): void {
    if (this.#state !== 'held') return;
    this.#state = 'open';
    for (const answer of this.#held.splice(0)) answer();
  }

  /** Answers held and future identity requests with FAILURE: ssh gets no key. */
  refuse(): void {
    if (this.#state === 'refused') return;
    this.#state = 'refused';
    for (const answer of this.#held.splice(0)) answer();
  }

  /** Stops listening, removes the socket, forgets the key; connections still open are closed. */
  close(): void {
    this.#key = undefined;
    this.refuse();
    if (this.#server.listening) this.#server.close();
    if (this.#path !== undefined) {
      try {
        // Only this agent's own socket: another process may have taken the name since.
        if (lstatSync(this.#path).ino === this.#inode) rmSync(this.#path, { force: true });
      } catch {
        // Already gone.
      }
    }
    this.#path = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#finish();
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    let buffered = Buffer.alloc(0);
    let signedHere = false;
    // Requests are answered in order, one at a time (a held identities answer holds those behind it).
    let queue: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const length = buffered.readUInt32BE(0);
        if (length === 0 || length > MAX_MESSAGE_BYTES) {
          socket.destroy();
          return;
        }
        if (buffered.length < 4 + length) return;
        const message = buffered.subarray(4, 4 + length);
        buffered = buffered.subarray(4 + length);
        queue = queue.then(async () => {
          const reply = await this.#answer(message);
          if (reply.type === SSH_AGENT_SIGN_RESPONSE) signedHere = true;
          if (!socket.destroyed) socket.write(reply.bytes);
        });
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      // ssh authenticated with the key and hung up on the agent: the key's work is done.
      if (signedHere) this.close();
    });
  }

  async #answer(message: Buffer): Promise<{ type: number; bytes: Buffer }> {
    const failure = { type: SSH_AGENT_FAILURE, bytes: frame(SSH_AGENT_FAILURE) };
    const type = message[0];
    if (type === SSH_AGENTC_REQUEST_IDENTITIES && message.length === 1) {
      if (this.#state === 'held') await new Promise<void>((resolve) => this.#held.push(resolve));
      if (this.#state !== 'open' || this.#key === undefined) return failure;
      const count = Buffer.alloc(4);
      count.writeUInt32BE(1);
      const payload = Buffer.concat([count, sshString(this.#blob), sshString(Buffer.from(this.#comment))]);
      return { type: SSH_AGENT_IDENTITIES_ANSWER, bytes: frame(SSH_AGENT_IDENTITIES_ANSWER, payload) };
    }
    if (type === SSH_AGENTC_SIGN_REQUEST) {
      let blob: Buffer;
      let data: Buffer;
      try {
        const r = new Reader(message.subarray(1));
        blob = r.string();
        data = r.string();
        r.uint32(); // flags: only RSA keys have any (rsa-sha2-256/512); an Ed25519 signature has one form
        if (!r.done) return failure;
      } catch {
        return failure;
      }
      const key = this.#key;
      if (
        this.#state !== 'open' ||
        key === undefined ||
        !blob.equals(this.#blob) ||
        this.#signatures >= MAX_SIGNATURES ||
        !isLogonRequest(data, this.#blob, this.#user)
      ) {
        return failure;
      }
      this.#signatures++;
      const signature = Buffer.concat([
        sshString(Buffer.from('ssh-ed25519')),
        sshString(sign(null, data, key)),
      ]);
      return { type: SSH_AGENT_SIGN_RESPONSE, bytes: frame(SSH_AGENT_SIGN_RESPONSE, sshString(signature)) };
    }
    return failure;
  }
}
