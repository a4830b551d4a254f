/**
 * The AuthorizedKeysCommand helper (DESIGN.md §4): a POSIX shell script sshd runs on every public key
 * logon, as `helper USER`. It prints the one-time keys granted to USER whose expiry — the Unix second at
 * the start of the file's name — is still ahead of the host clock at that moment, and nothing else. So an
 * expired key can never authenticate, even with the agent and the server both dead; each line also carries
 * `expiry-time`, which sshd enforces by itself.
 *
 * Written for speed as well as safety: shell built-ins only (`read`, `printf`, `case`), one `date` call
 * only when the user has a grant, and an immediate exit for the far more common logon of a user without
 * one. It never fails a logon: anything unexpected prints nothing and exits 0, so sshd goes on to the
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
# keys granted to the user named by $1, from ${grantsDir}/USER/EXPIRY-GRANTID.key.
# User names as Keyward grants them (letters spelt out: no locale's ranges apply).
case $1 in
  '' | -* | .* | *[!-._ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$]*) exit 0 ;;
esac
dir='${grantsDir}'/"$1"
[ -d "$dir" ] || exit 0
now=
for f in "$dir"/*.key; do
  [ -f "$f" ] || continue
  name=\${f##*/}
  expiry=\${name%%-*}
  case $expiry in '' | *[!0-9]*) continue ;; esac
  [ -n "$now" ] || now=$(${dateBinary} +%s)
  [ "$expiry" -gt "$now" ] || continue
  while IFS= read -r line; do
    case $line in
      'restrict,pty,'*' keyward-grant:'*) printf '%s\\n' "$line" ;;
    esac
  done < "$f"
done
exit 0
`;
}
