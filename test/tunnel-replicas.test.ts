/**
 * Tunnels with several replicas on one PostgreSQL (docs/high-availability.md), every part real: `keyward
 * server` children on 127.0.0.1, each with its own `--public-url`, one database and one master key; a real
 * agent given the URLs of two replicas and connected to one of them (A; the other is B), a private sshd
 * and a throwaway OS user.
 *   - a client's StartSshTunnel on B: B asks A (over the cluster bus) to send tunnel-open, the agent dials
 *     B's URL, and sshd answers through B;
 *   - a broker logon on B with the route `tunnel` runs a command;
 *   - a replica C whose URL the agent was not given (as with one load-balancer URL): the dial goes to A,
 *     which has no such tunnel, asks the others over the bus, and forwards the dial to C's internal URL;
 *   - the same with a replica D on https (a self-signed certificate every replica trusts through
 *     NODE_EXTRA_CA_CERTS): A forwards the dial over TLS, verifying D's certificate;
 *   - raw-mode tunnels over TLS to D: sshd answers, and OpenSSH through what `keyward ssh-config` writes
 *     (ssh is handed one end of a local socket pair; `keyward proxy` relays it to the TLS connection, as TLS
 *     cannot be handed to ssh) copies a file there and back.
 * (A replica with no internal URL fails such a tunnel at once with `Tunnel.DialMisrouted`:
 * src/tunnels/agent-tunnels.test.ts.)
 *
 * This file starts its own PostgreSQL cluster, so the test runner runs it once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { RpcClient } from '../src/client/index.js';
import { openRawSshTunnel, openSshTunnel } from '../src/client/tunnel.js';
import {
  agentLogLines,
  dropHost,
  makeHost,
  spawnAgent,
  stopAgent,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { startReplicaSet, type ReplicaSet } from './helpers/replicas.js';
import { BIN, baseEnv, makeTempDir, removeDir, type ChildServer } from './helpers/server.js';
import { agentArgs, freePort } from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';
import { makeSelfSignedCert, run } from './helpers/tools.js';

const KEYWARD = '2026-11-01';

let set: ReplicaSet;
let host: HostFixture;
let hostDir: string;
let agent: AgentChild | undefined;
let instanceId = '';
const rpcs: RpcClient[] = [];
/** The replica the agent is connected to, and the other of the two it was given. */
let holder = 0;
let other = 1;
/** A certificate for 127.0.0.1 that every replica trusts (NODE_EXTRA_CA_CERTS), for the https replica. */
let tls: { certFile: string; keyFile: string; pem: string };
let tlsDir = '';

/**
 * Starts a replica listening on a port chosen here, with that URL as its `--public-url`; `https`: on TLS,
 * with the certificate every replica trusts.
 */
async function addReplica(https = false): Promise<ChildServer> {
  const port = await freePort();
  const url = `${https ? 'https' : 'http'}://127.0.0.1:${String(port)}`;
  const args = ['--listen', `127.0.0.1:${String(port)}`, '--public-url', url];
  if (https) args.push('--tls-cert', tls.certFile, '--tls-key', tls.keyFile);
  const replica = await set.add(args, https ? { ca: tls.pem } : {});
  assert.equal(replica.endpoint, url);
  rpcs.push(
    testRpcClient({
      endpoint: replica.endpoint,
      accessKeyId: replica.credentials.accessKeyId,
      accessKeySecret: replica.credentials.accessKeySecret,
      ...(https && { ca: tls.pem }),
    }),
  );
  return replica;
}

function rpcAt(i: number): RpcClient {
  const c = rpcs[i];
  if (c === undefined) throw new Error(`no replica ${i}`);
  return c;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await probe().catch((err: unknown) => {
      last = err;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const logs = set.replicas.map((r, i) => `replica ${i}:\n${r.logs().split('\n').slice(-15).join('\n')}`);
      throw new Error(
        `timed out waiting for ${what}; last error: ${String(last)}\n${logs.join('\n')}\n${agent?.log() ?? ''}`,
      );
    }
    await sleep(100);
  }
}

