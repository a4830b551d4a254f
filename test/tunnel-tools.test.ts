// keyward-test: one engine (the CLI's SSH tools through a network namespace; storage only holds the fixture's account)
/**
 * The CLI's own tools reach a host the server cannot reach (test/helpers/netns-host.ts) by following the
 * instance's SshRoute: `keyward ssh` (routes tunnel and auto, and a cached route that went stale),
 * `keyward scp` both ways, and plain ssh and scp through an installed `keyward ssh-config` block, by
 * instance name. Every logon's one-time key is granted and used; the tunnels are audited as opened and
 * closed; nothing of `keyward ssh`'s ProxyCommand (ssh-pipe-link.ts) is left once it exited, and a refused
 * tunnel is reported with its code. Real OpenSSH, real sshd, real agent and server.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openRawSshTunnel } from '../src/client/raw-tunnel.js';
import { credentialsEnv } from './helpers/cli.js';
import { leftovers } from './helpers/leftovers.js';
import { startNetnsHost, type NetnsHost } from './helpers/netns-host.js';
import { BIN, baseEnv } from './helpers/server.js';
import { run, type RunResult } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const NAME = 'far-host';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** Tunnels one instance may have open (the server's --tunnels-per-instance): the tools open one at a time. */
const PER_INSTANCE = 2;

let h: NetnsHost;
let home: string;
let env: Record<string, string>;

