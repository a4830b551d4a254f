/**
 * Password-free logon benchmark, every part real: a `keyward server` child, a `keyward agent` child, private
 * sshds on 127.0.0.1, a throwaway OS user, the real OpenSSH client. Rounds are interleaved so every measure
 * sees the same machine state. The whole measurement is repeated RUNS times (3 by default), each run with
 * a fresh server, agent, sshd and user; every target is judged on the median of the runs' figures, and the
 * spread (lowest–highest) is printed beside it. Measured in each run, each as p50/p99 over ROUNDS:
 *
 * 1. Logon latency, request → first output of a command:
 *    - broker logon: StartTerminalSession + terminal WebSocket (one-time key, signed grant, agent install,
 *      ssh2 logon, shell) + `echo` typed into the shell, until its output arrives;
 *    - the floor: an ssh2 logon with a key already in authorized_keys (Nagle off, sshd's host key
 *      announcement answered as the broker answers it), a shell, the same `echo`
 *      — what a logon costs with no Keyward work at all;
 *    - `keyward ssh USER@INSTANCE -- echo …` (Node start, key pair, SendSSHPublicKey, system ssh);
 *    - plain OpenSSH `ssh -i key host echo …` with an installed key.
 *    Targets: broker p50 ≤ 1.3× the floor and ≤ 0.6× plain ssh; keyward ssh p50 ≤ 1.3× plain ssh, and its
 *    extra over plain ssh ≤ Node's own start (`node -e 0`) + 30 ms.
 * 2. Where the time goes, phase by phase (p50 of each phase over the same rounds):
 *    - the broker logon: the client's API call and WebSocket upgrade, then the server's own phases from the
 *      ready frame (access check, grant recorded, grant pushed → agent answered, TCP connect, key exchange,
 *      authentication, shell open), then ready → output; the floor's TCP connect, key exchange,
 *      authentication, shell open and output beside them;
 *    - the terminal paths: process start (`node -e 0`), the CLI's start (`keyward --version`), the
 *      SendSSHPublicKey call alone (API, grant recorded, pushed, agent answered), and ssh's own phases
 *      (`ssh -v`, each line timed as it arrives: TCP connect, key exchange, authenticated, command sent,
 *      first output) for keyward ssh and plain ssh, in rounds of their own so `-v` does not touch the
 *      headline figures.
 * 3. The AuthorizedKeysCommand's cost per logon: plain `ssh … true` with the key in authorized_keys on an
 *    sshd without the command, against the same logon on the agent's sshd (the helper runs, the user has no
 *    grant) and a logon whose key the helper serves from a grant (the grants of earlier rounds still live,
 *    as after a minute of `keyward ssh` use). Target: ≤ 10% added at p50. And the helper run on its own with
 *    0, 1, 10 and 100 live grants for the user, to show what each run costs and how it grows.
 * 4. 200 broker logons started at once, by 20 users (10 each: one caller may hold at most 20 terminal
 *    tickets not yet redeemed, docs/security.md): all must succeed; time to all beside the floor (200 ssh2 logons with
 *    the installed key started at once, at most 8 handshakes in flight as the broker allows per instance,
 *    since sshd drops unauthenticated connections beyond MaxStartups); target ≤ 1.5× the floor. Server
 *    peak RSS.
 *
 * Needs root (useradd, sshd, /run), as the host tests do. `--quick` runs fewer rounds; `--runs N`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { RpcClient } from '../src/client/index.js';
import { answerHostKeyAnnouncement } from '../src/logon/broker.js';
import { grantFileFingerprint, uptimeSuffix } from '../src/agent/logon/grant-store.js';
import { helperScript } from '../src/agent/logon/helper-script.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { startPrivateSshd, type PrivateSshd } from '../test/helpers/sshd.js';
import { BIN, brokerLogon, startLogonFixture, type BrokerLogonPhases } from './logon-fixture.js';
import { median, summarize, type LatencySummary } from './stats.js';
import { fixed, renderTable } from './table.js';
import { exitWhenIdle } from './lingering-handles.js';

const QUICK = process.argv.includes('--quick');
const runsFlag = process.argv.indexOf('--runs');
const RUNS = runsFlag === -1 ? (QUICK ? 1 : 3) : Number(process.argv[runsFlag + 1]);
const ROUNDS = QUICK ? 5 : 30;
const PHASE_ROUNDS = QUICK ? 5 : 20;
const AKC_ROUNDS = QUICK ? 10 : 40;
const HELPER_ROUNDS = QUICK ? 20 : 100;
const CONCURRENT = 200;
/** The 200 logons come from 20 people, 10 each: one caller may hold 20 unredeemed terminal tickets. */
const CONCURRENT_USERS = 20;
const FLOOR_HANDSHAKES = 8;
const KEYWARD = '2026-11-01';
const RAM = '2015-05-01';

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

