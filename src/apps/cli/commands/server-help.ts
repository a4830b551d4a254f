/** Help text of `keyward server`, apart from the command so the CLI can show it without loading the server. */
export const SERVER_HELP = `Usage: keyward server [options]

Runs the Keyward server in the foreground: the ECS-compatible API on POST /, the web console on
GET /console/, GET /healthz.
On first start with an empty data directory it creates the account and its root access key and
writes them to DATA_DIR/initial-credentials.json (mode 0600).

Options (each also from an environment variable, then from the config file; flags win):
  --data-dir DIR      data directory, created 0700              KEYWARD_DATA_DIR   (default ./data)
  --listen HOST:PORT  address to listen on                      KEYWARD_LISTEN     (default 127.0.0.1:8080)
  --region ID         region this server serves                 KEYWARD_REGION     (default local)
  --tls-cert FILE     PEM certificate chain; enables HTTPS      KEYWARD_TLS_CERT
  --tls-key FILE      PEM private key for --tls-cert            KEYWARD_TLS_KEY
  --log-level LEVEL   fatal|error|warn|info|debug|trace|silent  KEYWARD_LOG_LEVEL  (default info)
  --logon-key-lifetime SECONDS   life of a one-time logon key pair, 1-300
                                                      KEYWARD_LOGON_KEY_LIFETIME    (default 60)
  --session-max-seconds SECONDS  longest terminal session KEYWARD_SESSION_MAX_SECONDS  (default 21600)
  --session-idle-seconds SECONDS terminal idle timeout    KEYWARD_SESSION_IDLE_SECONDS (default 1800)
  --broker-source-addresses LIST the broker's own IPs/CIDRs; one-time keys of terminal logons are then
                                 accepted by sshd only from them (from=)   KEYWARD_BROKER_SOURCE_ADDRESSES
  --ssh-address-allowlist LIST   IPs, CIDRs or DNS names agents may report as their SSH address besides
                                 the host's own addresses            KEYWARD_SSH_ADDRESS_ALLOWLIST
  --allow-loopback-hosts         let logons use SSH addresses on loopback (127.0.0.0/8, ::1): a server
                                 and its hosts on one machine, tests  KEYWARD_ALLOW_LOOPBACK_HOSTS=true
  --database URL      PostgreSQL for several replicas (postgres://USER:PASSWORD@HOST:PORT/DB); without
                      it, embedded SQLite in the data directory  KEYWARD_DATABASE_URL
  --database-max-connections N   pool size per replica, 2-200  KEYWARD_DATABASE_MAX_CONNECTIONS (default 10)
  --database-prepared-statements on|off   named prepared statements per connection (default on; off
                      behind PgBouncer in transaction mode without max_prepared_statements)
                                                    KEYWARD_DATABASE_PREPARED_STATEMENTS
  Limits per source address (an IPv6 address counts by its /64) on traffic before authentication;
  raise them when many hosts reach the server through one NAT address:
  --enrollments-per-minute N     agent enrollments, 1-1000000  KEYWARD_ENROLLMENTS_PER_MINUTE  (default 120)
  --agent-connects-per-minute N  agent connections, 1-1000000  KEYWARD_AGENT_CONNECTS_PER_MINUTE (default 600)
  --agent-pending-per-source N   agent handshakes in progress at once, 1-10000
                                                      KEYWARD_AGENT_PENDING_PER_SOURCE (default 100)
  Agent installation (GET /agent/v1/install.sh, /agent/v1/download?arch=x64|arm64):
  --agent-downloads-dir DIR   where \`npm run build:agent\` put the agent executables
                      (default dist/agent-bin beside the server's code)  KEYWARD_AGENT_DOWNLOADS_DIR
  --public-url URL    the URL hosts reach this server at, written into the installer (default: taken
                      from each request's scheme and Host header)  KEYWARD_PUBLIC_URL; agents also
                      dial their SSH tunnels back to it (with several replicas: each its own URL)
  --internal-url URL  where the other replicas reach this one (default: the --listen address unless
                      it is 0.0.0.0 or ::)  KEYWARD_INTERNAL_URL; an agent's tunnel that reaches
                      another replica is forwarded here
  Recorded terminal sessions (docs/recordings.md):
  --session-recording on|off|required   record the console's terminal sessions (asciicast v2); with
                      required, a session whose recording fails ends   KEYWARD_SESSION_RECORDING (default on)
  --recordings-dir DIR   where recordings go, 0700; with several replicas, storage every replica mounts
                                      KEYWARD_RECORDINGS_DIR (default DATA_DIR/recordings)
  --recording-max-bytes N   largest recording, 4096-17179869184  KEYWARD_RECORDING_MAX_BYTES (default 67108864)
  --record-input      record keystrokes too (off by default)      KEYWARD_RECORD_INPUT=true
  --recording-retention-days N   delete recordings this long after their session, 0 keeps them
                                      KEYWARD_RECORDING_RETENTION_DAYS (default 90)
  SSH tunnels through agents (hosts with no open port; 0 = unlimited):
  --tunnels-per-instance N      open tunnels per instance (default 64)  KEYWARD_TUNNELS_PER_INSTANCE
  --tunnels-per-user N          open tunnels per user (default 32)      KEYWARD_TUNNELS_PER_USER
  --tunnels-total N             open tunnels on this server (default 2000)  KEYWARD_TUNNELS_TOTAL
  --tunnel-bytes-per-second N   bytes per second each way per tunnel (default 0)
                                                                KEYWARD_TUNNEL_BYTES_PER_SECOND
  --config FILE       JSON file with any of: dataDir, listen, regionId, tlsCert, tlsKey, logLevel,
                      logonKeyLifetime, sessionMaxSeconds, sessionIdleSeconds, brokerSourceAddresses,
                      sshAddressAllowlist, allowLoopbackHosts, database, databaseMaxConnections,
                      databasePreparedStatements,
                      enrollmentsPerMinute, agentConnectsPerMinute, agentPendingPerSource,
                      agentDownloadsDir, publicUrl, sessionRecording, recordingsDir,
                      recordingMaxBytes, recordInput, recordingRetentionDays, tunnelsPerInstance,
                      tunnelsPerUser, tunnelsTotal, tunnelBytesPerSecond
                                                                KEYWARD_CONFIG
  -h, --help          show this help

Environment only:
  KEYWARD_MASTER_KEY  base64 of 32 bytes that seals access key secrets at rest; without it the
                      key is kept in DATA_DIR/master.key (mode 0600), created on first start.

Logs are JSON lines on standard output. SIGTERM or SIGINT drains in-flight requests and exits 0.
`;
