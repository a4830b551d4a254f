#!/bin/sh
# Prepares other OpenSSH servers for Keyward's OpenSSH matrix tests (test/openssh-matrix.test.ts):
# - 8.4 (always): Debian 11's openssh-server and openssh-client 8.4p1 and the libssl1.1 they link against,
#   downloaded from Debian's "bullseye" suite with apt-get and a temporary sources file (the machine's own
#   apt setup is not touched), unpacked with dpkg -x; bin/sshd and bin/ssh run them with LD_LIBRARY_PATH
#   (the client: for the ssh tools' tests, test/ssh-fdpass.test.ts).
# - 10.0 (on request): Debian 13's OpenSSH needs a newer C library than Debian 12 has, and runs sshd-session
#   and sshd-auth from its own libexec directory, so it gets a whole Debian 13 ("trixie") root made by
#   debootstrap --variant=minbase (installed with apt-get when missing). bin/run-in-root runs a program of
#   that root in a private mount namespace (/proc mounted, /dev, /run, /tmp and /home bound in from this
#   machine; the mounts vanish with the namespace, even when a test is killed) and chroot; bin/sshd is
#   bin/run-in-root /usr/sbin/sshd.
# A release already prepared is kept (nothing downloaded).
#
#   sh scripts/prepare-openssh.sh                prepare 8.4 (what CI runs)
#   sh scripts/prepare-openssh.sh --with 10.0    prepare 8.4 and 10.0
#   KEYWARD_OPENSSH_RELEASES=8.4,10.0 sh scripts/prepare-openssh.sh     the same; the matrix test then
#                                                requires every release that variable names
#
# The cache directory is test-artifacts/openssh/ in the repository, or $KEYWARD_OPENSSH_CACHE.
# Each release ends up as DIR/<version>/ with bin/sshd and a file "env" naming it. Exits non-zero, with a
# message, when the archive cannot be reached.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${KEYWARD_OPENSSH_CACHE:-$here/test-artifacts/openssh}
mirror=${KEYWARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${KEYWARD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

fail() {
  echo "prepare-openssh: $*" >&2
  exit 1
}

usage() {
  echo "usage: sh scripts/prepare-openssh.sh [--with 10.0]" >&2
  exit 2
}

# Releases to prepare: 8.4 always, plus those of KEYWARD_OPENSSH_RELEASES and --with.
releases=" 8.4 $(echo "${KEYWARD_OPENSSH_RELEASES:-}" | tr ',' ' ') "
while [ $# -gt 0 ]; do
  case "$1" in
    --with)
      [ $# -ge 2 ] || usage
      releases="$releases $2 "
      shift 2
      ;;
    --with=*)
      releases="$releases ${1#--with=} "
      shift
      ;;
    *) usage ;;
  esac
done
for r in $releases; do
  case "$r" in
    8.4 | 9.2 | 10.0) ;;
    *) fail "OpenSSH $r cannot be prepared (8.4 and 10.0 can; 9.2 is this machine's own)" ;;
  esac
done
wanted() {
  case "$releases" in
    *" $1 "*) return 0 ;;
    *) return 1 ;;
  esac
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: this script needs a Debian machine"
command -v dpkg >/dev/null 2>&1 || fail "dpkg not found: this script needs a Debian machine"
[ -r "$keyring" ] || fail "$keyring not found (apt-get install debian-archive-keyring)"

