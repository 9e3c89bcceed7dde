#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bridge's webhook (bridge/webhook.h, docs/bridge.md "Webhooks") with a
# real Kafka, a real mosquitto and the real bridge, curl and python as clients:
#   0. [webhook] without [http], a source without a token or with both,
#      max_requests not below max_connections: config errors naming the line;
#      a token not set or too short: the bridge does not start;
#   1. readings POSTed as CSV (source hookA, token from a file) and as JSON
#      (hookB, token from the environment): 200 once Kafka has them;
#   2. no token, a wrong token (same length, other lengths), Basic auth, a
#      token of hookA for readings of hookB: 401 or 422, nothing counted;
#   3. a body with garbage and another agent's reading between valid ones:
#      422 naming each, the valid ones counted, the others dead letters with
#      their reason; bad JSON 400; a Content-Length over max_body_bytes 413;
#      more than max_readings 413; a chunked 4 MiB body closed; an unknown
#      Content-Type 415;
#   4. two slowloris bodies hold both places (max_requests = 2): a third
#      POST gets 503, /metrics is served meanwhile, both are closed (the
#      body's request_timeout_ms), then POSTs are served again;
#   5. Kafka stopped: a client gives up after 1 s, another gets 503 (Kafka
#      did not confirm within request_timeout_ms); Kafka back, both retry the
#      same readings: 200; the readings topic holds them twice, the lake once;
#   6. the lake's sums per SCP equal the valid readings POSTed, exactly; the
#      webhook's counters in /metrics; a request waiting for Kafka when the
#      bridge stops is answered 503; no sanitizer report;
#   7. a source shows as a controller: after its first POST the bridge
#      publishes its retained status (online) and state on the topics an
#      agent would use, read back into turnstile_agent_online and
#      turnstile_agent_readings_sent_total (= its valid readings confirmed);
#      past [webhook] online_s without a request it is offline (reason idle);
#      a source that never POSTed publishes nothing.
# Waits poll with generous deadlines; nothing asserts on a duration.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-webhook.XXXXXX)
trap 'bridge_test_cleanup' EXIT   # bridge.sh: bridges, broker, Kafka, $work (S3Proxy: its own trap)
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
wh() { /usr/bin/python3 "$src/tests/integration/webhook.py" "$@"; }

TOKA=tokA-0123456789abcdef
TOKB=tokB-fedcba9876543210-longer
printf '%s\n' "$TOKA" >"$work/tokA"
chmod 600 "$work/tokA"
export TS_TEST_TOKB=$TOKB
export TS_TEST_TOKC=tokC-never-used-0123456789

# --- 0. the config is checked ----------------------------------------------------------------
base='[bridge]\nid = b\nrole = relay\n[mqtt]\nhost = h\n[kafka]\nbrokers = k:1\n'
conf_fails() { # NAME LINE-PATTERN BODY: --check-config refuses it (78) naming LINE-PATTERN
  printf "$base%b" "$3" >"$work/bad.conf"
  local rc=0
  "$TS_BIN_DIR/turnstile-bridge" --check-config -c "$work/bad.conf" 2>"$work/bad.err" || rc=$?
  check "config: $1 (78, '$2')" bash -c "[ $rc = 78 ] && grep -q '$2' '$work/bad.err'" ||
    cat "$work/bad.err"
}
src_a="[webhook_source hookA]\nstation = ST-H\ntoken_file = $work/tokA\n"
conf_fails "[webhook] without [http]" 'bad.conf:8: \[webhook\] needs an \[http\]' "[webhook]\n$src_a"
conf_fails "[webhook] without a source" 'no \[webhook_source' "[http]\n[webhook]\n"
conf_fails "a source without a token" 'needs token_file, token_env or cert_cn' \
  "[http]\n[webhook]\n[webhook_source s1]\nstation = ST\n"
conf_fails "a source with both" 'token_env: at most one of token_file and token_env' \
  "[http]\n[webhook]\n$src_a""token_env = X\n"
conf_fails "a source without [webhook]" 'needs a \[webhook\] section' "[http]\n$src_a"
conf_fails "max_requests >= max_connections" 'max_requests: must be below \[http\] max_connections' \
  "[http]\nmax_connections = 4\n[webhook]\nmax_requests = 4\n$src_a"
printf "$base[http]\n[webhook]\n$src_a" >"$work/good.conf"
check "config: a good one passes" "$TS_BIN_DIR/turnstile-bridge" --check-config -c "$work/good.conf"

# a token that cannot be read stops the bridge at start, naming it
printf "$base[http]\nlisten = 127.0.0.1:%s\n[webhook]\n[webhook_source s1]\nstation = ST\ntoken_env = TS_TEST_NOPE\n[webhook_source s2]\nstation = ST\ntoken_file = %s/tokA\n" \
  "$(free_port)" "$work" >"$work/notoken.conf"
