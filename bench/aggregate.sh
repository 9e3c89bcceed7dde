#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The aggregator, Kafka to the lake: N readings (default 10,000,000; 100 agents x 50
# turnstiles, one reading per turnstile and minute) produced into a fresh 4-partition
# topic of a real Kafka 3.9.1 (KRaft, loopback), then read in the same run, one after
# the other, by:
#   consumer   bench-aggregate consume: a bare librdkafka consumer (the ceiling of Kafka
#              and librdkafka on this machine); timed from its first message; then again
#              with jemalloc preloaded, the bridge's allocator (when libjemalloc2 is there)
#   bridge     the real `turnstile-bridge --role aggregate --until-end` (acks on, through a
#              private mosquitto, so station windows are on too; dedup, 5-minute windows, gzip
#              CSV files, checkpoints every 5 s, config defaults otherwise); timed from the
#              process start to its exit: it reads the topic to its end and exits by itself
#              after its final checkpoint, which is part of the time (its last status line
#              must count N readings); by default ([lake] threads = 2) and again with
#              threads = 1 ("1thread"; TS_AGG_ONE_THREAD=0 leaves it out), each in
#              its own group and lake; the two lakes must hold the same rows
#   library    bench-aggregate run: the aggregator library alone (no acks, no station
#              windows), for comparison (TS_AGG_LIBRARY=0 leaves it out)
# Prints one line each (rate, CPU s, peak RSS), and the bridge/consumer ratio; for the bridge
# also its rate while consuming, timed as the consumer is (without its start and its end).
# CPU s and peak RSS of the bridge: /proc/PID/stat and VmHWM, sampled every 0.1 s up to
# its exit (the last sample is at most 0.1 s before it).
# Usage: bash bench/aggregate.sh [N]      (binaries from $TS_BIN_DIR, default build-release/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10000000}
bin=${TS_BIN_DIR:-$root/build-release/bin}
for b in bench-aggregate turnstile-bridge; do
  [ -x "$bin/$b" ] || { echo "aggregate.sh: $bin/$b missing (./scripts/build --release)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/ts-bench-agg.XXXXXX)
bridge_pid=
cleanup() {
  [ -z "$bridge_pid" ] || kill "$bridge_pid" 2>/dev/null || true
  kafka_cleanup 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}
. "$root/bench/proc.sh"
. "$root/tests/integration/broker.sh"
. "$root/tests/integration/kafka.sh"
broker_start
kafka_start
kafka_create_topic bench.readings 4
kafka_create_topic turnstile.deadletter 1
echo "aggregate.sh: $n readings, 100 agents x 50 turnstiles, one reading per turnstile and minute; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" bench.readings "$n"

consumer_line=$("$bin/bench-aggregate" consume "$KAFKA_BOOTSTRAP" bench.readings "$n")
echo "$consumer_line"
consumer_rate=$(sed -n 's/.*: \([0-9]*\)\/s;.*/\1/p' <<<"$consumer_line")
# the same bare consumer with the bridge's allocator (jemalloc, LD_PRELOAD): librdkafka's threads
# contend for glibc's arena lock less, and the ceiling moves (docs/bridge.md, "Memory")
je=$(pkg-config --variable=libdir jemalloc 2>/dev/null || true)/libjemalloc.so.2
if [ -f "$je" ]; then
  je_line=$(LD_PRELOAD=$je "$bin/bench-aggregate" consume "$KAFKA_BOOTSTRAP" bench.readings "$n")
  echo "$je_line (jemalloc)"
  je_rate=$(sed -n 's/.*: \([0-9]*\)\/s;.*/\1/p' <<<"$je_line")
fi

# run_bridge NAME THREADS: one run of the bridge, its own group and lake
run_bridge() {
  local name=$1 threads=$2
  cat >"$work/$name.conf" <<EOF
[bridge]
id = bench-agg-$name
status_interval_ms = 100
max_event_age_s = 0
[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
[kafka]
brokers = $KAFKA_BOOTSTRAP
readings_topic = bench.readings
group_id = bench-bridge-$name
[lake]
path = $work/$name-lake
threads = $threads
EOF
  local start end readings=0 bp
  start=$(date +%s%N)
  "$bin/turnstile-bridge" -c "$work/$name.conf" --role aggregate --until-end \
    >"$work/$name.out" 2>"$work/$name.err" &
  bridge_pid=$!; bp=$bridge_pid
  local deadline=$((SECONDS + 120 + n / 5000)) # should it never get to the end
  while sample "$bridge_pid"; do
    ((SECONDS < deadline)) || { kill -TERM "$bridge_pid"; echo "aggregate.sh: the bridge did not stop at the end in time" >&2; }
    tick
  done
  wait "$bridge_pid" || { tail -n 20 "$work/$name.err" >&2; echo "aggregate.sh: the bridge failed" >&2; exit 1; }
  end=$(date +%s%N)
  readings=$(sed -n 's/.* \([0-9]*\) readings, .*/\1/p' "$work/$name.err" | tail -n 1)
  [ "${readings:-0}" = "$n" ] || { tail -n 20 "$work/$name.err" >&2; echo "aggregate.sh: the bridge counted ${readings:-0} readings, not $n" >&2; exit 1; }
  local cpu=${ticks[$bridge_pid]}
  bridge_pid=
  awk -v n="$n" -v ns=$((end - start)) -v cpu="$(ticks_s "$cpu")" -v kb="${hwm[$bp]:-0}" \
      -v c="${consumer_rate:-0}" -v jc="${je_rate:-0}" -v name="$name" 'BEGIN {
    s = ns / 1e9; r = n / s
    printf "%-9s %d readings in %.2f s (process start to exit): %.0f/s; CPU %.2f s (%.0f readings per CPU second); peak RSS %.1f MiB\n", name, n, s, r, cpu, n / cpu, kb / 1024
    if (c > 0) printf "ratio     %s / bare consumer: %.2f\n", name, r / c
    if (jc > 0) printf "ratio     %s / bare consumer with jemalloc: %.2f\n", name, r / jc
  }'
  grep -o 'aggregate: [^;]*' "$work/$name.err" | tail -n 1 | sed 's/^/          /'
  # while consuming: from the first status line that counts readings to the first that counts
  # N (every 0.1 s; their log timestamps), without the start (group join, lakes opened) and the
  # end (SIGTERM, final checkpoint, leaving the group): how the bare consumer is timed
  local line first last counted
  line=$(grep -m1 -E 'aggregate: .* [1-9][0-9]* readings, ' "$work/$name.err" || true)
  first=${line%% *}
  counted=$(sed -n 's/.* \([0-9]*\) readings, .*/\1/p' <<<"$line")
  last=$(grep -m1 -E "aggregate: .* $n readings, " "$work/$name.err" | cut -d' ' -f1)
  if [ -n "$first" ] && [ -n "$last" ] && [ -n "$counted" ]; then
    awk -v a="$(date -d "$first" +%s.%N)" -v b="$(date -d "$last" +%s.%N)" -v n="$((n - counted))" \
        -v c="${consumer_rate:-0}" -v name="$name" 'BEGIN {
      r = (b > a) ? n / (b - a) : 0
      ratio = (c > 0) ? sprintf("; %.2f of the bare consumer", r / c) : ""
      printf "          %s while consuming: %.0f/s (%.2f s between its first and last status lines%s)\n", name, r, b - a, ratio
    }'
  fi
  echo "          $name lake: $(find "$work/$name-lake" -name '*.csv.gz' ! -name '.*' | wc -l) files, $(du -sh "$work/$name-lake" | cut -f1)"
}

