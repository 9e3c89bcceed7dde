#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The webhook over TLS with client certificates (docs/bridge.md, "Webhooks",
# bridge/http_listener.h): certificates made here by openssl (a CA, another
# CA, the listener's, clients'), a real Kafka, a real mosquitto, the real
# bridge, curl as the client:
#   0. the TLS keys checked by --check-config, each error naming the file,
#      the line and the key; a key file that is not PEM stops the bridge;
#   1. hookT (cert_cn only): its certificate accepted, 200 once Kafka has
#      the readings; hookK (a token only) still accepted with its token
#      over the same TLS listener, with or without a certificate;
#   2. refused with 401, nothing of them in Kafka: no certificate and no
#      token, a certificate of the CA with another CN, a certificate with
#      hookT's CN from another CA, hookT's certificate with a wrong token
#      (a token, when given, decides), hookK's token does not make hookT;
#   3. plain HTTP on the TLS port gets no answer; /metrics is served over
#      HTTPS; no sanitizer report.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-webhook-tls.XXXXXX)
trap 'bridge_test_cleanup' EXIT   # bridge.sh: bridges, broker, Kafka, $work (S3Proxy: its own trap)
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
wh() { /usr/bin/python3 "$src/tests/integration/webhook.py" "$@"; }

# --- certificates ------------------------------------------------------------------------------
pki=$work/pki
mkdir -p "$pki"
ca() { # NAME CN: a self-signed CA
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -out "$pki/$1.crt" -days 2 \
    -subj "/O=turnstile test/CN=$2" 2>>"$pki/openssl.err"
}
cert() { # NAME CN CA [SAN]: a key and a certificate signed by CA
  openssl req -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -out "$pki/$1.csr" \
    -subj "/O=turnstile test/CN=$2" 2>>"$pki/openssl.err"
  printf '%s\n' "${4:-extendedKeyUsage=clientAuth}" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$3.crt" -CAkey "$pki/$3.key" -CAcreateserial \
    -days 2 -out "$pki/$1.crt" -extfile "$pki/$1.ext" 2>>"$pki/openssl.err"
}
ca ca "test CA"
ca other "another CA"
cert server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1"
cert hookT gate-vendor-1 ca             # hookT's
cert stranger gate-vendor-2 ca          # the CA's, not a source's CN
cert rogue gate-vendor-1 other          # hookT's CN, the wrong CA
chmod 600 "$pki"/*.key

TOKK=tokK-0123456789abcdef-tls
printf '%s\n' "$TOKK" >"$work/tokK"
chmod 600 "$work/tokK"

# --- 0. the config is checked ------------------------------------------------------------------
base='[bridge]\nid = b\nrole = relay\n[mqtt]\nhost = h\n[kafka]\nbrokers = k:1\n'
conf_fails() { # NAME PATTERN BODY: --check-config refuses it (78) naming PATTERN
  printf "$base%b" "$3" >"$work/bad.conf"
  local rc=0
  "$TS_BIN_DIR/turnstile-bridge" --check-config -c "$work/bad.conf" 2>"$work/bad.err" || rc=$?
  check "config: $1 (78, '$2')" bash -c "[ $rc = 78 ] && grep -q '$2' '$work/bad.err'" ||
    cat "$work/bad.err"
}
tls="tls_cert_file = $pki/server.crt\ntls_key_file = $pki/server.key\n"
src_t='[webhook_source hookT]\nstation = ST-T\ncert_cn = gate-vendor-1\n'
conf_fails "cert_cn without tls_client_ca_file" \
  'bad.conf:14: \[webhook_source hookT\] cert_cn: needs \[http\] tls_client_ca_file' \
  "[http]\n$tls[webhook]\n$src_t"
conf_fails "tls_client_ca_file without TLS" \
  'bad.conf:9: \[http\] tls_client_ca_file: client certificates need TLS' \
  "[http]\ntls_client_ca_file = $pki/ca.crt\n[webhook]\n$src_t"
conf_fails "tls_cert_file without its key" 'bad.conf:9: \[http\] tls_cert_file: needs tls_key_file' \
  "[http]\ntls_cert_file = $pki/server.crt\n"
conf_fails "tls_key_file without a certificate" 'bad.conf:9: \[http\] tls_key_file: needs tls_cert_file' \
  "[http]\ntls_key_file = $pki/server.key\n"
conf_fails "a source with neither a token nor cert_cn" \
  '\[webhook_source s1\] needs token_file, token_env or cert_cn' \
  "[http]\n[webhook]\n[webhook_source s1]\nstation = ST\n"
conf_fails "two sources with one cert_cn" \
  'bad.conf:18: \[webhook_source s2\] cert_cn: .gate-vendor-1. is also \[webhook_source hookT\]' \
  "[http]\n${tls}tls_client_ca_file = $pki/ca.crt\n[webhook]\n$src_t[webhook_source s2]\nstation = ST\ncert_cn = gate-vendor-1\n"
printf "$base[http]\n${tls}tls_client_ca_file = %s\n[webhook]\n$src_t" "$pki/ca.crt" >"$work/good.conf"
check "config: a good one passes" "$TS_BIN_DIR/turnstile-bridge" --check-config -c "$work/good.conf"
# a key file that is not PEM: the bridge does not start, naming it
echo 'not a key' >"$work/nokey"
printf "$base[http]\nlisten = 127.0.0.1:%s\ntls_cert_file = %s\ntls_key_file = %s\n" \
  "$(free_port)" "$pki/server.crt" "$work/nokey" >"$work/nokey.conf"
rc=0; timeout 60 "$TS_BIN_DIR/turnstile-bridge" -c "$work/nokey.conf" 2>"$work/nokey.err" || rc=$?
check "a tls_key_file that is not PEM: the bridge does not start ($rc), naming it" \
  bash -c "[ $rc != 0 ] && grep -q 'tls_key_file $work/nokey: not a PEM file' '$work/nokey.err'"

# --- the bridge over TLS -------------------------------------------------------------------------
bridge_test_servers 2
port=$(free_port)
url=https://127.0.0.1:$port/v1/readings
bridge_conf "$work/bridge.conf" b1 "$(printf '[http]\nlisten = 127.0.0.1:%s
tls_cert_file = %s/server.crt\ntls_key_file = %s/server.key\ntls_client_ca_file = %s/ca.crt
[webhook]\nrequest_timeout_ms = 10000
[webhook_source hookT]\nstation = ST-T\ncert_cn = gate-vendor-1
[webhook_source hookK]\nstation = ST-T\ntoken_file = %s/tokK' "$port" "$pki" "$pki" "$pki" "$work")"
bridge_start b1 "$work/bridge.conf"
for _ in $(seq 300); do curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done

post() { # CERT|- TOKEN|- FILE: prints the status (000: no HTTP answer), the answer in $work/answer
  local c=() t=()
  [ "$1" = - ] || c=(--cert "$pki/$1.crt" --key "$pki/$1.key")
  [ "$2" = - ] || t=(-H "Authorization: Bearer $2")
  curl -s -o "$work/answer" -w '%{http_code}' --max-time 30 --cacert "$pki/ca.crt" "${c[@]}" "${t[@]}" \
    -H 'Content-Type: text/csv' --data-binary @"$3" "$url" || true
}

# --- 1. accepted ---------------------------------------------------------------------------------
wh gen hookT 1 20 >"$work/t1.csv"
check "hookT's certificate: 200" test "$(post hookT - "$work/t1.csv")" = 200
check "  the answer says accepted 20" grep -q '"accepted":20,"refused":0' "$work/answer"
wh gen hookK 1 10 >"$work/k1.csv"
check "hookK's token over TLS, no certificate: 200" test "$(post - "$TOKK" "$work/k1.csv")" = 200
wh gen hookK 11 10 >"$work/k2.csv"
check "hookK's token over TLS, with another source's certificate: 200" \
  test "$(post hookT "$TOKK" "$work/k2.csv")" = 200

# --- 2. refused ----------------------------------------------------------------------------------
wh gen hookT 101 5 >"$work/t101.csv"   # readings no refused request may put in Kafka
status=$(post - - "$work/t101.csv")
check "no certificate, no token: 401 ($status)" test "$status" = 401
status=$(post stranger - "$work/t101.csv")
check "the CA's certificate with another CN: 401 ($status)" test "$status" = 401
check "  the answer says the certificate is not a source's" grep -q 'certificate is not a source' "$work/answer"
status=$(post rogue - "$work/t101.csv")
check "hookT's CN from another CA: 401 or no TLS session ($status)" \
  bash -c "[ '$status' = 401 ] || [ '$status' = 000 ]"
status=$(post hookT wrong-token-0123456789ab "$work/t101.csv")
check "hookT's certificate with a wrong token: 401 ($status)" test "$status" = 401
status=$(post - "$TOKK" "$work/t101.csv")
check "hookK's token for hookT's readings: 422, nothing taken as hookT's ($status)" test "$status" = 422

# --- 3. the listener -------------------------------------------------------------------------
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: text/csv' \
  --data-binary @"$work/t1.csv" "http://127.0.0.1:$port/v1/readings" || true)
check "plain HTTP on the TLS port: no HTTP answer ($status)" test "$status" = 000
check "/metrics over HTTPS" bash -c "curl -sf --cacert '$pki/ca.crt' 'https://127.0.0.1:$port/metrics' | grep -q turnstile_bridge_webhook_requests_total"

# Kafka: hookT 1..20 and hookK 1..20, none of hookT's 101..105
kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%s\n' 2>/dev/null |
  awk -F, 'NF == 18 {print $12}' | sort -u >"$work/ids"
check "Kafka holds hookT:1..20 and hookK:1..20 ($(wc -l <"$work/ids") IDs)" \
  bash -c "[ \$(grep -c '^hookT:' '$work/ids') = 20 ] && [ \$(grep -c '^hookK:' '$work/ids') = 20 ]"
check "  and nothing of the refused requests (hookT:101..105)" bash -c "! grep -q '^hookT:10[1-5]\$' '$work/ids'"
bridge_kill b1 TERM
check "no sanitizer report" bash -c "! grep -q Sanitizer '$work/b1.err'"
finish
