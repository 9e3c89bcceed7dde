#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Aggregation to the object lake against the POSIX lake, in the same run: N readings
# (default 1,000,000; bench-aggregate fill's input, as bench/aggregate.sh's) produced
# into a fresh 4-partition topic of a real Kafka (KRaft, loopback), then read, one after
# the other, by the real `turnstile-bridge --role aggregate` (aggregate.sh's `bridge` run:
# acks through a private mosquitto, checkpoints every 5 s, config defaults otherwise),
# each in its own consumer group:
#   posix   [lake] path = a local directory
#   s3      [lake] url = s3://lake/t on S3Proxy 2.6.0 (filesystem-nio2 store, on the same
#           machine and disk, tests/integration/s3proxy.sh) at http://localhost:PORT,
#           path-style, path = the local spool, conditional_writes = no (S3Proxy has none)
# Each is timed from the process start to its exit: SIGTERM once its status line counts
# N readings, its final checkpoint (uploads, checkpoint PUT, copies) included. Prints one
# line each (rate, the bridge's CPU s and peak RSS; for s3 also S3Proxy's CPU s over the
# run) and the ratio s3 / posix; then checks that the two lakes hold the same rows and
# that no hidden object is left in the bucket.
# TS_LAKE_S3_FIRST=1 runs s3 first (on a shared machine, alternate the order).
# TS_LAKE_CHECKPOINT_MS=200 sets both runs' checkpoint_interval_ms (default 5000): more
# commits, so the store's cost per commit weighs more.
# Usage: bash bench/lake-s3.sh [N]      (binaries from $TS_BIN_DIR, default build-release/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
bin=${TS_BIN_DIR:-$root/build-release/bin}
for b in bench-aggregate turnstile-bridge; do
  [ -x "$bin/$b" ] || { echo "lake-s3.sh: $bin/$b missing (./scripts/build --release)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/ts-bench-lake-s3.XXXXXX)
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
. "$root/tests/integration/s3proxy.sh"   # its EXIT trap runs the one above after its own
broker_start
kafka_start
s3proxy_start lake
kafka_create_topic bench.readings 4
kafka_create_topic turnstile.deadletter 1
echo "lake-s3.sh: $n readings, 100 agents x 50 turnstiles, one reading per turnstile and minute; checkpoints every ${TS_LAKE_CHECKPOINT_MS:-5000} ms; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" bench.readings "$n"

declare -A rate=()
# run_bridge NAME: one run of the bridge, its own group and lake
run_bridge() {
  local name=$1 lake
  if [ "$name" = s3 ]; then
    lake="path = $work/s3-spool
url = s3://lake/t
endpoint = $S3PROXY_ENDPOINT
path_style = true
conditional_writes = no
key_id_file = $S3PROXY_KEY_ID_FILE
secret_file = $S3PROXY_SECRET_FILE"
  else
    lake="path = $work/posix-lake"
  fi
  [ -z "${TS_LAKE_CHECKPOINT_MS:-}" ] || lake="$lake
checkpoint_interval_ms = $TS_LAKE_CHECKPOINT_MS"
  cat >"$work/$name.conf" <<EOF
[bridge]
id = bench-lake-$name
status_interval_ms = 100
max_event_age_s = 0
[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
[kafka]
brokers = $KAFKA_BOOTSTRAP
readings_topic = bench.readings
group_id = bench-lake-$name
[lake]
$lake
EOF
  local start end readings=0 bp s3p0=0 s3p1=0
  if [ "$name" = s3 ]; then sample "$S3PROXY_PID"; s3p0=${ticks[$S3PROXY_PID]}; fi
  start=$(date +%s%N)
  "$bin/turnstile-bridge" -c "$work/$name.conf" --role aggregate >"$work/$name.out" 2>"$work/$name.err" &
  bridge_pid=$!; bp=$bridge_pid
  while sample "$bridge_pid"; do
    readings=$(sed -n 's/.* \([0-9]*\) readings, .*/\1/p' "$work/$name.err" | tail -n 1)
    [ "${readings:-0}" -lt "$n" ] || break
    tick
  done
  [ "${readings:-0}" -ge "$n" ] || { tail -n 20 "$work/$name.err" >&2; echo "lake-s3.sh: the bridge stopped before $n readings" >&2; exit 1; }
  kill -TERM "$bridge_pid"
  while sample "$bridge_pid"; do tick; done
  wait "$bridge_pid" || { tail -n 20 "$work/$name.err" >&2; echo "lake-s3.sh: the bridge failed" >&2; exit 1; }
  end=$(date +%s%N)
  if [ "$name" = s3 ]; then sample "$S3PROXY_PID"; s3p1=${ticks[$S3PROXY_PID]}; fi
  local cpu=${ticks[$bridge_pid]}
  bridge_pid=
  rate[$name]=$(awk -v n="$n" -v ns=$((end - start)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
  awk -v n="$n" -v ns=$((end - start)) -v cpu="$(ticks_s "$cpu")" -v kb="${hwm[$bp]:-0}" \
      -v s3cpu="$(ticks_s $((s3p1 - s3p0)))" -v name="$name" 'BEGIN {
    s = ns / 1e9; r = n / s
    printf "%-6s %d readings in %.2f s (process start to exit): %.0f/s; CPU %.2f s (%.0f readings per CPU second); peak RSS %.1f MiB", name, n, s, r, cpu, n / cpu, kb / 1024
    if (name == "s3") printf "; S3Proxy CPU %.2f s", s3cpu
    printf "\n"
  }'
  grep -o 'aggregate: [^;]*' "$work/$name.err" | tail -n 1 | sed 's/^/       /'
}

# lake_rows DIR: every row of the visible data files, sorted, each after its folder and its
# file's kind (part or late), without its row number (as aggregate.sh's)
lake_rows() {
  (cd "$1" && find . -name '*.csv.gz' ! -name '.*' | while read -r f; do
     gzip -dc "$f" | awk -v d="${f%/*}" -v k="${f##*/}" 'NR > 1 { sub(/^[^,]*,/, ""); print d, substr(k, 1, 4), $0 }'
   done | LC_ALL=C sort)
}

if [ "${TS_LAKE_S3_FIRST:-0}" = 1 ]; then run_bridge s3; run_bridge posix
else run_bridge posix; run_bridge s3; fi
awk -v s="${rate[s3]}" -v p="${rate[posix]}" 'BEGIN { printf "ratio  s3 / posix: %.2f\n", s / p }'
# the bucket's objects are files under S3Proxy's filesystem-nio2 directory, one per key
bucket=$S3PROXY_DATA/lake/t
echo "       posix lake: $(find "$work/posix-lake" -name '*.csv.gz' ! -name '.*' | wc -l) files; bucket: $(find "$bucket" -name '*.csv.gz' ! -name '.*' | wc -l) objects"
hidden=$(find "$bucket" -name '.*' | wc -l)
[ "$hidden" = 0 ] || { echo "lake-s3.sh: $hidden hidden objects left in the bucket" >&2; exit 1; }
if cmp -s <(lake_rows "$work/posix-lake") <(lake_rows "$bucket"); then
  echo "       the two lakes hold the same rows ($(lake_rows "$work/posix-lake" | wc -l))"
else
  echo "lake-s3.sh: the POSIX lake and the bucket hold different rows" >&2
  exit 1
fi
