#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-bridge --role aggregate against the reference Spark job on the same Kafka topic
# (issue 14). N readings (default 2,000,000; 100 agents x 50 turnstiles, one reading per
# turnstile and minute, `bench-aggregate fill`) go into a fresh 4-partition topic of the test
# Kafka. Then, interleaved for ROUNDS rounds (default 2), each reads the whole topic into its own
# output, from process start to exit, each on a quiet machine (settle, below):
#   - the reference Spark job, ../shared/anchors/seed_spark.py (PySpark 4.0.0, local[2]), under
#     spark-submit with Spark's Kafka source passed with --jars (../shared/anchors/README.md);
#   - the real turnstile-bridge --role aggregate --until-end (acks and station windows on, as
#     deployed, with a mosquitto broker for the acks): it reads the topic up to its end as it
#     was when assigned and exits by itself after its final checkpoints, as Spark's
#     availableNow does; its last status line must count N readings.
# Prints readings/s (N / wall time from process start to exit), CPU seconds (user + system of
# the process and every child it waited for) and peak RSS (of the largest process: Spark's JVM,
# the bridge) of each run, the medians and the ratios. Then checks, for every round, that the
# two agree window by window: the same keys (CA, UNIT, SCP, STATION, LINENAME, DIVISION, DATE,
# TIME = the window's end, DESC) with the same ENTRIES and EXITS. Spark writes DATE in the wire
# form MM-DD-YY and has no late rows; the lake writes MM/DD/YYYY and keeps late rows in late-
# files (docs/lake.md): DATE is compared as a date, and the bridge's part- and late- rows of a
# key are summed. Windows still open when a job ends are not written by either (both hold back
# the last window: watermark = one window); a key that only one side wrote is a failure unless
# its window ends after the last window the other side wrote. Any difference: exit 1.
# Each run is bounded: Spark 600 s + N/1000 s (then killed), the bridge 120 s + N/5000 s.
#
# Usage: bash bench/vs-spark.sh [N] [ROUNDS]
#   binaries from $TS_BIN_DIR (default build-release/bin: ./scripts/build --release);
#   TS_VS_SPARK_KEEP=1 keeps the work directory (/tmp/ts-vs-spark.*) and prints it.
# Installs what it needs into .cache (git-ignored): pyspark (scripts/venv-fetch, .cache/venv)
# and the four jars of Spark's Kafka source (bench/spark/pom.xml, .cache/spark-kafka).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-2000000}
rounds=${2:-2}
bin=${TS_BIN_DIR:-$root/build-release/bin}
anchor=$root/../shared/anchors/seed_spark.py
cache=${TS_CACHE_DIR:-$root/.cache}
topic=bench.readings
die() { echo "vs-spark.sh: $*" >&2; exit 1; }
# 5,000 readings a minute: 100,000 make 4 windows of 5 minutes, 2 of them closed
[[ $n =~ ^[1-9][0-9]*$ ]] && ((n >= 100000)) || die "N must be an integer of 100000 or more"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
for b in turnstile-bridge bench-aggregate; do
  [ -x "$bin/$b" ] || die "$bin/$b missing (./scripts/build --release)"
done
[ -f "$anchor" ] || die "$anchor missing (the reference Spark job of ../shared/anchors)"

