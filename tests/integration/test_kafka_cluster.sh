#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Kafka cluster of the tests (tests/integration/kafka.sh
# kafka_cluster_start: 3 KRaft nodes on loopback, each broker + controller)
# with Debian's librdkafka, through kcat: the replication settings are what
# production runs (replication factor 3 for topics and internal topics,
# min.insync.replicas 2, no unclean leader election); an idempotent acks=all
# producer and a consumer group lose nothing and duplicate nothing across a
# leader SIGKILL, a rolling restart, the loss of the controller quorum (two
# nodes down: produce must stall, then resume), and a clean stop of all;
# a topic can grow (kafka_add_partitions). Prints its timings.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-kafka-cluster.XXXXXX)
trap test_cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/kafka.sh"

ms() { date +%s%3N; }
topic=readings
produce() { # COUNT FIRST [kcat options]: keyed values FIRST.., acks=all, idempotent
  local n=$1 first=$2; shift 2
  seq "$first" $((first + n - 1)) | awk '{ k = sprintf("k%02d", $1 % 20); printf "%s:%06d\n", k, $1 }' |
    kcat -b "$KAFKA_BOOTSTRAP" -P -t "$topic" -K: -X enable.idempotence=true -X acks=all "$@" \
      2>>"$work/produce.err"
}
consume_all() { # OUT: the whole topic
  kcat -b "$KAFKA_BOOTSTRAP" -C -t "$topic" -o beginning -e -q -f '%p %k %s\n' >"$1" 2>>"$work/consume.err"
}
# exactly the values 1..N, each once, each key's values in order on one partition
exactly() { # FILE N
  awk -v want="$2" '{ if (seen[$3]++) bad = "value " $3 " twice"
         if (($2 in last) && $3 + 0 <= last[$2]) bad = "key " $2 ": " $3 " after " last[$2]
         if (($2 in part) && part[$2] != $1) bad = "key " $2 " on two partitions"
         last[$2] = $3 + 0; part[$2] = $1; n++ }
       END { if (n != want) bad = n " values, not " want
             for (v = 1; v <= want; v++) if (!(sprintf("%06d", v) in seen)) { bad = "value " v " missing"; break }
             if (bad != "") { print bad > "/dev/stderr"; exit 1 } }' "$1"
}
full_isr() { kafka_wait_isr "$topic" 60 >/dev/null; }
broker_config() { # NODE: its effective configuration
  kafka_tool kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --entity-type brokers \
    --entity-name "$1" --describe --all 2>/dev/null
}

t0=$(ms)
kafka_cluster_start 3
echo "3 nodes ready on $KAFKA_BOOTSTRAP in $(($(ms) - t0)) ms (pids ${KAFKA_NODE_PID[*]})"
check "KAFKA_BOOTSTRAP names 3 nodes" test "$(tr ',' '\n' <<<"$KAFKA_BOOTSTRAP" | wc -l)" = 3
check "metadata lists brokers 1, 2 and 3" \
  test "$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 5 | grep -c '^  broker [123] at 127.0.0.1:')" = 3
check "one node's variables are node 1's" test "$KAFKA_PID" = "${KAFKA_NODE_PID[1]}" -a "$KAFKA_PORT" = "${KAFKA_NODE_PORT[1]}"
check "the controller quorum names all 3 nodes" \
  grep -q "^controller.quorum.voters=1@127.0.0.1:[0-9]*,2@127.0.0.1:[0-9]*,3@127.0.0.1:[0-9]*$" "${KAFKA_NODE_CONF[2]}"
broker_config 2 >"$work/config.txt" || true
for kv in min.insync.replicas=2 default.replication.factor=3 offsets.topic.replication.factor=3 \
          transaction.state.log.replication.factor=3 transaction.state.log.min.isr=2 \
          unclean.leader.election.enable=false; do
  check "broker setting $kv" grep -q "^  $kv " "$work/config.txt"
done
t0=$(ms)
kafka_create_topic "$topic" 4
echo "topic created in $(($(ms) - t0)) ms"
_kafka_partitions "$topic" >"$work/meta.txt"
check "4 partitions, each on 3 replicas, all in sync ($(tr '\n' ';' <"$work/meta.txt"))" \
  test "$(awk '$2 >= 1 && split($3, r, ",") == 3 && split($4, s, ",") == 3' "$work/meta.txt" | wc -l)" = 4

check "1000 messages, idempotent, acks=all" produce 1000 1
# a consumer group commits offsets: its internal topic is replicated 3 times
kcat -b "$KAFKA_BOOTSTRAP" -G g1 -X auto.offset.reset=earliest -e -q -f '%s\n' "$topic" >"$work/g1.txt" 2>>"$work/consume.err" || true
check "the group got the 1000" test "$(wc -l <"$work/g1.txt")" = 1000
check "__consumer_offsets has 3 replicas per partition" \
  test "$(_kafka_partitions __consumer_offsets | awk '{ n = split($3, r, ","); if (n == 3) ok++ } END { print ok + 0 }')" = 4

