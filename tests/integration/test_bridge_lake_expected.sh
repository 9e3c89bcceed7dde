#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lake of a fixed input, against the committed one (issue 14: the aggregator
# made faster must write exactly the same lake). A real mosquitto and Kafka, the
# real `turnstile-bridge --role aggregate` (acks and station windows on), a
# 2-partition topic filled by bench-aggregate fill (6 agents x 3 turnstiles, one
# reading per turnstile and minute, keyed by agent: both partitions get some),
# in three steps, each read whole before the next is produced (so that the
# result cannot depend on how the consumer cuts its batches):
#   1. 720 readings from 2023-05-28 03:40Z (23:40 in New York: two dates),
#      40 minutes: the windows up to 04:10Z close (108 rows);
#   2. 180 new readings (numbers 121..150 of each agent) from 03:50Z: late for
#      two closed windows (36 late rows, late- files);
#   3. 54 readings again with numbers 1..9: duplicates, not counted.
# Then SIGTERM: the final checkpoint makes it all visible (one generation). Three times, each
# on a topic of its own: with [lake] threads = 2 (the default), 1 and 3.
# Compared: every visible file's name (relative to the lake) and its content
# decompressed, exactly (the gzip bytes depend on zlib's version and level,
# the CSV does not), against tests/integration/lake_expected.txt.
# TS_LAKE_EXPECTED_WRITE=1 writes that file from this run instead (review the
# diff before committing it).
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
expected=$src/tests/integration/lake_expected.txt
work=$(mktemp -d /tmp/ts-lake-expected.XXXXXX)
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

bridge_test_servers 2

fail() { echo "FAIL: $*" >&2; exit 1; }

# once THREADS: the three steps on a topic of their own, read by a bridge with [lake] threads
# = THREADS (its own group and lake); the lake, decompressed, to $work/lake-THREADS.txt
once() {
  local threads=$1 topic=lake.expected.$1 name=agg$1
  kafka_create_topic "$topic" 2
  # status every 0.1 s; one checkpoint, at the end; no processing-time closing
  bridge_agg_conf "$work/$name.conf" "lake-expected-$threads" "path = $work/lake-$threads
window_s = 300
idle_s = 0
checkpoint_interval_ms = 3600000
threads = $threads"
  sed -i "s/^\[kafka\]\$/[kafka]\nreadings_topic = $topic\ngroup_id = lake-expected-$threads/" "$work/$name.conf"
  bridge_start "$name" "$work/$name.conf" --role aggregate
  lake_expected_input "$name" "$topic" || fail "threads = $threads: the fixed input was not taken"

  (cd "$work/lake-$threads" && find . -name '*.csv.gz' ! -name '.*' | sort | while read -r f; do
    f=${f#./}
    echo "== ${f//$topic-/turnstile.readings-}"   # the names as on the default topic
    zcat "$f"
  done) >"$work/lake-$threads.txt"
}

# the default (2 aggregating threads, one partition each), one thread for both partitions,
# and more threads than partitions (one idle): the same lake
for threads in 2 1 3; do
  once "$threads"
  got=$work/lake-$threads.txt
  if [ -n "${TS_LAKE_EXPECTED_WRITE:-}" ]; then
    cp "$got" "$expected"
    echo "wrote $expected ($(grep -c '^== ' "$got") files, $(wc -l <"$got") lines)"
    exit 0
  fi
  if ! diff -u "$expected" "$got" >"$work/diff"; then
    head -n 40 "$work/diff" >&2
    fail "threads = $threads: the lake differs from $expected ($(grep -c '^[-+][^-+]' "$work/diff") lines)"
  fi
  echo "ok: threads = $threads: the lake equals $expected: $(grep -c '^== ' "$got") files, $(grep -vc '^== ' "$got") lines"
done
