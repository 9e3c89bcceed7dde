#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Adding partitions to turnstile.readings (issue 11), with real parts:
# turnstile-sim (6 Modbus slaves, 12 turnstiles), 6 turnstile-agents with
# end-to-end acks, mosquitto, Kafka, and turnstile-bridge as a relay process
# and an aggregator process. The agents are spread over 4 partitions; a3
# and a4 belong to partitions 7 and 4 once there are 8.
#   1. The topic grows from 4 to 8 partitions while readings flow, an agent
#      is killed (SIGKILL) and re-sends from its ack, the bridges restart and
#      see 8 partitions: nothing moves (no record in partitions 4..7), the
#      relay, the aggregator and its status say so, every ack keeps up.
#   2. --repartition refuses while the aggregator runs, and while a
#      partition holds records its checkpoint has not taken.
#   3. The procedure (docs/bridge.md, "Adding partitions"; repartition.sh):
#      stop the relay, let an aggregator drain, stop it, --repartition, start
#      both. Readings
#      of a3 and a4 now go to partitions 7 and 4; what they sent before,
#      published again, and a4's re-sends after a SIGKILL are duplicates
#      there; every ack keeps up, and per turnstile the lake's sums equal what
#      the simulator's registers moved by, exactly.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-repartition.XXXXXX)
declare -A agent_pid=()
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/repartition.sh"

bridge_test_servers 4 --conf 'max_queued_messages 1000000'
sim_start --generate --slaves 1,2,3,4,5,6 --turnstiles 2 --speed 600 --fault pause
split_devices
registers_first 1 2 3 4 5 6

for a in 1 2 3 4 5 6; do agent_conf "$work/a$a.conf" "a$a" "$work/slave-$a.conf"; done
start_agent() {
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/$1.conf" --quiet >>"$work/$1.out" 2>>"$work/$1.err" &
  agent_pid[$1]=$!
}
# the relay and the aggregator apart, so that one can stop without the other
bridge_conf "$work/relay.conf" r1
bridge_conf "$work/agg.conf" g1
relay_up() { bridge_start relay "$work/relay.conf" --role relay; }
agg_up() { bridge_start agg "$work/agg.conf" --role aggregate; }
agg_up
relay_up
for a in 1 2 3 4 5 6; do start_agent "a$a"; done
sleep 2
sim resume
sleep 5

# what passes on MQTT now is published again after the move (duplicates)
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'turnstile/v1/+/+/readings' -v -W 3 \
  >"$work/dups.txt" 2>/dev/null || true
check "readings of the agents that will move were captured" \
  test "$(grep -c '^turnstile/v1/ST-a[34]/' "$work/dups.txt")" -gt 10

# each agent's ack reaches the highest number it has published (within 20 s)
acks_keep_up() { # LABEL
  local a sent acked
  for a in 1 2 3 4 5 6; do
    sent=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-a$a/a$a/readings" -W 2 2>/dev/null |
           awk -F, '{ split($12, id, ":"); if (id[2] + 0 > m) m = id[2] + 0 } END { print m + 0 }' || true)
    acked=0
    for _ in $(seq 40); do
      acked=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-a$a/a$a/ack" -C 1 -W 2 2>/dev/null || echo 0)
      [ "$acked" -ge "$sent" ] && break
      sleep 0.5
    done
    check "$1: a$a acknowledged up to $acked, at least what it had sent ($sent)" \
      test "$sent" -gt 0 -a "$acked" -ge "$sent"
  done
}
records_in() { # FIRST LAST: records in those partitions of turnstile.readings
  local p n=0 c
  for ((p = $1; p <= $2; p++)); do
    c=$(timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -p "$p" -o beginning -e -q 2>/dev/null | wc -l)
    n=$((n + c))
  done
  echo "$n"
}

# --- 1. partitions added while the agents run --------------------------------
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
  --alter --topic turnstile.readings --partitions 8 >>"$work/kafka-tool.log" 2>&1
kill -9 "${agent_pid[a3]}"   # it re-sends from its ack when it comes back
wait "${agent_pid[a3]}" 2>/dev/null || true
start_agent a3
# the bridges learn the new count when they (re)start: a crash does it
bridge_kill relay
bridge_kill agg
agg_up
relay_up
sleep 8
check "the relay says the topic has more partitions than the layout" \
  grep -q 'relay: turnstile.readings has 8 partitions, the layout 4' "$work/relay.err"
check "the aggregator says so" \
  grep -q 'aggregate: turnstile.readings has 8 partitions but the lake.s layout 4' "$work/agg.err"