# ---- what Spark needs: pyspark in .cache/venv, the Kafka source's jars (as scripts/kafka-fetch)
python=$("$root/scripts/venv-fetch" --python)
spark_jars() {
  local pom=$root/bench/spark/pom.xml version dest jars stamp want tmp j
  version=$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$pom" | head -n 1)
  dest=$cache/spark-kafka/$version
  jars=$dest/jars
  stamp=$dest/complete
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
    command -v mvn >/dev/null || die "mvn not found (scripts/deps installs maven)"
    mkdir -p "$dest"
    tmp=$dest/jars.tmp.$$
    rm -rf "$tmp" "$stamp"
    echo "vs-spark.sh: fetching Spark's Kafka source $version from Maven Central into $jars" >&2
    if ! mvn -q -B --no-transfer-progress --strict-checksums -Dstyle.color=never -f "$pom" \
        -Dmaven.repo.local="$cache/m2" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$dest/mvn.log" 2>&1; then
      tail -n 30 "$dest/mvn.log" >&2
      rm -rf "$tmp"
      die "mvn failed"
    fi
    rm -rf "$jars"
    mv "$tmp" "$jars"
    echo "$want" >"$stamp"
  fi
  for j in spark-sql-kafka-0-10_2.13 spark-token-provider-kafka-0-10_2.13 kafka-clients commons-pool2; do
    compgen -G "$jars/$j-[0-9]*.jar" >/dev/null || die "$j missing in $jars"
  done
  ls "$jars"/*.jar | paste -sd, -
}
jars=$(spark_jars)
spark_submit=$(dirname "$python")/spark-submit
[ -x "$spark_submit" ] || die "$spark_submit missing (pyspark in .cache/venv)"

work=$(mktemp -d /tmp/ts-vs-spark.XXXXXX)
cleanup() {
  [ -z "${bridge_pid:-}" ] || kill -KILL "$bridge_pid" 2>/dev/null || true
  if [ -n "${TS_VS_SPARK_KEEP:-}" ]; then echo "vs-spark.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}
. "$root/tests/integration/broker.sh"
. "$root/tests/integration/kafka.sh"
broker_start
kafka_start
kafka_create_topic "$topic" 4
kafka_create_topic bench.deadletter 1

# measure OUT PIDFILE CMD...: runs CMD (its pid in PIDFILE), waits for it and writes
# "wall_s cpu_s maxrss_kib rc" to OUT: wall from fork to exit, CPU and peak RSS from
# wait4's rusage (the process and the children it waited for; RSS of the largest one)
cat >"$work/measure.py" <<'EOF'
import os, sys, time
out, pidfile, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.setsid()   # its own session: Ctrl-C of the script does not reach it twice
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
with open(pidfile + ".tmp", "w") as f:
    f.write(f"{pid}\n")
os.rename(pidfile + ".tmp", pidfile)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
rc = os.waitstatus_to_exitcode(status)
with open(out, "w") as f:
    f.write(f"{wall:.3f} {ru.ru_utime + ru.ru_stime:.2f} {ru.ru_maxrss} {rc}\n")
EOF

echo "vs-spark.sh: $n readings, 100 agents x 50 turnstiles, 4 partitions; $rounds rounds; $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" "$topic" "$n"

# settle: waits (up to 15 s) until the machine is quiet, below 0.3 busy cores over half a
# second, so that a run does not share the cores with the end of the one before it (Spark's
# JVM and Python workers take seconds to leave); before every run of either
settle() {
  local a b i
  for ((i = 0; i < 30; i++)); do
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 0.5
    read -r -a b < <(head -n 1 /proc/stat)
    # cpu user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    awk -v u=$((b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8])) \
        -v t=$((b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[4] - a[5] - a[6] - a[7] - a[8])) \
        -v c="$(nproc)" 'BEGIN { exit !(t > 0 && u / t * c < 0.3) }' && return 0
  done
  echo "vs-spark.sh: the machine stayed busy for 15 s; running anyway" >&2
}

run_spark() { # R
  local r=$1 out=$work/spark-$1
  SPARK_KAFKA_JARS=$jars PYSPARK_PYTHON=$python \
    "$python" "$work/measure.py" "$out.m" "$out.pid" \
    timeout -k 30 $((600 + n / 1000)) \
    "$spark_submit" --master 'local[2]' --jars "$jars" \
    "$anchor" "$KAFKA_BOOTSTRAP" "$topic" "$out.csv" >"$out.log" 2>&1 ||
    die "spark round $r failed: $(tail -n 20 "$out.log")"
  read -r wall cpu rss rc <"$out.m"
  [ "$rc" = 0 ] || die "spark round $r exited $rc: $(tail -n 20 "$out.log")"
  grep -q "^spark rows_in=$n " "$out.log" || die "spark round $r did not read $n rows: $(grep '^spark ' "$out.log")"
  result spark "$r" "$wall" "$cpu" "$rss"
}

run_bridge() { # R
  local r=$1 out=$work/bridge-$1 got=0
  {
    printf '[bridge]\nid = vs-spark-%s\nstatus_interval_ms = 200\nmax_event_age_s = 0\n' "$r"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\n' "$BROKER_PORT"
    printf '[kafka]\nbrokers = %s\nreadings_topic = %s\ndeadletter_topic = bench.deadletter\n' \
      "$KAFKA_BOOTSTRAP" "$topic"
    printf 'group_id = vs-spark-%s\n' "$r"
    printf '[lake]\npath = %s/lake\n' "$out"
  } >"$out.conf"
  rm -f "$out.pid"
  "$python" "$work/measure.py" "$out.m" "$out.pid" \
    "$bin/turnstile-bridge" -c "$out.conf" --role aggregate --until-end >"$out.log" 2>&1 &
  local waiter=$!
  for _ in $(seq 100); do [ -s "$out.pid" ] && break; sleep 0.05; done
  bridge_pid=$(cat "$out.pid")
  # it stops by itself at the topic's end; a bound, should it never get there
  local deadline=$((SECONDS + 120 + n / 5000))
  while kill -0 "$waiter" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
  kill -0 "$waiter" 2>/dev/null && kill -TERM "$bridge_pid" 2>/dev/null &&
    echo "vs-spark.sh: bridge round $r did not stop at the topic's end in time" >&2
  wait "$waiter" || die "bridge round $r: the measuring process failed: $(tail -n 20 "$out.log")"
  got=$({ grep -o 'aggregate: [^;]*' "$out.log" || true; } | tail -n 1 |
        sed -n 's/.* \([0-9]*\) readings,.*/\1/p')
  bridge_pid=
  read -r wall cpu rss rc <"$out.m"
  [ "$rc" = 0 ] || die "bridge round $r exited $rc: $(tail -n 20 "$out.log")"
  [ "${got:-0}" = "$n" ] || die "bridge round $r counted ${got:-0} readings, not $n: $(tail -n 5 "$out.log")"
  result bridge "$r" "$wall" "$cpu" "$rss"
}

