/**
 * `keyward agent` as a child process for the cross-process agent tests: started with the arguments of
 * `agentArgs` (test/helpers/sshd.ts), its standard output (the JSON log) and error kept for assertions,
 * stopped with SIGTERM (SIGKILL after 10 s). Every child started here is tracked, so a test file can
 * stop whatever is still running in its `after`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, baseEnv, makeTempDir, removeDir } from './server.js';
import { createThrowawayUser, startPrivateSshd, type PrivateSshd, type ThrowawayUser } from './sshd.js';

/** A running (or ended) agent child. */
export interface AgentChild {
  readonly child: ChildProcess;
  /** Standard output (JSON log) and standard error so far. */
  readonly log: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const liveAgents = new Set<AgentChild>();

/** Starts `node bin/keyward.cjs ARGS` (ARGS from `agentArgs`) with the plain test environment. */
export function spawnAgent(args: readonly string[]): AgentChild {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  const agent: AgentChild = { child, log: () => out, exited };
  liveAgents.add(agent);
  void exited.then(() => liveAgents.delete(agent));
  return agent;
}

/** SIGTERM (SIGKILL after 10 s) and wait; a no-op for an agent that has exited. */
export async function stopAgent(agent: AgentChild | undefined): Promise<void> {
  if (agent === undefined || agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  agent.child.kill('SIGTERM');
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), 10_000);
  try {
    await agent.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every agent child this process started that is still running. */
export async function stopAllAgents(): Promise<void> {
  await Promise.all([...liveAgents].map(stopAgent));
}

/** The agent's JSON log lines whose message is `msg`, parsed (other output is skipped). */
export function agentLogLines(log: string, msg: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed['msg'] === msg) lines.push(parsed);
    } catch {
      // A line cut off mid-write (the child is still running): the next read has it whole.
    }
  }
  return lines;
}

/** A host for an agent under test: a private sshd, a throwaway login user and a work directory. */
export interface HostFixture {
  readonly sshd: PrivateSshd;
  readonly user: ThrowawayUser;
  readonly work: string;
}

/** Makes a host (remove it with `dropHost`). */
export async function makeHost(prefix: string): Promise<HostFixture> {
  const work = await makeTempDir(prefix);
  const sshd = await startPrivateSshd();
  const user = await createThrowawayUser();
  return { sshd, user, work };
}

/** Stops the host's sshd, removes its user and its work directory; a no-op for undefined. */
export async function dropHost(host: HostFixture | undefined): Promise<void> {
  if (host === undefined) return;
  await host.sshd.stop();
  await host.user.remove();
  await removeDir(host.work);
}