const log = (line: string): void => {
  process.stderr.write(`· ${line}\n`);
};

/** Runs a process; resolves with elapsed ms once it exits 0 with `expect` in its stdout. */
function timedRun(file: string, args: string[], env: NodeJS.ProcessEnv, expect: string): Promise<number> {
  return timedRunPhases(file, args, env, expect, []).then((r) => r.ms);
}

/**
 * Runs a process; resolves with elapsed ms and, for each of `marks` (a stderr pattern), the ms since the
 * start at which the first stderr line matching it arrived; `output` is when `expect` reached stdout.
 */
function timedRunPhases(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  expect: string,
  marks: ReadonlyArray<readonly [string, RegExp]>,
): Promise<{ ms: number; at: Record<string, number> }> {
  const t0 = performance.now();
  const at: Record<string, number> = {};
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (expect !== '' && at['output'] === undefined && out.includes(expect))
        at['output'] = performance.now() - t0;
    });
    child.stderr.on('data', (c: Buffer) => {
      const now = performance.now() - t0;
      err += c.toString();
      for (const [name, pattern] of marks) if (at[name] === undefined && pattern.test(err)) at[name] = now;
    });
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      if (code === 0 && out.includes(expect)) resolve({ ms, at });
      else reject(new Error(`${file} exited ${String(code)}: ${err.slice(-2000)}${out}`));
    });
  });
}