/** What sshd sent first through a tunnel (its banner). */
function firstBytes(stream: Duplex): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    stream.once('data', (chunk: Buffer) => {
      resolve(chunk.toString('latin1'));
    });
    stream.once('error', reject);
  });
}

before(async () => {
  host = await makeHost('keyward-tunnel-replicas-');
  hostDir = join('/run', `kw-tunnel-replicas-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  tlsDir = await makeTempDir('keyward-tunnel-replicas-tls-');
  tls = await makeSelfSignedCert(tlsDir);
  set = await startReplicaSet(0, { env: { NODE_EXTRA_CA_CERTS: tls.certFile } });
  const a = await addReplica();
  const b = await addReplica();
  const { Token } = await rpcAt(0).call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawnAgent(
    agentArgs({
      server: `${a.endpoint},${b.endpoint}`,
      stateDir: join(host.work, 'agent-state'),
      loginUser: host.user.name,
      sshd: host.sshd,
      extra: [
        '--token',
        Token,
        '--grants-dir',
        join(hostDir, 'grants'),
        '--authorized-keys-command',
        join(hostDir, 'libexec', 'authorized-keys-command'),
      ],
    }),
  );
  instanceId = await until('the agent to be Running', async () => {
    const res = await rpcAt(1).call<{
      Instances: { Instance: Array<{ InstanceId: string; Status: string }> };
    }>('DescribeInstances', { RegionId: 'local' });
    return res.Instances.Instance.find((i) => i.Status === 'Running')?.InstanceId;
  });
  // Whichever of the two the agent is connected to is "A" below; the other, "B", asks through the bus.
  const connected = agentLogLines(agent.log(), 'connected to the server').map((l) => l['serverUrl']);
  assert.equal(connected.length, 1, agent.log());
  holder = connected[0] === a.endpoint ? 0 : 1;
  assert.equal(connected[0], set.replicas[holder]?.endpoint, agent.log());
  other = 1 - holder;
});

after(async () => {
  if (process.env['KWT_DUMP'] === '1') {
    for (const [i, r] of set.replicas.entries()) process.stdout.write(`# replica ${i}\n${r.logs()}\n`);
    process.stdout.write(agent?.log() ?? '');
  }
  await stopAgent(agent);
  for (const c of rpcs) c.close();
  await set?.close();
  await dropHost(host);
  if (hostDir !== undefined) await rm(hostDir, { recursive: true, force: true });
  if (tlsDir !== '') await removeDir(tlsDir);
});

test("a client's tunnel asked on replica B while the agent is connected to A reaches sshd", async () => {
  const stream = await openSshTunnel(rpcAt(other), {
    regionId: 'local',
    instanceId,
    loginUser: host.user.name,
  });
  assert.match(await firstBytes(stream), /^SSH-2\.0-/);
  stream.destroy();
});

test('a broker logon on replica B with the route tunnel runs a command', async () => {
  await rpcAt(other).call('ModifyInstanceAttribute', {
    RegionId: 'local',
    InstanceId: instanceId,
    SshRoute: 'tunnel',
  });
  const start = await rpcAt(other).call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  const endpoint = set.replicas[other]?.endpoint ?? '';
  const ws = new WebSocket(
    `${endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  let output = '';
  const result = await new Promise<{ output: string; error?: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no output from the terminal; got ${JSON.stringify(output)}\n${agent?.log() ?? ''}`));
    }, 60_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg['type'] === 'ready') ws.send(Buffer.from('echo via-b-$((6*7))\n'));
        else if (msg['type'] === 'error') {
          clearTimeout(timer);
          ws.close();
          resolve({ output, error: `${String(msg['code'])}: ${String(msg['message'])}` });
        }
        return;
      }
      output += data.toString();
      if (output.includes('via-b-42')) {
        clearTimeout(timer);
        ws.send(Buffer.from('exit\n'));
        ws.once('close', () => {
          resolve({ output });
        });
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  assert.equal(result.error, undefined, result.output);
  assert.match(result.output, /via-b-42/);
});

