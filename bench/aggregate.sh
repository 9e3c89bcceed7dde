#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The aggregator, Kafka to the lake: N readings (default 10,000,000; 100 agents x 50
# turnstiles, one reading per turnstile and minute) produced into a fresh 4-partition
# topic of a real Kafka 3.9.1 (KRaft, loopback), then read in the same run, one after
# the other, by:
#   consumer   bench-aggregate consume: a bare librdkafka consumer (the ceiling of Kafka
#              and librdkafka on this machine); timed from its first message
#   bridge     the real `turnstile-bridge --role aggregate` (acks on, through a private
#              mosquitto, so station windows are on too; dedup, 5-minute windows, gzip CSV
#              files, checkpoints every 5 s, config defaults otherwise); timed from the
#              process start to its exit: it gets SIGTERM once its status line
#              (status_interval_ms = 100) counts N readings, and its final checkpoint is
#              part of the time
#   library    bench-aggregate run: the aggregator library alone (no acks, no station
#              windows), for comparison (TS_AGG_LIBRARY=0 leaves it out)
# Prints one line each (rate, CPU s, peak RSS), and the bridge/consumer ratio.
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

cat >"$work/bridge.conf" <<EOF
[bridge]
id = bench-agg
status_interval_ms = 100
max_event_age_s = 0
[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
[kafka]
brokers = $KAFKA_BOOTSTRAP
readings_topic = bench.readings
group_id = bench-bridge
[lake]
path = $work/bridge-lake
EOF
start=$(date +%s%N)
"$bin/turnstile-bridge" -c "$work/bridge.conf" --role aggregate >"$work/bridge.out" 2>"$work/bridge.err" &
bridge_pid=$!; bp=$bridge_pid
readings=0
while sample "$bridge_pid"; do
  readings=$(sed -n 's/.* \([0-9]*\) readings, .*/\1/p' "$work/bridge.err" | tail -n 1)
  [ "${readings:-0}" -lt "$n" ] || break
  tick
done
[ "${readings:-0}" -ge "$n" ] || { tail -n 20 "$work/bridge.err" >&2; echo "aggregate.sh: the bridge stopped before $n readings" >&2; exit 1; }
kill -TERM "$bridge_pid"
while sample "$bridge_pid"; do tick; done
wait "$bridge_pid" || { tail -n 20 "$work/bridge.err" >&2; echo "aggregate.sh: the bridge failed" >&2; exit 1; }
end=$(date +%s%N)
bridge_cpu=${ticks[$bridge_pid]}
bridge_pid=
awk -v n="$n" -v ns=$((end - start)) -v cpu="$(ticks_s "$bridge_cpu")" -v kb="${hwm[$bp]:-0}" \
    -v c="${consumer_rate:-0}" 'BEGIN {
  s = ns / 1e9; r = n / s
  printf "bridge    %d readings in %.2f s (process start to exit): %.0f/s; CPU %.2f s (%.0f readings per CPU second); peak RSS %.1f MiB\n", n, s, r, cpu, n / cpu, kb / 1024
  if (c > 0) printf "ratio     bridge / bare consumer: %.2f\n", r / c
}'
grep -o 'aggregate: [^;]*' "$work/bridge.err" | tail -n 1 | sed 's/^/          /'
echo "          bridge lake: $(find "$work/bridge-lake" -name '*.csv.gz' ! -name '.*' | wc -l) files, $(du -sh "$work/bridge-lake" | cut -f1)"
if [ "${TS_AGG_LIBRARY:-1}" != 0 ]; then
  "$bin/bench-aggregate" run "$KAFKA_BOOTSTRAP" bench.readings "$n" "$work/lake"
  echo "          library lake: $(find "$work/lake" -name '*.csv.gz' ! -name '.*' | wc -l) files, $(du -sh "$work/lake" | cut -f1)"
fi
