/**
 * Bind latency benchmark (issue: instances): from the AttachKeyPair call to the key logging in on the host,
 * with every part real — a `keyward server` child, a `keyward agent` child, a private sshd on 127.0.0.1 and a
 * throwaway OS user, the real OpenSSH client — against the time of a plain `ssh` login with an already
 * installed key, measured in the same run. Each round attaches the other of two key pairs (a new binding
 * replaces the old), then runs `ssh … true` until it succeeds; the round's time includes that login, so the
 * baseline is part of it. Needs root (useradd, sshd), as the host tests do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RpcClient } from '../src/client/index.js';
import { agentArgs, createThrowawayUser, sshEcho, startPrivateSshd } from '../test/helpers/sshd.js';
import { waitForRunningInstance } from '../test/helpers/instances.js';
import { startServerProcess } from './server-process.js';
import { summarize } from './stats.js';
import { fixed, renderTable } from './table.js';
import { exitWhenIdle } from './lingering-handles.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ROUNDS = process.argv.includes('--quick') ? 5 : 30;
const BASELINE_LOGINS = process.argv.includes('--quick') ? 5 : 30;

async function main(): Promise<void> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYWARD_')));
  const work = mkdtempSync(join(os.tmpdir(), 'keyward-bind-'));
  const sshd = await startPrivateSshd();
  const user = await createThrowawayUser();
  let agent: ChildProcess | undefined;
  const server = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir: join(work, 'data'),
    logLevel: 'warn',
    env,
    firstStart: true,
  });
  try {
    const creds = server.credentials;
    if (creds === undefined) throw new Error('no credentials');
    const rpc = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
    });
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
      RegionId: 'local',
      TtlSeconds: 600,
    });
    agent = spawn(
      process.execPath,
      [
        join(REPO_ROOT, 'bin', 'keyward.cjs'),
        ...agentArgs({
          server: server.endpoint,
          stateDir: join(work, 'agent'),
          loginUser: user.name,
          sshd,
          extra: ['--token', Token, '--log-level', 'warn'],
        }),
      ],
      { env, stdio: 'ignore' },
    );
    const instanceId = await waitForRunningInstance(rpc, { timeoutMs: 20000, pollMs: 100 });
    const keys: string[] = [];
    for (const name of ['bench-a', 'bench-b']) {
      const res = await rpc.call<{ PrivateKeyBody: string }>('CreateKeyPair', {
        RegionId: 'local',
        KeyPairName: name,
        KeyType: 'ed25519',
      });
      const file = join(work, `${name}.key`);
      writeFileSync(file, res.PrivateKeyBody, { mode: 0o600 });
      keys.push(file);
    }
    const bindMs: number[] = [];
    const attachCallMs: number[] = [];
    let attempts = 0;
    for (let r = 0; r < ROUNDS + 2; r++) {
      const which = r % 2;
      const t0 = performance.now();
      await rpc.call('AttachKeyPair', {
        RegionId: 'local',
        KeyPairName: which === 0 ? 'bench-a' : 'bench-b',
        InstanceIds: JSON.stringify([instanceId]),
      });
      const t1 = performance.now();
      for (;;) {
        attempts++;
        const res = await sshEcho(sshd.port, user.name, keys[which] ?? '');
        if (res.code === 0) break;
        if (performance.now() - t0 > 30_000) throw new Error(`key never worked: ${res.stderr}`);
      }
      if (r >= 2) {
        bindMs.push(performance.now() - t0);
        attachCallMs.push(t1 - t0);
      }
    }
    const plainMs: number[] = [];
    const bound = keys[(ROUNDS + 1) % 2] ?? '';
    for (let i = 0; i < BASELINE_LOGINS; i++) {
      const t0 = performance.now();
      const res = await sshEcho(sshd.port, user.name, bound);
      if (res.code !== 0) throw new Error(`plain login failed: ${res.stderr}`);
      plainMs.push(performance.now() - t0);
    }
    rpc.close();
    const b = summarize(bindMs);
    const a = summarize(attachCallMs);
    const p = summarize(plainMs);
    process.stdout.write(
      `\n5. Bind latency: AttachKeyPair call → first successful ssh login with that key (${String(ROUNDS)} rounds)\n` +
        renderTable(
          ['measure', 'p50 ms', 'p99 ms', 'max ms'],
          [
            ['AttachKeyPair → key logs in', fixed(b.p50, 1), fixed(b.p99, 1), fixed(b.max, 1)],
            ['  of which the AttachKeyPair call', fixed(a.p50, 1), fixed(a.p99, 1), fixed(a.max, 1)],
            ['plain ssh login (baseline)', fixed(p.p50, 1), fixed(p.p99, 1), fixed(p.max, 1)],
          ],
        ) +
        `\n   bind p50 / plain login p50 = ${fixed(b.p50 / p.p50, 2)}×; ssh attempts per round ${fixed(attempts / (ROUNDS + 2), 2)} ` +
        '(1.00 = the key worked on the first login after AttachKeyPair returned)\n',
    );
  } finally {
    if (agent !== undefined && agent.exitCode === null) agent.kill('SIGTERM');
    await server.stop();
    await sshd.stop();
    await user.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
exitWhenIdle('bind latency');
