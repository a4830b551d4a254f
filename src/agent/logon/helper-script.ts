/**
 * The AuthorizedKeysCommand helper (DESIGN.md §4): a POSIX shell script sshd runs on every public key
 * logon, as `helper USER`. It prints the one-time keys granted to USER whose expiry — the Unix second at
 * the start of the file's name — is still ahead of the host clock at that moment, and nothing else. So an
 * expired key can never authenticate, even with the agent and the server both dead; each line also carries
 * `expiry-time`, which sshd enforces by itself.
 *
 * Written for speed as well as safety: shell built-ins only (`read`, `printf`, `case`), no process
 * started, and an immediate exit for the far more common logon of a user without a grant. The deadline is
 * checked without `date`: each file's name also carries its expiry on the kernel's uptime clock and the
 * boot it was written in (`/proc/uptime`, `/proc/sys/kernel/random/boot_id`, both read by `read`), which
 * never goes back while that boot lasts, whatever is done to the wall clock. A file from another boot
 * (a grants directory that outlived a reboot) or a host without those files falls back to the wall clock
 * (`date +%s` against the expiry at the start of the name). sshd passes the offered key's fingerprint (`%f`, `SHA256:…`) as the second
 * argument, and each grant file carries its key's fingerprint in its name, so the helper opens only the
 * file for that key: its cost does not grow with the number of live grants the user holds. Without a
 * SHA256 fingerprint (an older drop-in, `FingerprintHash md5`) it reads all of the user's grants.
 * It never fails a logon: anything unexpected prints nothing and exits 0, so sshd goes on to the
 * user's own authorized_keys.
 */

/** Marks a helper as Keyward's (its second line). */
export const HELPER_MARKER = '# keyward-agent AuthorizedKeysCommand v1';

/** The script for grants under `grantsDir`, calling `dateBinary` (an absolute path: sshd gives no PATH). */
export function helperScript(grantsDir: string, dateBinary: string): string {
  for (const p of [grantsDir, dateBinary]) {
    if (!/^(\/[A-Za-z0-9._-]+)+$/.test(p)) throw new TypeError(`unsafe path for the helper: ${p}`);
  }
  return `#!/bin/sh
${HELPER_MARKER}
# Written by the Keyward agent, which rewrites it at start; do not edit. Prints the unexpired one-time
# keys granted to the user named by $1, from ${grantsDir}/USER/EXPIRY-GRANTID-FINGERPRINT~UPTIME~BOOTID.key;
# with $2 (sshd's %f, SHA256:base64) only the file named after that key's fingerprint (base64url) is read.
# The deadline is checked against the kernel's uptime when the file was written in this boot (no process
# started), else against the wall clock (EXPIRY, with date).
# User names as Keyward grants them (letters spelt out: no locale's ranges apply).
case $1 in
  '' | -* | .* | *[!-._ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$]*) exit 0 ;;
esac
dir='${grantsDir}'/"$1"
[ -d "$dir" ] || exit 0
only='*'
case $2 in
  SHA256:*)
    fp=\${2#SHA256:}
    case $fp in
      *[!A-Za-z0-9+/]*) ;;
      *)
        while :; do
          case $fp in
            *+*) fp=\${fp%%+*}-\${fp#*+} ;;
            */*) fp=\${fp%%/*}_\${fp#*/} ;;
            *) break ;;
          esac
        done
        [ \${#fp} -eq 43 ] && only="*-$fp*"
        ;;
    esac
    ;;
esac
up=
boot=
{ read -r up _ < /proc/uptime && read -r boot < /proc/sys/kernel/random/boot_id; } 2> /dev/null
up=\${up%%.*}
case $up in '' | *[!0-9]*) up= ;; esac
case $boot in *[!0-9a-f-]*) boot= ;; esac
now=
for f in "$dir"/$only.key; do
  [ -f "$f" ] || continue
  name=\${f##*/}
  expiry=\${name%%-*}
  case $expiry in '' | *[!0-9]*) continue ;; esac
  rest=\${name#*~}
  until=\${rest%%~*}
  written=\${rest#*~}
  written=\${written%.key}
  if [ "$rest" != "$name" ] && [ -n "$up" ] && [ -n "$boot" ] && [ "$written" = "$boot" ]; then
    case $until in '' | *[!0-9]*) continue ;; esac
    [ "$until" -gt "$up" ] || continue
  else
    [ -n "$now" ] || now=$(${dateBinary} +%s)
    [ "$expiry" -gt "$now" ] || continue
  fi
  while IFS= read -r line; do
    case $line in
      'restrict,pty,'*' keyward-grant:'* | 'restrict,pty '*' keyward-grant:'*) printf '%s\\n' "$line" ;;
    esac
  done < "$f"
done
exit 0
`;
}
