#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Kafka broker of the tests (tests/integration/kafka.sh: Apache Kafka from
# Maven Central, KRaft, one node) works with Debian's librdkafka, through
# kcat: an idempotent producer with acks=all writes 1000 keyed messages to a
# 4-partition topic (the log shows a producer id and sequences); a consumer
# group reads them all back, each key in order, and commits its offsets; a
# second consumer of the group resumes after them; the data and the committed
# offsets survive a clean restart and a SIGKILL of the broker.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-kafka-test.XXXXXX)
trap test_cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/kafka.sh"

ms() { date +%s%3N; }

t0=$(ms)
kafka_start
echo "broker ready on $KAFKA_BOOTSTRAP in $(($(ms) - t0)) ms (pid $KAFKA_PID)"
t0=$(ms)
kafka_create_topic readings 4
echo "topic created in $(($(ms) - t0)) ms"

topic=readings
# N keyed messages "KEY:KEY SEQ", SEQ counting from $2, keys k00..k19 in turn
produce() { # COUNT FIRST
  seq "$2" $(($2 + $1 - 1)) | awk '{ k = sprintf("k%02d", $1 % 20); printf "%s:%s %06d\n", k, k, $1 }' |
    kcat -b "$KAFKA_BOOTSTRAP" -P -t "$topic" -K: -X enable.idempotence=true -X acks=all \
      2>>"$work/produce.err"
}
# consume in group G until the end of every partition: "PARTITION OFFSET KEY VALUE" lines
consume_group() { # GROUP OUT
  kcat -b "$KAFKA_BOOTSTRAP" -G "$1" -X auto.offset.reset=earliest -e -q \
    -f '%p %o %k %s\n' "$topic" >"$2" 2>>"$work/consume.err"
}
# the whole topic, no group
consume_all() { # OUT
  kcat -b "$KAFKA_BOOTSTRAP" -C -t "$topic" -o beginning -e -q -f '%p %o %k %s\n' >"$1" 2>>"$work/consume.err"
}
count() { wc -l <"$1" | tr -d ' '; }
# every value once, each key's values in increasing order, each key on one partition
in_order() { # FILE
  awk '{ if ($3 != $4) bad = "key " $3 " carries " $4
         if (($3 in last) && $5 + 0 <= last[$3]) bad = "key " $3 ": " $5 " after " last[$3]
         if (($3 in part) && part[$3] != $1) bad = "key " $3 " on partitions " part[$3] " and " $1
         if (seen[$5]++) bad = "value " $5 " twice"
         last[$3] = $5 + 0; part[$3] = $1 }
       END { if (bad != "") { print bad > "/dev/stderr"; exit 1 } }' "$1"
}
partitions_used() { cut -d' ' -f1 "$1" | sort -u | wc -l | tr -d ' '; }
# producer ids and sequence numbers in the first partition's log (an idempotent producer has them)
idempotent_batches() {
  kafka_tool kafka.tools.DumpLogSegments --files "$KAFKA_DATA/$topic-0/00000000000000000000.log" \
    >"$work/dump.txt" 2>&1 || return 1
  grep -q 'producerId: [0-9]' "$work/dump.txt" && ! grep -q 'producerId: -1' "$work/dump.txt" &&
    grep -q 'baseSequence: 0 ' "$work/dump.txt"
}
# lag of GROUP per partition from the broker's view (kafka-consumer-groups)
group_lag_zero() { # GROUP EXPECTED_TOTAL_OFFSET
  # up to 3 tries: on a loaded machine the admin tool's JVM may time out or describe
  # the group while the coordinator is still loading it (its output is kept, per try)
  local try
  for try in 1 2 3; do
    kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
      --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group "$1" >"$work/group.txt" 2>&1 &&
      awk -v t="$topic" -v want="$2" '$2 == t { n++; sum += $4; if ($6 != 0) bad = 1 }
        END { exit !(n == 4 && !bad && sum == want) }' "$work/group.txt" && return 0
    cp "$work/group.txt" "$work/group.try$try.txt"
    sleep 2
  done
  cat "$work/group.try"*.txt >&2
  return 1
}

t0=$(ms)
check "idempotent producer, acks=all: 1000 keyed messages" produce 1000 1
echo "produced in $(($(ms) - t0)) ms"
check "the log has producer ids and sequences (idempotence on)" idempotent_batches

t0=$(ms)
check "consumer group g1 reads to the end" consume_group g1 "$work/g1.txt"
echo "consumed in $(($(ms) - t0)) ms"
check "g1 got 1000 messages" [ "$(count "$work/g1.txt")" = 1000 ]
check "every key in order, once, on one partition" in_order "$work/g1.txt"
check "the messages are spread over the 4 partitions" [ "$(partitions_used "$work/g1.txt")" = 4 ]
check "g1's offsets are committed: lag 0, 1000 in all" group_lag_zero g1 1000

produce 100 1001
check "a second consumer of g1 resumes after the commit" consume_group g1 "$work/g1b.txt"
check "it gets exactly the 100 new messages" [ "$(count "$work/g1b.txt")" = 100 ]
check "the 100 new ones, in order" in_order "$work/g1b.txt"
check "their values are 1001..1100" [ "$(cut -d' ' -f5 "$work/g1b.txt" | sort -n | sed -n '1p;$p' | tr '\n' ' ')" = "001001 001100 " ]

t0=$(ms)
kafka_stop
t1=$(ms)
check "clean restart" kafka_restart
echo "stop $((t1 - t0)) ms, restart $(($(ms) - t1)) ms"
check "after a restart: all 1100 messages there" consume_all "$work/all1.txt"
check "1100 after the restart" [ "$(count "$work/all1.txt")" = 1100 ]
check "in order after the restart" in_order "$work/all1.txt"
check "g1's offsets survived the restart" group_lag_zero g1 1100
produce 50 1101
check "g1 resumes after the restart" consume_group g1 "$work/g1c.txt"
check "g1 gets exactly the 50 new messages" [ "$(count "$work/g1c.txt")" = 50 ]

kafka_kill
t1=$(ms)
check "restart after SIGKILL" kafka_restart
echo "restart after SIGKILL $(($(ms) - t1)) ms"
check "after SIGKILL: all 1150 messages there" consume_all "$work/all2.txt"
check "1150 after SIGKILL" [ "$(count "$work/all2.txt")" = 1150 ]
check "in order after SIGKILL" in_order "$work/all2.txt"
check "the idempotent producer works after recovery" produce 10 1151
check "g1 resumes after SIGKILL" consume_group g1 "$work/g1d.txt"
check "g1 gets exactly the 10 new ones" [ "$(count "$work/g1d.txt")" = 10 ]

if [ "$fails" -gt 0 ]; then
  echo "--- produce.err"; tail -n 20 "$work/produce.err" 2>/dev/null || true
  echo "--- consume.err"; tail -n 20 "$work/consume.err" 2>/dev/null || true
  echo "--- group.txt"; cat "$work/group.txt" 2>/dev/null || true
  echo "--- broker errors"; grep -E ' (ERROR|FATAL) ' "$KAFKA_LOG" 2>/dev/null | tail -n 20 || true
fi
finish