function sshArgs(c: Ctx, port: number, key: string, command: string, verbose = false): string[] {
  return [
    ...(verbose ? ['-v'] : []),
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

/** ssh's `-v` lines that end each phase of its logon. */
const SSH_MARKS: ReadonlyArray<readonly [string, RegExp]> = [
  ['tcp', /debug1: Connection established/],
  ['kex', /debug1: SSH2_MSG_NEWKEYS received/],
  ['auth', /Authenticated to /],
  ['exec', /debug1: Sending command/],
];

/** The ssh2 floor's phases: TCP connect, key exchange, authentication, shell open, echo → its output. */
interface FloorPhases {
  tcp: number;
  kex: number;
  auth: number;
  shell: number;
  output: number;
}

/** ssh2 logon with an installed key, Nagle off, a pty shell, `echo` → its output. */
function floorLogon(c: Ctx, marker: string, onPhases?: (p: FloorPhases) => void): Promise<number> {
  const t0 = performance.now();
  const t = { tcp: t0, kex: t0, auth: t0, shell: t0 };
  return new Promise((resolve, reject) => {
    const sock = netConnect(c.sshd.port, '127.0.0.1');
    sock.setNoDelay(true);
    sock.once('connect', () => (t.tcp = performance.now()));
    const client = new ssh2.Client();
    client.once('handshake', () => (t.kex = performance.now()));
    client.on('error', reject);
    client.on('ready', () => {
      t.auth = performance.now();
      client.shell({ term: 'xterm-256color', cols: 120, rows: 30 }, (err, stream) => {
        if (err !== undefined && err !== null) {
          reject(err);
          return;
        }
        t.shell = performance.now();
        let out = '';
        stream.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes(`${marker}:42`)) {
            const end = performance.now();
            onPhases?.({
              tcp: t.tcp - t0,
              kex: t.kex - t.tcp,
              auth: t.auth - t.kex,
              shell: t.shell - t.auth,
              output: end - t.shell,
            });
            resolve(end - t0);
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
    // The broker's answer to sshd's host key announcement, so that the floor does not pay the delayed ACK
    // the broker no longer pays (src/logon/broker.ts says why): the floor stays the best ssh2 logon.
    if (!answerHostKeyAnnouncement(client))
      throw new Error('ssh2 changed: the floor cannot match the broker');
  });
}

/** Runs `tasks` with at most `limit` in flight; resolves with every outcome. */
async function limited<T>(
  tasks: ReadonlyArray<() => Promise<T>>,
  limit: number,
): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array<PromiseSettledResult<T>>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      const task = tasks[i];
      if (task === undefined) continue;
      try {
        results[i] = { status: 'fulfilled', value: await task() };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, () => worker()));
  return results;
}

function row(name: string, s: LatencySummary): string[] {
  return [name, fixed(s.p50, 1), fixed(s.p99, 1), fixed(s.max, 1)];
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? '0');
  return kb / 1024;
}

/** CPU seconds (user + system) used so far by the whole machine and by each of `pids`, from /proc. */
function cpuSeconds(pids: readonly (number | undefined)[]): {
  readonly machine: number;
  readonly procs: number[];
} {
  const hz = 100; // USER_HZ, the unit of /proc/stat and /proc/PID/stat on Linux
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait was work.
  const machine = fields.slice(0, 8).reduce((a, v, i) => (i === 3 || i === 4 ? a : a + v), 0) / hz;
  const procs = pids.map((pid) => {
    if (pid === undefined) return 0;
    try {
      const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(after[11]) + Number(after[12])) / hz; // utime, stime (fields 14 and 15)
    } catch {
      return 0;
    }
  });
  return { machine, procs };
}

/** The CPU a burst used: machine-wide, and per process given (this process by its own account). */
function cpuOf<T>(
  pids: readonly (number | undefined)[],
  fn: () => Promise<T>,
): Promise<{
  readonly result: T;
  readonly machine: number;
  readonly procs: number[];
  readonly self: number;
}> {
  const before = cpuSeconds(pids);
  const selfBefore = process.cpuUsage();
  return fn().then((result) => {
    const after = cpuSeconds(pids);
    const self = process.cpuUsage(selfBefore);
    return {
      result,
      machine: after.machine - before.machine,
      procs: after.procs.map((v, i) => v - (before.procs[i] ?? 0)),
      self: (self.user + self.system) / 1e6,
    };
  });
}

/** p50 of one field over a list of records (NaN when none has it). */
function p50Of<T>(records: readonly T[], pick: (r: T) => number | undefined): number {
  const values = records.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v));
  return values.length === 0 ? Number.NaN : summarize(values).p50;
}

/** The helper run alone (sh, as sshd runs it) with `grants` live grants for one user; p50 ms per run. */
async function helperRuns(
  work: string,
  grants: number,
): Promise<{ readonly offered: number; readonly all: number }> {
  const dir = mkdtempSync(join(work, 'helper-'));
  const grantsDir = join(dir, 'grants');
  const userDir = join(grantsDir, 'benchuser');
  mkdirSync(userDir, { recursive: true });
  const expiry = Math.floor(Date.now() / 1000) + 3_600;
  // The key offered is the last one granted; with no grant, a key the user holds no grant for.
  let offered = `SHA256:${createHash('sha256').update(randomBytes(32)).digest('base64').replace(/=+$/, '')}`;
  for (let i = 0; i < grants; i++) {
    const { privateKey } = generateKeyPairSync('ed25519');
    const id = `lg-${String(i).padStart(20, '0')}`;
    const line = ed25519PublicKeyLine(privateKey);
    writeFileSync(
      join(userDir, `${String(expiry)}-${id}-${grantFileFingerprint(line)}${await uptimeSuffix(expiry)}.key`),
      `restrict,pty,expiry-time="20991231000000Z" ${line} keyward-grant:${id}\n`,
    );
    const blob = Buffer.from(line.split(' ')[1] ?? '', 'base64');
    offered = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  }
  const helper = join(dir, 'helper');
  writeFileSync(helper, helperScript(grantsDir, '/usr/bin/date'), { mode: 0o755 });
  const time = (args: readonly string[], expected: number): number => {
    const samples: number[] = [];
    for (let i = 0; i < HELPER_ROUNDS; i++) {
      const t0 = performance.now();
      const r = spawnSync('/bin/sh', [helper, ...args], { env: {}, encoding: 'utf8' });
      samples.push(performance.now() - t0);
      const lines = r.stdout.split('\n').filter((l) => l !== '').length;
      if (r.status !== 0 || lines !== expected) {
        throw new Error(`the helper printed ${String(lines)} lines where ${String(expected)} were expected`);
      }
    }
    return summarize(samples).p50;
  };
  // As sshd runs it (`%u %f`: only the offered key's file is read), and without the fingerprint (every
  // grant of the user read: an older drop-in, or FingerprintHash md5).
  const result = {
    offered: time(['benchuser', offered], Math.min(grants, 1)),
    all: time(['benchuser'], grants),
  };
  rmSync(dir, { recursive: true, force: true });
  return result;
}

