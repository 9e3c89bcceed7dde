#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regression test (issue 15): the lake as the engines a data engineer points at it read it. The
# partition folders were date=YYYY-MM-DD while the files have a DATE column: Hive, Spark, Trino
# and DuckDB compare names without regard to case, so Spark refused the table ("Found duplicate
# column(s) in the data schema and the partition schema") and DuckDB silently kept the file's
# DATE and lost the partition key. Now the key is event_date (docs/lake.md, "Layout").
#
# The real bridge (--role aggregate) writes a small lake: 3 agents, one turnstile each, one
# reading a minute from 23:50 to 00:09 (two dates, so two partitions). Then one Python process
# (.cache/venv from scripts/venv-fetch: duckdb, pyspark) reads the table's folder with DuckDB's
# read_csv(hive_partitioning = true) and with Spark's partition discovery (spark.read.csv of the
# folder), and checks: as many rows as the visible files hold, the files' DATE column as written
# (MM/DD/YYYY), a partition column event_date equal to each row's DATE, two partitions, and per
# turnstile the sums that were sent. The same checks on a copy of the lake with its folders
# renamed to the old date=YYYY-MM-DD must fail in both engines (the collision this test pins).
#
# The object lake (issue 17): a second bridge (its own consumer group, [lake] url = s3://lake/t)
# writes the same input to a bucket of S3Proxy (tests/integration/s3proxy.sh), and pyarrow reads
# it back through the S3 API as a data engineer would (pyarrow.fs.S3FileSystem with
# endpoint_override, scheme http; pyarrow.dataset with hive partitioning, which skips the
# hidden '.' temporaries and '_manifest'): the same checks, and the same rows (as a multiset) as
# pyarrow reading the POSIX lake. pyarrow's AWS SDK asks for checksums by default (a GET with
# x-amz-checksum-mode: ENABLED), which S3Proxy 2.6.0 answers with 501: the SDK's
# AWS_RESPONSE_CHECKSUM_VALIDATION / AWS_REQUEST_CHECKSUM_CALCULATION = when_required turn that
# off, as they would for any S3 API server without flexible checksums. DuckDB's httpfs extension cannot be installed here (no
# extension server; docs/lake.md, "Object storage"), so DuckDB reads only the POSIX lake.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-lake-readers.XXXXXX)
trap 'bridge_test_cleanup' EXIT   # bridge.sh: bridges, broker, Kafka, $work (S3Proxy: its own trap)
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"
passes=0 fails=0

python=$("$src/scripts/venv-fetch" --python)   # instant when scripts/test made it
t0=$SECONDS
bridge_test_servers 2
s3proxy_start lake

# readings AGENT SCP: 20 lines, one a minute from 2023-06-03 23:50 (UTC, the station's time),
# seq 1..20; "SCP ENTRIES EXITS" sent go to $work/sent
readings() {
  awk -v agent="$1" -v scp="$2" -v sent="$work/sent" 'BEGIN {
    base = 1685836200   # 2023-06-03 23:50:00Z
    for (k = 0; k < 20; k++) {
      t = base + 60 * k; seq = k + 1; e = 1 + seq % 9; x = seq % 4; ce += e; cx += x
      d = strftime("%m-%d-%y", t, 1); hm = strftime("%H:%M:%S", t, 1); ts = strftime("%Y-%m-%d %H:%M:%S", t, 1)
      printf "A002,R051,%s,59 ST,NQR456W,BMT,%s,%s,REGULAR,%d,%d,%s:%d,%s,%d000,%d,%d,,%d\n",
        scp, d, hm, e, x, agent, seq, ts, t, ce, cx, seq
    }
    printf "%s %d %d\n", scp, ce, cx >> sent
  }'
}
: >"$work/sent"
for k in 0 1 2; do
  readings "a-$k" "02-00-0$k" >"$work/a-$k.csv"
done
sort -o "$work/sent" "$work/sent"
total=60
sent_entries=$(awk '{ e += $2 } END { print e }' "$work/sent")

BRIDGE_EXTRA=$'max_event_age_s = 0\nmax_event_ahead_s = 0' bridge_conf "$work/bridge.conf" b1
bridge_start b1 "$work/bridge.conf" --role aggregate
# the same input to the object lake: its own group, so it reads every reading too
BRIDGE_EXTRA=$'max_event_age_s = 0\nmax_event_ahead_s = 0' bridge_conf "$work/bridge-s3.conf" b2 "$(s3proxy_lake s3://lake/t)"
sed -i -e 's/^\[kafka\]$/[kafka]\ngroup_id = readers-s3/' -e "s|^path = .*|path = $work/spool|" "$work/bridge-s3.conf"
bridge_start b2 "$work/bridge-s3.conf" --role aggregate
for k in 0 1 2; do
  kcat -b "$KAFKA_BOOTSTRAP" -P -t turnstile.readings -k "a-$k" \
    -H "mqtt_topic=turnstile/v1/S1/a-$k/readings" <"$work/a-$k.csv" 2>>"$work/kcat.err"