# prepare RELEASE SUITE PACKAGES...: downloads the newest versions of PACKAGES in SUITE and unpacks them.
prepare() {
  release=$1
  suite=$2
  shift 2
  target=$cache/$release
  if [ -x "$target/usr/sbin/sshd" ] && [ -x "$target/bin/sshd" ] && [ -f "$target/env" ] &&
    { [ ! -e "$target/usr/bin/ssh" ] || [ -x "$target/bin/ssh" ]; } &&
    { ! echo " $* " | grep -q ' openssh-client ' || [ -x "$target/bin/ssh" ]; }; then
    echo "prepare-openssh: OpenSSH $release already prepared in $target"
    return 0
  fi
  started=$(date +%s)
  work=$cache/.apt-$release
  rm -rf "$work" "$target.partial"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$target.partial"
  cat >"$work/sources.list" <<SOURCES
deb [signed-by=$keyring] $mirror $suite main
deb [signed-by=$keyring] $security $suite-security main
SOURCES
  # Everything apt writes stays in $work; the machine's own lists and cache are not touched.
  set -- "$@"
  apt_opts="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=/dev/null \
-o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o Dir::State::status=/dev/null \
-o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root"
  echo "prepare-openssh: reading the $suite package lists from $mirror"
  # shellcheck disable=SC2086
  if ! apt-get -q $apt_opts update >"$work/update.log" 2>&1 || grep -q '^\(Err\|W: Failed\|E:\)' "$work/update.log"; then
    cat "$work/update.log" >&2
    fail "Debian's archive ($mirror, suite $suite) cannot be reached; OpenSSH $release was not prepared"
  fi
  pins=""
  for p in "$@"; do
    # shellcheck disable=SC2086
    v=$(apt-cache $apt_opts policy "$p" | sed -n 's/^ *Candidate: *//p')
    [ -n "$v" ] && [ "$v" != "(none)" ] || fail "package $p not found in $suite"
    pins="$pins $p=$v"
  done
  echo "prepare-openssh: downloading$pins"
  # shellcheck disable=SC2086
  (cd "$work/debs" && apt-get -q $apt_opts download $pins) || fail "downloading$pins from $mirror failed"
  for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$target.partial"
  done
  # sshd needs a few more libraries than the machine has? ldd names any it cannot find.
  libs="$target.partial/usr/lib/x86_64-linux-gnu:$target.partial/lib/x86_64-linux-gnu"
  missing=$(LD_LIBRARY_PATH=$libs ldd "$target.partial/usr/sbin/sshd" | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p')
  [ -z "$missing" ] || fail "OpenSSH $release's sshd still lacks: $missing"
  # sshd before 9.1 has no -V: it answers "unknown option" and then its usage, whose first line is the
  # version; later ones print only the version. Either way the OpenSSH_ line names it.
  version=$(LD_LIBRARY_PATH=$libs "$target.partial/usr/sbin/sshd" -V 2>&1 | grep '^OpenSSH_' | head -n 1 || true)
  case "$version" in
    OpenSSH_$release*) ;;
    *) fail "the unpacked sshd reports \"$version\", not OpenSSH_$release" ;;
  esac
  final_libs="$target/usr/lib/x86_64-linux-gnu:$target/lib/x86_64-linux-gnu"
  # bin/sshd runs that sshd with its libraries (what Keyward's agent is given as --sshd-binary): exec keeps
  # the absolute path sshd needs to re-execute itself, and its process name stays "sshd".
  mkdir -p "$target.partial/bin"
  {
    echo '#!/bin/sh'
    echo "LD_LIBRARY_PATH='$final_libs' exec '$target/usr/sbin/sshd' \"\$@\""
  } >"$target.partial/bin/sshd"
  chmod 755 "$target.partial/bin/sshd"
  if [ -x "$target.partial/usr/bin/ssh" ]; then
    # bin/ssh, bin/scp, bin/sftp: the client tools of the release with its libraries; scp and sftp start
    # the release's ssh (-S) and sftp-server is not needed on this side.
    {
      echo '#!/bin/sh'
      echo "LD_LIBRARY_PATH='$final_libs' exec '$target/usr/bin/ssh' \"\$@\""
    } >"$target.partial/bin/ssh"
    {
      echo '#!/bin/sh'
      echo "LD_LIBRARY_PATH='$final_libs' exec '$target/usr/bin/scp' -S '$target/bin/ssh' \"\$@\""
    } >"$target.partial/bin/scp"
    {
      echo '#!/bin/sh'
      echo "LD_LIBRARY_PATH='$final_libs' exec '$target/usr/bin/sftp' -S '$target/bin/ssh' \"\$@\""
    } >"$target.partial/bin/sftp"
    chmod 755 "$target.partial/bin/ssh" "$target.partial/bin/scp" "$target.partial/bin/sftp"
  fi
  printf 'SSHD=%s\nLD_LIBRARY_PATH=%s\nVERSION=%s\nPACKAGES=%s\n' "$target/bin/sshd" "$final_libs" \
    "$version" "$pins" >"$target.partial/env"
  rm -rf "$target"
  mv "$target.partial" "$target"
  rm -rf "$work"
  echo "prepare-openssh: OpenSSH $release ready in $target ($version; $(($(date +%s) - started)) s)"
}

