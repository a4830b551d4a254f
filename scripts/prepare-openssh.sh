#!/bin/sh
# Prepares older OpenSSH servers for Keyward's OpenSSH matrix tests (test/openssh-matrix.test.ts):
# Debian 11's openssh-server 8.4p1 and the libssl1.1 it links against, downloaded from Debian's
# "bullseye" suite with apt-get and a temporary sources file (the machine's own apt setup is not touched),
# unpacked with dpkg -x into a cache directory. A release already prepared is kept (nothing downloaded).
#
#   sh scripts/prepare-openssh.sh            prepare 8.4 (what CI runs)
#
# The cache directory is test-artifacts/openssh/ in the repository, or $KEYWARD_OPENSSH_CACHE.
# Each release ends up as DIR/<version>/ with usr/sbin/sshd and a file "env" naming the binary and
# LD_LIBRARY_PATH to run it with. Exits non-zero, with a message, when the archive cannot be reached.
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

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: this script needs a Debian machine"
command -v dpkg >/dev/null 2>&1 || fail "dpkg not found: this script needs a Debian machine"
[ -r "$keyring" ] || fail "$keyring not found (apt-get install debian-archive-keyring)"

# prepare RELEASE SUITE PACKAGES...: downloads the newest versions of PACKAGES in SUITE and unpacks them.
prepare() {
  release=$1
  suite=$2
  shift 2
  target=$cache/$release
  if [ -x "$target/usr/sbin/sshd" ] && [ -x "$target/bin/sshd" ] && [ -f "$target/env" ]; then
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
  printf 'SSHD=%s\nLD_LIBRARY_PATH=%s\nVERSION=%s\nPACKAGES=%s\n' "$target/bin/sshd" "$final_libs" \
    "$version" "$pins" >"$target.partial/env"
  rm -rf "$target"
  mv "$target.partial" "$target"
  rm -rf "$work"
  echo "prepare-openssh: OpenSSH $release ready in $target ($version; $(($(date +%s) - started)) s)"
}

mkdir -p "$cache"
prepare 8.4 bullseye openssh-server libssl1.1