before(async () => {
  if (!existsSync(SFTP_SERVER)) {
    throw new Error(`${SFTP_SERVER} is required (scp uses sftp): apt-get install -y openssh-sftp-server`);
  }
  h = await startNetnsHost({
    sshdAppend: [`Subsystem sftp ${SFTP_SERVER}`],
    serverArgs: ['--tunnels-per-instance', String(PER_INSTANCE)],
  });
  await h.rpc.call('ModifyInstanceAttribute', {
    RegionId: 'local',
    InstanceId: h.instanceId,
    InstanceName: NAME,
  });
  home = join(h.work, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const tmp = join(h.work, 'tmp');
  await mkdir(tmp, { mode: 0o700 });
  env = baseEnv({
    ...credentialsEnv(h.server.credentials),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    TMPDIR: tmp,
  });
});

after(async () => {
  await h?.close();
});

async function setRoute(route: string): Promise<void> {
  await h.rpc.call('ModifyInstanceAttribute', {
    RegionId: 'local',
    InstanceId: h.instanceId,
    SshRoute: route,
  });
}

interface Grant {
  GrantId: string;
  UsedAt: string | null;
  UseCount: number | string;
}

async function grants(): Promise<Grant[]> {
  const res = await h.rpc.call<{ Grants: { Grant: Grant[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Grants.Grant;
}

async function auditEvents(type: string): Promise<Array<Record<string, unknown>>> {
  const res = await h.rpc.call<{ Events: { Event: Array<Record<string, unknown>> } }>(
    'ListAuditEvents',
    { EventType: type, InstanceId: h.instanceId, MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Events.Event;
}

/** Client tunnels opened and closed so far. */
async function clientTunnels(): Promise<{ opened: number; closed: number }> {
  const via = (e: Record<string, unknown>): unknown => (e['Detail'] as Record<string, unknown>)['via'];
  return {
    opened: (await auditEvents('tunnel.opened')).filter((e) => via(e) === 'client').length,
    closed: (await auditEvents('tunnel.closed')).filter((e) => via(e) === 'client').length,
  };
}

/**
 * Runs `tool` and asserts it succeeded, exactly `expected` new one-time keys were granted and each was
 * used, and at least `tunnels` more client tunnels were opened and closed (audit).
 */
async function viaTunnel(
  expected: number,
  tunnels: number,
  tool: () => Promise<RunResult>,
): Promise<RunResult> {
  const known = new Set((await grants()).map((g) => g.GrantId));
  const before = await clientTunnels();
  const res = await tool();
  assert.equal(res.code, 0, `${res.stderr}\n${res.stdout}\n${h.agentLog()}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const fresh = (await grants()).filter((g) => !known.has(g.GrantId));
    const now = await clientTunnels();
    const used =
      fresh.length === expected && fresh.every((g) => g.UsedAt !== null && Number(g.UseCount) >= 1);
    if (used && now.opened - before.opened >= tunnels && now.closed - before.closed >= tunnels) break;
    if (Date.now() > deadline) {
      throw new Error(
        `want ${String(expected)} keys granted and used, ${String(tunnels)} tunnels opened and closed; ` +
          `keys ${JSON.stringify(fresh)}, tunnels before ${JSON.stringify(before)} now ${JSON.stringify(now)}\n` +
          h.agentLog(),
      );
    }
    await sleep(100);
  }
  return res;
}

/**
 * `keyward ssh [own...] USER@INSTANCE -- -T -o BatchMode=yes [sshOptions...] echo on-<the host's address>`;
 * once it exited, nothing of its ProxyCommand is left (tunnel and auto routes: ssh-pipe-link.ts).
 */
const keywardSsh = async (own: string[] = [], sshOptions: string[] = []): Promise<RunResult> => {
  const res = await run(
    process.execPath,
    [
      BIN,
      'ssh',
      ...own,
      `${h.user.name}@${h.instanceId}`,
      '--',
      '-T',
      '-o',
      'BatchMode=yes',
      ...sshOptions,
      'echo',
      'on-$(hostname -I)',
    ],
    { env },
  );
  assert.deepEqual(leftovers(join(env['TMPDIR'] ?? '', 'keyward-ssh-')), [], res.stderr);
  return res;
};

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

test('keyward ssh follows route tunnel: logs on through the tunnel, again with the cached route', async () => {
  await setRoute('tunnel');
  const took: number[] = [];
  for (let i = 0; i < 2; i += 1) {
    const r = await viaTunnel(1, 1, async () => {
      const started = performance.now();
      const done = await keywardSsh();
      took.push(performance.now() - started);
      return done;
    });
    assert.equal(r.stdout.trim(), `on-${h.hostIp}`, r.stderr);
  }
  process.stdout.write(
    `# keyward ssh … echo through the tunnel: ${took.map((ms) => ms.toFixed(0)).join(' ms, then ')} ms with the route cached\n`,
  );
  const cache = JSON.parse(readFileSync(join(home, '.cache', 'keyward', 'ssh.json'), 'utf8')) as {
    routes: Record<string, string>;
  };
  assert.equal(cache.routes[h.instanceId], 'tunnel');
});

test('keyward ssh follows route auto: sshd does not answer directly, so the tunnel (stale cached route corrected)', async () => {
  // The cache says tunnel from the test before: the early ssh is replaced once the server says auto.
  await setRoute('auto');
  for (let i = 0; i < 2; i += 1) {
    const r = await viaTunnel(1, 1, () => keywardSsh());
    assert.equal(r.stdout.trim(), `on-${h.hostIp}`, r.stderr);
  }
});

test('keyward ssh: a cached direct route that went stale is corrected; --route overrides the instance', async () => {
  await setRoute('direct');
  // Direct cannot reach the host: ssh fails (and the route direct is cached).
  const direct = await keywardSsh([], ['-o', 'ConnectTimeout=5']);
  assert.notEqual(direct.code, 0, direct.stdout);
  // The instance says direct, --route says tunnel: the tunnel.
  const forced = await viaTunnel(1, 1, () => keywardSsh(['--route', 'tunnel']));
  assert.equal(forced.stdout.trim(), `on-${h.hostIp}`);
  // The cache still says direct (an override is not cached); the instance now says tunnel.
  await setRoute('tunnel');
  const r = await viaTunnel(1, 1, () => keywardSsh());
  assert.equal(r.stdout.trim(), `on-${h.hostIp}`, r.stderr);
});

test('keyward ssh says why when the tunnel is refused (Tunnel.TooManyTunnels), exits 255, leaves nothing', async () => {
  await setRoute('tunnel');
  const held: Duplex[] = [];
  try {
    for (let i = 0; i < PER_INSTANCE; i += 1) {
      held.push(
        await openRawSshTunnel(h.rpc, {
          regionId: 'local',
          instanceId: h.instanceId,
          loginUser: h.user.name,
        }),
      );
    }
    // Both with the route cached (ssh started at once) and without (ssh started once the server answered).
    for (const own of [[], ['--route', 'tunnel']]) {
      const r = await keywardSsh(own);
      assert.equal(r.code, 255, `${r.stderr}\n${r.stdout}`);
      assert.match(r.stderr, /^keyward: Tunnel\.TooManyTunnels: /m);
      assert.equal(r.stdout, '');
      // ssh's own messages about a connection it never had are not shown.
      assert.doesNotMatch(r.stderr, /Connection closed|kex_exchange_identification/);
    }
    rmSync(join(home, '.cache', 'keyward'), { recursive: true, force: true });
    const cold = await keywardSsh();
    assert.equal(cold.code, 255, cold.stderr);
    assert.match(cold.stderr, /^keyward: Tunnel\.TooManyTunnels: /m);
  } finally {
    for (const s of held) s.destroy();
  }
});

test('keyward scp copies a file there and back through the tunnel with the same SHA-256', async () => {
  await setRoute('tunnel');
  const local = join(h.work, 'payload.bin');
  writeFileSync(local, randomBytes(8 * 1024 * 1024));
  const remote = join(h.user.home, 'payload.bin');
  await viaTunnel(1, 1, () =>
    run(process.execPath, [BIN, 'scp', '-l', h.user.name, local, `${h.instanceId}:${remote}`], { env }),
  );
  assert.equal(sha256(remote), sha256(local));
  const back = join(h.work, 'back.bin');
  await viaTunnel(1, 1, () =>
    run(process.execPath, [BIN, 'scp', `${h.user.name}@${NAME}:${remote}`, back], { env }),
  );
  assert.equal(sha256(back), sha256(local));
});

test('ssh and scp through an installed keyward ssh-config block reach the instance by name (route auto)', async () => {
  await setRoute('auto');
  const installed = await run(process.execPath, [BIN, 'ssh-config', '--install'], { env });
  assert.equal(installed.code, 0, installed.stderr);
  const config = join(home, '.ssh', 'config');
  const base = ['-F', config, '-o', 'BatchMode=yes', '-o', 'ControlMaster=no', '-o', 'ControlPath=none'];
  const r = await viaTunnel(1, 1, () =>
    run('/usr/bin/ssh', [...base, `${h.user.name}@${NAME}.keyward`, 'echo on-$(hostname -I)'], { env }),
  );
  assert.equal(r.stdout.trim(), `on-${h.hostIp}`);
  const local = join(h.work, 'small.txt');
  writeFileSync(local, `scp through the config ${randomBytes(8).toString('hex')}\n`);
  const remote = join(h.user.home, 'small.txt');
  await viaTunnel(1, 1, () =>
    run('/usr/bin/scp', [...base, local, `${h.user.name}@${NAME}.keyward:${remote}`], { env }),
  );
  assert.equal(sha256(remote), sha256(local));
  const back = join(h.work, 'small-back.txt');
  await viaTunnel(1, 1, () =>
    run('/usr/bin/scp', [...base, `${h.user.name}@${NAME}.keyward:${remote}`, back], { env }),
  );
  assert.equal(readFileSync(back, 'utf8'), readFileSync(local, 'utf8'));
});
