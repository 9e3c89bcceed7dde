#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Adding partitions on the object lake (issue 17): turnstile-bridge --role
# aggregate with [lake] url = s3://repart/t on a real S3 API server (S3Proxy), a
# real mosquitto and Kafka, max_agents = 4 and agent_idle_s = 0 (4 agents of
# each partition in memory, the others' positions in the partitions' archives,
# in the bucket). 40 agents, one
# turnstile each, one reading a minute (bench-aggregate fill, keyed by agent:
# librdkafka's partitioner places them as the relay does):
#   1. readings 1-5 of every agent into turnstile.readings of 2 partitions;
#   2. the topic grows to 4 partitions; the procedure (repartition.sh, whose
#      drain check reads the partitions' checkpoints from the bucket): the
#      aggregator stopped, one drains, --repartition moves the agents whose
#      partition changes, in memory and archived, through the bucket;
#   3. readings 6-10 into 4 partitions, then readings 1-10 of every agent again:
#      each of the 400 re-sent readings is a duplicate in the agent's new
#      partition (its position moved), ENTRIES and EXITS summed per
#      turnstile over the bucket's visible files equal what was sent once,
#      nothing is dead-lettered as misplaced, nothing hidden is left.
# Nothing asserts on a duration: waits poll with generous deadlines.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-repartition-s3.XXXXXX)
trap 'bridge_test_cleanup ${fill_pid:-}' EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/repartition.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; tail -n 20 "$work/agg.err" "$work/procedure.log" 2>/dev/null >&2; exit 1; }
AGENTS=40 BASE=1685245200000 # 2023-05-28 03:40Z
s3proxy_start repart || fail "S3Proxy did not start"
bridge_test_servers 2

bridge_agg_conf "$work/bridge.conf" repart-s3 "path = $work/spool
$(s3proxy_lake s3://repart/t)
max_agents = 4
agent_idle_s = 0
window_s = 300
idle_s = 1
checkpoint_interval_ms = 300"
"$bin/turnstile-bridge" --check-config -c "$work/bridge.conf" || fail "--check-config refused it"

fill() { "$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings "$1" "$AGENTS" 1 "$3" "$2" >>"$work/fill.out"; }
wait_status() { agg_wait_status "$1" "$2" || fail "waiting for the status line '$1'"; }
agg_up() { bridge_start agg "$work/bridge.conf" --role aggregate; }
bucket=$S3PROXY_DATA/repart/t
layout=$work/spool/turnstile/_manifest/turnstile.readings.layout
sums() { # the bucket's visible files: ENTRIES and EXITS per turnstile
  (cd "$bucket" && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2
  done) | awk -F, '{k=$2","$3","$4; e[k]+=$11; x[k]+=$12} END {for (k in e) print k","e[k]","x[k]}' |
    LC_ALL=C sort
}
# what was sent once (bench-aggregate's fill): reading i of a fill (0-based, restarting
# at each fill) is agent i mod AGENTS, i mod 7 entries, i mod 5 exits; two fills of 5 each
awk -v n=$((AGENTS * 5)) -v a=$AGENTS 'BEGIN {
  for (r = 0; r < 2; r++) for (i = 0; i < n; i++) {
    k = sprintf("B%03d,R%03d,00-00-00", i % a, i % a); e[k] += i % 7; x[k] += i % 5 }
  for (k in e) print k","e[k]","x[k] }' | LC_ALL=C sort >"$work/want"

# 1. readings 1-5 in 2 partitions; agents leave memory for the archives in the bucket
agg_up
fill $((AGENTS * 5)) 1 $BASE
wait_status " $((AGENTS * 5)) readings, 0 duplicates" 120
archived() { agg_status | sed -n 's/.* with gaps, \([0-9]*\) archived).*/\1/p'; }
end=$((SECONDS + 60))
until [ "$(archived)" -ge $((AGENTS - 8)) ] 2>/dev/null; do
  [ $SECONDS -lt $end ] || { agg_status >&2; fail "the agents did not reach the archives in 60 s"; }
  sleep 0.2
done
grep -q '^partitions 2$' "$layout" || fail "the layout is not 2: $(cat "$layout")"
echo "ok: step 1: $(agg_status | grep -o '[0-9]* agents ([^)]*)')"

# 2. 4 partitions, and the procedure
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
  --alter --topic turnstile.readings --partitions 4 >>"$work/kafka-tool.log" 2>&1
lag=$(repartition_lag "$work/bridge.conf") || fail "repartition_lag failed on the bucket"
echo "lag before the procedure (partition, records): ${lag:-none}"
mark=$(wc -l <"$work/agg.err")
rc=0
repartition_procedure "$work/bridge.conf" "bridge_kill agg TERM" "agg_up" "$work/procedure.log" || rc=$?
grep 'repartition' "$work/procedure.log" || true
[ "$rc" = 0 ] || fail "the procedure exited $rc"
grep -q 'the agents are now spread over 4 partitions (were 2)' "$work/procedure.log" ||
  fail "--repartition did not say it spread the agents over 4 partitions"
moved=$(sed -n 's/.*): \([0-9]*\) agents moved (\([0-9]*\) from archives).*/\1 \2/p' "$work/procedure.log")
read -r moved archived_moved <<<"${moved:-0 0}"
[ "$archived_moved" -gt 0 ] && [ "$moved" -gt "$archived_moved" ] ||
  fail "moved $moved agents ($archived_moved from archives): want some from memory and some archived"
grep -q '^partitions 4$' "$layout" || fail "the layout is not 4: $(cat "$layout")"
echo "ok: step 2: $moved agents moved ($archived_moved from archives), the layout is 4"

# 3. readings 6-10 by the new layout, then everything again (duplicates)
fill $((AGENTS * 5)) 6 $((BASE + 5 * 60000))
fill $((AGENTS * 10)) 1 $BASE
wait_status " $((AGENTS * 5)) readings, $((AGENTS * 10)) duplicates" 120
end=$((SECONDS + 60))
until sums | cmp -s - "$work/want"; do
  if [ $SECONDS -ge $end ]; then
    sums | diff "$work/want" - | head -n 20 >&2
    fail "the bucket's sums are not what was sent once in 60 s"
  fi
  sleep 0.5
done
bridge_kill agg TERM
sums | cmp -s - "$work/want" || fail "the sums changed at the last checkpoint"
! tail -n +$((mark + 1)) "$work/agg.err" | grep -q 'lake.s layout' ||
  fail "the restarted aggregator reports a layout mismatch"
agg_status | grep -q ' 0 dead-lettered' || fail "records were dead-lettered (misplaced): $(agg_status)"
echo "ok: step 3: $((AGENTS * 10)) re-sent readings all duplicates, the sums are what was sent once"
hidden=$(cd "$bucket" && find . -type f -name '.*' | wc -l)
[ "$hidden" = 0 ] || fail "$hidden hidden objects left in the bucket"
! grep -q 'Sanitizer' "$work/agg.err" "$work/procedure.log" || fail "a sanitizer report"
echo "ok: nothing hidden left in the bucket, no sanitizer report"
