#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole path with real parts: turnstile-sim (3 Modbus slaves, 12
# turnstiles), 3 turnstile-agents with end-to-end acks, mosquitto, Kafka
# 3.9.1 and turnstile-bridge (relay + aggregate). While readings flow:
#   - readings are published a second time on MQTT (duplicates),
#   - Kafka is stopped and restarted,
#   - one agent is cut off from the broker for longer than a window and
#     comes back with its backlog (late rows),
#   - malformed payloads are published (dead-letter topic),
#   - the bridge is killed with SIGKILL 10 times at random moments.
# Then, per turnstile, the sums of ENTRIES and EXITS over the lake's files
# must equal what the simulator's registers moved by, exactly; every
# visible file must be complete; the agents' backlogs must drain (acks).
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-e2e.XXXXXX)
declare -A agent_pid=()
proxy_pid=
cleanup() {
  [ -z "$proxy_pid" ] || kill -- -"$proxy_pid" 2>/dev/null || true
  bridge_test_cleanup
}
trap cleanup EXIT
. "$src/tests/integration/bridge.sh"

bridge_test_servers 4 --conf 'max_queued_messages 1000000'
sim_start --generate --slaves 1,2,3 --turnstiles 4 --speed 600 --fault pause
split_devices

# the registers before anything is read
registers_first 1 2 3
check "12 turnstiles on 3 slaves" test "$(wc -l <"$work/registers.first")" -eq 12

# agent a3 reaches the broker through a proxy that the test can cut
proxy_port=$(free_port)
start_proxy() {
  setsid socat TCP-LISTEN:"$proxy_port",bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:"$BROKER_PORT" \
    2>/dev/null &
  proxy_pid=$!
}
start_proxy
agent_conf "$work/a1.conf" a1 "$work/slave-1.conf"
agent_conf "$work/a2.conf" a2 "$work/slave-2.conf"
AGENT_BROKER_PORT=$proxy_port agent_conf "$work/a3.conf" a3 "$work/slave-3.conf"
start_agent() {
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/$1.conf" --quiet >>"$work/$1.out" 2>>"$work/$1.err" &
  agent_pid[$1]=$!
}

bridge_conf "$work/bridge.conf" b1
bridge_start b1 "$work/bridge.conf"
for a in a1 a2 a3; do start_agent $a; done
sleep 2
sim resume
sleep 3

# duplicates: what passes on MQTT for 2 s is published again
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'turnstile/v1/+/+/readings' -v -W 2 \
  >"$work/dups.txt" 2>/dev/null || true
while read -r topic payload; do
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$topic" -m "$payload"
done <"$work/dups.txt"
check "readings were published again as duplicates" test "$(wc -l <"$work/dups.txt")" -gt 20

# malformed payloads go to the dead-letter topic
printf 'garbage' >"$work/bad1"
printf 'SIM,R000,00-00-00,SIMULATED,S,SIM,05-27-23,00:00:00,REGULAR,1' >"$work/bad2"
head -1 "$work/dups.txt" | cut -d' ' -f2- | tr -d '\n' >"$work/bad3"   # a reading, wrong agent
printf 'A\0B,,,\n\xff\xfe' >"$work/bad4"
for f in bad1 bad2 bad4; do mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t turnstile/v1/ST-a1/a1/readings -f "$work/$f"; done
mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t turnstile/v1/ST-zz/zz/readings -f "$work/bad3"

# Kafka goes away for a while and comes back
sleep 1
kafka_stop
sleep 4
kafka_restart
sleep 3

# agent a3 loses the broker for longer than a window (2 s) + lateness + idle
kill -- -"$proxy_pid" 2>/dev/null || true
wait "$proxy_pid" 2>/dev/null || true
proxy_pid=
sleep 9
start_proxy

# the bridge is killed at random moments
for i in $(seq 10); do
  sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))"
  bridge_kill b1
  bridge_start b1 "$work/bridge.conf"
done
sleep 2

# stop the world: freeze the registers; the agents keep polling (zero deltas)
sim pause
registers_last
wait_lake_sums 120
check "per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums" "$work/expected"
check "the counts are not trivial" test "$(awk '{s += $2 + $3} END {print s}' "$work/expected")" -gt 1000

# no partial file is ever visible: every visible file is a complete gzip
bad=0
for f in $(find "$work/lake" -name '*.csv.gz' ! -name '.*'); do gzip -t "$f" 2>/dev/null || bad=$((bad + 1)); done
check "every visible lake file is complete" test "$bad" -eq 0
check "late rows were written for the agent that came back" \
  bash -c "ls '$work'/lake/turnstile/event_date=*/late-*.csv.gz >/dev/null 2>&1"
check "data files have the reference header" \
  bash -c "zcat \$(ls '$work'/lake/turnstile/event_date=*/part-*.csv.gz | head -1) | head -1 | grep -qx ',CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS'"

dead=$(kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q -f '%h\n' 2>/dev/null | grep -c 'reason=' || true)
check "4 malformed payloads in the dead-letter topic (got $dead)" test "$dead" -eq 4

# the acknowledgements cover everything each agent has sent: the highest
# sequence number seen on MQTT now is acknowledged within a few seconds (the
# agents keep polling, so their stores never stay empty for long)
for a in a1 a2 a3; do
  sent=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-$a/$a/readings" -W 2 2>/dev/null |
         awk -F, '{ split($12, id, ":"); if (id[2] + 0 > m) m = id[2] + 0 } END { print m + 0 }' || true)
  acked=0
  for _ in $(seq 30); do
    acked=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-$a/$a/ack" -C 1 -W 2 2>/dev/null || echo 0)
    [ "$acked" -ge "$sent" ] && break
    sleep 0.5
  done
  check "$a: acknowledged up to $acked, at least what it had sent ($sent)" test "$sent" -gt 0 -a "$acked" -ge "$sent"
done

# dashboards: each station's latest window, retained
win=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'turnstile/v1/ST-a2/window' -C 1 -W 3 2>/dev/null || true)
check "the station's latest window is retained on turnstile/v1/ST-a2/window" \
  grep -q '^{"station_id":"ST-a2","window_start_ms":[0-9]*,.*"turnstiles":\[{"ca":"SIM",' <<<"$win"

bridge_kill b1 TERM
check "no sanitizer report from the bridge" bash -c "! grep -q 'Sanitizer' '$work/b1.err'"
check "no sanitizer report from the agents" bash -c "! cat '$work'/a?.err | grep -q 'Sanitizer'"
if [ "$fails" -gt 0 ]; then tail -30 "$work/b1.err"; fi
finish
