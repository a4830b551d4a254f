/**
 * Several Keyward replicas on one PostgreSQL, as a user runs them: a private cluster (postgres.ts), one
 * database, one shared master key (KEYWARD_MASTER_KEY), and N `keyward server --database URL` children,
 * each with its own data directory and port on 127.0.0.1. The first replica creates the account; the
 * others are given a copy of its initial-credentials.json (what an operator does with the root key).
 */
import { randomBytes } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from './postgres.js';
import { makeTempDir, removeDir, startChildServer, type ChildServer } from './server.js';

export interface ReplicaSet {
  readonly cluster: PostgresCluster;
  readonly databaseUrl: string;
  readonly masterKey: string;
  /** The replicas, in start order (an entry is replaced when `restart` starts it again). */
  readonly replicas: ChildServer[];
  /** Starts one more replica on the same database (`ca`: the PEM to trust when it answers over https). */
  add(extraArgs?: readonly string[], opts?: { readonly ca?: string }): Promise<ChildServer>;
  /** Kills replica `i` with SIGKILL and waits until it is gone. */
  kill(i: number): Promise<void>;
  /** Stops every replica and the cluster, and removes their directories. */
  close(): Promise<void>;
}

export async function startReplicaSet(
  count: number,
  opts: { readonly args?: readonly string[]; readonly env?: Readonly<Record<string, string>> } = {},
): Promise<ReplicaSet> {
  const cluster = await startPostgresCluster();
  const replicas: ChildServer[] = [];
  const dirs: string[] = [];
  try {
    const databaseUrl = await cluster.createDatabase();
    const masterKey = randomBytes(32).toString('base64');
    const env = { ...opts.env, KEYWARD_MASTER_KEY: masterKey };
    const args = ['--database', databaseUrl, ...(opts.args ?? [])];
    const add = async (
      extra: readonly string[] = [],
      addOpts: { readonly ca?: string } = {},
    ): Promise<ChildServer> => {
      if (replicas.length === 0) {
        // The first start on an empty database creates the account and writes initial-credentials.json.
        const first = await startChildServer({ args: [...args, ...extra], env });
        replicas.push(first);
        return first;
      }
      // The others find the account and read the credentials copied into their data directory.
      const dir = await makeTempDir('keyward-replica-');
      dirs.push(dir);
      await copyFile(
        join(replicas[0]?.dataDir ?? '', 'initial-credentials.json'),
        join(dir, 'initial-credentials.json'),
      );
      const server = await startChildServer({
        args: [...args, ...extra],
        env,
        dataDir: dir,
        ...(addOpts.ca !== undefined && { ca: addOpts.ca }),
      });
      replicas.push(server);
      return server;
    };
    for (let i = 0; i < count; i++) await add();
    return {
      cluster,
      databaseUrl,
      masterKey,
      replicas,
      add,
      kill: async (i) => {
        const r = replicas[i];
        if (r === undefined) throw new Error(`no replica ${i}`);
        r.child.kill('SIGKILL');
        await r.exited;
      },
      close: async () => {
        await Promise.all(replicas.map((r) => r.close()));
        cluster.destroy();
        for (const d of dirs) await removeDir(d);
      },
    };
  } catch (err) {
    await Promise.all(replicas.map((r) => r.close()));
    cluster.destroy();
    for (const d of dirs) await removeDir(d);
    throw err;
  }
}