check "its status line says so (DEGRADED)" \
  grep -q 'DEGRADED: aggregate: the readings topic has 8 partitions, the lake.s layout 4' "$work/agg.err"
status=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'turnstile/bridge/g1/status' -C 1 -W 3 2>/dev/null || true)
check "the retained status names the mismatch" grep -q '8 partitions' <<<"$status"
check "no reading went to the new partitions" test "$(records_in 4 7)" -eq 0
acks_keep_up "8 partitions, layout 4"

# --- 2. refusals --------------------------------------------------------------
rc=0
repartition_run "$work/agg.conf" "$work/refused-running.log" || rc=$?
check "--repartition refuses while the aggregator runs (exit $rc)" test "$rc" -eq 75
check "... and says the consumer group has a member" \
  grep -q 'consumer group turnstile-bridge has 1 member(s) (g1 on' "$work/refused-running.log"
bridge_kill agg TERM   # the relay goes on: records arrive after the last checkpoint
rc=0
repartition_run "$work/agg.conf" "$work/refused-lag.log" || rc=$?
check "--repartition refuses while a partition is not drained (exit $rc)" test "$rc" -eq 75
check "... and names the partitions" \
  grep -q 'partition(s) of turnstile.readings hold records the lake has not taken' "$work/refused-lag.log"
check "the layout is still 4" grep -q '^partitions 4$' "$work/lake/turnstile/_manifest/turnstile.readings.layout"

# --- 3. the procedure (repartition.sh: what the e2e cluster fault runs) -------
# the aggregator is stopped already; STOP stops the relay (readings wait in
# mosquitto, the relay's session, and in the agents); an aggregator alone
# drains every partition; --repartition; START starts both again
mark=$(wc -l <"$work/agg.err")
rc=0
repartition_procedure "$work/agg.conf" "bridge_kill relay TERM" "agg_up; relay_up" \
  "$work/procedure.log" || rc=$?
grep 'repartition' "$work/procedure.log" || true
check "the procedure succeeds (exit $rc)" test "$rc" -eq 0
check "... --repartition says the agents are spread over 8 partitions" \
  grep -q 'the agents are now spread over 8 partitions (were 4)' "$work/procedure.log"
check "... it moved 2 agents" grep -q ': 2 agents moved' "$work/procedure.log"
check "the layout is 8" grep -q '^partitions 8$' "$work/lake/turnstile/_manifest/turnstile.readings.layout"
rc=0
repartition_run "$work/agg.conf" "$work/again.log" || rc=$?
check "a second run has nothing to do, bridges running or not (exit $rc)" \
  bash -c "test $rc -eq 0 && grep -q 'nothing to do' '$work/again.log'"
sleep 4
# what a3 and a4 sent before the move, published again: the new partitions know it
grep '^turnstile/v1/ST-a[34]/' "$work/dups.txt" | while read -r topic payload; do
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$topic" -m "$payload"
done
kill -9 "${agent_pid[a4]}"   # a moved agent re-sends from its ack, into partition 4
wait "${agent_pid[a4]}" 2>/dev/null || true
start_agent a4
sleep 6
keys() { # PARTITION: the keys of its first 20 records (kcat -e never ends on a partition
         # that keeps growing: a count bounds it)
  timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -p "$1" -o beginning -c 20 -q \
    -f '%k\n' 2>/dev/null | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ' || true
}
check "readings of a3 are in partition 7 now ($(keys 7))" test "$(keys 7)" = "a3x20 "
check "readings of a4 are in partition 4 now ($(keys 4))" test "$(keys 4)" = "a4x20 "
check "nothing else went to partitions 5 and 6" test "$(records_in 5 6)" -eq 0
check "no mismatch reported since the aggregator restarted" \
  bash -c "! tail -n +$((mark + 1)) '$work/agg.err' | grep -q 'lake.s layout'"
acks_keep_up "after the repartition"

sim pause
registers_last
wait_lake_sums 90
check "per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums" "$work/expected"
check "the counts are not trivial" test "$(awk '{s += $2 + $3} END {print s}' "$work/expected")" -gt 500
dups=$(grep 'aggregate: ' "$work/agg.err" | tail -1 | sed -n 's/.* \([0-9]*\) duplicates.*/\1/p')
echo "duplicates dropped by the aggregator since its last start: ${dups:-?}"

bridge_kill relay TERM
bridge_kill agg TERM
check "no sanitizer report from the bridges or the tool" \
  bash -c "! cat '$work'/relay.err '$work'/agg.err '$work'/*.log | grep -q 'Sanitizer'"
if [ "$fails" -gt 0 ]; then tail -30 "$work/agg.err"; tail -10 "$work/relay.err"; fi
finish
