#!/bin/sh
# Keyward agent installer, served by the Keyward server at /agent/v1/install.sh with its own URL below:
#
#   curl -fsSL https://KEYWARD/agent/v1/install.sh | sudo sh -s -- --token TOKEN [--ca FILE]
#
# Downloads the stand-alone agent executable for this CPU (no Node.js needed), checks its SHA-256,
# installs it as /usr/local/bin/keyward-agent, writes the systemd unit, enrolls the host with the one-time
# token (kept in a 0600 file, never on the agent's command line) and starts the service. Running it again
# is harmless: an enrolled host keeps its identity; the executable is replaced and the service restarted.
#
# Options:
#   --token TOKEN       one-time enrollment token (or --token-file FILE)
#   --token-file FILE   file holding the token
#   --ca FILE           PEM CA that signed the server's certificate (private CA): used by curl/wget and
#                       copied to /etc/keyward/ca.pem for the agent
#   --no-start          install and enroll, but leave systemd alone (images, containers, chroots without
#                       a running systemd): prints the commands that start the service
#
# Settings for the agent beyond the server URL (login user, sshd paths, …) go in /etc/keyward/agent.env
# as KEYWARD_AGENT_* lines; the service reads that file, and so does the enrollment here.
set -eu

KEYWARD_URL='@KEYWARD_URL@'

BIN=/usr/local/bin/keyward-agent
UNIT=/etc/systemd/system/keyward-agent.service
CONF_DIR=/etc/keyward
ENV_FILE=$CONF_DIR/agent.env
TOKEN_FILE=$CONF_DIR/agent-token
CA_FILE=$CONF_DIR/ca.pem
HELPER_DIR=/usr/local/libexec/keyward-agent

say() { printf 'keyward-agent install: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

token=''
token_file=''
ca=''
start=yes
while [ $# -gt 0 ]; do
  case $1 in
    --token)
      [ $# -ge 2 ] || die '--token needs a value'
      token=$2
      shift 2
      ;;
    --token-file)
      [ $# -ge 2 ] || die '--token-file needs a value'
      token_file=$2
      shift 2
      ;;
    --ca)
      [ $# -ge 2 ] || die '--ca needs a file'
      ca=$2
      shift 2
      ;;
    --no-start)
      start=no
      shift
      ;;
    -h | --help)
      say 'usage: sh install.sh --token TOKEN | --token-file FILE [--ca FILE] [--no-start]'
      exit 0
      ;;
    *) die "unknown option: $1 (options: --token TOKEN, --token-file FILE, --ca FILE, --no-start)" ;;
  esac
done

# 1. Root, a CPU the agent is built for, and systemd (unless --no-start).
[ "$(id -u)" = 0 ] || die 'run me as root: curl -fsSL … | sudo sh -s -- --token TOKEN'
[ "$(uname -s)" = Linux ] || die "the Keyward agent runs on Linux only, not $(uname -s)"
machine=$(uname -m)
case $machine in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported CPU architecture \"$machine\": the agent is built for x86_64 and aarch64 only; nothing was installed" ;;
esac
if [ "$start" = yes ]; then
  if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then
    die 'systemd is not running on this host (no /run/systemd/system): the agent runs as a systemd service. Nothing was installed. Use --no-start to install and enroll anyway, then start "keyward-agent" with your own service manager.'
  fi
fi
if [ -n "$token" ] && [ -n "$token_file" ]; then die 'give --token or --token-file, not both'; fi
if [ -n "$token_file" ] && [ ! -r "$token_file" ]; then die "cannot read the token file $token_file"; fi
case $token in *[!A-Za-z0-9_-]*) die 'the token holds characters a Keyward token never has: copy it again' ;; esac
if [ -n "$ca" ] && [ ! -r "$ca" ]; then die "cannot read the CA file $ca"; fi

if command -v curl >/dev/null 2>&1; then
  fetch() { # URL FILE
    if [ -n "$ca" ]; then curl -fsS --proto '=https,http' --cacert "$ca" -o "$2" "$1"; else curl -fsS --proto '=https,http' -o "$2" "$1"; fi
  }
elif command -v wget >/dev/null 2>&1; then
  fetch() {
    if [ -n "$ca" ]; then wget -q --ca-certificate="$ca" -O "$2" "$1"; else wget -q -O "$2" "$1"; fi
  }
else
  die 'neither curl nor wget is installed: install one of them (apt-get install curl)'
fi
command -v sha256sum >/dev/null 2>&1 || die 'sha256sum is missing (it comes with coreutils)'

umask 077
work=$(mktemp -d /tmp/keyward-agent-install.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# 2. Download and verify; nothing is installed before the digest matches.
say "downloading the agent for $arch from $KEYWARD_URL"
fetch "$KEYWARD_URL/agent/v1/download.sha256?arch=$arch" "$work/sha256" ||
  die "cannot download $KEYWARD_URL/agent/v1/download.sha256?arch=$arch (the server's message is above)"
fetch "$KEYWARD_URL/agent/v1/download?arch=$arch" "$work/keyward-agent" ||
  die "cannot download $KEYWARD_URL/agent/v1/download?arch=$arch (the server's message is above)"
expected=$(cut -d ' ' -f 1 "$work/sha256")
case $expected in
  '' | *[!0-9a-f]*) die 'the server sent no SHA-256 for the agent; nothing was installed' ;;
