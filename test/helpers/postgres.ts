/**
 * A real PostgreSQL for the tests, started the way a person would on Debian: `initdb` into a temporary
 * directory as the `postgres` OS user, then `pg_ctl start` listening on 127.0.0.1 and a free port (and a
 * socket directory of its own). No mock, no in-memory stand-in. Each test database is a fresh
 * `CREATE DATABASE` on that cluster, dropped afterwards.
 *
 * Debian's `postgresql` package installs the server under /usr/lib/postgresql/VERSION/bin (not on PATH);
 * a machine without it fails here with the command that installs it.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The directory holding initdb and pg_ctl, or an error naming the package to install. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(
      'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl); the tests run Keyward on a real ' +
        'PostgreSQL: apt-get install -y postgresql',
    );
  }
  return join(root, newest, 'bin');
}

function osUserId(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

export interface PostgresCluster {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres`: the administrative database. */
  readonly adminUrl: string;
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Drops a database made by `createDatabase` (closing its connections). */
  dropDatabase(url: string): Promise<void>;
  /** `pg_ctl restart`: every connection is cut, the server is back when this resolves. */
  restart(): void;
  /** The same without blocking this process (so requests can run during the restart). */
  restartAsync(): Promise<void>;
  stop(): void;
  start(): void;
  /** Stops the server and removes its directory. */
  destroy(): void;
}

function asPostgres(bin: string, args: readonly string[]): void {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', join(bin, args[0] ?? ''), ...args.slice(1)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) {
    throw new Error(`${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** Starts a private cluster; `destroy()` it when done. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  const { uid, gid } = osUserId('postgres');
  const dir = mkdtempSync(join(tmpdir(), 'keyward-pg-'));
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  asPostgres(bin, [
    'initdb',
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  const options = [
    `-c listen_addresses=127.0.0.1`,
    `-c port=${port}`,
    `-c unix_socket_directories=${dir}`,
    `-c max_connections=300`,
    `-c fsync=on`,
    `-c shared_buffers=64MB`,
  ].join(' ');
  const ctl = (action: string): void => {
    asPostgres(bin, ['pg_ctl', '-D', data, '-l', log, '-o', options, '-w', '-t', '60', action]);
  };
  ctl('start');
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  let stopped = false;
  return {
    port,
    adminUrl,
    createDatabase: async () => {
      const name = `keyward_${randomBytes(6).toString('hex')}`;
      await admin((c) => c.query(`CREATE DATABASE ${name}`));
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    dropDatabase: async (url) => {
      const name = new URL(url).pathname.slice(1);
      if (!/^keyward_[0-9a-f]{12}$/.test(name)) throw new Error(`not a test database: ${name}`);
      if (stopped) return;
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
    restart: () => {
      ctl('restart');
    },
    restartAsync: async () => {
      await promisify(execFile)(
        'runuser',
        [
          '-u',
          'postgres',
          '--',
          join(bin, 'pg_ctl'),
          '-D',
          data,
          '-l',
          log,
          '-o',
          options,
          '-w',
          '-t',
          '60',
          'restart',
        ],
        { timeout: 120_000 },
      );
    },
    stop: () => {
      ctl('stop');
    },
    start: () => {
      ctl('start');
    },
    destroy: () => {
      if (!stopped) {
        stopped = true;
        try {
          asPostgres(bin, ['pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop']);
        } catch {
          // already stopped
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