# lake_rows DIR: every row of the visible data files, sorted, each after its folder and its
# file's kind (part or late), without its row number (which counts within a file: where a
# file ends depends on when the checkpoints came, on the clock)
lake_rows() {
  (cd "$1" && find . -name '*.csv.gz' ! -name '.*' | while read -r f; do
     gzip -dc "$f" | awk -v d="${f%/*}" -v k="${f##*/}" 'NR > 1 { sub(/^[^,]*,/, ""); print d, substr(k, 1, 4), $0 }'
   done | LC_ALL=C sort)
}

# the bridge as configured by default (threads = 2: two aggregating threads) and, unless
# TS_AGG_ONE_THREAD=0, with threads = 1 in the same run: their
# lakes must hold the same rows (test_bridge_lake_expected checks the bytes of a fixed
# input, cut into files the same way)
# (TS_AGG_ONE_THREAD=first runs it first: on a shared machine, alternate the order)
[ "${TS_AGG_ONE_THREAD:-1}" != first ] || run_bridge 1thread 1
run_bridge bridge 2
if [ "${TS_AGG_ONE_THREAD:-1}" != 0 ]; then
  [ "${TS_AGG_ONE_THREAD:-1}" = first ] || run_bridge 1thread 1
  if cmp -s <(lake_rows "$work/bridge-lake") <(lake_rows "$work/1thread-lake"); then
    echo "          the two lakes hold the same rows ($(lake_rows "$work/bridge-lake" | wc -l))"
  else
    echo "aggregate.sh: the lakes of threads = 2 and 1 hold different rows" >&2
    exit 1
  fi
fi
if [ "${TS_AGG_LIBRARY:-1}" != 0 ]; then
  "$bin/bench-aggregate" run "$KAFKA_BOOTSTRAP" bench.readings "$n" "$work/lake"
  echo "          library lake: $(find "$work/lake" -name '*.csv.gz' ! -name '.*' | wc -l) files, $(du -sh "$work/lake" | cut -f1)"
fi
