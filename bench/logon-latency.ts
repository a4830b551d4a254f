/**
 * Password-free logon benchmark, every part real: a `keyward server` child, a `keyward agent` child, private
 * sshds on 127.0.0.1, a throwaway OS user, the real OpenSSH client. Rounds are interleaved so every measure
 * sees the same machine state. Measured, each as p50/p99 over ROUNDS:
 *
 * 1. Logon latency, request → first output of a command:
 *    - broker logon: StartTerminalSession + terminal WebSocket (one-time key, signed grant, agent install,
 *      ssh2 logon, shell) + `echo` typed into the shell, until its output arrives;
 *    - the floor: an ssh2 logon with a key already in authorized_keys (Nagle off), a shell, the same `echo`
 *      — what a logon costs with no Keyward work at all;
 *    - `keyward ssh USER@INSTANCE -- echo …` (Node start, key pair, SendSSHPublicKey, system ssh);
 *    - plain OpenSSH `ssh -i key host echo …` with an installed key.
 *    Targets: broker p50 ≤ 1.3× the floor and ≤ 0.6× plain ssh; keyward ssh p50 ≤ 1.3× plain ssh.
 * 2. The AuthorizedKeysCommand's cost per logon: plain `ssh … true` with the key in authorized_keys on an
 *    sshd without the command, against the same logon on the agent's sshd (the helper runs, the user has no
 *    grant) and a logon whose key the helper serves from a grant. Target: ≤ 10% added at p50.
 * 3. 200 broker logons started at once: all must succeed; time to all and the server's peak RSS.
 *
 * Needs root (useradd, sshd, /run), as the host tests do. `--quick` runs fewer rounds.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { RpcClient } from '../src/client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { startPrivateSshd, type PrivateSshd } from '../test/helpers/sshd.js';
import { BIN, brokerLogon, startLogonFixture } from './logon-fixture.js';
import { summarize, type LatencySummary } from './stats.js';
import { fixed, renderTable } from './table.js';
import { exitWhenIdle } from './lingering-handles.js';

const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 5 : 30;
const AKC_ROUNDS = QUICK ? 10 : 40;
const CONCURRENT = 200;
const KEYWARD = '2026-11-01';

interface Ctx {
  readonly sshd: PrivateSshd;
  readonly plainSshd: PrivateSshd;
  readonly user: string;
  readonly staticKey: string;
  readonly staticPem: string;
  readonly knownHosts: string;
  readonly endpoint: string;
  readonly rpc: RpcClient;
  readonly env: NodeJS.ProcessEnv;
  readonly instanceId: string;
}

/** Runs a process; resolves with elapsed ms once it exits 0 with `expect` in its stdout. */
function timedRun(file: string, args: string[], env: NodeJS.ProcessEnv, expect: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      if (code === 0 && out.includes(expect)) resolve(ms);
      else reject(new Error(`${file} exited ${String(code)}: ${err}${out}`));
    });
  });
}