result() { # WHO R WALL CPU RSS_KIB
  printf '%s %s %s %s %s\n' "$@" >>"$work/results"
  awk -v who="$1" -v r="$2" -v w="$3" -v c="$4" -v m="$5" -v n="$n" 'BEGIN {
    printf "round %d %-6s %9.0f readings/s  %7.2f s  CPU %6.2f s  peak RSS %6.0f MiB\n", r, who, n / w, w, c, m / 1024 }'
}

: >"$work/results"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then settle; run_spark "$r"; settle; run_bridge "$r"
  else settle; run_bridge "$r"; settle; run_spark "$r"; fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"

# medians of each, and the ratios
awk -v n="$n" '
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { k[$1]++; w[$1, k[$1]] = $3; c[$1, k[$1]] = $4; m[$1, k[$1]] = $5 }
  END {
    for (who in k) {
      for (i = 1; i <= k[who]; i++) { a[i] = w[who, i] }; W[who] = median(a, k[who])
      for (i = 1; i <= k[who]; i++) { a[i] = c[who, i] }; C[who] = median(a, k[who])
      for (i = 1; i <= k[who]; i++) { a[i] = m[who, i] }; M[who] = median(a, k[who])
    }
    printf "median  spark  %9.0f readings/s  CPU %6.2f s  peak RSS %6.0f MiB\n", n / W["spark"], C["spark"], M["spark"] / 1024
    printf "median  bridge %9.0f readings/s  CPU %6.2f s  peak RSS %6.0f MiB\n", n / W["bridge"], C["bridge"], M["bridge"] / 1024
    printf "bridge / spark: %.1fx the rate, %.1fx less CPU, %.1fx less peak RSS\n",
      W["spark"] / W["bridge"], C["spark"] / C["bridge"], M["spark"] / M["bridge"]
  }' "$work/results"

# ---- the sums, window by window, every round
cat >"$work/compare.py" <<'EOF'
import csv, glob, gzip, os, sys
spark_dir, lake = sys.argv[1], sys.argv[2]
KEY = ("CA", "UNIT", "SCP", "STATION", "LINENAME", "DIVISION", "DATE", "TIME", "DESC")

def add(d, row, date):
    k = tuple(row[c] if c != "DATE" else date for c in KEY)
    e, x = d.get(k, (0, 0))
    d[k] = (e + int(row["ENTRIES"]), x + int(row["EXITS"]))

spark, bridge, late = {}, {}, 0
files = sorted(glob.glob(os.path.join(spark_dir, "part-*.csv")))
for f in files:
    with open(f, newline="") as fh:
        for row in csv.DictReader(fh):
            m, d, y = row["DATE"].split("-")   # the wire's MM-DD-YY
            add(spark, row, f"20{y}-{m}-{d}")
lake_files = sorted(glob.glob(os.path.join(lake, "*", "*=*", "*.csv.gz")))
for f in lake_files:
    with gzip.open(f, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            m, d, y = row["DATE"].split("/")   # the lake's MM/DD/YYYY
            add(bridge, row, f"{y}-{m}-{d}")
            late += os.path.basename(f).startswith("late-")
if not spark or not bridge:
    sys.exit(f"no rows: spark {len(spark)} ({len(files)} files), bridge {len(bridge)} ({len(lake_files)} files)")
end = lambda k: (k[6], k[7])   # the window's end: DATE, TIME
last = min(max(map(end, spark)), max(map(end, bridge)))
bad = [k for k in spark.keys() & bridge.keys() if spark[k] != bridge[k]]
only = [(who, k) for who, a, b in (("spark", spark, bridge), ("bridge", bridge, spark))
        for k in a.keys() - b.keys() if end(k) <= last]
tail = sum(1 for a, b in ((spark, bridge), (bridge, spark)) for k in a.keys() - b.keys() if end(k) > last)
for k in sorted(bad)[:10]:
    print("DIFFERENT", ",".join(k), "spark", spark[k], "bridge", bridge[k])
for who, k in sorted(only)[:10]:
    print("ONLY IN", who, ",".join(k))
same = len(spark.keys() & bridge.keys())
print(f"{same} windows x keys in both, {len(bad)} with different sums, {len(only)} in one only, "
      f"{tail} after the last window the other wrote (not compared); bridge late rows {late}; "
      f"entries {sum(v[0] for v in spark.values())} (spark) {sum(v[0] for v in bridge.values())} (bridge)")
sys.exit(1 if bad or only or same == 0 else 0)
EOF
fail=0
for ((r = 1; r <= rounds; r++)); do
  printf 'round %d sums: ' "$r"
  "$python" "$work/compare.py" "$work/spark-$r.csv" "$work/bridge-$r/lake" || fail=1
done
[ "$fail" = 0 ] || die "Spark and the bridge do not agree (above)"
echo "vs-spark.sh: the sums agree window by window in every round"
