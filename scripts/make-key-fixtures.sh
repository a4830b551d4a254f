#!/usr/bin/env bash
# Regenerates test/fixtures/public-keys/: golden SSH public keys made by the real ssh-keygen (and openssl),
# with expected.json holding what `ssh-keygen -l` and `ssh-keygen -E md5 -l` print for each file, plus
# hostile and malformed inputs under malformed/ with the error code Keyward must answer for each.
#
# Usage: bash scripts/make-key-fixtures.sh      (needs ssh-keygen from OpenSSH >= 8.x, openssl, od, base64)
#
# Keys are random, so every run writes new files; the tests only compare against expected.json written
# by the same run. Only public material is kept: every private key (subjects, CAs, throwaways) lives in
# a temporary directory that is deleted on exit, except the deliberately committed throwaway private keys
# under malformed/ that test their refusal (they protect nothing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/test/fixtures/public-keys"
BAD="$OUT/malformed"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for tool in ssh-keygen openssl od base64; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install -y openssh-client openssl coreutils)" >&2; exit 1; }
done

rm -rf "$OUT"
mkdir -p "$BAD"
COMMENT='fixture@keyward'
CODE='InvalidPublicKeyBody.Malformed'

# ---------------------------------------------------------------------------------------------------------
# Helpers: keys, ssh-keygen output, hex <-> binary, SSH wire strings.

keygen() { # keygen FILE ARGS... : a new private key at FILE (and FILE.pub), no passphrase
  local file=$1
  shift
  ssh-keygen -q -N '' -C "$COMMENT" -f "$file" "$@" </dev/null
}