esac
[ ${#expected} -eq 64 ] || die 'the server sent no SHA-256 for the agent; nothing was installed'
actual=$(sha256sum "$work/keyward-agent" | cut -d ' ' -f 1)
if [ "$actual" != "$expected" ]; then
  die "the downloaded agent's SHA-256 is $actual, but the server says $expected: the download was damaged or altered on the way. Nothing was installed."
fi
chmod 0755 "$work/keyward-agent"
"$work/keyward-agent" --version >/dev/null 2>&1 || die 'the downloaded agent does not run on this host; nothing was installed'

# 3. Install: executable (temporary file + rename, so a running agent keeps its old file), settings, unit.
install -d -m 0755 /usr/local/bin "$HELPER_DIR"
install -d -m 0700 "$CONF_DIR"
cp "$work/keyward-agent" "$BIN.new.$$"
chmod 0755 "$BIN.new.$$"
mv -f "$BIN.new.$$" "$BIN"
say "installed $BIN ($("$BIN" --version))"
if [ -n "$ca" ]; then
  if [ "$ca" != "$CA_FILE" ]; then
    cp "$ca" "$CA_FILE.new.$$" && chmod 0644 "$CA_FILE.new.$$" && mv -f "$CA_FILE.new.$$" "$CA_FILE"
  fi
fi
if [ ! -e "$ENV_FILE" ]; then
  : >"$ENV_FILE.new.$$"
  chmod 0600 "$ENV_FILE.new.$$"
  printf '# Settings of the Keyward agent, KEYWARD_AGENT_* lines (docs/agent.md, "Configuration").\n' >"$ENV_FILE.new.$$"
  mv -f "$ENV_FILE.new.$$" "$ENV_FILE"
fi
ca_line='#Environment=KEYWARD_AGENT_CA=/etc/keyward/ca.pem'
if [ -e "$CA_FILE" ]; then ca_line="Environment=KEYWARD_AGENT_CA=$CA_FILE"; fi
insecure=''
case $KEYWARD_URL in http://*) insecure=' --insecure-http' ;; esac
install -d -m 0755 "$(dirname "$UNIT")"
cat >"$UNIT.new.$$" <<EOF
# Written by the Keyward agent installer ($KEYWARD_URL/agent/v1/install.sh). Settings: $ENV_FILE.
[Unit]
Description=Keyward agent (SSH access control for this host)
Wants=network-online.target
After=network-online.target ssh.service sshd.service

[Service]
Type=simple
User=root
ExecStart=$BIN --server $KEYWARD_URL$insecure
$ca_line
EnvironmentFile=-$ENV_FILE
Restart=always
RestartSec=10
RestartPreventExitStatus=2 3
TimeoutStopSec=60
StateDirectory=keyward-agent
StateDirectoryMode=0700
RuntimeDirectory=keyward-agent
RuntimeDirectoryMode=0755
UMask=0077
ProtectSystem=strict
ReadWritePaths=-/etc/ssh/sshd_config.d -/root -/home $HELPER_DIR
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_KILL
AmbientCapabilities=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$UNIT.new.$$"
mv -f "$UNIT.new.$$" "$UNIT"
say "wrote $UNIT"

# 4. Enroll (a host enrolled before keeps its identity). The token goes to a 0600 file the agent reads.
if [ -n "$token" ]; then
  : >"$TOKEN_FILE.new.$$"
  chmod 0600 "$TOKEN_FILE.new.$$"
  printf '%s\n' "$token" >"$TOKEN_FILE.new.$$"
  mv -f "$TOKEN_FILE.new.$$" "$TOKEN_FILE"
  token_file=$TOKEN_FILE
fi
install -d -m 0700 /var/lib/keyward-agent
set -- enroll --server "$KEYWARD_URL"
[ -n "$insecure" ] && set -- "$@" --insecure-http
[ -e "$CA_FILE" ] && set -- "$@" --ca "$CA_FILE"
[ -n "$token_file" ] && set -- "$@" --token-file "$token_file"
# The same settings the service runs with.
if ! (
  set -a
  [ -r "$ENV_FILE" ] && . "$ENV_FILE"
  set +a
  exec "$BIN" "$@"
); then
  die "enrollment failed (the agent's message is above); the executable and unit are installed: run me again with a new token"
fi
[ "$token_file" = "$TOKEN_FILE" ] && rm -f "$TOKEN_FILE"

# 5. Start (or restart) the service.
if [ "$start" = no ]; then
  say 'enrolled; systemd left alone (--no-start). Start the agent with: systemctl daemon-reload && systemctl enable --now keyward-agent'
  say "or, without systemd: $BIN --server $KEYWARD_URL$insecure (as root, with the settings in $ENV_FILE)"
  exit 0
fi
systemctl daemon-reload
systemctl enable keyward-agent >/dev/null 2>&1 || die 'systemctl enable keyward-agent failed'
systemctl restart keyward-agent || die 'the service did not start: journalctl -u keyward-agent'
say 'the agent is running: journalctl -u keyward-agent -f'
