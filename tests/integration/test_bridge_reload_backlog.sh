#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A checkpoint that fails while the bridge reads a backlog (issue 14, the aggregating threads):
# the failing partition is reloaded from its last checkpoint and Kafka seeks back, while the
# partition's aggregating thread still holds records polled before the seek (its inbox). They
# must not be taken: taken after the reload, their offsets (past the checkpoint) looked like
# records Kafka had deleted, and the records from the checkpoint on like ones already taken, so
# the lake lost them. A real mosquitto and Kafka (1 partition: one thread commits, so the plan's
# words fail one request's attempts and nothing else), 150,000 readings filled first
# (bench-aggregate fill: 20 agents x 25 turnstiles); bridge "ref" reads them into a POSIX lake;
# bridge "agg" (its own group) into the object lake on S3Proxy through s3_fault_proxy.py, which
# answers 503 to 6 requests in a row once agg has counted 20,000 readings: the S3 client's 6
# attempts at the next request of a checkpoint, which fails; the reload that follows reaches the
# store. Both lakes must then hold the same rows, and agg must not have counted any record as
# deleted by Kafka.
# Nothing asserts on a duration: waits poll with generous deadlines.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-reload.XXXXXX)
trap 'bridge_test_cleanup ${S3FAULT_PID:-}' EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; s3proxy_fault_log 10; exit 1; }
N=150000

s3proxy_start reload || fail "S3Proxy did not start"
s3proxy_fault_start --conditional || fail "the fault proxy did not start"
bridge_test_servers 1
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings $N 20 25 1685245200000 1 \
  >>"$work/fill.out" || fail "bench-aggregate fill"

# conf NAME LAKE_LINES: an aggregator in group NAME, checkpoints every 300 ms
conf() {
  bridge_agg_conf "$work/$1.conf" "reload-$1" "$2
window_s = 300
idle_s = 0
checkpoint_interval_ms = 300"
  sed -i -e "s/^\[kafka\]$/&\ngroup_id = reload-$1/" "$work/$1.conf"
}
# settled NAME: its status line counts at least N readings and has not changed for 8 s (more
# than the 5 s pause after a failed checkpoint)
settled() {
  local last= same=0 line end=$((SECONDS + 300))
  while [ $SECONDS -lt $end ]; do
    kill -0 "${BRIDGE_PID[$1]}" 2>/dev/null || { tail -n 20 "$work/$1.err" >&2; fail "$1 died"; }
    line=$(agg_status "$1" | sed "s/.*aggregate: //" || true)   # without its time
    if [ "$line" = "$last" ]; then same=$((same + 1)); else same=0; last=$line; fi
    counted=$(sed -n 's/.* \([0-9]*\) readings, .*/\1/p' <<<"$line")
    [ "${counted:-0}" -ge $N ] && [ $same -ge 16 ] && return 0
    sleep 0.5
  done
  fail "$1 did not settle: $(agg_status "$1")"
}
rows() { # the visible data rows under DIR, without their row numbers, sorted
  (cd "$1" && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2 | cut -d, -f2-
  done) | LC_ALL=C sort
}

conf ref "path = $work/ref-lake"
bridge_start ref "$work/ref.conf" --role aggregate
settled ref
bridge_kill ref TERM

conf agg "path = $work/spool
$(s3proxy_lake s3://reload/t "$S3FAULT_ENDPOINT")"
bridge_start agg "$work/agg.conf" --role aggregate
agg_wait_status ' [2-9][0-9][0-9][0-9][0-9] readings, ' 120 agg || fail "agg did not count 20,000 readings"
printf '503 %.0s' $(seq 6) >"$work/plan"
settled agg
bridge_kill agg TERM

failed=$(grep -c 'checkpoint failed' "$work/agg.err" || true)
check "a checkpoint failed while the backlog was read ($failed)" test "$failed" -gt 0
check "no record counted as deleted by Kafka (nothing polled before a seek back was taken)" \
  bash -c "! grep -q 'were deleted by Kafka' '$work/agg.err'"
rows "$work/ref-lake" >"$work/ref.rows"
rows "$S3PROXY_DATA/reload/t" >"$work/agg.rows"
check "the reference lake has rows ($(wc -l <"$work/ref.rows"))" test -s "$work/ref.rows"
check "the object lake holds exactly the reference lake's rows ($(wc -l <"$work/agg.rows"))" \
  cmp -s "$work/ref.rows" "$work/agg.rows"
check "no sanitizer report" bash -c "! grep -q Sanitizer '$work/agg.err' '$work/ref.err'"
finish