hex_of_b64() { base64 -d | od -An -v -tx1 | tr -d ' \n'; }
b64_of_hex() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")" | base64 -w0; }
ascii_hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
ssh_string_hex() { printf '%08x%s' $((${#1} / 2)) "$1"; } # ssh_string_hex HEX : uint32 length + bytes
blob_hex_of_pub() { awk '{print $2}' "$1" | hex_of_b64; }

# ssh_field HEX INDEX : the INDEX-th (0-based) length-prefixed string of a blob, as hex
ssh_field() {
  local hex=$1 want=$2 pos=0 i=0 len
  while ((pos < ${#hex})); do
    len=$((16#${hex:pos:8}))
    if ((i == want)); then
      printf '%s' "${hex:pos+8:len*2}"
      return 0
    fi
    pos=$((pos + 8 + len * 2))
    i=$((i + 1))
  done
  echo "ssh_field: no field $want" >&2
  return 1
}

# ---------------------------------------------------------------------------------------------------------
# expected.json for the golden fixtures: file -> { type, bits, fingerprintMd5, fingerprintSha256 }.

GOLDEN_ENTRIES=()

# golden FIXTURE SOURCE : FIXTURE (a file name in $OUT) must parse as the key whose ssh-keygen-readable
# form is SOURCE (a .pub line or a -cert.pub file); the expectation is what ssh-keygen -l says of SOURCE.
golden() {
  local fixture=$1 source=$2 sha md5 type
  read -r bits sha _ <<<"$(ssh-keygen -l -f "$source")"
  read -r _ md5 _ <<<"$(ssh-keygen -E md5 -l -f "$source")"
  type=$(awk '{print $1; exit}' "$source")
  GOLDEN_ENTRIES+=("$(printf '  "%s": { "type": "%s", "bits": %d, "fingerprintMd5": "%s", "fingerprintSha256": "%s" }' \
    "$fixture" "$type" "$bits" "${md5#MD5:}" "$sha")")
}

# same_key A B : ssh-keygen must see the same key in the OpenSSH lines A and B (a check on the converters)
same_key() {
  local a b
  a=$(ssh-keygen -l -f "$1" | awk '{print $2}')
  b=$(ssh-keygen -l -f "$2" | awk '{print $2}')
  [[ "$a" == "$b" ]] || { echo "fixture check failed: $1 and $2 differ ($a vs $b)" >&2; exit 1; }
}

# ---------------------------------------------------------------------------------------------------------
# Plain keys in every encoding.

SUBJECTS=(rsa-2048:rsa:2048 rsa-3072:rsa:3072 rsa-4096:rsa:4096 dsa-1024:dsa:1024
  ecdsa-256:ecdsa:256 ecdsa-384:ecdsa:384 ecdsa-521:ecdsa:521 ed25519:ed25519:256)

for spec in "${SUBJECTS[@]}"; do
  IFS=: read -r name kind bits <<<"$spec"
  key="$WORK/$name"
  if [[ $kind == ed25519 ]]; then keygen "$key" -t ed25519; else keygen "$key" -t "$kind" -b "$bits"; fi

  cp "$key.pub" "$OUT/$name.pub"
  golden "$name.pub" "$key.pub"

  # RFC 4716, as ssh-keygen -e writes it; ssh-keygen -i must read back the same key.
  ssh-keygen -e -f "$key.pub" >"$OUT/$name.rfc4716.txt"
  ssh-keygen -i -f "$OUT/$name.rfc4716.txt" >"$WORK/check.pub"
  same_key "$key.pub" "$WORK/check.pub"
  golden "$name.rfc4716.txt" "$key.pub"

  # PEM SubjectPublicKeyInfo ("PUBLIC KEY").
  if [[ $kind == ed25519 ]]; then
    # ssh-keygen 9.2 cannot export Ed25519 as PEM, and openssl cannot read OpenSSH private keys; build
    # the SPKI from the raw key (RFC 8410 §4: fixed DER prefix + 32 bytes) and have openssl check it.
    raw=$(ssh_field "$(blob_hex_of_pub "$key.pub")" 1)
    {
      echo '-----BEGIN PUBLIC KEY-----'
      b64_of_hex "302a300506032b6570032100$raw" | fold -w 64
      echo
      echo '-----END PUBLIC KEY-----'
    } >"$OUT/$name.spki.txt"
    dumped=$(openssl pkey -pubin -in "$OUT/$name.spki.txt" -outform DER | od -An -v -tx1 | tr -d ' \n')
    [[ "$dumped" == "302a300506032b6570032100$raw" ]] || { echo "ed25519 SPKI check failed" >&2; exit 1; }
  else
    ssh-keygen -e -m PKCS8 -f "$key.pub" >"$OUT/$name.spki.txt"
    ssh-keygen -i -m PKCS8 -f "$OUT/$name.spki.txt" >"$WORK/check.pub"
    same_key "$key.pub" "$WORK/check.pub"
  fi
  golden "$name.spki.txt" "$key.pub"

  # PKCS#1 ("RSA PUBLIC KEY") for RSA.
  if [[ $kind == rsa ]]; then
    ssh-keygen -e -m PEM -f "$key.pub" >"$OUT/$name.pkcs1.txt"
    ssh-keygen -i -m PEM -f "$OUT/$name.pkcs1.txt" >"$WORK/check.pub"
    same_key "$key.pub" "$WORK/check.pub"
    golden "$name.pkcs1.txt" "$key.pub"
  fi
done

# openssl's own exports, from the private key converted to PEM (openssl cannot read OpenSSH's format).
for name in rsa-2048 dsa-1024 ecdsa-384; do
  cp "$WORK/$name" "$WORK/$name.pem-private"
  ssh-keygen -q -p -N '' -m PEM -f "$WORK/$name.pem-private" >/dev/null
  openssl pkey -in "$WORK/$name.pem-private" -pubout -out "$OUT/$name.openssl-spki.txt" 2>/dev/null
  golden "$name.openssl-spki.txt" "$WORK/$name.pub"
done
openssl rsa -in "$WORK/rsa-2048.pem-private" -RSAPublicKey_out -out "$OUT/rsa-2048.openssl-pkcs1.txt" 2>/dev/null
golden rsa-2048.openssl-pkcs1.txt "$WORK/rsa-2048.pub"

# Layout variants of the one-line form: no comment, tabs, CRLF with blank lines around it.
awk '{print $1 " " $2}' "$WORK/rsa-2048.pub" >"$OUT/rsa-2048.no-comment.pub"
golden rsa-2048.no-comment.pub "$WORK/rsa-2048.pub"
awk '{printf "%s\t%s\t%s\n", $1, $2, "a comment with  spaces"}' "$WORK/ecdsa-256.pub" >"$OUT/ecdsa-256.tabs.pub"
golden ecdsa-256.tabs.pub "$WORK/ecdsa-256.pub"
printf '\r\n\r\n%s\r\n\r\n' "$(cat "$WORK/ed25519.pub")" >"$OUT/ed25519.crlf.pub"
golden ed25519.crlf.pub "$WORK/ed25519.pub"

# RFC 4716 with every kind of header of §3.3: Subject, a private x- tag, and a continued Comment.
{
  echo '---- BEGIN SSH2 PUBLIC KEY ----'
  echo 'Subject: fixture'
  echo 'x-command: /home/me/bin/lock-in-guest.sh'
  echo 'Comment: "This is an example of a very long comment that is continued \'
  echo 'on the next line"'
  ssh-keygen -e -f "$WORK/ed25519.pub" | sed -e '1,2d' -e '$d'
  echo '---- END SSH2 PUBLIC KEY ----'
} >"$OUT/ed25519.rfc4716-headers.txt"
ssh-keygen -i -f "$OUT/ed25519.rfc4716-headers.txt" >"$WORK/check.pub"
same_key "$WORK/ed25519.pub" "$WORK/check.pub"
golden ed25519.rfc4716-headers.txt "$WORK/ed25519.pub"

# ---------------------------------------------------------------------------------------------------------
# Certificates signed by CAs of every type and every signature algorithm ssh-keygen offers.

keygen "$WORK/ca-rsa" -t rsa -b 3072
keygen "$WORK/ca-dsa" -t dsa -b 1024
keygen "$WORK/ca-ecdsa-256" -t ecdsa -b 256
keygen "$WORK/ca-ecdsa-384" -t ecdsa -b 384
keygen "$WORK/ca-ecdsa-521" -t ecdsa -b 521
keygen "$WORK/ca-ed25519" -t ed25519

# certify OUTPUT SUBJECT CA ARGS... : sign SUBJECT's public key with CA into $OUT/OUTPUT
certify() {
  local output=$1 subject=$2 ca=$3
  shift 3
  cp "$WORK/$subject.pub" "$WORK/tosign.pub"
  ssh-keygen -q -s "$WORK/$ca" -I "keyward-fixture-$output" "$@" "$WORK/tosign.pub" </dev/null
  mv "$WORK/tosign-cert.pub" "$OUT/$output"
}

certify rsa-2048-cert-by-rsa-sha2-256.pub rsa-2048 ca-rsa -t rsa-sha2-256 -n alice,bob -z 42 \
  -V 20200101:20400101 -O force-command=/bin/true -O source-address=10.0.0.0/8,192.168.0.0/16
certify rsa-3072-cert-by-rsa-sha2-512.pub rsa-3072 ca-rsa -t rsa-sha2-512 -n alice
certify rsa-4096-cert-by-ed25519.pub rsa-4096 ca-ed25519 -n alice
certify dsa-1024-cert-by-ecdsa-256.pub dsa-1024 ca-ecdsa-256 -n alice
certify ecdsa-256-cert-by-ecdsa-384.pub ecdsa-256 ca-ecdsa-384 -n alice
certify ecdsa-384-cert-by-ecdsa-521.pub ecdsa-384 ca-ecdsa-521 -n alice
certify ecdsa-521-cert-by-rsa-sha1.pub ecdsa-521 ca-rsa -t ssh-rsa -n alice
certify ed25519-cert-by-dsa.pub ed25519 ca-dsa -n alice
certify ed25519-host-cert-by-ed25519.pub ed25519 ca-ed25519 -h -n host.example.com,10.1.2.3 -z 7
certify ed25519-cert-by-ecdsa-256-extensions.pub ed25519 ca-ecdsa-256 -O clear -O permit-pty \
  -O extension:login@example.com=alice
for cert in "$OUT"/*-cert-*.pub; do golden "$(basename "$cert")" "$cert"; done

# A certificate in RFC 4716 form (ssh-keygen -e keeps the certificate blob).
ssh-keygen -e -f "$OUT/rsa-2048-cert-by-rsa-sha2-256.pub" >"$OUT/rsa-2048-cert-by-rsa-sha2-256.rfc4716.txt"
golden rsa-2048-cert-by-rsa-sha2-256.rfc4716.txt "$OUT/rsa-2048-cert-by-rsa-sha2-256.pub"

{
  echo '{'
  (
    IFS=$'\n'
    echo "${GOLDEN_ENTRIES[*]}" | sed '$!s/$/,/'
  )
  echo '}'
} >"$OUT/expected.json"

# ---------------------------------------------------------------------------------------------------------
# Malformed and hostile inputs. Each gets an entry in malformed/expected.json: the code Keyward must
# answer (always InvalidPublicKeyBody.Malformed) and what the case is about.

BAD_ENTRIES=()
bad() { # bad FILE DESCRIPTION : register $BAD/FILE
  [[ -f "$BAD/$1" ]] || { echo "missing malformed fixture $1" >&2; exit 1; }
  BAD_ENTRIES+=("$(printf '  "%s": { "code": "%s", "case": "%s" }' "$1" "$CODE" "$2")")
}
line_of_hex() { printf '%s %s %s\n' "$1" "$(b64_of_hex "$2")" "$COMMENT"; } # line_of_hex TYPE HEX

ED=$(awk '{print $2}' "$WORK/ed25519.pub")
ED_HEX=$(blob_hex_of_pub "$WORK/ed25519.pub")
RSA_HEX=$(blob_hex_of_pub "$WORK/rsa-2048.pub")
RSA_N=$(ssh_field "$RSA_HEX" 2)
EC_HEX=$(blob_hex_of_pub "$WORK/ecdsa-256.pub")
DSA_HEX=$(blob_hex_of_pub "$WORK/dsa-1024.pub")

# The body as text.
: >"$BAD/empty.txt"
bad empty.txt 'empty body'
printf '  \n\n\t \r\n' >"$BAD/whitespace-only.txt"
bad whitespace-only.txt 'only whitespace'
{
  printf 'ssh-ed25519 %s ' "$ED"
  head -c 17000 /dev/zero | tr '\0' 'x'
  echo
} >"$BAD/oversized.pub"
bad oversized.pub 'body over 16384 bytes'
printf 'ssh-ed25519 %s fixture\0nul\n' "$ED" >"$BAD/nul-byte.pub"
bad nul-byte.pub 'NUL byte in the comment'
printf 'ssh-ed25519 %s fixture\033[31mred\n' "$ED" >"$BAD/control-character.pub"
bad control-character.pub 'ESC control character in the comment'
printf 'command="/usr/bin/true" ssh-ed25519 %s %s\n' "$ED" "$COMMENT" >"$BAD/options-command.pub"
bad options-command.pub 'authorized_keys command= option before the key'
printf 'restrict %s\n' "$(cat "$WORK/rsa-2048.pub")" >"$BAD/options-restrict.pub"
bad options-restrict.pub 'authorized_keys restrict option before the key'
printf 'from="10.0.0.0/8",no-pty ssh-ed25519 %s\n' "$ED" >"$BAD/options-from.pub"
bad options-from.pub 'authorized_keys from= and no-pty options before the key'
printf '@cert-authority *.example.com ssh-ed25519 %s\n' "$ED" >"$BAD/known-hosts-marker.pub"
bad known-hosts-marker.pub 'known_hosts @cert-authority line'
cat "$WORK/ed25519.pub" "$WORK/rsa-2048.pub" >"$BAD/two-keys-two-lines.pub"
bad two-keys-two-lines.pub 'two OpenSSH lines'
printf 'ssh-ed25519 %s %s\n' "$ED" "$(cat "$WORK/ecdsa-256.pub")" >"$BAD/two-keys-one-line.pub"
bad two-keys-one-line.pub 'a second key in the comment of the first'
cat "$OUT/ed25519.rfc4716.txt" "$OUT/rsa-2048.rfc4716.txt" >"$BAD/two-keys-rfc4716.txt"
bad two-keys-rfc4716.txt 'two RFC 4716 blocks'
cat "$OUT/rsa-2048.spki.txt" "$OUT/ecdsa-256.spki.txt" >"$BAD/two-keys-pem.txt"
bad two-keys-pem.txt 'two PEM blocks'
cat "$OUT/rsa-2048.spki.txt" "$WORK/ed25519.pub" >"$BAD/two-keys-pem-and-line.txt"
bad two-keys-pem-and-line.txt 'a PEM block followed by an OpenSSH line'
cat "$WORK/ed25519.pub" "$OUT/rsa-2048.rfc4716.txt" >"$BAD/two-keys-line-and-rfc4716.txt"
bad two-keys-line-and-rfc4716.txt 'an OpenSSH line followed by an RFC 4716 block'
awk '{print $1 " " substr($2, 1, 40); print substr($2, 41) " " $3}' "$WORK/rsa-2048.pub" >"$BAD/wrapped-line.pub"
bad wrapped-line.pub 'one-line key broken over two lines'
printf '%s %s\n' "$ED" "$COMMENT" >"$BAD/missing-type.pub"
bad missing-type.pub 'base64 without the key type'
printf 'ssh-ed25519\n' >"$BAD/type-only.pub"
bad type-only.pub 'key type without key data'
printf 'ssh-foo %s %s\n' "$ED" "$COMMENT" >"$BAD/unknown-type.pub"
bad unknown-type.pub 'unknown key type name'
printf '%s %s\n' "$(head -c 300 /dev/zero | tr '\0' 'k')" "$ED" >"$BAD/long-unknown-type.pub"
bad long-unknown-type.pub '300-character unknown type name (must not be echoed)'
SK_ED_HEX="$(ssh_string_hex "$(ascii_hex sk-ssh-ed25519@openssh.com)")$(ssh_string_hex "$(ssh_field "$ED_HEX" 1)")$(ssh_string_hex "$(ascii_hex ssh:)")"
line_of_hex sk-ssh-ed25519@openssh.com "$SK_ED_HEX" >"$BAD/sk-ssh-ed25519.pub"
bad sk-ssh-ed25519.pub 'FIDO security-key Ed25519 key'
SK_EC_HEX="$(ssh_string_hex "$(ascii_hex sk-ecdsa-sha2-nistp256@openssh.com)")$(ssh_string_hex "$(ascii_hex nistp256)")$(ssh_string_hex "$(ssh_field "$EC_HEX" 2)")$(ssh_string_hex "$(ascii_hex ssh:)")"
line_of_hex sk-ecdsa-sha2-nistp256@openssh.com "$SK_EC_HEX" >"$BAD/sk-ecdsa.pub"
bad sk-ecdsa.pub 'FIDO security-key ECDSA key'
XMSS_HEX="$(ssh_string_hex "$(ascii_hex ssh-xmss@openssh.com)")$(ssh_string_hex "$(ascii_hex XMSS_SHA2-256_W16_H10)")$(ssh_string_hex "$(ssh_field "$ED_HEX" 1)$(ssh_field "$ED_HEX" 1)")"
line_of_hex ssh-xmss@openssh.com "$XMSS_HEX" >"$BAD/ssh-xmss.pub"
bad ssh-xmss.pub 'XMSS key'
printf 'rsa-sha2-256 %s %s\n' "$(awk '{print $2}' "$WORK/rsa-2048.pub")" "$COMMENT" >"$BAD/rsa-sha2-256-as-type.pub"
bad rsa-sha2-256-as-type.pub 'signature algorithm name used as the key type'
printf 'ssh-rsa %s %s\n' "$ED" "$COMMENT" >"$BAD/type-mismatch.pub"
bad type-mismatch.pub 'ssh-rsa in the text, ssh-ed25519 in the blob'
printf 'ssh-ed25519 %s\n' "$(awk '{print $2}' "$OUT/ed25519-cert-by-dsa.pub")" >"$BAD/type-mismatch-cert.pub"
bad type-mismatch-cert.pub 'plain type in the text, certificate in the blob'

# Base64.
printf 'ssh-ed25519 %s!%s %s\n' "${ED:0:30}" "${ED:30}" "$COMMENT" >"$BAD/bad-base64-character.pub"
bad bad-base64-character.pub '! inside the base64'
EC_B64=$(awk '{print $2}' "$WORK/ecdsa-256.pub") # 104 bytes: one "=" of padding
[[ "$EC_B64" == *= && "$EC_B64" != *== ]] || { echo "unexpected ecdsa-256 base64 padding" >&2; exit 1; }
printf 'ecdsa-sha2-nistp256 %s %s\n' "${EC_B64%=}" "$COMMENT" >"$BAD/bad-base64-missing-padding.pub"
bad bad-base64-missing-padding.pub 'base64 padding removed'
printf 'ecdsa-sha2-nistp256 %s== %s\n' "${EC_B64%=}" "$COMMENT" >"$BAD/bad-base64-extra-padding.pub"
bad bad-base64-extra-padding.pub 'one = too many'
ALPHABET='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
last=${EC_B64: -2:1}
prefix=${ALPHABET%%"$last"*}
printf 'ecdsa-sha2-nistp256 %s%s= %s\n' "${EC_B64:0:${#EC_B64}-2}" "${ALPHABET:${#prefix}+1:1}" "$COMMENT" \
  >"$BAD/bad-base64-padding-bits.pub"
bad bad-base64-padding-bits.pub 'non-zero bits before the = padding'
RSA_B64=$(awk '{print $2}' "$WORK/rsa-2048.pub")
[[ "$RSA_B64" == *[+/]* ]] || { echo "rsa-2048 base64 has no + or /; run again" >&2; exit 1; }
printf 'ssh-rsa %s %s\n' "$(tr '+/' '-_' <<<"$RSA_B64")" "$COMMENT" >"$BAD/bad-base64-url-alphabet.pub"
bad bad-base64-url-alphabet.pub 'base64url alphabet instead of base64'

# The blob.
line_of_hex ssh-rsa "${RSA_HEX:0:400}" >"$BAD/truncated.pub"
bad truncated.pub 'RSA blob cut inside the modulus'
line_of_hex ssh-ed25519 "${ED_HEX:0:34}" >"$BAD/truncated-length-field.pub"
bad truncated-length-field.pub 'Ed25519 blob cut inside a length field'
line_of_hex ssh-ed25519 "${ED_HEX:0:30}ffffff00${ED_HEX:38}" >"$BAD/length-past-end.pub"
bad length-past-end.pub 'a length field pointing far past the end'
line_of_hex ssh-ed25519 "${ED_HEX}$(ascii_hex junk)" >"$BAD/trailing-bytes.pub"
bad trailing-bytes.pub 'bytes after the last field'
printf 'ssh-rsa ==== %s\n' "$COMMENT" >"$BAD/empty-blob.pub"
bad empty-blob.pub 'base64 of nothing'
RSA_TYPE=$(ssh_string_hex "$(ascii_hex ssh-rsa)")
line_of_hex ssh-rsa "${RSA_TYPE}$(ssh_string_hex 010000)$(ssh_string_hex "$RSA_N")" >"$BAD/rsa-even-exponent.pub"
bad rsa-even-exponent.pub 'RSA public exponent 65536'
line_of_hex ssh-rsa "${RSA_TYPE}$(ssh_string_hex 01)$(ssh_string_hex "$RSA_N")" >"$BAD/rsa-exponent-one.pub"
bad rsa-exponent-one.pub 'RSA public exponent 1'
line_of_hex ssh-rsa "${RSA_TYPE}$(ssh_string_hex 00010001)$(ssh_string_hex "$RSA_N")" >"$BAD/rsa-non-minimal-mpint.pub"
bad rsa-non-minimal-mpint.pub 'exponent mpint with an unnecessary leading zero byte'
line_of_hex ssh-rsa "${RSA_TYPE}$(ssh_string_hex 010001)$(ssh_string_hex "${RSA_N:2}")" >"$BAD/rsa-negative-modulus.pub"
bad rsa-negative-modulus.pub 'modulus mpint without its sign byte (negative)'
EVEN_N="${RSA_N:0:${#RSA_N}-2}$(printf '%02x' $((16#${RSA_N: -2} & 0xfe)))"
line_of_hex ssh-rsa "${RSA_TYPE}$(ssh_string_hex 010001)$(ssh_string_hex "$EVEN_N")" >"$BAD/rsa-even-modulus.pub"
bad rsa-even-modulus.pub 'even RSA modulus'
keygen "$WORK/rsa-1024" -t rsa -b 1024
cp "$WORK/rsa-1024.pub" "$BAD/rsa-1024.pub"
bad rsa-1024.pub 'RSA key under 2048 bits'
EC_POINT=$(ssh_field "$EC_HEX" 2)
EC_TYPE=$(ssh_string_hex "$(ascii_hex ecdsa-sha2-nistp256)")
EC_CURVE=$(ssh_string_hex "$(ascii_hex nistp256)")
OFF_CURVE="${EC_POINT:0:${#EC_POINT}-2}$(printf '%02x' $((16#${EC_POINT: -2} ^ 1)))"
line_of_hex ecdsa-sha2-nistp256 "${EC_TYPE}${EC_CURVE}$(ssh_string_hex "$OFF_CURVE")" >"$BAD/ecdsa-point-off-curve.pub"
bad ecdsa-point-off-curve.pub 'EC point not on the curve'
line_of_hex ecdsa-sha2-nistp256 "${EC_TYPE}$(ssh_string_hex "$(ascii_hex nistp384)")$(ssh_string_hex "$EC_POINT")" \
  >"$BAD/ecdsa-wrong-curve-name.pub"
bad ecdsa-wrong-curve-name.pub 'nistp384 curve name inside an ecdsa-sha2-nistp256 key'
line_of_hex ecdsa-sha2-nistp256 "${EC_TYPE}${EC_CURVE}$(ssh_string_hex "02${EC_POINT:2:64}")" >"$BAD/ecdsa-compressed-point.pub"
bad ecdsa-compressed-point.pub 'compressed EC point'
ED_TYPE=$(ssh_string_hex "$(ascii_hex ssh-ed25519)")
line_of_hex ssh-ed25519 "${ED_TYPE}$(ssh_string_hex "$(ssh_field "$ED_HEX" 1 | cut -c3-)")" >"$BAD/ed25519-31-bytes.pub"
bad ed25519-31-bytes.pub 'Ed25519 key of 31 bytes'
DSA_FIELDS=("$(ssh_field "$DSA_HEX" 1)" "$(ssh_field "$DSA_HEX" 2)" "$(ssh_field "$DSA_HEX" 3)" "$(ssh_field "$DSA_HEX" 4)")
line_of_hex ssh-dss "$(ssh_string_hex "$(ascii_hex ssh-dss)")$(ssh_string_hex "${DSA_FIELDS[0]}")$(ssh_string_hex "${DSA_FIELDS[1]}")$(ssh_string_hex 02)$(ssh_string_hex "${DSA_FIELDS[3]}")" \
  >"$BAD/dsa-bad-generator.pub"
bad dsa-bad-generator.pub 'DSA generator g = 2, not of order q'

# Certificates.
CERT_B64=$(awk '{print $2}' "$OUT/ed25519-host-cert-by-ed25519.pub")
CERT_HEX=$(hex_of_b64 <<<"$CERT_B64")
CERT_TYPE=ssh-ed25519-cert-v01@openssh.com
flip_byte() { # flip_byte HEX BYTE-OFFSET
  local hex=$1 at=$(($2 * 2))
  printf '%s%02x%s' "${hex:0:at}" $((16#${hex:at:2} ^ 0x01)) "${hex:at+2}"
}
line_of_hex "$CERT_TYPE" "$(flip_byte "$CERT_HEX" $((${#CERT_HEX} / 2 - 1)))" >"$BAD/cert-tampered-signature.pub"
bad cert-tampered-signature.pub 'certificate whose signature was altered'
line_of_hex "$CERT_TYPE" "$(flip_byte "$CERT_HEX" 40)" >"$BAD/cert-tampered-nonce.pub"
bad cert-tampered-nonce.pub 'certificate whose signed nonce was altered'
line_of_hex "$CERT_TYPE" "${CERT_HEX:0:600}" >"$BAD/cert-truncated.pub"
bad cert-truncated.pub 'certificate cut short'
line_of_hex "$CERT_TYPE" "${CERT_HEX}00000000" >"$BAD/cert-trailing-bytes.pub"
bad cert-trailing-bytes.pub 'certificate with bytes after the signature'
cp "$WORK/rsa-1024.pub" "$WORK/tosign.pub"
ssh-keygen -q -s "$WORK/ca-ed25519" -I small -n alice "$WORK/tosign.pub"
mv "$WORK/tosign-cert.pub" "$BAD/cert-with-rsa-1024-key.pub"
bad cert-with-rsa-1024-key.pub 'certificate of a 1024-bit RSA key'
cp "$WORK/ed25519.pub" "$WORK/tosign.pub"
ssh-keygen -q -s "$WORK/rsa-1024" -I small-ca -n alice "$WORK/tosign.pub"
mv "$WORK/tosign-cert.pub" "$BAD/cert-by-rsa-1024-ca.pub"
bad cert-by-rsa-1024-ca.pub 'certificate signed by a 1024-bit RSA CA'
printf '%s %s\n' "$CERT_TYPE" "$ED" >"$BAD/cert-type-with-plain-blob.pub"
bad cert-type-with-plain-blob.pub 'certificate type in the text, plain key in the blob'

# Private keys of every form (throwaways made for this purpose only).
keygen "$WORK/throwaway-ed25519" -t ed25519
cp "$WORK/throwaway-ed25519" "$BAD/private-openssh.txt"
bad private-openssh.txt 'OpenSSH private key'
sed -e '1d' -e '$d' "$WORK/throwaway-ed25519" >"$BAD/private-openssh-body-only.txt"
bad private-openssh-body-only.txt 'OpenSSH private key body without its BEGIN/END lines'
cat "$WORK/ed25519.pub" "$WORK/throwaway-ed25519" >"$BAD/private-after-public.txt"
bad private-after-public.txt 'public line followed by a private key'
keygen "$WORK/throwaway-rsa" -t rsa -b 2048 -m PEM
cp "$WORK/throwaway-rsa" "$BAD/private-rsa-pkcs1.txt"
bad private-rsa-pkcs1.txt 'RSA PRIVATE KEY (PKCS#1)'
keygen "$WORK/throwaway-dsa" -t dsa -m PEM
cp "$WORK/throwaway-dsa" "$BAD/private-dsa.txt"
bad private-dsa.txt 'DSA PRIVATE KEY'
keygen "$WORK/throwaway-ec" -t ecdsa -b 256 -m PEM
cp "$WORK/throwaway-ec" "$BAD/private-ec.txt"
bad private-ec.txt 'EC PRIVATE KEY (SEC 1)'
openssl genpkey -algorithm ed25519 -out "$BAD/private-pkcs8.txt" 2>/dev/null
bad private-pkcs8.txt 'PRIVATE KEY (PKCS#8)'
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:fixture -in "$BAD/private-pkcs8.txt" \
  -out "$BAD/private-pkcs8-encrypted.txt" 2>/dev/null
bad private-pkcs8-encrypted.txt 'ENCRYPTED PRIVATE KEY (PKCS#8)'
{
  echo 'PuTTY-User-Key-File-3: ssh-ed25519'
  echo 'Encryption: none'
  echo "Comment: $COMMENT"
  echo 'Public-Lines: 2'
  printf '%s\n' "$ED" | fold -w 64
  echo 'Private-Lines: 1'
  head -c 36 /dev/urandom | base64 -w0
  echo
  echo "Private-MAC: $(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')"
} >"$BAD/private-putty.txt"
bad private-putty.txt 'PuTTY .ppk private key (format 3)'
{
  echo '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----'
  echo 'Comment: "throwaway"'
  head -c 300 /dev/urandom | base64 -w 70
  echo '---- END SSH2 ENCRYPTED PRIVATE KEY ----'
} >"$BAD/private-ssh2.txt"
bad private-ssh2.txt 'SSH.com / RFC 4716 style private key'

# X.509.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/x509.key" \
  -subj /CN=keyward-fixture -days 1 -out "$BAD/x509-certificate.txt" 2>/dev/null
bad x509-certificate.txt 'X.509 certificate'
openssl req -new -key "$WORK/x509.key" -subj /CN=keyward-fixture -out "$BAD/x509-csr.txt" 2>/dev/null
bad x509-csr.txt 'X.509 certificate request'

# PEM that is not an acceptable public key.
sed -e 's/BEGIN PUBLIC KEY/BEGIN RSA PUBLIC KEY/' -e 's/END PUBLIC KEY/END RSA PUBLIC KEY/' \
  "$OUT/rsa-2048.spki.txt" >"$BAD/pem-pkcs1-label-on-spki.txt"
bad pem-pkcs1-label-on-spki.txt 'RSA PUBLIC KEY label around a SubjectPublicKeyInfo'
sed -e 's/BEGIN PUBLIC KEY/BEGIN FOO PUBLIC KEY/' -e 's/END PUBLIC KEY/END FOO PUBLIC KEY/' \
  "$OUT/rsa-2048.spki.txt" >"$BAD/pem-unknown-label.txt"
bad pem-unknown-label.txt 'PEM label that is not PUBLIC KEY or RSA PUBLIC KEY'
ssh-keygen -e -m PKCS8 -f "$WORK/rsa-1024.pub" >"$BAD/pem-rsa-1024.txt"
bad pem-rsa-1024.txt '1024-bit RSA key as PEM'
openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout >"$BAD/pem-rsa-pss.txt"
bad pem-rsa-pss.txt 'RSA-PSS SubjectPublicKeyInfo'
openssl genpkey -algorithm ed448 2>/dev/null | openssl pkey -pubout >"$BAD/pem-ed448.txt"
bad pem-ed448.txt 'Ed448 key'
openssl genpkey -algorithm x25519 2>/dev/null | openssl pkey -pubout >"$BAD/pem-x25519.txt"
bad pem-x25519.txt 'X25519 key'
openssl ecparam -name secp256k1 -genkey -noout 2>/dev/null | openssl pkey -pubout >"$BAD/pem-secp256k1.txt"
bad pem-secp256k1.txt 'EC key on secp256k1'
openssl ec -pubin -in "$OUT/ecdsa-256.spki.txt" -conv_form compressed -pubout -out "$BAD/pem-ec-compressed.txt" 2>/dev/null
bad pem-ec-compressed.txt 'EC SubjectPublicKeyInfo with a compressed point'
{
  echo '-----BEGIN PUBLIC KEY-----'
  echo 'Proc-Type: 4,ENCRYPTED'
  echo
  sed -e '1d' -e '$d' "$OUT/rsa-2048.spki.txt"
  echo '-----END PUBLIC KEY-----'
} >"$BAD/pem-with-headers.txt"
bad pem-with-headers.txt 'PEM headers inside a public key block'
{
  cat "$OUT/rsa-2048.spki.txt"
  echo 'some trailing text'
} >"$BAD/pem-trailing-text.txt"
bad pem-trailing-text.txt 'text after the PEM END line'
sed '$d' "$OUT/rsa-2048.spki.txt" >"$BAD/pem-no-end.txt"
bad pem-no-end.txt 'PEM block without END line'
{
  echo '-----BEGIN PUBLIC KEY-----'
  sed -e '1d' -e '$d' "$OUT/rsa-2048.spki.txt" | tr -d '\n' | sed 's/...$/AAA/'
  echo
  echo '-----END PUBLIC KEY-----'
} >"$BAD/pem-damaged-der.txt"
bad pem-damaged-der.txt 'PEM body whose DER was damaged'
{
  echo '-----BEGIN PUBLIC KEY-----'
  b64_of_hex "$(openssl pkey -pubin -in "$OUT/rsa-2048.spki.txt" -outform DER | od -An -v -tx1 | tr -d ' \n')0500" | fold -w 64
  echo
  echo '-----END PUBLIC KEY-----'
} >"$BAD/pem-trailing-der.txt"
bad pem-trailing-der.txt 'PEM body with bytes after the DER'

# RFC 4716 that is not right.
sed '$d' "$OUT/ed25519.rfc4716.txt" >"$BAD/rfc4716-no-end.txt"
bad rfc4716-no-end.txt 'RFC 4716 block without END line'
sed '1a Bad Tag: a space is not allowed in a header tag' "$OUT/ed25519.rfc4716.txt" >"$BAD/rfc4716-bad-header-tag.txt"
bad rfc4716-bad-header-tag.txt 'RFC 4716 header tag with a space'
{
  echo '---- BEGIN SSH2 PUBLIC KEY ----'
  echo 'Comment: "continued \'
  echo '---- END SSH2 PUBLIC KEY ----'
} >"$BAD/rfc4716-continuation-past-end.txt"
bad rfc4716-continuation-past-end.txt 'RFC 4716 header continued onto the END line'
sed '3s/^\(.\{10\}\)./\1*/' "$OUT/rsa-2048.rfc4716.txt" >"$BAD/rfc4716-bad-base64.txt"
bad rfc4716-bad-base64.txt 'RFC 4716 body with * in the base64'
sed -e 's/BEGIN SSH2 PUBLIC KEY/BEGIN SSH2 FOO/' -e 's/END SSH2 PUBLIC KEY/END SSH2 FOO/' \
  "$OUT/ed25519.rfc4716.txt" >"$BAD/rfc4716-unknown-block.txt"
bad rfc4716-unknown-block.txt 'RFC 4716 style block of another kind'
{
  cat "$OUT/ed25519.rfc4716.txt"
  echo 'trailing words'
} >"$BAD/rfc4716-trailing-text.txt"
bad rfc4716-trailing-text.txt 'text after the RFC 4716 END line'

{
  echo '{'
  (
    IFS=$'\n'
    echo "${BAD_ENTRIES[*]}" | sed '$!s/$/,/'
  )
  echo '}'
} >"$BAD/expected.json"

echo "wrote ${#GOLDEN_ENTRIES[@]} golden and ${#BAD_ENTRIES[@]} malformed fixtures to ${OUT#"$ROOT"/}"
