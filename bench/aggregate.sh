#!/usr/bin/env bash
# The aggregator, Kafka to the lake: N readings (default 10,000,000) produced
# into a fresh 4-partition topic of a real Kafka 3.9.1 (KRaft, loopback), then
# read by a bare librdkafka consumer (the ceiling of Kafka and librdkafka on
# this machine) and by turnstile-bridge's aggregator (dedup, 5-minute windows,
# gzip CSV files, checkpoints). Prints one line each: rate, CPU, peak RSS.
# Usage: bash bench/aggregate.sh [N]      (binaries from $TS_BIN_DIR, default build-release/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10000000}
bin=${TS_BIN_DIR:-$root/build-release/bin}
[ -x "$bin/bench-aggregate" ] || { echo "aggregate.sh: $bin/bench-aggregate missing (./scripts/build --release)" >&2; exit 1; }
work=$(mktemp -d /tmp/ts-bench-agg.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}
. "$root/tests/integration/kafka.sh"
kafka_start
kafka_create_topic bench.readings 4
echo "aggregate.sh: $n readings, 100 agents x 50 turnstiles, one reading per turnstile and minute; $(nproc) cores"
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" bench.readings "$n"
"$bin/bench-aggregate" consume "$KAFKA_BOOTSTRAP" bench.readings "$n"
"$bin/bench-aggregate" run "$KAFKA_BOOTSTRAP" bench.readings "$n" "$work/lake"
echo "lake: $(find "$work/lake" -name '*.csv.gz' ! -name '.*' | wc -l) files, $(du -sh "$work/lake" | cut -f1)"
