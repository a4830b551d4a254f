/** Help text of `keyward agent`, apart from the command so the CLI can show it without loading the agent. */
import { DEFAULT_SSHD_TARGET } from '../../../agent/host/index.js';
export const AGENT_HELP = `Usage: keyward agent --server URL[,URL...] [options]

Runs the Keyward agent on this Linux host: enrolls it once with a one-time token, keeps an outbound
connection to the server, applies the key pair bound to the host and serves one-time logon keys to sshd
through an AuthorizedKeysCommand. Runs as root (it manages the login user's ~/.ssh/authorized_keys, two
sshd drop-ins and the helper).

Options (each also as an environment variable, e.g. --state-dir ↔ KEYWARD_AGENT_STATE_DIR):
  --server URL[,URL...]    the Keyward server, e.g. https://keyward.example.com (required); or up to 16
                           replicas of one Keyward, comma-separated: the agent enrolls through the first
                           that answers, connects to one picked at random and fails over to the next
                           when it cannot connect or the connection drops
  --token TOKEN            one-time enrollment token (first run only; visible in ps: prefer --token-file)
  --token-file FILE        file holding the enrollment token (read only when enrolling)
  --state-dir DIR          identity key and state (default /var/lib/keyward-agent, mode 0700)
  --login-user USER        OS user whose logons are managed (default root)
  --ssh-address HOST:PORT  where the server reaches sshd (default: this host's primary address, sshd's port)
  --sshd-config FILE       sshd's main config file (default ${DEFAULT_SSHD_TARGET.configFile})
  --sshd-pid-file FILE     sshd's pid file, to signal a reload (default ${DEFAULT_SSHD_TARGET.pidFile})
  --sshd-binary FILE       sshd, for sshd -t and sshd -T (default ${DEFAULT_SSHD_TARGET.sshdBinary})
  --ca FILE                PEM CA bundle that signed the server's certificate (https only, every URL)
  --insecure-http          allow plain http:// server URLs (not encrypted: a lab, or a server on this
                           host only); without it the agent refuses them
  --add-sshd-include       when sshd_config has no Include of a drop-in directory (OpenSSH 8.2 or later),
                           add "Include <its dir>/sshd_config.d/*.conf" as its first line (checked with
                           sshd -t, put back on failure); without it the agent reports
                           Host.SshdDropInNotIncluded and changes nothing
  --once                   apply the first desired state, acknowledge it and exit (60 s limit)
  --log-level LEVEL        fatal, error, warn, info (default), debug, trace or silent
  --grants-dir DIR         one-time grants, read by the helper (default /run/keyward-agent/grants)
  --authorized-keys-command FILE
                           the helper sshd runs, in root-owned directories no one else can write
                           (default /usr/local/libexec/keyward-agent/authorized-keys-command)
  --authorized-keys-command-user USER
                           the user sshd runs the helper as (default nobody)
  --sshd-log SOURCE        where to learn that sshd accepted a one-time key, to record it used: auto
                           (default: the journal of ssh.service/sshd.service, else /var/log/auth.log or
                           /var/log/secure), journald, a log FILE (followed like tail -F), or off
  -h, --help               show this help

Logs are JSON lines on stdout. Exit status: 0 ok, 1 failed, 2 usage error, 3 stopped for good
(revoked, identity or token refused, unsafe state directory): restarting will not help.
`;