function sshArgs(c: Ctx, port: number, key: string, command: string): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    key,
    '-p',
    String(port),
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    `UserKnownHostsFile=${c.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'HostKeyAlias=bench-host',
    `${c.user}@127.0.0.1`,
    command,
  ];
}

/** ssh2 logon with an installed key, Nagle off, a pty shell, `echo` → its output. */
function floorLogon(c: Ctx, marker: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const sock = netConnect(c.sshd.port, '127.0.0.1');
    sock.setNoDelay(true);
    const client = new ssh2.Client();
    client.on('error', reject);
    client.on('ready', () => {
      client.shell({ term: 'xterm-256color', cols: 120, rows: 30 }, (err, stream) => {
        if (err !== undefined && err !== null) {
          reject(err);
          return;
        }
        let out = '';
        stream.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes(`${marker}:42`)) {
            resolve(performance.now() - t0);
            client.end();
          }
        });
        stream.write(`echo ${marker}:$((6*7))\n`);
      });
    });
    client.connect({
      sock,
      username: c.user,
      privateKey: c.staticPem,
      hostVerifier: () => true,
    });
  });
}

function row(name: string, s: LatencySummary): string[] {
  return [name, fixed(s.p50, 1), fixed(s.p99, 1), fixed(s.max, 1)];
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? '0');
  return kb / 1024;
}

async function main(): Promise<void> {
  const fx = await startLogonFixture({ prefix: 'kw-logon-bench' });
  const plainSshd = await startPrivateSshd();
  try {
    const { work, env, server, rpc, sshd, user, instanceId } = fx;
    const creds = server.credentials;
    if (creds === undefined || server.pid === undefined) throw new Error('no credentials');
    // The same key, installed the ordinary way, for the baselines.
    const { privateKey } = generateKeyPairSync('ed25519');
    const staticPem = ed25519ToOpenSshPrivateKey(privateKey, 'bench');
    const staticKey = join(work, 'static_ed25519');
    writeFileSync(staticKey, staticPem, { mode: 0o600 });
    const sshDir = join(user.home, '.ssh');
    mkdirSync(sshDir, { mode: 0o700, recursive: true });
    writeFileSync(join(sshDir, 'authorized_keys'), `${ed25519PublicKeyLine(privateKey)}\n`, { mode: 0o600 });
    chownSync(sshDir, user.uid, user.gid);
    chownSync(join(sshDir, 'authorized_keys'), user.uid, user.gid);
    const knownHosts = join(work, 'known_hosts');
    // One alias for both sshds' keys: ssh accepts a host key that matches any line of its alias.
    writeFileSync(knownHosts, `bench-host ${sshd.hostKeyPub}\nbench-host ${plainSshd.hostKeyPub}\n`);

    const c: Ctx = {
      sshd,
      plainSshd,
      user: user.name,
      staticKey,
      staticPem,
      knownHosts,
      endpoint: server.endpoint,
      rpc,
      env: {
        ...env,
        KEYWARD_ENDPOINT: server.endpoint,
        KEYWARD_ACCESS_KEY_ID: creds.accessKeyId,
        KEYWARD_ACCESS_KEY_SECRET: creds.accessKeySecret,
        XDG_CACHE_HOME: join(work, 'cache'),
      },
      instanceId,
    };

    // Warm-up (page cache, sshd, JIT), then interleaved rounds.
    for (let i = 0; i < 3; i++) {
      await floorLogon(c, `warm${String(i)}`);
      await brokerLogon(c, `warmb${String(i)}`);
      await timedRun(
        process.execPath,
        [BIN, 'ssh', `${c.user}@${instanceId}`, '--', '-T', 'true'],
        c.env,
        '',
      );
    }
    const broker: number[] = [];
    const floor: number[] = [];
    const kwssh: number[] = [];
    const plain: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const m = `m${String(r)}`;
      broker.push(await brokerLogon(c, m));
      floor.push(await floorLogon(c, m));
      kwssh.push(
        await timedRun(
          process.execPath,
          [BIN, 'ssh', `${c.user}@${instanceId}`, '--', '-o', 'BatchMode=yes', '-T', `echo ${m}`],
          c.env,
          m,
        ),
      );
      plain.push(await timedRun('/usr/bin/ssh', sshArgs(c, sshd.port, staticKey, `echo ${m}`), c.env, m));
    }

    // The AuthorizedKeysCommand's cost: same client, same key type, sshds that differ only by the command.
    const noCommand: number[] = [];
    const commandNoGrant: number[] = [];
    const commandGrant: number[] = [];
    for (let r = 0; r < AKC_ROUNDS; r++) {
      noCommand.push(
        await timedRun('/usr/bin/ssh', sshArgs(c, plainSshd.port, staticKey, 'true'), c.env, ''),
      );
      commandNoGrant.push(
        await timedRun('/usr/bin/ssh', sshArgs(c, sshd.port, staticKey, 'true'), c.env, ''),
      );
      const { privateKey: oneTime } = generateKeyPairSync('ed25519');
      const file = join(work, `grant-${String(r)}`);
      writeFileSync(file, ed25519ToOpenSshPrivateKey(oneTime, 'bench'), { mode: 0o600 });
      await rpc.call(
        'SendSSHPublicKey',
        {
          RegionId: 'local',
          InstanceId: instanceId,
          InstanceOSUser: c.user,
          SSHPublicKey: ed25519PublicKeyLine(oneTime),
        },
        { version: KEYWARD },
      );
      commandGrant.push(await timedRun('/usr/bin/ssh', sshArgs(c, sshd.port, file, 'true'), c.env, ''));
      rmSync(file);
    }

    // 200 broker logons at once.
    const t0 = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: CONCURRENT }, (_, i) => brokerLogon(c, `c${String(i)}`)),
    );
    const allMs = performance.now() - t0;
    const failed = results.filter((x) => x.status === 'rejected');
    const rss = peakRssMiB(server.pid);

    const b = summarize(broker);
    const f = summarize(floor);
    const k = summarize(kwssh);
    const p = summarize(plain);
    const n = summarize(noCommand);
    const cn = summarize(commandNoGrant);
    const cg = summarize(commandGrant);
    const ok = results.length - failed.length;
    process.stdout.write(
      `\n6. Logon latency: request → first output of a command (${String(ROUNDS)} interleaved rounds)\n` +
        renderTable(
          ['measure', 'p50 ms', 'p99 ms', 'max ms'],
          [
            row('broker logon (StartTerminalSession → WebSocket → echo)', b),
            row('floor: ssh2 logon, key installed, Nagle off, shell, echo', f),
            row('keyward ssh USER@INSTANCE -- echo', k),
            row('plain OpenSSH ssh -i key host echo (key installed)', p),
          ],
        ) +
        `\n   broker / floor = ${fixed(b.p50 / f.p50, 2)}× (target ≤ 1.3×); broker / plain ssh = ${fixed(b.p50 / p.p50, 2)}× ` +
        `(target ≤ 0.6×); keyward ssh / plain ssh = ${fixed(k.p50 / p.p50, 2)}× (target ≤ 1.3×)\n` +
        `\n7. AuthorizedKeysCommand cost per logon: ssh … true (${String(AKC_ROUNDS)} interleaved rounds)\n` +
        renderTable(
          ['measure', 'p50 ms', 'p99 ms', 'max ms'],
          [
            row('sshd without the command, key in authorized_keys', n),
            row("agent's sshd, key in authorized_keys (helper runs, no grant)", cn),
            row("agent's sshd, one-time key served by the helper", cg),
          ],
        ) +
        `\n   added at p50: no grant ${fixed(((cn.p50 - n.p50) / n.p50) * 100, 1)}%, served key ` +
        `${fixed(((cg.p50 - n.p50) / n.p50) * 100, 1)}% (target ≤ 10%)\n` +
        `\n8. ${String(CONCURRENT)} broker logons started at once: ${String(ok)}/${String(CONCURRENT)} succeeded in ` +
        `${fixed(allMs, 0)} ms; server peak RSS ${fixed(rss, 1)} MiB\n` +
        (failed.length > 0
          ? `   first failure: ${String((failed[0] as PromiseRejectedResult).reason)}\n`
          : ''),
    );
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    await plainSshd.stop();
    await fx.stop();
  }
}

await main();
exitWhenIdle('logon latency');
