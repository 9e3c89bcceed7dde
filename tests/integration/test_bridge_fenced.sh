#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A fatal error of the aggregator's Kafka consumer does not stop the bridge.
# The bridge's consumer has static membership (group.instance.id = its id);
# another consumer that joins the group with the same instance id makes the
# coordinator fence it: its next request is answered FENCED_INSTANCE_ID,
# which librdkafka 2.0 turns into a fatal error of the whole consumer (the
# same error a monitoring commit got after two of three Kafka nodes died:
# docs/bridge.md, tests/e2e --cluster). The bridge must stay up (the relay
# goes on taking readings into Kafka), drop the consumer's partitions
# without a checkpoint, make a new consumer, take its partitions back from
# their lake checkpoints, and count every reading exactly once: per
# turnstile the lake's sums equal what the simulator's registers moved by.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-fenced.XXXXXX)
declare -A agent_pid=()
trap 'bridge_test_cleanup ${intruder:-}' EXIT
. "$src/tests/integration/bridge.sh"

bridge_test_servers 4 --conf 'max_queued_messages 1000000'
sim_start --generate --slaves 1,2 --turnstiles 4 --speed 600 --fault pause
split_devices
registers_first 1 2
for a in 1 2; do agent_conf "$work/a$a.conf" "a$a" "$work/slave-$a.conf"; done
bridge_conf "$work/b1.conf" b1
bridge_start b1 "$work/b1.conf"
for a in 1 2; do
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/a$a.conf" --quiet >>"$work/a$a.out" 2>>"$work/a$a.err" &
  agent_pid[a$a]=$!
done
sleep 2
sim resume
sleep 6

status() { grep 'info: relay: [a-z]*, [0-9]* received' "$work/b1.err" | tail -1; }
delivered() { status | sed -n 's/.* \([0-9]*\) in Kafka,.*/\1/p'; }
parts() { status | sed -n 's/.*aggregate: \([0-9]*\) partitions.*/\1/p'; }
check "the bridge consumes all 4 partitions" test "$(parts)" = 4
pid=${BRIDGE_PID[b1]}

# an intruder with the bridge's group.instance.id: the coordinator hands it
# the bridge's place and fences the bridge's consumer
kcat -b "$KAFKA_BOOTSTRAP" -G turnstile-bridge -X group.instance.id=b1 -X session.timeout.ms=6000 \
  -X enable.auto.commit=false -q -o end turnstile.readings >/dev/null 2>"$work/intruder.err" &
intruder=$!
for _ in $(seq 100); do grep -q 'consumer failed for good\|fatal Kafka error' "$work/b1.err" && break; sleep 0.2; done
d0=$(delivered)
kill "$intruder" 2>/dev/null || true; wait "$intruder" 2>/dev/null || true; intruder=
grep 'consumer failed for good\|fatal Kafka error\|FENCED\|fenced' "$work/b1.err" | head -3
check "the bridge's consumer was fenced (fatal error logged)" grep -q 'FENCED_INSTANCE_ID\|fenced' "$work/b1.err"
sleep 3
check "the bridge process is still running" kill -0 "$pid"
check "its relay goes on: readings still reach Kafka ($d0 -> $(delivered))" test "$(delivered)" -gt "${d0:-0}"

# the intruder is gone; the new consumer replaces it (static membership:
# no rebalance of the group) and resumes the partitions from the lake
for _ in $(seq 60); do [ "$(parts)" = 4 ] && break; sleep 1; done
check "a new consumer took the 4 partitions back" test "$(parts)" = 4
check "the aggregator logged its new consumer" grep -q 'aggregate: new Kafka consumer' "$work/b1.err"
sleep 3

sim pause
registers_last
wait_lake_sums 90
check "per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums" "$work/expected"
check "the counts are not trivial" test "$(awk '{s += $2 + $3} END {print s}' "$work/expected")" -gt 500
check "one bridge process all along" kill -0 "$pid"
bridge_kill b1 TERM
check "no sanitizer report from the bridge" bash -c "! grep -q 'Sanitizer' '$work/b1.err'"
if [ "$fails" -gt 0 ]; then grep -E 'error|warning|notice' "$work/b1.err" | grep -v 'relay: ' | tail -30; fi
finish
