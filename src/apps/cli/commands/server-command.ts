/**
 * `keyward server`: runs the server in the foreground until SIGTERM or SIGINT, then drains in-flight
 * requests and exits 0.
 */
import { ConfigError, loadServerConfig } from '../../server/server-config.js';
import { createLogger, startServer } from '../../server/run-server.js';
import { SERVER_HELP } from './server-help.js';
import { parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';

const OPTIONS = {
  'data-dir': { type: 'string' },
  listen: { type: 'string' },
  region: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'log-level': { type: 'string' },
  'logon-key-lifetime': { type: 'string' },
  'session-max-seconds': { type: 'string' },
  'session-idle-seconds': { type: 'string' },
  'broker-source-addresses': { type: 'string' },
  'allow-loopback-hosts': { type: 'boolean' },
  'ssh-address-allowlist': { type: 'string' },
  database: { type: 'string' },
  'database-max-connections': { type: 'string' },
  'database-prepared-statements': { type: 'string' },
  'enrollments-per-minute': { type: 'string' },
  'agent-connects-per-minute': { type: 'string' },
  'agent-pending-per-source': { type: 'string' },
  'agent-downloads-dir': { type: 'string' },
  'public-url': { type: 'string' },
  'internal-url': { type: 'string' },
  'session-recording': { type: 'string' },
  'recordings-dir': { type: 'string' },
  'recording-max-bytes': { type: 'string' },
  'record-input': { type: 'boolean' },
  'recording-retention-days': { type: 'string' },
  'tunnels-per-instance': { type: 'string' },
  'tunnels-per-user': { type: 'string' },
  'tunnels-total': { type: 'string' },
  'tunnel-bytes-per-second': { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function serverCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(SERVER_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const flags: Record<string, string> = {};
  const map = {
    'data-dir': 'dataDir',
    listen: 'listen',
    region: 'regionId',
    'tls-cert': 'tlsCert',
    'tls-key': 'tlsKey',
    'log-level': 'logLevel',
    'logon-key-lifetime': 'logonKeyLifetime',
    'session-max-seconds': 'sessionMaxSeconds',
    'session-idle-seconds': 'sessionIdleSeconds',
    'broker-source-addresses': 'brokerSourceAddresses',
    'ssh-address-allowlist': 'sshAddressAllowlist',
    database: 'database',
    'database-max-connections': 'databaseMaxConnections',
    'database-prepared-statements': 'databasePreparedStatements',
    'enrollments-per-minute': 'enrollmentsPerMinute',
    'agent-connects-per-minute': 'agentConnectsPerMinute',
    'agent-pending-per-source': 'agentPendingPerSource',
    'agent-downloads-dir': 'agentDownloadsDir',
    'public-url': 'publicUrl',
    'internal-url': 'internalUrl',
    'session-recording': 'sessionRecording',
    'recordings-dir': 'recordingsDir',
    'recording-max-bytes': 'recordingMaxBytes',
    'recording-retention-days': 'recordingRetentionDays',
    'tunnels-per-instance': 'tunnelsPerInstance',
    'tunnels-per-user': 'tunnelsPerUser',
    'tunnels-total': 'tunnelsTotal',
    'tunnel-bytes-per-second': 'tunnelBytesPerSecond',
    config: 'config',
  } as const;
  for (const [flag, field] of Object.entries(map)) {
    const v = stringFlag(values, flag);
    if (v !== undefined) flags[field] = v;
  }
  if (values['allow-loopback-hosts'] === true) flags['allowLoopbackHosts'] = 'true';
  if (values['record-input'] === true) flags['recordInput'] = 'true';
  let config;
  try {
    config = loadServerConfig(flags, io.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      println(io.stderr, `keyward server: ${err.message}`);
      return 2;
    }
    throw err;
  }
  // Everything the server creates (database, WAL, key files) is for its own user only.
  process.umask(0o077);
  const logger = createLogger(config);
  let server;
  try {
    server = await startServer(config, logger);
  } catch (err) {
    logger.fatal({ err }, 'keyward server could not start');
    println(io.stderr, `keyward server: cannot start: ${(err as Error).message}`);
    return 1;
  }
  if (server.initialCredentialsFile !== undefined) {
    println(
      io.stderr,
      `Created the account. Its root access key is in ${server.initialCredentialsFile} (mode 0600).\n` +
        `Run: keyward configure --from-file ${server.initialCredentialsFile}   then delete that file.`,
    );
  }
  println(io.stderr, `Keyward is listening on ${server.endpoint} (region ${config.regionId}).`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without draining');
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'draining in-flight requests');
      server.close().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