rc=0; timeout 60 "$TS_BIN_DIR/turnstile-bridge" -c "$work/notoken.conf" 2>"$work/notoken.err" || rc=$?
check "a token_env not set: the bridge does not start ($rc), naming it" \
  bash -c "[ $rc = 1 ] && grep -q 'webhook_source s1\] token_env: TS_TEST_NOPE is not set' '$work/notoken.err'"
echo short >"$work/short"
sed -i "s|token_env = TS_TEST_NOPE|token_file = $work/short|" "$work/notoken.conf"
rc=0; timeout 60 "$TS_BIN_DIR/turnstile-bridge" -c "$work/notoken.conf" 2>"$work/notoken.err" || rc=$?
check "a token of 5 characters: the bridge does not start ($rc)" \
  bash -c "[ $rc = 1 ] && grep -q 'webhook_source s1\] the token must be 16 to 256' '$work/notoken.err'"

bridge_test_servers 2
http=127.0.0.1:$(free_port)
url=http://$http/v1/readings
bridge_conf "$work/bridge.conf" b1 "$(printf '[http]\nlisten = %s\nmax_connections = 6\ntimeout_s = 5
[webhook]\nmax_body_bytes = 65536\nmax_readings = 100\nmax_requests = 2\nrequest_timeout_ms = 3000\nonline_s = 20
[webhook_source hookA]\nstation = ST-H\ntoken_file = %s/tokA
[webhook_source hookB]\nstation = ST-H\ntoken_env = TS_TEST_TOKB
[webhook_source hookC]\nstation = ST-H\ntoken_env = TS_TEST_TOKC' "$http" "$work")"
bridge_start b1 "$work/bridge.conf"
for _ in $(seq 200); do curl -sf "http://$http/metrics" >/dev/null && break; sleep 0.1; done

post() { # TOKEN FILE [CONTENT-TYPE]: prints the status, the answer in $work/answer
  curl -s -o "$work/answer" -D "$work/headers" -w '%{http_code}' --max-time 30 ${1:+-H "Authorization: Bearer $1"} \
    -H "Content-Type: ${3:-text/csv}" --data-binary @"$2" "$url" || true
}
: >"$work/valid.csv"   # every valid reading POSTed, for the expected sums

# --- 1. CSV and JSON --------------------------------------------------------------------------
wh gen hookA 1 50 >"$work/a1.csv"
check "50 readings as CSV (token file): 200" test "$(post $TOKA "$work/a1.csv")" = 200
check "  the answer says accepted 50" grep -q '"accepted":50,"refused":0' "$work/answer"
cat "$work/a1.csv" >>"$work/valid.csv"
wh gen hookB 1 30 --json >"$work/b1.json"
check "30 readings as JSON (token from the environment): 200" \
  test "$(post $TOKB "$work/b1.json" application/json)" = 200
check "  the answer says accepted 30" grep -q '"accepted":30' "$work/answer"
wh gen hookB 1 30 | cat >>"$work/valid.csv"   # the same readings as the JSON (IDs, deltas)

# --- 7a. a source shows as a controller ------------------------------------------------------
retained() { # TOPIC: its retained message, or nothing
  timeout 20 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$1" -C 1 -W 3 2>/dev/null || true
}
metric() { # NAME AGENT: the value of NAME{station="ST-H",agent="AGENT"} in /metrics, or nothing
  curl -s "http://$http/metrics" | awk -v k="$1{station=\"ST-H\",agent=\"$2\"}" '$1 == k {print $2}'
}
wait_metric() { # NAME AGENT VALUE: polls /metrics (status_interval_ms 1000) up to 60 s
  for _ in $(seq 120); do [ "$(metric "$1" "$2")" = "$3" ] && return 0; sleep 0.5; done
  return 1
}
check "hookA shows online in /metrics (turnstile_agent_online 1)" wait_metric turnstile_agent_online hookA 1
doc=$(retained turnstile/v1/ST-H/hookA/status)
echo "hookA status: $doc"
check "  its retained status: online, source webhook, bridge b1" \
  grep -q '^{"state":"online","agent":"hookA","station":"ST-H","source":"webhook","bridge":"b1","last_request":"20[0-9-]*T[0-9:]*Z","online_s":20}$' <<<"$doc"
check "  its retained state names its readings" grep -q '"source":"webhook".*"sent":' <<<"$(retained turnstile/v1/ST-H/hookA/state)"