done
committed_entries() { # [ROOT]: what the checkpoints of both partitions name
  cat "${1:-$work/lake}"/turnstile/_manifest/turnstile.readings-*/*.ckpt 2>/dev/null |
    awk '$1 == "file" { e += $6 } END { print e + 0 }'
}
bucket=$S3PROXY_DATA/lake/t   # S3Proxy's filesystem store: only to wait for the commit
for ((i = 0; i < 900; i++)); do   # at most about 90 s; stops as soon as all is committed
  [ "$(committed_entries)" = "$sent_entries" ] && [ "$(committed_entries "$bucket")" = "$sent_entries" ] && break
  kill -0 "${BRIDGE_PID[b1]}" 2>/dev/null && kill -0 "${BRIDGE_PID[b2]}" 2>/dev/null || break
  sleep 0.1
done
bridge_kill b1 TERM
bridge_kill b2 TERM
check "the bridge committed every reading ($sent_entries entries)" \
  test "$(committed_entries)" = "$sent_entries"
check "the bridge on the object lake committed every reading ($sent_entries entries)" \
  test "$(committed_entries "$bucket")" = "$sent_entries"
check "the lake's sums per turnstile are those sent" diff "$work/sent" <(lake_sums)
rows=$(lake_rows | wc -l)
check "the lake has $total rows, under event_date=2023-06-03 and event_date=2023-06-04" \
  test "$rows" = "$total" -a \
  "$(cd "$work/lake/turnstile" && ls -d event_date=* | tr '\n' ' ')" = "event_date=2023-06-03 event_date=2023-06-04 "

# the layout of the bridges before: the same files under date=YYYY-MM-DD
mkdir -p "$work/old"
cp -a "$work/lake/turnstile" "$work/old/turnstile"
for d in "$work/old/turnstile"/event_date=*; do
  [ ! -d "$d" ] || mv "$d" "$work/old/turnstile/date=${d##*=}"
done
echo "lake written and committed after $((SECONDS - t0)) s"

cat >"$work/read.py" <<'EOF'
"""read.py EXPECTED_ROWS SENT KEY:TABLE...: for each lake table folder (partitioned by KEY),
one line per engine:
"<engine> <folder>: ok" or "<engine> <folder>: FAIL <why>"."""
import os, sys, traceback
import duckdb
from pyspark.sql import SparkSession

rows_expected = int(sys.argv[1])
sent = {}
for line in open(sys.argv[2]):
    scp, e, x = line.split()
    sent[scp] = (int(e), int(x))

def check(rows, names, key):
    """rows: dicts of a row's columns; names: the columns; key: the folders' partition key.
    Both the files' DATE and the partition column must be there, as two columns."""
    cols = [n for n in names if n.lower() in ("date", key.lower())]
    if key.lower() == "date" and len(cols) < 2:   # one name for two columns: one is lost
        return f"one column {cols} for the files' DATE and the partition key {key} (columns {names})"
    if "DATE" not in names or key not in names:
        return f"no DATE or no {key} column (columns {names})"
    if len(rows) != rows_expected:
        return f"{len(rows)} rows, not {rows_expected}"
    sums, dates = {}, set()
    for r in rows:
        day = r["DATE"]   # MM/DD/YYYY as the files hold it (DuckDB's sniffer makes it a date)
        if isinstance(day, str):
            m, d, y = day.split("/")
            day = f"{y}-{m}-{d}"
        if str(r[key]) != str(day):
            return f"{key} {r[key]} for DATE {r['DATE']}"
        dates.add(str(r[key]))
        e, x = sums.get(r["SCP"], (0, 0))
        sums[r["SCP"]] = (e + int(r["ENTRIES"]), x + int(r["EXITS"]))
    if sums != sent:
        return f"sums {sums}, sent {sent}"
    if dates != {"2023-06-03", "2023-06-04"}:
        return f"partitions {sorted(dates)}"
    return None

def duck(table):
    # dateformat: the sniffer takes 06/03/2023 for the 6th of March (docs/lake.md, "Reading the lake")
    rel = duckdb.sql(f"SELECT * FROM read_csv('{table}/*/*.csv.gz', hive_partitioning = true, "
                     "header = true, dateformat = '%m/%d/%Y')")
    return [dict(zip(rel.columns, t)) for t in rel.fetchall()], rel.columns