# prepare_root RELEASE SUITE: a minimal Debian root of SUITE with openssh-server, by debootstrap.
prepare_root() {
  release=$1
  suite=$2
  target=$cache/$release
  if [ -x "$target/root/usr/sbin/sshd" ] && [ -x "$target/bin/sshd" ] && [ -x "$target/bin/run-in-root" ] &&
    [ -f "$target/env" ]; then
    echo "prepare-openssh: OpenSSH $release already prepared in $target"
    return 0
  fi
  [ "$(id -u)" = 0 ] || fail "OpenSSH $release needs a Debian $suite root made by debootstrap: run this as root"
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "prepare-openssh: installing debootstrap (apt-get install -y debootstrap)"
    apt-get install -y -q debootstrap >/dev/null ||
      fail "debootstrap is missing and could not be installed: run apt-get install -y debootstrap"
  fi
  command -v unshare >/dev/null 2>&1 || fail "unshare not found (apt-get install -y util-linux)"
  # A root is only ever mounted on inside a private namespace; refuse to delete one that is mounted on here.
  if grep -q " $target[/.]" /proc/self/mounts; then
    fail "something is mounted under $target (see /proc/self/mounts): unmount it before preparing again"
  fi
  started=$(date +%s)
  rm -rf "$target.partial"
  mkdir -p "$target.partial/bin"
  log=$cache/.debootstrap-$release.log
  echo "prepare-openssh: building a Debian $suite root with openssh-server from $mirror (debootstrap, ~1 min)"
  if ! debootstrap --variant=minbase --include=openssh-server --keyring="$keyring" "$suite" \
    "$target.partial/root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    if grep -q 'Failed getting release file\|Couldn.t download\|Could not resolve\|Connection refused\|Network is unreachable' "$log"; then
      fail "Debian's archive ($mirror, suite $suite) cannot be reached; OpenSSH $release was not prepared (log: $log)"
    fi
    fail "debootstrap --variant=minbase --include=openssh-server $suite failed; OpenSSH $release was not prepared (log: $log)"
  fi
  # The downloaded packages and the host keys the package made are not needed (each test sshd has its own).
  rm -f "$target.partial/root/var/cache/apt/archives/"*.deb "$target.partial/root/etc/ssh/ssh_host_"*
  root=$target/root
  # bin/run-in-root PROGRAM ARGS...: PROGRAM (a path in the root) chrooted, in a private mount namespace
  # that sees this machine's /dev, /run (sshd's /run/sshd), /tmp (test directories) and /home (test
  # users) at the same paths. unshare and chroot exec, so the process keeps the pid it was started with.
  cat >"$target.partial/bin/run-in-root" <<WRAPPER
#!/bin/sh
# Runs a program of the Debian $suite root $root (scripts/prepare-openssh.sh).
exec unshare --mount --propagation private -- /bin/sh -ec '
root=\$1; shift
mount -t proc proc "\$root/proc"
for d in dev run tmp home; do mount --rbind "/\$d" "\$root/\$d"; done
exec chroot "\$root" "\$@"' run-in-root '$root' "\$@"
WRAPPER
  # bin/sshd: the root's sshd, named sshd, as the test process and `keyward agent` outside the root run it.
  {
    echo '#!/bin/sh'
    echo "exec '$target/bin/run-in-root' /usr/sbin/sshd \"\$@\""
  } >"$target.partial/bin/sshd"
  chmod 755 "$target.partial/bin/run-in-root" "$target.partial/bin/sshd"
  rm -rf "$target"
  mv "$target.partial" "$target"
  version=$("$target/bin/sshd" -V 2>&1 | grep '^OpenSSH_' | head -n 1 || true)
  case "$version" in
    OpenSSH_$release*) ;;
    *)
      mv "$target" "$target.partial"
      fail "the $suite root's sshd reports \"$version\", not OpenSSH_$release (left in $target.partial)"
      ;;
  esac
  printf 'SSHD=%s\nROOT=%s\nRUN_IN_ROOT=%s\nVERSION=%s\nSUITE=%s\n' "$target/bin/sshd" "$root" \
    "$target/bin/run-in-root" "$version" "$suite" >"$target/env"
  rm -f "$log"
  echo "prepare-openssh: OpenSSH $release ready in $target ($version; $(($(date +%s) - started)) s)"
}

mkdir -p "$cache"
prepare 8.4 bullseye openssh-server openssh-client libssl1.1
if wanted 10.0; then prepare_root 10.0 trixie; fi
