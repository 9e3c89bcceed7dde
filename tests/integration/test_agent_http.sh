#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent reading gate controllers over HTTP/JSON (kind = http,
# docs/http.md) from http_gate.py servers on free loopback ports, its
# readings through its store and a real mosquitto to a subscriber: counting
# end to end; the server gone and back (nobody lost, nobody counted twice);
# hostile responses (an endless body, deep JSON, garbage, a slow server,
# negative, fractional, string and huge values, status 500, trailing bytes)
# each refused as a device fault with its reason, never counted, while the
# other device goes on being read; the bearer token from the environment.
set -euo pipefail
bindir=${TS_BIN_DIR:?}
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-http.XXXXXX)
a_pid= b_pid= agent_pid= sub_pid=
cleanup() {
  for p in $agent_pid $a_pid $b_pid $sub_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

export GATE_TOKEN=s3cret-token-for-test
# gate DIR [PORT]: starts http_gate.py serving DIR; prints its pid; DIR/port holds the port
gate() {
  rm -f "$1/port"
  python3 "$src/tests/integration/http_gate.py" "$1" "${2:-0}" >/dev/null 2>>"$1/err" &
  local pid=$!
  for _ in $(seq 200); do [ -f "$1/port" ] && break; sleep 0.05; done
  [ -f "$1/port" ] || { echo "http_gate.py did not start: $(cat "$1/err")" >&2; return 1; }
  echo "$pid"
}
# counters DIR IN0 OUT0 [IN1 OUT1]: what the gate serves from now on
counters() {
  local d=$1 doc
  if [ $# -gt 3 ]; then
    doc="{\"gates\":[{\"in\":$2,\"out\":$3},{\"in\":$4,\"out\":$5}],\"model\":\"T-1\"}"
  else
    doc="{\"gates\":[{\"in\":$2,\"out\":$3}]}"
  fi
  echo "$doc" >"$d/counters.json.tmp" && mv "$d/counters.json.tmp" "$d/counters.json"
}
requests() { [ -f "$1/requests" ] || { echo 0; return; }; grep -c "^$2\$" "$1/requests" || true; }
# wait_requests DIR MODE N: until the gate has answered N more requests in MODE (at most 60 s)
wait_requests() {
  local want=$(( $(requests "$1" "$2") + $3 ))
  for _ in $(seq 600); do [ "$(requests "$1" "$2")" -ge "$want" ] && return 0; sleep 0.1; done
  echo "gate $1: fewer than $want requests in mode $2" >&2; return 1
}
received=$work/received.csv csv=$work/readings.csv
# the readings received, each ID once (QoS 1 may deliver one twice after a re-send)
readings() { awk -F, 'NF == 18 && !seen[$12]++' "$received" >"$csv"; }
lines_of() { readings; awk -F, -v scp="$1" '$3 == scp' "$csv" | wc -l; }
sum() { readings; awk -F, -v scp="$1" -v col="$2" '$3 == scp { s += $col } END { print s + 0 }' "$csv"; }

broker_start
mkdir -p "$work/a" "$work/b"
echo normal >"$work/a/mode"; echo normal >"$work/b/mode"
counters "$work/a" 1000 500 2000 900
counters "$work/b" 10 10
a_pid=$(gate "$work/a"); a_port=$(cat "$work/a/port")
b_pid=$(gate "$work/b"); b_port=$(cat "$work/b/port")

cat >"$work/agent.conf" <<CONF
[agent]
id = http-agent
station_id = S1
poll_interval_ms = 200
max_rate_per_min = 6000
clock = trust
ca = A001
unit = R001
station = HTTP ST
linename = 1
division = IRT

[store]
path = $work/agent.db
synchronous = normal

[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
ack = puback

[device gate-a]
kind = http
url = http://127.0.0.1:$a_port/counters
token_env = GATE_TOKEN
timeout_ms = 1000
connect_timeout_ms = 500
max_response_bytes = 65536
max_json_depth = 8
backoff_min_ms = 200
backoff_max_ms = 400

[device gate-b]
kind = http
url = http://127.0.0.1:$b_port/counters
token_env = GATE_TOKEN

[turnstile a0]
device = gate-a
scp = 00-00-00
entries_path = /gates/0/in
exits_path = /gates/0/out

[turnstile a1]
device = gate-a
scp = 00-00-01
entries_path = /gates/1/in
exits_path = /gates/1/out
width = 32

[turnstile b0]
device = gate-b
scp = 00-00-02
entries_path = /gates/0/in
exits_path = /gates/0/out
CONF
"$bindir/turnstile-agent" --check-config -c "$work/agent.conf"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i test-sub -t turnstile/v1/S1/http-agent/readings \
  >"$received" 2>"$work/sub.err" &
sub_pid=$!
"$bindir/turnstile-agent" -c "$work/agent.conf" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!

wait_requests "$work/a" normal 3
counters "$work/a" 1008 504 2000 900                 # +8 in, +4 out
wait_requests "$work/a" normal 3

# the server goes away; people pass meanwhile; it comes back on the same port
# (the gate is the child of gate's subshell, so wait cannot reap it: poll until it is gone,
# or one of its request threads may still serve the new counters)
kill "$a_pid"; for _ in $(seq 200); do kill -0 "$a_pid" 2>/dev/null || break; sleep 0.05; done; a_pid=
counters "$work/a" 1014 506 2003 901                 # +6 +2, +3 +1
for _ in $(seq 600); do grep -q 'device gate-a.*connection failed' "$work/agent.err" && break; sleep 0.1; done
# down for a second after the first failed poll, so that the next reading comes
# more than recovered_after_polls (3) x poll_interval_ms (200) after the last one
sleep 1
a_pid=$(gate "$work/a" "$a_port")
wait_requests "$work/a" normal 3

# hostile answers, each for two requests at least; the counters do not move meanwhile
b_before_slow=0
for mode in huge deep garbage slow negative float string bignum status500 trailing; do
  [ "$mode" != slow ] || b_before_slow=$(lines_of 00-00-02)
  echo "$mode" >"$work/a/mode"
  wait_requests "$work/a" "$mode" 2
  [ "$mode" != slow ] || b_after_slow=$(lines_of 00-00-02)
  echo normal >"$work/a/mode"
  wait_requests "$work/a" normal 2
done
counters "$work/a" 1019 511 2003 901                 # +5 +5
counters "$work/b" 17 13                             # +7 +3
wait_requests "$work/a" normal 3
wait_requests "$work/b" normal 3
# until the last people are through the store and the broker (at most 60 s)
for _ in $(seq 600); do
  [ "$(sum 00-00-00 10)" -ge 19 ] && [ "$(sum 00-00-02 10)" -ge 7 ] && break
  sleep 0.1
done
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=
sleep 0.5
readings
log() { grep -q -- "$1" "$work/agent.err"; }
check "readings were produced" test "$(wc -l <"$csv")" -gt 20
check "every sequence number 1..N received, once" \
  test "$(awk -F, '{ split($12, id, ":"); print id[2] }' "$csv" | sort -n | awk '$1 != NR { bad++ } END { print bad + 0 }')" -eq 0
check "a0 entries add up to 19 (got $(sum 00-00-00 10))" test "$(sum 00-00-00 10)" -eq 19
check "a0 exits add up to 11 (got $(sum 00-00-00 11))" test "$(sum 00-00-00 11)" -eq 11
check "a1 entries add up to 3 (got $(sum 00-00-01 10))" test "$(sum 00-00-01 10)" -eq 3
check "a1 exits add up to 1 (got $(sum 00-00-01 11))" test "$(sum 00-00-01 11)" -eq 1
check "b0 entries add up to 7 (got $(sum 00-00-02 10))" test "$(sum 00-00-02 10)" -eq 7
check "b0 exits add up to 3 (got $(sum 00-00-02 11))" test "$(sum 00-00-02 11)" -eq 3
check "the reading after the outage is RECOVR AUD" \
  test "$(awk -F, '$3 == "00-00-00" && $9 == "RECOVR AUD" && $10 == 6 && $11 == 2' "$csv" | wc -l)" -eq 1
check "gate-b was read while gate-a was slow ($b_before_slow, then $b_after_slow readings)" \
  test "$b_after_slow" -ge $((b_before_slow + 3))
check "no hostile value was counted" test "$(awk -F, '$10 > 10 || $11 > 10' "$csv" | wc -l)" -eq 0
check "the outage: connection failed" log 'device gate-a (http http://127.0.0.1:.*connection failed: Failed to connect'
check "huge: refused by size" log 'response larger than max_response_bytes (65536)'
check "deep: refused by depth" log 'JSON nested deeper than max_json_depth (8)'
check "garbage: not JSON" log 'not JSON (a NUL byte at byte 0 of 13)'
check "slow: a timeout" log 'timeout.*no whole response within timeout_ms (1000)'
check "negative: refused" log 'turnstile a0: malformed input: entries at /gates/0/in is negative (-5)'
check "float: refused" log 'entries at /gates/0/in is a double, not an integer'
check "string: refused" log 'entries at /gates/0/in is a string, not an integer'
check "bignum: refused" log 'entries at /gates/0/in is at least 18446744073709551615, more than a 64-bit counter holds'
check "status 500: refused" log 'HTTP status 500'
check "trailing bytes: refused" log 'not JSON (unexpected character at byte 70 of 72)'
check "the token went with every request (no 401)" bash -c "! grep -q 'HTTP status 401' '$work/agent.err'"
check "the token is not in the log" bash -c "! grep -q '$GATE_TOKEN' '$work/agent.err'"
check "the device summary counts the faults" grep -Eq 'gate-a.*faults' "$work/agent.err"

if [ "$fails" -gt 0 ]; then
  echo "--- readings"; cat "$csv"; echo "--- agent log"; cat "$work/agent.err"
fi
finish