/** The figures of one run that the summary compares across runs. */
interface RunFigures {
  readonly brokerP50: number;
  readonly floorP50: number;
  readonly kwsshP50: number;
  readonly plainP50: number;
  readonly nodeStartP50: number;
  readonly servedAddedPct: number;
  readonly noGrantAddedPct: number;
  readonly concurrentOk: number;
  readonly concurrentMs: number;
  readonly concurrentFloorMs: number;
  readonly concurrentFloorOk: number;
}

async function runOnce(run: number): Promise<RunFigures> {
  log(`run ${String(run)}/${String(RUNS)}: starting a server, an agent, two private sshds`);
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
    const kwsshArgs = (command: string, verbose = false): string[] => [
      BIN,
      'ssh',
      `${c.user}@${instanceId}`,
      '--',
      ...(verbose ? ['-v'] : []),
      '-o',
      'BatchMode=yes',
      '-T',
      command,
    ];

    // Warm-up (page cache, sshd, JIT, keyward ssh's address cache), then interleaved rounds.
    log('warm-up');
    for (let i = 0; i < 3; i++) {
      await floorLogon(c, `warm${String(i)}`);
      await brokerLogon(c, `warmb${String(i)}`);
      await timedRun(process.execPath, kwsshArgs('true'), c.env, '');
    }
    log(`${String(ROUNDS)} interleaved rounds: broker, floor, keyward ssh, plain ssh`);
    const broker: number[] = [];
    const floor: number[] = [];
    const kwssh: number[] = [];
    const plain: number[] = [];
    const brokerPhases: BrokerLogonPhases[] = [];
    const floorPhases: FloorPhases[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const m = `m${String(r)}`;
      broker.push(await brokerLogon(c, m, { onPhases: (p) => brokerPhases.push(p) }));
      floor.push(await floorLogon(c, m, (p) => floorPhases.push(p)));
      kwssh.push(await timedRun(process.execPath, kwsshArgs(`echo ${m}`), c.env, m));
      plain.push(await timedRun('/usr/bin/ssh', sshArgs(c, sshd.port, staticKey, `echo ${m}`), c.env, m));
    }

    // The terminal paths phase by phase, in rounds of their own.
    log(`${String(PHASE_ROUNDS)} rounds of the terminal paths' phases`);
    const nodeStart: number[] = [];
    const cliStart: number[] = [];
    const sendKey: number[] = [];
    const kwsshV: Array<Record<string, number>> = [];
    const plainV: Array<Record<string, number>> = [];
    for (let r = 0; r < PHASE_ROUNDS; r++) {
      const m = `v${String(r)}`;
      nodeStart.push(await timedRun(process.execPath, ['-e', '0'], c.env, ''));
      cliStart.push(await timedRun(process.execPath, [BIN, '--version'], c.env, ''));
      const { privateKey: oneTime } = generateKeyPairSync('ed25519');
      const t0 = performance.now();
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
      sendKey.push(performance.now() - t0);
      kwsshV.push(
        (await timedRunPhases(process.execPath, kwsshArgs(`echo ${m}`, true), c.env, m, SSH_MARKS)).at,
      );
      plainV.push(
        (
          await timedRunPhases(
            '/usr/bin/ssh',
            sshArgs(c, sshd.port, staticKey, `echo ${m}`, true),
            c.env,
            m,
            SSH_MARKS,
          )
        ).at,
      );
    }

    // The AuthorizedKeysCommand's cost: same client, same key type, sshds that differ only by the command.
    log(`${String(AKC_ROUNDS)} rounds of the AuthorizedKeysCommand's cost`);
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
    const helper: (readonly [number, { readonly offered: number; readonly all: number }])[] = [];
    for (const n of [0, 1, 10, 100]) helper.push([n, await helperRuns(work, n)]);

    // 200 logons at once: the floor first (ssh2, installed key), then the broker.
    log(`${String(CONCURRENT)} floor logons at once, then ${String(CONCURRENT)} broker logons at once`);
    const floorConcurrent: FloorPhases[] = [];
    const tf = performance.now();
    const floorCpu = await cpuOf([], () =>
      limited(
        Array.from(
          { length: CONCURRENT },
          (_, i) => () => floorLogon(c, `f${String(i)}`, (ph) => floorConcurrent.push(ph)),
        ),
        FLOOR_HANDSHAKES,
      ),
    );
    const floorAll = floorCpu.result;
    const floorAllMs = performance.now() - tf;
    const people = await createPeople(rpc, server.endpoint, run);
    const concurrentPhases: BrokerLogonPhases[] = [];
    const t0 = performance.now();
    const brokerCpu = await cpuOf([server.pid, fx.agentPid], () =>
      Promise.allSettled(
        Array.from({ length: CONCURRENT }, (_, i) =>
          brokerLogon({ ...c, rpc: people[i % people.length] ?? rpc }, `c${String(i)}`, {
            onPhases: (ph) => concurrentPhases.push(ph),
          }),
        ),
      ),
    );
    const results = brokerCpu.result;
    const allMs = performance.now() - t0;
    for (const p of people) p.close();
    const failed = results.filter((x) => x.status === 'rejected');
    const rss = peakRssMiB(server.pid);

    const b = summarize(broker);
    const f = summarize(floor);
    const k = summarize(kwssh);
    const p = summarize(plain);
    const n = summarize(noCommand);
    const cn = summarize(commandNoGrant);
    const cg = summarize(commandGrant);
    const ns = summarize(nodeStart);
    const ok = results.length - failed.length;
    const floorOk = floorAll.filter((x) => x.status === 'fulfilled').length;

    const sp = (name: string): number => p50Of(brokerPhases, (x) => x.server[name]);
    const serverSum = ['accessCheck', 'handshakeSlot', 'grantRecord', 'grantInstall', 'grantOther']
      .map(sp)
      .reduce((a, x) => a + (Number.isFinite(x) ? x : 0), 0);
    const phaseRows: string[][] = [
      [
        'client: StartTerminalSession (API call, ticket issued)',
        fixed(
          p50Of(brokerPhases, (x) => x.api),
          1,
        ),
        '—',
      ],
      [
        'client: WebSocket upgrade (ticket redeemed)',
        fixed(
          p50Of(brokerPhases, (x) => x.upgrade),
          1,
        ),
        '—',
      ],
      ['server: access checked again', fixed(sp('accessCheck'), 1), '—'],
      ['server: instance read, grant recorded', fixed(sp('grantRecord'), 1), '—'],
      ['server: grant pushed → agent installed it and answered', fixed(sp('grantInstall'), 1), '—'],
      ['server: rest of issuing (key made, grant signed, audit queued)', fixed(sp('grantOther'), 1), '—'],
      ['server: handshake slot', fixed(sp('handshakeSlot'), 1), '—'],
      [
        'TCP connect',
        fixed(sp('tcpConnect'), 1),
        fixed(
          p50Of(floorPhases, (x) => x.tcp),
          1,
        ),
      ],
      [
        'key exchange (host key checked)',
        fixed(sp('keyExchange'), 1),
        fixed(
          p50Of(floorPhases, (x) => x.kex),
          1,
        ),
      ],
      [
        'authentication (broker: the helper runs once; floor: key in the file)',
        fixed(sp('authentication'), 1),
        fixed(
          p50Of(floorPhases, (x) => x.auth),
          1,
        ),
      ],
      [
        'shell channel open',
        fixed(sp('shellOpen'), 1),
        fixed(
          p50Of(floorPhases, (x) => x.shell),
          1,
        ),
      ],
      [
        'ready frame (broker) / shell (floor) → echo output',
        fixed(
          p50Of(brokerPhases, (x) => x.toOutput),
          1,
        ),
        fixed(
          p50Of(floorPhases, (x) => x.output),
          1,
        ),
      ],
      ['whole logon', fixed(b.p50, 1), fixed(f.p50, 1)],
    ];
    const vRow = (name: string, key: string): string[] => [
      name,
      fixed(
        p50Of(kwsshV, (x) => x[key]),
        1,
      ),
      fixed(
        p50Of(plainV, (x) => x[key]),
        1,
      ),
    ];
    const vStep = (name: string, from: string | undefined, to: string): string[] => {
      const step = (x: Record<string, number>): number | undefined =>
        x[to] === undefined ? undefined : (x[to] ?? 0) - (from === undefined ? 0 : (x[from] ?? Number.NaN));
      return [name, fixed(p50Of(kwsshV, step), 1), fixed(p50Of(plainV, step), 1)];
    };
    const kwExtra = k.p50 - p.p50;
    const extraTarget = ns.p50 + 30;
    const figures: RunFigures = {
      brokerP50: b.p50,
      floorP50: f.p50,
      kwsshP50: k.p50,
      plainP50: p.p50,
      nodeStartP50: ns.p50,
      servedAddedPct: ((cg.p50 - n.p50) / n.p50) * 100,
      noGrantAddedPct: ((cn.p50 - n.p50) / n.p50) * 100,
      concurrentOk: ok,
      concurrentMs: allMs,
      concurrentFloorMs: floorAllMs,
      concurrentFloorOk: floorOk,
    };
    process.stdout.write(
      `\n6. Logon latency, run ${String(run)}/${String(RUNS)}: request → first output of a command (${String(ROUNDS)} interleaved rounds)\n` +
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
        `(target ≤ 0.6×); keyward ssh / plain ssh = ${fixed(k.p50 / p.p50, 2)}× (target ≤ 1.3×); keyward ssh − plain ssh = ` +
        `${fixed(kwExtra, 1)} ms (target ≤ node -e 0 + 30 ms = ${fixed(extraTarget, 1)} ms)\n` +
        `\n   broker logon phase by phase (p50 ms of each phase over the same rounds; server phases from the ready frame, ` +
        `their sum ${fixed(serverSum, 1)} ms before the SSH phases)\n` +
        indent(renderTable(['phase', 'broker p50', 'floor p50'], phaseRows)) +
        `\n\n   terminal paths phase by phase (${String(PHASE_ROUNDS)} rounds of their own; ssh -v lines timed as they arrive, ms since the process started)\n` +
        indent(
          renderTable(
            ['phase', 'keyward ssh', 'plain ssh'],
            [
              ['process start: node -e 0 (exits)', fixed(ns.p50, 1), '—'],
              ['keyward --version (Node start + the CLI loaded)', fixed(summarize(cliStart).p50, 1), '—'],
              [
                'SendSSHPublicKey alone (API, grant recorded, pushed, agent answered)',
                fixed(summarize(sendKey).p50, 1),
                '—',
              ],
              vRow('ssh: TCP connected (at)', 'tcp'),
              vStep('ssh: key exchange (keyward ssh: waits for the pinned host keys)', 'tcp', 'kex'),
              vStep('ssh: authentication', 'kex', 'auth'),
              vStep('ssh: session open, command sent', 'auth', 'exec'),
              vStep('ssh: command sent → first output', 'exec', 'output'),
              vRow('first output (at)', 'output'),
            ],
          ),
        ) +
        `\n\n7. AuthorizedKeysCommand cost per logon: ssh … true (${String(AKC_ROUNDS)} interleaved rounds)\n` +
        renderTable(
          ['measure', 'p50 ms', 'p99 ms', 'max ms'],
          [
            row('sshd without the command, key in authorized_keys', n),
            row("agent's sshd, key in authorized_keys (helper runs, no grant)", cn),
            row("agent's sshd, one-time key served by the helper", cg),
          ],
        ) +
        `\n   added at p50: no grant ${fixed(figures.noGrantAddedPct, 1)}%, served key ` +
        `${fixed(figures.servedAddedPct, 1)}% (target ≤ 10%)\n` +
        `   the helper alone (sh, ${String(HELPER_ROUNDS)} runs each), p50 ms per run by live grants for the user, ` +
        "as sshd runs it (`%u %f`: only the offered key's grant file is read): " +
        helper.map(([g, ms]) => `${String(g)} → ${fixed(ms.offered, 2)}`).join(', ') +
        '; without the fingerprint (every grant read): ' +
        helper.map(([g, ms]) => `${String(g)} → ${fixed(ms.all, 2)}`).join(', ') +
        "; OpenSSH's ssh makes sshd run it twice per logon (it asks whether the key would do, then signs), the " +
        'broker once (it signs in its first request)\n' +
        `\n8. ${String(CONCURRENT)} logons started at once: broker (${String(CONCURRENT_USERS)} users, ` +
        `${String(CONCURRENT / CONCURRENT_USERS)} each) ${String(ok)}/${String(CONCURRENT)} in ` +
        `${fixed(allMs, 0)} ms; floor (ssh2, key installed, ≤ ${String(FLOOR_HANDSHAKES)} handshakes in flight) ` +
        `${String(floorOk)}/${String(CONCURRENT)} in ${fixed(floorAllMs, 0)} ms; broker / floor = ` +
        `${fixed(allMs / floorAllMs, 2)}× (target ≤ 1.5×, all succeed); server peak RSS ${fixed(rss, 1)} MiB\n` +
        `   where a logon's time went among the ${String(CONCURRENT)} (p50 ms): ` +
        [
          ['API call', (x: BrokerLogonPhases) => x.api],
          ['upgrade', (x: BrokerLogonPhases) => x.upgrade],
          ...[
            'accessCheck',
            'grantRecord',
            'grantInstall',
            'grantOther',
            'handshakeSlot',
            'tcpConnect',
            'keyExchange',
            'authentication',
            'shellOpen',
          ].map((name) => [name, (x: BrokerLogonPhases) => x.server[name]] as const),
          ['ready → output', (x: BrokerLogonPhases) => x.toOutput],
        ]
          .map(
            ([name, pick]) =>
              `${String(name)} ${fixed(p50Of(concurrentPhases, pick as (x: BrokerLogonPhases) => number | undefined), 1)}`,
          )
          .join(', ') +
        `\n   CPU seconds the burst used (the machine has ${String(os.availableParallelism())} cores; ` +
        'all processes, so an otherwise busy machine shows here): floor ' +
        `${fixed(floorCpu.machine, 2)} (its ssh2 client ${fixed(floorCpu.self, 2)}, sshd and shells ` +
        `${fixed(floorCpu.machine - floorCpu.self, 2)}); broker ${fixed(brokerCpu.machine, 2)} (server ` +
        `${fixed(brokerCpu.procs[0] ?? 0, 2)}, agent ${fixed(brokerCpu.procs[1] ?? 0, 2)}, the clients ` +
        `${fixed(brokerCpu.self, 2)}, sshd, helpers and shells ` +
        `${fixed(brokerCpu.machine - (brokerCpu.procs[0] ?? 0) - (brokerCpu.procs[1] ?? 0) - brokerCpu.self, 2)})` +
        `\n   the floor's (p50 ms): ` +
        (['tcp', 'kex', 'auth', 'shell', 'output'] as const)
          .map(
            (k) =>
              `${k} ${fixed(
                p50Of(floorConcurrent, (x) => x[k]),
                1,
              )}`,
          )
          .join(', ') +
        '\n' +
        (failed.length > 0
          ? `   first failure: ${String((failed[0] as PromiseRejectedResult).reason)}\n`
          : ''),
    );
    return figures;
  } finally {
    await plainSshd.stop();
    await fx.stop();
  }
}

