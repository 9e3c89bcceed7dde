#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent against a broker that demands TLS, a client certificate and a
# password: the right settings publish; a wrong password or an untrusted broker
# certificate give one clear log line per attempt, retries, and no crash.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-tls.XXXXXX)
agent_pid= sub_pid=
trap 'test_cleanup $agent_pid $sub_pid' EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

broker_start --tls --require-cert --user agent1:s3cret
sim_start --generate --turnstiles 2 --speed 60

run_agent() { # NAME CA PASSWORD CMD...: runs the agent with these settings until CMD succeeds (at most 30 s; at least 3 s)
  {
    printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n'
    printf '[store]\npath = %s/%s.db\n' "$work" "$1"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nca_file = %s\n' "$BROKER_TLS_PORT" "$2"
    printf 'cert_file = %s\nkey_file = %s\n' "$BROKER_CLIENT_CERT" "$BROKER_CLIENT_KEY"
    printf 'username = agent1\npassword = %s\nreconnect_min_ms = 200\nreconnect_max_ms = 400\nack = puback\n' "$3"
    cat "$work/devices.conf"
  } >"$work/$1.conf"
  "$TS_BIN_DIR/turnstile-agent" -c "$work/$1.conf" >/dev/null 2>"$work/$1.err" &
  agent_pid=$!
  local name=$1; shift 3
  sleep 3
  wait_for 27 "$@" || true   # the checks below tell
  set -- "$name"
  check "$1: still running" kill -0 "$agent_pid"
  kill -TERM "$agent_pid"; wait "$agent_pid"; local rc=$?; agent_pid=
  check "$1: clean exit" test "$rc" -eq 0
}

mosquitto_sub -h 127.0.0.1 -p "$BROKER_TLS_PORT" --cafile "$BROKER_CA" --cert "$BROKER_CLIENT_CERT" \
  --key "$BROKER_CLIENT_KEY" -u agent1 -P s3cret -q 1 -t 'turnstile/v1/S1/a1/readings' \
  >"$work/received.csv" 2>"$work/sub.err" &
sub_pid=$!
sleep 0.5

lines_at_least() { test "$(wc -l <"$1")" -ge "$2"; }
count_at_least() { test "$(grep -c "$2" "$1")" -ge "$3"; }
run_agent good "$BROKER_CA" s3cret lines_at_least "$work/received.csv" 4
check "good: readings arrived over TLS" test "$(wc -l <"$work/received.csv")" -ge 4
check "good: connected" grep -q "connected to 127.0.0.1" "$work/good.err"

run_agent badpass "$BROKER_CA" wrong count_at_least "$work/badpass.err" "not authorised" 2
check "wrong password: a clear error" grep -q "not authorised" "$work/badpass.err"
check "wrong password: retried" test "$(grep -c "not authorised" "$work/badpass.err")" -ge 2

run_agent untrusted "$BROKER_OTHER_CA" s3cret count_at_least "$work/untrusted.err" "certificate verify failed" 2
check "untrusted certificate: a clear error" grep -q "certificate verify failed" "$work/untrusted.err"
check "untrusted certificate: retried" test "$(grep -c "certificate verify failed" "$work/untrusted.err")" -ge 2
check "no sanitizer report" bash -c "! grep -q Sanitizer '$work'/*.err"
finish