# leader SIGKILL: another in-sync replica leads, nothing acknowledged is lost
l=$(kafka_leader "$topic" 0)
t0=$(ms)
kafka_node_kill "$l"
for _ in $(seq 200); do
  nl=$(kafka_leader "$topic" 0)
  [ "$nl" -ge 1 ] && [ "$nl" != "$l" ] && break
  sleep 0.1
done
echo "leader $l of partition 0 SIGKILLed: node $nl leads after $(($(ms) - t0)) ms"
check "a new leader for partition 0 ($l -> $nl)" test "$nl" -ge 1 -a "$nl" != "$l"
check "produce goes on with a node down" produce 100 1001 -X message.timeout.ms=30000
t0=$(ms)
check "the killed node restarts" kafka_node_restart "$l"
check "and is back in sync" full_isr
echo "restart after SIGKILL and back in sync: $(($(ms) - t0)) ms"
consume_all "$work/all1.txt"
check "after the leader kill: 1100, once each, in order" exactly "$work/all1.txt" 1100

# rolling restart: each node stopped and started, the next only when in sync
t0=$(ms)
for n in 1 2 3; do
  kafka_node_stop "$n"
  produce 10 $((1100 + n * 10 - 9)) -X message.timeout.ms=30000
  kafka_node_restart "$n" && full_isr || echo "node $n: restart or sync failed" >&2
done
echo "rolling restart of 3 nodes: $(($(ms) - t0)) ms"
consume_all "$work/all2.txt"
check "after the rolling restart: 1130, once each, in order" exactly "$work/all2.txt" 1130

# the controller quorum lost: two nodes down, produce stalls (and fails here
# after its 5 s timeout); then both return and everything is there
victims="$(kafka_leader "$topic" 1) "
for n in 1 2 3; do [ "$n" = "${victims% }" ] || { victims+="$n"; break; }; done
t0=$(ms)
kafka_node_kill $victims
check "node ${victims% *} and ${victims#* } down: nodes running 1" \
  test "$(for n in 1 2 3; do kafka_node_running "$n" && echo "$n"; done | wc -l)" = 1
fails_to() { ! "$@"; }
check "acks=all produce stalls without a quorum (times out)" fails_to produce 1 999999 -X message.timeout.ms=5000
check "both nodes restart" kafka_node_restart $victims
check "every replica back in sync" full_isr
echo "quorum loss: down, produce timed out, back in sync: $(($(ms) - t0)) ms"
check "produce resumes" produce 20 1131
consume_all "$work/all3.txt"
grep -v ' 999999$' "$work/all3.txt" >"$work/all3b.txt" || true
check "after the quorum loss: 1150 once each, in order (the timed-out one at most once)" exactly "$work/all3b.txt" 1150
kcat -b "$KAFKA_BOOTSTRAP" -G g1 -e -q -f '%s\n' "$topic" >"$work/g1b.txt" 2>>"$work/consume.err" || true
echo "g1 got $(wc -l <"$work/g1b.txt") more: $(sort -n "$work/g1b.txt" | sed -n '1p;$p' | tr '\n' ' ')"
check "the group resumes after its committed offsets (the 150 new ones)" \
  test "$(grep -vc '^999999$' "$work/g1b.txt")" = 150

# the partition-increase hook
t0=$(ms)
check "the topic grows to 6 partitions" kafka_add_partitions "$topic" 6
echo "partitions added in $(($(ms) - t0)) ms"
_kafka_partitions "$topic" >"$work/parts6.txt"
check "6 partitions with leaders ($(tr '\n' ';' <"$work/parts6.txt"))" test "$(awk '$2 >= 1' "$work/parts6.txt" | wc -l)" = 6

# a clean stop of all (the last node, without a quorum, is SIGKILLed) and a restart
pids="${KAFKA_NODE_PID[*]}"
t0=$(ms)
kafka_stop
t1=$(ms)
gone() { local p; for p in $pids; do ! kill -0 "$p" 2>/dev/null || return 1; done; }
check "no node runs after kafka_stop" gone
check "the cluster restarts" kafka_restart
check "in sync after the restart" full_isr
echo "stop all $((t1 - t0)) ms, restart $(($(ms) - t1)) ms"
consume_all "$work/all4.txt"
grep -v ' 999999$' "$work/all4.txt" >"$work/all4b.txt" || true
check "after stop and restart: all 1150 there" exactly "$work/all4b.txt" 1150

if [ "$fails" -gt 0 ]; then
  echo "--- produce.err"; tail -n 20 "$work/produce.err" 2>/dev/null || true
  echo "--- consume.err"; tail -n 20 "$work/consume.err" 2>/dev/null || true
  for n in 1 2 3; do echo "--- node $n errors"; grep -E ' (ERROR|FATAL) ' "${KAFKA_NODE_LOG[$n]}" 2>/dev/null | tail -n 5 || true; done
fi
t0=$(ms)
kafka_cleanup
echo "clean-up $(($(ms) - t0)) ms"
finish