/** CONCURRENT_USERS RAM users with AdministratorAccess and an access key each; their clients. */
async function createPeople(rpc: RpcClient, endpoint: string, run: number): Promise<RpcClient[]> {
  const clients: RpcClient[] = [];
  for (let i = 0; i < CONCURRENT_USERS; i++) {
    const name = `bench-${String(run)}-${String(i)}`;
    await rpc.call('CreateUser', { UserName: name }, { version: RAM });
    await rpc.call(
      'AttachPolicyToUser',
      { PolicyType: 'System', PolicyName: 'AdministratorAccess', UserName: name },
      { version: RAM },
    );
    const { AccessKey } = await rpc.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
      'CreateAccessKey',
      { UserName: name },
      { version: RAM },
    );
    clients.push(
      new RpcClient({
        endpoint,
        accessKeyId: AccessKey.AccessKeyId,
        accessKeySecret: AccessKey.AccessKeySecret,
      }),
    );
  }
  return clients;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');
}

function met(ok: boolean): string {
  return ok ? 'MET' : 'NOT MET';
}

async function main(): Promise<void> {
  process.stdout.write(
    `\nKeyward benchmark: password-free logon (${String(RUNS)} full runs, each with a fresh server, agent, sshd and user)\n` +
      `node:      ${process.version}, ${os.platform()} ${os.release()} ${os.arch()}; ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${String(os.cpus().length)}\n` +
      `openssh:   ${spawnSync('/usr/bin/ssh', ['-V'], { encoding: 'utf8' }).stderr.trim()}\n` +
      `load avg:  ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (1, 5, 15 min) at start\n`,
  );
  const runs: RunFigures[] = [];
  for (let r = 1; r <= RUNS; r++) runs.push(await runOnce(r));

  const judged = (
    name: string,
    values: readonly number[],
    unit: string,
    digits: number,
    target: string,
    ok: (m: number) => boolean,
  ): string[] => {
    const m = median(values);
    return [
      name,
      `${fixed(m, digits)}${unit}`,
      `${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)}${unit}`,
      target,
      met(ok(m)),
    ];
  };
  const all = (pick: (f: RunFigures) => number): number[] => runs.map(pick);
  const extra = all((f) => f.kwsshP50 - f.plainP50 - f.nodeStartP50);
  const rows = [
    judged(
      'broker logon p50 / ssh2 floor',
      all((f) => f.brokerP50 / f.floorP50),
      '×',
      2,
      '≤ 1.3×',
      (m) => m <= 1.3,
    ),
    judged(
      'broker logon p50 / plain ssh',
      all((f) => f.brokerP50 / f.plainP50),
      '×',
      2,
      '≤ 0.6×',
      (m) => m <= 0.6,
    ),
    judged(
      'keyward ssh p50 / plain ssh',
      all((f) => f.kwsshP50 / f.plainP50),
      '×',
      2,
      '≤ 1.3×',
      (m) => m <= 1.3,
    ),
    judged('keyward ssh − plain ssh − node -e 0, p50', extra, ' ms', 1, '≤ 30 ms', (m) => m <= 30),
    judged(
      'served one-time key / key in authorized_keys, added',
      all((f) => f.servedAddedPct),
      '%',
      1,
      '≤ +10%',
      (m) => m <= 10,
    ),
    judged(
      `${String(CONCURRENT)} broker logons at once / floor`,
      all((f) => f.concurrentMs / f.concurrentFloorMs),
      '×',
      2,
      '≤ 1.5×, all succeed',
      (m) => m <= 1.5 && runs.every((f) => f.concurrentOk === CONCURRENT),
    ),
  ];
  process.stdout.write(
    `\n9. Logon figures over ${String(RUNS)} full runs: each target judged on the median of the runs\n` +
      renderTable(['measure', 'median', 'spread (runs)', 'target', ''], rows) +
      `\n   p50s (ms) per run: broker ${all((f) => f.brokerP50)
        .map((x) => fixed(x, 1))
        .join(', ')}; floor ` +
      `${all((f) => f.floorP50)
        .map((x) => fixed(x, 1))
        .join(', ')}; keyward ssh ${all((f) => f.kwsshP50)
        .map((x) => fixed(x, 1))
        .join(', ')}; ` +
      `plain ssh ${all((f) => f.plainP50)
        .map((x) => fixed(x, 1))
        .join(', ')}; node -e 0 ${all((f) => f.nodeStartP50)
        .map((x) => fixed(x, 1))
        .join(', ')}\n` +
      `   ${String(CONCURRENT)} at once (ms) per run: broker ${all((f) => f.concurrentMs)
        .map((x) => fixed(x, 0))
        .join(', ')} ` +
      `(${all((f) => f.concurrentOk).join(', ')} succeeded); floor ${all((f) => f.concurrentFloorMs)
        .map((x) => fixed(x, 0))
        .join(', ')} ` +
      `(${all((f) => f.concurrentFloorOk).join(', ')} succeeded)\n`,
  );
  if (runs.some((f) => f.concurrentOk !== CONCURRENT)) process.exitCode = 1;
}

await main();
exitWhenIdle('logon latency');