# --- 2. authentication ------------------------------------------------------------------------
wh gen hookA 51 5 >"$work/a2.csv"
check "no token: 401" test "$(post '' "$work/a2.csv")" = 401
check "  with WWW-Authenticate: Bearer" grep -qi '^WWW-Authenticate: Bearer' "$work/headers"
check "a wrong token of the same length: 401" test "$(post "${TOKA%?}x" "$work/a2.csv")" = 401
check "a token's prefix: 401" test "$(post "${TOKA:0:16}" "$work/a2.csv")" = 401
check "the token with a byte more: 401" test "$(post "${TOKA}x" "$work/a2.csv")" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -u "hookA:$TOKA" --data-binary @"$work/a2.csv" "$url" || true)
check "Basic auth: 401" test "$code" = 401
wh gen hookB 100 3 >"$work/b-as-a.csv"
check "hookA's token, hookB's readings: 422, nothing taken" test "$(post $TOKA "$work/b-as-a.csv")" = 422
check "  the reason names the agent" grep -q 'hookA' "$work/answer"

# --- 3. refused readings and hostile bodies ----------------------------------------------------
wh gen hookA 56 4 >"$work/a3.csv"
{ sed -n 1,2p "$work/a3.csv"; echo 'garbage,not,a,reading'; sed -n 3,4p "$work/a3.csv"
  wh gen hookB 200 1; } >"$work/mixed.csv"
check "2 valid, garbage, 2 valid, another agent's: 422" test "$(post $TOKA "$work/mixed.csv")" = 422
check "  accepted 4, refused 2, at indexes 2 and 5" \
  grep -q '"accepted":4,"refused":2,"errors":\[{"index":2,.*{"index":5,' "$work/answer"
cat "$work/a3.csv" >>"$work/valid.csv"
echo '{"readings": ["a", ' >"$work/bad.json"
check "bad JSON: 400" test "$(post $TOKA "$work/bad.json" application/json)" = 400
check "  naming the fault" grep -q 'not readings in JSON' "$work/answer"
echo '{"other": []}' >"$work/other.json"
check "JSON without readings: 400" test "$(post $TOKA "$work/other.json" application/json)" = 400
check "an unknown Content-Type: 415" test "$(post $TOKA "$work/a2.csv" application/xml)" = 415
head -c 70000 /dev/zero | tr '\0' 'x' >"$work/big"
check "a body over max_body_bytes (Content-Length): 413" test "$(post $TOKA "$work/big")" = 413
wh gen hookA 1000 101 >"$work/many.csv"
check "101 readings (max_readings 100): 413" test "$(post $TOKA "$work/many.csv")" = 413
check "a chunked 4 MiB body: closed" test "$(wh huge "$http" $TOKA 4194304)" = closed
: >"$work/empty"
check "an empty body: 400" test "$(post $TOKA "$work/empty")" = 400

# --- 4. slow clients ---------------------------------------------------------------------------
authorized() { curl -s "http://$http/metrics" | awk '/^turnstile_bridge_webhook_requests_total\{outcome="authorized"\}/ {print $2}'; }
before=$(authorized)
wh slow "$http" $TOKA 60 >"$work/slow1" & s1=$!
wh slow "$http" $TOKB 60 >"$work/slow2" & s2=$!
for _ in $(seq 100); do [ "$(authorized)" -ge $((before + 2)) ] && break; sleep 0.05; done
code=$(post $TOKA "$work/a2.csv")
check "both places held: a third POST gets 503 ($code)" test "$code" = 503
check "  saying too many requests, with Retry-After" bash -c "grep -q 'too many requests at once' '$work/answer' && grep -qi '^Retry-After: 1' '$work/headers'"
check "/metrics is served meanwhile" curl -sf --max-time 10 -o /dev/null "http://$http/metrics"
wait $s1 $s2
check "slowloris 1 closed (request_timeout_ms)" grep -q '^closed after' "$work/slow1"
check "slowloris 2 closed" grep -q '^closed after' "$work/slow2"
check "POSTs are served again: 200" test "$(post $TOKA "$work/a2.csv")" = 200
cat "$work/a2.csv" >>"$work/valid.csv"

# --- 5. a client that retries after a timeout ---------------------------------------------------
wh gen hookA 61 20 >"$work/r1.csv"
wh gen hookB 31 20 >"$work/r2.csv"
kafka_stop
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Authorization: Bearer $TOKA" \
  -H 'Content-Type: text/csv' --data-binary @"$work/r1.csv" "$url" || true)
check "Kafka stopped: a client gives up after 1 s ($code)" test "$code" = 000
check "Kafka stopped: 503 after request_timeout_ms" test "$(post $TOKB "$work/r2.csv")" = 503
check "  saying Kafka has not confirmed them" grep -q 'Kafka has not confirmed 20 of 20' "$work/answer"
kafka_restart
retry() { # TOKEN FILE: POSTs until 200 (at most 20 times, as a client would): prints the codes
  local i code codes=
  for ((i = 0; i < 20; i++)); do
    code=$(post "$1" "$2")
    codes="$codes $code"
    [ "$code" = 200 ] && break
    sleep 1
  done
  echo "$codes"
}
codes=$(retry $TOKA "$work/r1.csv")
check "Kafka back: the first client retries until 200 (${codes# })" test "${codes##* }" = 200
codes=$(retry $TOKB "$work/r2.csv")
check "Kafka back: the second client retries until 200 (${codes# })" test "${codes##* }" = 200
cat "$work/r1.csv" "$work/r2.csv" >>"$work/valid.csv"
copies() { # ID: how many records of the readings topic carry it
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%s\n' 2>/dev/null |
    grep -c ",$1," || true
}
check "the readings topic holds hookA:61 twice or more (the give-up, the retries)" test "$(copies hookA:61)" -ge 2
check "and hookB:31 twice or more (the 503, the retries)" test "$(copies hookB:31)" -ge 2