test('a replica whose URL the agent was not given: A receives the dial and forwards it there', async () => {
  const c = await addReplica();
  const stream = await openSshTunnel(rpcAt(2), {
    regionId: 'local',
    instanceId,
    loginUser: host.user.name,
  });
  assert.match(await firstBytes(stream), /^SSH-2\.0-/);
  stream.destroy();
  // The agent dialed A (its current connection's URL), and C paired it after A forwarded it.
  assert.ok(c.logs().includes('which forwards it here'), c.logs());
  const dialed = agentLogLines(agent?.log() ?? '', 'tunnel open').map((l) => l['serverUrl']);
  assert.equal(dialed.at(-1), set.replicas[holder]?.endpoint, agent?.log());
});

test('a replica on https whose URL the agent was not given: A forwards the dial there over TLS', async () => {
  const d = await addReplica(true);
  const stream = await openSshTunnel(rpcAt(rpcs.length - 1), {
    regionId: 'local',
    instanceId,
    loginUser: host.user.name,
  });
  assert.match(await firstBytes(stream), /^SSH-2\.0-/);
  stream.destroy();
  // The agent dialed A over plain http; A forwarded it to D's https URL, which paired it.
  assert.ok(d.logs().includes('which forwards it here'), d.logs());
  const dialed = agentLogLines(agent?.log() ?? '', 'tunnel open').map((l) => l['serverUrl']);
  assert.equal(dialed.at(-1), set.replicas[holder]?.endpoint, agent?.log());
});

test('raw mode over TLS to the https replica: sshd answers; scp through ssh-config copies both ways', async () => {
  const d = set.replicas.find((r) => r.endpoint.startsWith('https:'));
  assert.ok(d !== undefined, 'the https replica was added by the test before');
  const raw = await openRawSshTunnel(rpcAt(rpcs.length - 1), {
    regionId: 'local',
    instanceId,
    loginUser: host.user.name,
  });
  assert.ok('encrypted' in raw, 'a TLS socket');
  raw.write('SSH-2.0-KeywardTest\r\n');
  raw.resume();
  assert.match(await firstBytes(raw), /^SSH-2\.0-/);
  raw.destroy();
  // Short: the agent socket's path (HOME/.keyward/agent/USER@INSTANCE.keyward:22) must fit 107 bytes.
  const home = join('/tmp', `kwh-${randomBytes(3).toString('hex')}`);
  try {
    await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    const env = {
      ...baseEnv(),
      KEYWARD_ENDPOINT: d.endpoint,
      KEYWARD_ACCESS_KEY_ID: d.credentials.accessKeyId,
      KEYWARD_ACCESS_KEY_SECRET: d.credentials.accessKeySecret,
      KEYWARD_REGION: 'local',
      NODE_EXTRA_CA_CERTS: tls.certFile,
      HOME: home,
    };
    const config = join(home, '.ssh', 'config');
    const installed = await run(
      process.execPath,
      [BIN, 'ssh-config', '--install', '--route', 'tunnel', '--file', config],
      { env },
    );
    assert.equal(installed.code, 0, installed.stderr);
    const local = join(home, 'up.txt');
    const text = `over TLS ${randomBytes(8).toString('hex')}\n`;
    await writeFile(local, text);
    const target = `${host.user.name}@${instanceId}.keyward`;
    const remote = join(host.user.home, 'tls-up.txt');
    // -O: the classic protocol (this sshd has no sftp subsystem).
    const ssh = ['-O', '-F', config, '-o', 'BatchMode=yes'];
    const up = await run('/usr/bin/scp', [...ssh, local, `${target}:${remote}`], { env });
    assert.equal(up.code, 0, `${up.stderr}\n${agent?.log() ?? ''}`);
    assert.equal(await readFile(remote, 'utf8'), text);
    const back = join(home, 'back.txt');
    const down = await run('/usr/bin/scp', [...ssh, `${target}:${remote}`, back], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await readFile(back, 'utf8'), text);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
