#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two turnstile-bridges share the work: an MQTT shared subscription splits the
# readings between their relays, the Kafka consumer group splits the 4
# partitions between their aggregators, and each publishes the acks of the
# agents in its partitions. Then one bridge dies for good (SIGKILL): the other
# takes over its partitions (from their lake checkpoints) and the whole MQTT
# stream, the agents re-send what died in flight, and per turnstile the lake's
# sums still equal what the simulator's registers moved by.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-group.XXXXXX)
declare -A agent_pid=()
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

bridge_test_servers 4 --conf 'max_queued_messages 1000000'
sim_start --generate --slaves 1,2,3,4 --turnstiles 2 --speed 600 --fault pause
split_devices

registers_first 1 2 3 4

for a in 1 2 3 4; do agent_conf "$work/a$a.conf" "a$a" "$work/slave-$a.conf"; done
for b in b1 b2; do
  bridge_conf "$work/$b.conf" "$b"
  sed -i 's/^ack_interval_ms = 100$/ack_interval_ms = 100\nshare_group = bridges/' "$work/$b.conf"
  bridge_start "$b" "$work/$b.conf"
done
for a in 1 2 3 4; do
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/a$a.conf" --quiet >>"$work/a$a.out" 2>>"$work/a$a.err" &
  agent_pid[a$a]=$!
done
sleep 3
sim resume
sleep 8

last_status() { grep 'relay: ' "$work/$1.err" | tail -1; }
parts() { last_status "$1" | sed -n 's/.*aggregate: \([0-9]*\) partitions.*/\1/p'; }
received() { last_status "$1" | sed -n 's/.*relay: [a-z]*, \([0-9]*\) received.*/\1/p'; }
echo "b1: $(last_status b1)"
echo "b2: $(last_status b2)"
check "the group split the 4 partitions 2 + 2" test "$(parts b1) $(parts b2)" = "2 2"
check "both relays took readings from the shared subscription" \
  test "$(received b1)" -gt 20 -a "$(received b2)" -gt 20
owners=$(cat "$work"/lake/turnstile/_manifest/*/*.ckpt 2>/dev/null | awk '$1 == "owner" {print $2}' | sort -u | tr '\n' ' ')
check "both bridges wrote checkpoints (owners: $owners)" test "$owners" = "b1 b2 "

# b2 dies for good
bridge_kill b2
sleep 12   # the group's session timeout (6 s) and a rebalance
echo "b1: $(last_status b1)"
check "b1 took over all 4 partitions" test "$(parts b1)" = 4
before=$(received b1)
sleep 3
check "b1's relay now takes the whole stream" test "$(received b1)" -gt "$before"

sim pause
registers_last
wait_lake_sums 90
check "per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums" "$work/expected"
check "the counts are not trivial" test "$(awk '{s += $2 + $3} END {print s}' "$work/expected")" -gt 500
resent=$(cat "$work"/a?.err | grep -c 're-sending' || true)
echo "agents' re-send rounds: $resent"

bridge_kill b1 TERM
check "no sanitizer report from the bridges" bash -c "! cat '$work'/b?.err | grep -q 'Sanitizer'"
if [ "$fails" -gt 0 ]; then tail -20 "$work/b1.err"; fi
finish
