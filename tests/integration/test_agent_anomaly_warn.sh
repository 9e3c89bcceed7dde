#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A wrong word order in the agent's config (CDAB for the simulator's ABCD):
# every person moves the register by 65,536, every reading of that turnstile
# is a withheld glitch. With anomaly_warn_s = 2 the agent warns in its log
# (once) and in the retained state over a real mosquitto, while the turnstile
# configured right counts and does not warn (issue 12, docs/mqtt.md).
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-anomaly.XXXXXX)
agent_pid=
trap 'test_cleanup $agent_pid' EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

broker_start
# the morning rush, 600 simulated seconds a second: people at every poll
sim_start --generate --turnstiles 2 --speed 600 --start '2023-05-30 08:00:00'
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n'
  printf 'state_interval_ms = 500\nanomaly_warn_s = 2\n'
  printf '[store]\npath = %s/agent.db\nsynchronous = normal\n' "$work"
  printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n' "$BROKER_PORT"
  # turnstile 00-00-00 read in the wrong word order
  awk '/^order = ABCD/ && !done { print "order = CDAB"; done = 1; next } { print }' "$work/devices.conf"
} >"$work/agent.conf"
check "the config has one turnstile in CDAB" test "$(grep -c '^order = CDAB' "$work/agent.conf")" -eq 1

"${TS_BIN_DIR:?}/turnstile-agent" -c "$work/agent.conf" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!

topic=turnstile/v1/S1/a1
state() { mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/state" -C 1 -W 3 2>/dev/null || true; }
# the turnstiles' objects of the state, one a line
turnstile() { sed 's/},{/}\n{/g' | grep "\"scp\":\"$1\""; }
json=
for _ in $(seq 60); do
  json=$(state)
  grep -q '"warnings":1,' <<<"$json" && break
  sleep 0.5
done
echo "$json" >"$work/state.json"
t0=$(turnstile 00-00-00 <<<"$json" || true)
t1=$(turnstile 00-00-01 <<<"$json" || true)
echo "00-00-00: $t0"
echo "00-00-01: $t1"
check "the retained state counts one turnstile warning" grep -q '"warnings":1,' <<<"$json"
check "00-00-00 warns, naming the word order and the probe" \
  grep -q '"anomaly":"glitch","warning":"every reading of \(entries\|exits\) that moved for [0-9]* s was an anomaly (glitch) and counted nobody: a wrong word order or width is the usual cause (turnstile-agent --probe)"' <<<"$t0"
check "00-00-00 has run at least anomaly_warn_s" \
  test "$(sed 's/.*"anomaly_s":\([0-9]*\).*/\1/' <<<"$t0")" -ge 2
check "00-00-00 counted nobody" grep -q '"entries_counted":0,"exits_counted":0,' <<<"$t0"
check "00-00-01 (ABCD) does not warn" grep -q '"anomaly_s":0,"anomaly":"","warning":""}' <<<"$t1"
counted() { sed -n 's/.*"entries_counted":\([0-9]*\).*/\1/p'; }
check "00-00-01 (ABCD) counts" test "$(counted <<<"$t1")" -gt 0
sleep 2 # more anomalies: still one warning in the log
kill -TERM "$agent_pid"; wait "$agent_pid"; status=$?; agent_pid=
check "SIGTERM: clean exit 0" test "$status" -eq 0
check "the log warns once, naming the turnstile" \
  test "$(grep -c 'warning: turnstile SIM/R000/00-00-00 .*was an anomaly (glitch) and counted nobody: the register map is likely wrong' "$work/agent.err")" -eq 1
check "the log names no other turnstile" bash -c "! grep -q 'warning: turnstile SIM/R000/00-00-01' '$work/agent.err'"
check "the agent logged no error from the sanitizers" bash -c "! grep -q 'Sanitizer' '$work/agent.err'"
if [ "$fails" -gt 0 ]; then tail -30 "$work/agent.err"; fi
finish