# --- 6. the lake ---------------------------------------------------------------------------------
awk -F, '{ e[$3] += $10; x[$3] += $11 } END { for (s in e) print s, e[s], x[s] }' "$work/valid.csv" |
  sort >"$work/expected"
for _ in $(seq 120); do
  lake_sums >"$work/sums"
  cmp -s "$work/sums" "$work/expected" && break
  sleep 0.5
done
paste "$work/expected" "$work/sums"
check "the lake's sums per SCP equal the valid readings POSTed, each once" cmp -s "$work/sums" "$work/expected"
check "the dead letters carry their reasons" bash -c "kcat -b '$KAFKA_BOOTSTRAP' -C -t turnstile.deadletter \
  -o beginning -e -q -f '%k %h\n' 2>/dev/null | grep -c 'reason=' | grep -qx 5"
curl -sf "http://$http/metrics" >"$work/metrics"
check "/metrics with the webhook's families parses (prometheus_client)" \
  /usr/bin/python3 "$src/tests/integration/prom.py" scrape "$http" "$work/parsed"
check "  webhook_readings_total among them" grep -q '^# family turnstile_bridge_webhook_readings counter' "$work/parsed"
n_valid=$(wc -l <"$work/valid.csv")
got=$(awk '/^turnstile_bridge_webhook_readings_total\{.*verdict="valid"\}/ {s += $2} END {print s + 0}' "$work/metrics")
check "/metrics: valid readings confirmed >= the $n_valid POSTed ($got: retries count again)" test "$got" -ge "$n_valid"
check "/metrics: unauthorized requests counted" grep -q '^turnstile_bridge_webhook_requests_total{outcome="unauthorized"} 5$' "$work/metrics"
check "/metrics: when hookA last POSTed" grep -q '^turnstile_bridge_webhook_last_request_seconds{station="ST-H",agent="hookA"} 1[0-9]*\.[0-9]*$' "$work/metrics"
check "/metrics: a timeout counted" grep -q '^turnstile_bridge_webhook_requests_total{outcome="timeout"} [1-9]' "$work/metrics"
# --- 7b. the figures of a source, its going offline; a source that never POSTed ---------------
validA=$(awk '/^turnstile_bridge_webhook_readings_total\{station="ST-H",agent="hookA",verdict="valid"\}/ {print $2}' "$work/metrics")
check "turnstile_agent_readings_sent_total of hookA = its valid readings confirmed ($validA)" \
  wait_metric turnstile_agent_readings_sent_total hookA "$validA"
check "hookB offline past online_s 20 without a request (turnstile_agent_online 0)" \
  wait_metric turnstile_agent_online hookB 0
check "  its retained status says offline, reason idle" \
  grep -q '^{"state":"offline","reason":"idle","agent":"hookB",' <<<"$(retained turnstile/v1/ST-H/hookB/status)"
check "hookC (never POSTed): no retained status" test -z "$(retained turnstile/v1/ST-H/hookC/status)"
check "  and not in turnstile_agent_online" test -z "$(metric turnstile_agent_online hookC)"
check "/metrics with the sources among the agents parses (prometheus_client)" \
  /usr/bin/python3 "$src/tests/integration/prom.py" scrape "$http" "$work/parsed"

# a request waiting for Kafka when the bridge stops: answered 503, the bridge exits cleanly
kafka_stop
wh gen hookA 81 5 >"$work/last.csv"
before=$(authorized)
post $TOKA "$work/last.csv" >"$work/last.code" &
lastpid=$!
for _ in $(seq 100); do [ "$(authorized)" -gt "$before" ] && break; sleep 0.1; done
sleep 0.5   # its 5 readings handed to the producer: it waits for Kafka
bridge_kill b1 TERM
wait $lastpid || true
check "a request waiting for Kafka at the stop: 503 ($(cat "$work/last.code"))" test "$(cat "$work/last.code")" = 503
check "  saying the bridge stops" grep -q 'the bridge stops' "$work/answer"
check "the bridge stops cleanly, no sanitizer report" bash -c "! grep -q 'ERROR: AddressSanitizer\|runtime error' '$work/b1.err'"
finish
