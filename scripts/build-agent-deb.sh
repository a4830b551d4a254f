#!/bin/sh
# Packs the stand-alone agent executable into a Debian package with dpkg-deb:
#   sh scripts/build-agent-deb.sh EXECUTABLE VERSION ARCH(x64|arm64)
# writes dist/agent-bin/keyward-agent_VERSION_amd64.deb (or _arm64), installable with
# `apt install ./keyward-agent_VERSION_amd64.deb`. The package holds the executable (/usr/bin/keyward-agent)
# and the unit (/lib/systemd/system/keyward-agent.service, settings from /etc/keyward/agent.env); its
# maintainer scripts reload systemd and stop the service on removal. It never enrolls the host by itself:
# that needs a token (docs/agent.md). Purging removes the agent's state (/var/lib/keyward-agent).
# Run by `npm run build:agent`.
set -eu
exe=$1
version=$2
case $3 in
  x64) debarch=amd64 ;;
  arm64) debarch=arm64 ;;
  *)
    echo "build-agent-deb: unknown architecture $3" >&2
    exit 1
    ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/dist/agent-bin
pkg=$out/deb-work
rm -rf "$pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/usr/share/doc/keyward-agent"
install -m 0755 "$exe" "$pkg/usr/bin/keyward-agent"
install -m 0644 "$root/packaging/deb/keyward-agent.service" "$pkg/lib/systemd/system/keyward-agent.service"
printf 'Keyward agent. License: Apache-2.0 (see package.json of Keyward).\n' >"$pkg/usr/share/doc/keyward-agent/copyright"
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/deb/$script" "$pkg/DEBIAN/$script"
done
size_kib=$(du -sk "$pkg/usr" | cut -f 1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: keyward-agent
Version: $version
Architecture: $debarch
Maintainer: Keyward <keyward@localhost>
Installed-Size: $size_kib
Section: admin
Priority: optional
Homepage: https://github.com/keyward/keyward
Description: Keyward agent: SSH access control for this host
 Enrolls the host with a Keyward server once (one-time token), keeps an
 outbound connection to it and applies the key pairs bound to the host.
 A self-contained executable: needs neither Node.js nor a compiler.
EOF
deb=$out/keyward-agent_${version}_$debarch.deb
# --root-owner-group: files owned by root in the package whoever builds it. gzip, not dpkg-deb's default xz:
# xz takes some 40 s on the 95 MiB executable (measured on a 2-core machine), gzip a few.
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$deb" >/dev/null
rm -rf "$pkg"
echo "agent: $(basename "$deb") $(du -k "$deb" | cut -f 1) KiB"
