/**
 * SSH through the agent's tunnel against the direct route, on the same host in the same run (a `keyward
 * server` child, a `keyward agent` child, a private sshd on 127.0.0.1, a throwaway OS user; the route is
 * switched with ModifyInstanceAttribute SshRoute between interleaved rounds). Each run, as p50 over ROUNDS:
 *
 * 1. Broker logon (StartTerminalSession + terminal WebSocket + `echo` → its output), route tunnel / direct.
 *    Target ≤ 1.15×.
 * 2. Plain OpenSSH `ssh … true` with a one-time key from SendSSHPublicKey: through the tunnel with a
 *    ProxyCommand on the client library (test/helpers/tunnel-proxy.js, what `keyward proxy` will run),
 *    against `ssh -p PORT 127.0.0.1`. Includes the proxy's Node start and its StartSshTunnel call.
 *    Target ≤ 1.15×.
 * 3. `scp -O` of 100 MiB to the host (to /dev/null), through the tunnel / direct: throughput ratio.
 *    Target ≥ 0.7×.
 * 4. 200 tunnelled broker logons started at once by 20 users (one caller may hold 20 unredeemed terminal
 *    tickets): all must succeed; the server's peak RSS is reported.
 *
 * Every target is judged on the median of the runs (`--runs N`, default 3); the spread is printed beside
 * it. Needs root (useradd, sshd, /run), as the host tests do.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RpcClient } from '../src/client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { exitWhenIdle } from './lingering-handles.js';
import { brokerLogon, REPO_ROOT, startLogonFixture, type LogonFixture } from './logon-fixture.js';
import { median, summarize } from './stats.js';
import { fixed, renderTable } from './table.js';

const runsFlag = process.argv.indexOf('--runs');
const RUNS = runsFlag === -1 ? 3 : Number(process.argv[runsFlag + 1]);
const ROUNDS = 15;
const CONCURRENT = 200;
const CONCURRENT_USERS = 20;
const SCP_BYTES = 100 * 1024 * 1024;
const KEYWARD = '2026-11-01';
const RAM = '2015-05-01';
const PROXY = join(REPO_ROOT, 'dist', 'test', 'helpers', 'tunnel-proxy.js');

function log(line: string): void {
  process.stderr.write(`[tunnel] ${line}\n`);
}

/** Runs a program; resolves with the elapsed ms, rejects on a non-zero exit. */
function timed(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => {
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`${file} exited ${String(code)}: ${err.slice(-2000)}`));
    });
  });
}

async function setRoute(fx: LogonFixture, route: 'direct' | 'tunnel'): Promise<void> {
  await fx.rpc.call('ModifyInstanceAttribute', {
    RegionId: 'local',
    InstanceId: fx.instanceId,
    SshRoute: route,
  });
}

interface RunFigures {
  readonly brokerTunnel: number;
  readonly brokerDirect: number;
  readonly sshTunnel: number;
  readonly sshDirect: number;
  readonly scpTunnelMiBs: number;
  readonly scpDirectMiBs: number;
  readonly concurrentOk: number;
  readonly concurrentMs: number;
  readonly peakRssMiB: number;
}