spark = (SparkSession.builder.master("local[1]").appName("lake-readers")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")

def sparked(table):
    df = spark.read.option("header", True).csv(table)   # partition discovery
    return [r.asDict() for r in df.collect()], df.columns

for arg in sys.argv[3:]:
    key, table = arg.split(":", 1)
    for engine, read in (("duckdb", duck), ("spark", sparked)):
        try:
            why = check(*read(table), key)
        except Exception as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        print(f"{engine} {table}: " + ("ok" if why is None else "FAIL " + why), flush=True)
spark.stop()

# The object lake through the S3 API (pyarrow's own S3 client): TS_S3_* from the test, the POSIX
# table of the same input to compare with. pyarrow.dataset skips names starting with '.' or '_'
# (the hidden temporaries, _manifest), as Spark and DuckDB skip '.' names.
if os.environ.get("TS_S3_TABLE"):
    from collections import Counter
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    def arrow(table, fs):
        t = ds.dataset(table, filesystem=fs, format="csv", partitioning="hive").to_table()
        return t.to_pylist(), t.column_names

    s3 = pafs.S3FileSystem(access_key=os.environ["TS_S3_KEY_ID"], secret_key=os.environ["TS_S3_SECRET"],
                           endpoint_override=os.environ["TS_S3_ENDPOINT"], scheme="http",
                           region="us-east-1")
    s3_table, posix_table = os.environ["TS_S3_TABLE"], os.environ["TS_S3_POSIX_TABLE"]
    got = {}
    for name, table, fs in (("pyarrow-s3", s3_table, s3), ("pyarrow", posix_table, pafs.LocalFileSystem())):
        try:
            got[name] = arrow(table, fs)
            why = check(*got[name], "event_date")
        except Exception as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        print(f"{name} {table}: " + ("ok" if why is None else "FAIL " + why), flush=True)
    if len(got) == 2:
        rows = {k: Counter(tuple(sorted((c, str(v)) for c, v in r.items())) for r in v[0]) for k, v in got.items()}
        only_s3 = rows["pyarrow-s3"] - rows["pyarrow"]
        only_posix = rows["pyarrow"] - rows["pyarrow-s3"]
        print("same rows in the object lake and the POSIX lake: " +
              ("ok" if not only_s3 and not only_posix else
               f"FAIL {sum(only_s3.values())} row(s) only in the bucket, {sum(only_posix.values())} only on POSIX"
               f" (e.g. {next(iter(only_s3 or only_posix))})"), flush=True)
EOF
TS_S3_TABLE=lake/t/turnstile TS_S3_POSIX_TABLE="$work/lake/turnstile" TS_S3_ENDPOINT=${S3PROXY_ENDPOINT#http://} \
TS_S3_KEY_ID=$S3PROXY_KEY_ID TS_S3_SECRET=$S3PROXY_SECRET AWS_EC2_METADATA_DISABLED=true \
AWS_RESPONSE_CHECKSUM_VALIDATION=when_required AWS_REQUEST_CHECKSUM_CALCULATION=when_required \
"$python" "$work/read.py" "$total" "$work/sent" "event_date:$work/lake/turnstile" "date:$work/old/turnstile" \
  >"$work/read.out" 2>"$work/read.err" || { echo "read.py failed:"; tail -n 30 "$work/read.err"; }
cat "$work/read.out"
echo "DuckDB, Spark and pyarrow done after $((SECONDS - t0)) s"
check "DuckDB (hive_partitioning) reads the lake: rows, DATE, event_date, sums" \
  grep -qx "duckdb $work/lake/turnstile: ok" "$work/read.out"
check "Spark (partition discovery) reads the lake: rows, DATE, event_date, sums" \
  grep -qx "spark $work/lake/turnstile: ok" "$work/read.out"
check "the old date= layout fails the same checks in DuckDB (the key lost to the file's DATE)" \
  grep -q "^duckdb $work/old/turnstile: FAIL " "$work/read.out"
check "the old date= layout fails the same checks in Spark (the files' DATE lost to the key)" \
  grep -q "^spark $work/old/turnstile: FAIL " "$work/read.out"
check "pyarrow's S3 filesystem reads the object lake from S3Proxy: rows, DATE, event_date, sums" \
  grep -qx "pyarrow-s3 lake/t/turnstile: ok" "$work/read.out"
check "pyarrow reads the POSIX lake: rows, DATE, event_date, sums" \
  grep -qx "pyarrow $work/lake/turnstile: ok" "$work/read.out"
check "the object lake holds the same rows as the POSIX lake of the same input" \
  grep -qx "same rows in the object lake and the POSIX lake: ok" "$work/read.out"
finish