async function runOnce(run: number): Promise<RunFigures> {
  const fx = await startLogonFixture({
    prefix: 'kw-bench-tunnel',
    serverArgs: ['--tunnels-per-instance', '0', '--tunnels-per-user', '0', '--tunnels-total', '0'],
  });
  try {
    const c = { rpc: fx.rpc, endpoint: fx.server.endpoint, instanceId: fx.instanceId, user: fx.user.name };
    const creds = fx.server.credentials;
    if (creds === undefined || fx.server.pid === undefined) throw new Error('no credentials');
    const env: NodeJS.ProcessEnv = {
      ...fx.env,
      KWT_ENDPOINT: fx.server.endpoint,
      KWT_ACCESS_KEY_ID: creds.accessKeyId,
      KWT_ACCESS_KEY_SECRET: creds.accessKeySecret,
    };
    const knownHosts = join(fx.work, 'known_hosts');
    writeFileSync(knownHosts, `bench-host ${fx.sshd.hostKeyPub}\n`);
    const keyFile = join(fx.work, 'one-time-key');
    const freshKey = async (): Promise<void> => {
      const { privateKey } = generateKeyPairSync('ed25519');
      writeFileSync(keyFile, ed25519ToOpenSshPrivateKey(privateKey, 'bench'), { mode: 0o600 });
      await fx.rpc.call(
        'SendSSHPublicKey',
        {
          RegionId: 'local',
          InstanceId: fx.instanceId,
          InstanceOSUser: fx.user.name,
          SSHPublicKey: ed25519PublicKeyLine(privateKey),
        },
        { version: KEYWARD },
      );
    };
    const common = [
      '-F',
      '/dev/null',
      '-i',
      keyFile,
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'HostKeyAlias=bench-host',
      '-o',
      'LogLevel=ERROR',
    ];
    const viaTunnel = ['-o', `ProxyCommand=${process.execPath} ${PROXY} ${fx.instanceId} ${fx.user.name}`];
    const direct = (flag: '-p' | '-P'): string[] => [flag, String(fx.sshd.port)];
    const target = (host: string): string => `${fx.user.name}@${host}`;

    log(
      `run ${String(run)}: ${String(ROUNDS)} rounds of broker logons and ssh, tunnel and direct interleaved`,
    );
    const brokerT: number[] = [];
    const brokerD: number[] = [];
    const sshT: number[] = [];
    const sshD: number[] = [];
    // One warm-up of each, not counted.
    await setRoute(fx, 'tunnel');
    await brokerLogon(c, 'warm-t');
    await setRoute(fx, 'direct');
    await brokerLogon(c, 'warm-d');
    for (let i = 0; i < ROUNDS; i++) {
      await setRoute(fx, 'tunnel');
      brokerT.push(await brokerLogon(c, `t${String(i)}`));
      await setRoute(fx, 'direct');
      brokerD.push(await brokerLogon(c, `d${String(i)}`));
      await freshKey();
      sshT.push(await timed('/usr/bin/ssh', [...common, ...viaTunnel, target(fx.instanceId), 'true'], env));
      sshD.push(await timed('/usr/bin/ssh', [...common, ...direct('-p'), target('127.0.0.1'), 'true'], env));
    }

    log(`run ${String(run)}: scp -O of 100 MiB, tunnel and direct`);
    const file = join(fx.work, 'payload');
    writeFileSync(file, Buffer.alloc(SCP_BYTES, 7));
    await freshKey();
    const scpT = await timed(
      '/usr/bin/scp',
      ['-O', ...common, ...viaTunnel, file, `${target(fx.instanceId)}:/dev/null`],
      env,
    );
    const scpD = await timed(
      '/usr/bin/scp',
      ['-O', ...common, ...direct('-P'), file, `${target('127.0.0.1')}:/dev/null`],
      env,
    );

    log(`run ${String(run)}: ${String(CONCURRENT)} tunnelled broker logons at once`);
    await setRoute(fx, 'tunnel');
    const people = await createPeople(fx.rpc, fx.server.endpoint, run);
    const t0 = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: CONCURRENT }, (_, i) =>
        brokerLogon({ ...c, rpc: people[i % people.length] ?? fx.rpc }, `c${String(i)}`),
      ),
    );
    const concurrentMs = performance.now() - t0;
    for (const p of people) p.close();
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) log(`${String(failed.length)} failed, e.g. ${String(failed[0]?.reason)}`);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(fx.server.pid)}/status`, 'utf8'));
    return {
      brokerTunnel: summarize(brokerT).p50,
      brokerDirect: summarize(brokerD).p50,
      sshTunnel: summarize(sshT).p50,
      sshDirect: summarize(sshD).p50,
      scpTunnelMiBs: SCP_BYTES / 1024 / 1024 / (scpT / 1000),
      scpDirectMiBs: SCP_BYTES / 1024 / 1024 / (scpD / 1000),
      concurrentOk: CONCURRENT - failed.length,
      concurrentMs,
      peakRssMiB: Number(hwm?.[1] ?? 0) / 1024,
    };
  } finally {
    await fx.stop();
  }
}

async function createPeople(rpc: RpcClient, endpoint: string, run: number): Promise<RpcClient[]> {
  const clients: RpcClient[] = [];
  for (let i = 0; i < CONCURRENT_USERS; i++) {
    const name = `tunnel-bench-${String(run)}-${String(i)}`;
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

const met = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');

async function main(): Promise<void> {
  const runs: RunFigures[] = [];
  for (let r = 1; r <= RUNS; r++) runs.push(await runOnce(r));
  const spread = (f: (x: RunFigures) => number, digits: number): string => {
    const v = runs.map(f);
    return `${fixed(Math.min(...v), digits)}–${fixed(Math.max(...v), digits)}`;
  };
  const m = (f: (x: RunFigures) => number): number => median(runs.map(f));
  const brokerRatio = m((x) => x.brokerTunnel / x.brokerDirect);
  const sshRatio = m((x) => x.sshTunnel / x.sshDirect);
  const scpRatio = m((x) => x.scpTunnelMiBs / x.scpDirectMiBs);
  const allOk = runs.every((x) => x.concurrentOk === CONCURRENT);
  const rows: string[][] = [
    [
      'broker logon p50, tunnel / direct',
      `${fixed(
        m((x) => x.brokerTunnel),
        1,
      )} / ${fixed(
        m((x) => x.brokerDirect),
        1,
      )} ms`,
      `${fixed(brokerRatio, 2)}× (${spread((x) => x.brokerTunnel / x.brokerDirect, 2)})`,
      '≤ 1.15×',
      met(brokerRatio <= 1.15),
    ],
    [
      'ssh (ProxyCommand helper) p50, tunnel / direct',
      `${fixed(
        m((x) => x.sshTunnel),
        1,
      )} / ${fixed(
        m((x) => x.sshDirect),
        1,
      )} ms`,
      `${fixed(sshRatio, 2)}× (${spread((x) => x.sshTunnel / x.sshDirect, 2)})`,
      '≤ 1.15×',
      met(sshRatio <= 1.15),
    ],
    [
      'scp -O 100 MiB throughput, tunnel / direct',
      `${fixed(
        m((x) => x.scpTunnelMiBs),
        0,
      )} / ${fixed(
        m((x) => x.scpDirectMiBs),
        0,
      )} MiB/s`,
      `${fixed(scpRatio, 2)}× (${spread((x) => x.scpTunnelMiBs / x.scpDirectMiBs, 2)})`,
      '≥ 0.7×',
      met(scpRatio >= 0.7),
    ],
    [
      `${String(CONCURRENT)} tunnelled broker logons at once`,
      `${runs.map((x) => String(x.concurrentOk)).join(', ')} succeeded; ${fixed(
        m((x) => x.concurrentMs),
        0,
      )} ms`,
      `server peak RSS ${fixed(
        m((x) => x.peakRssMiB),
        0,
      )} MiB (${spread((x) => x.peakRssMiB, 0)})`,
      'all succeed',
      met(allOk),
    ],
  ];
  process.stdout.write(
    `\nSSH through the agent's tunnel vs direct (median of ${String(RUNS)} runs, spread in brackets)\n` +
      `${renderTable(['measure', 'tunnel / direct', 'ratio', 'target', ''], rows)}\n`,
  );
  if (!allOk) process.exitCode = 1;
  exitWhenIdle('tunnel');
}

await main();
