#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bridge's object lake end to end (issue 17): turnstile-bridge --role
# aggregate with [lake] url = s3://lake/t on a real S3 API server (S3Proxy,
# tests/integration/s3proxy.sh), a real mosquitto and Kafka, the input of
# test_bridge_lake_expected (3 steps: 720 readings, 180 late ones, 54
# duplicates); then SIGTERM. The visible objects of the bucket (names not
# starting with '.', read from S3Proxy's filesystem store: the bucket's keys
# are its files) must be the same files with the same CSV as the POSIX lake,
# tests/integration/lake_expected.txt, and no hidden object may be left.
# Then a crash: a second bridge (its own topic, group and bucket, checkpoints
# every 300 ms) takes step 1, is SIGKILLed just after step 2 is produced
# (mid-run: files being uploaded, a checkpoint perhaps half done), is started
# again, takes step 3 (duplicates) and stops. Whether a reading is late
# depends on how it is cut into batches (after the restart steps 1 and 2 may
# come in one batch), so what is compared is the accounting: ENTRIES and EXITS
# summed per turnstile, date and time over the bucket's visible files equal
# those of lake_expected.txt (nothing lost, nothing twice), nothing hidden left.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
expected=$src/tests/integration/lake_expected.txt
work=$(mktemp -d /tmp/ts-lake-s3.XXXXXX)
trap 'bridge_test_cleanup' EXIT   # bridge.sh: bridges, broker, Kafka, $work (S3Proxy: its own trap)
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
s3proxy_start lake crash || fail "S3Proxy did not start"
bridge_test_servers 2
kafka_create_topic crash.readings 2

cat >"$work/bridge.conf" <<EOF
[bridge]
id = lake-s3
status_interval_ms = 100
max_event_age_s = 0
[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
[kafka]
brokers = $KAFKA_BOOTSTRAP
session_timeout_ms = 6000
[lake]
path = $work/spool
$(s3proxy_lake s3://lake/t)
agent_idle_s = 0
window_s = 300
idle_s = 0
checkpoint_interval_ms = 3600000
EOF
"$bin/turnstile-bridge" --check-config -c "$work/bridge.conf" || fail "--check-config refused it"

topic=turnstile.readings
fill() { "$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" "$topic" "$1" 6 3 "$2" "$3" >>"$work/fill.out"; }
wait_status() { agg_wait_status "$1" "$2" || fail "waiting for the status line '$1'"; }

bridge_start agg "$work/bridge.conf" --role aggregate
lake_expected_input agg "$topic" || fail "the fixed input was not taken"

bucket=$S3PROXY_DATA/lake/t
[ -d "$bucket" ] || fail "nothing in the bucket under t/"
got=$work/lake.txt
(cd "$bucket" && find . -type f -name '*.csv.gz' ! -name '.*' | sort | while read -r f; do
  echo "== ${f#./}"
  zcat "$f"
done) >"$got"
if ! diff -u "$expected" "$got" >"$work/diff"; then
  head -n 40 "$work/diff" >&2
  fail "the object lake differs from $expected ($(grep -c '^[-+][^-+]' "$work/diff") lines)"
fi
hidden=$(cd "$bucket" && find . -type f -name '.*.tmp' | wc -l)
[ "$hidden" = 0 ] || fail "$hidden hidden objects left in the bucket"
echo "ok: the object lake equals $expected: $(grep -c '^== ' "$got") files, $(grep -vc '^== ' "$got") lines"

# --- SIGKILL mid-run, then a restart ---------------------------------------
sums() { # the data rows on stdin (row number first): ENTRIES, EXITS summed per turnstile, date, time
  awk -F, '{k=$2","$3","$4","$5","$8","$9; e[k]+=$11; x[k]+=$12} END {for (k in e) print k","e[k]","x[k]}' |
    LC_ALL=C sort
}
rows() { # BUCKET_DIR: the sums of its visible files
  (cd "$1" && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2
  done) | sums
}
awk '/^== /{h=1; next} h{h=0; next} {print}' "$expected" | sums >"$work/want.rows"
sed -e 's/^id = lake-s3/id = lake-crash/' -e 's|^url = s3://lake/t|url = s3://crash/t|' \
    -e 's|^path = .*|path = '"$work"'/spool2|' -e 's/^checkpoint_interval_ms = .*/checkpoint_interval_ms = 300/' \
    -e 's/^session_timeout_ms = 6000/&\nreadings_topic = crash.readings\ngroup_id = lake-crash/' \
    "$work/bridge.conf" >"$work/crash.conf"
topic=crash.readings
bucket=$S3PROXY_DATA/crash/t
bridge_start agg "$work/crash.conf" --role aggregate
fill 720 1685245200000 1
wait_status ' 720 readings, 0 duplicates, 0 dead-lettered, 0 passed, 108 rows (0 late)' 120
end=$((SECONDS + 30))
until [ -n "$(find "$bucket" -type f -name '*.csv.gz' ! -name '.*' 2>/dev/null)" ]; do
  [ $SECONDS -lt $end ] || fail "no checkpoint made files visible in 30 s"
  sleep 0.2
done
fill 180 1685245800000 121
bridge_kill agg KILL
echo "killed; $(find "$bucket" -type f -name '*.csv.gz' ! -name '.*' 2>/dev/null | wc -l) visible files," \
     "$(find "$bucket" -type f -name '.*.tmp' 2>/dev/null | wc -l) hidden"
bridge_start agg "$work/crash.conf" --role aggregate
end=$((SECONDS + 90))
until rows "$bucket" | cmp -s - "$work/want.rows"; do
  if [ $SECONDS -ge $end ]; then
    rows "$bucket" | diff "$work/want.rows" - | head -n 20 >&2
    fail "after the restart the bucket's sums are not lake_expected.txt's in 90 s"
  fi
  kill -0 "${BRIDGE_PID[agg]}" 2>/dev/null || { tail -n 20 "$work/agg.err" >&2; fail "the bridge died"; }
  sleep 0.5
done
fill 54 1685245200000 1
wait_status ' 54 duplicates' 120
bridge_kill agg TERM
rows "$bucket" >"$work/got.rows"
cmp -s "$work/want.rows" "$work/got.rows" ||
  { diff "$work/want.rows" "$work/got.rows" | head -n 20 >&2; fail "rows lost or twice after the crash"; }
hidden=$(cd "$bucket" && find . -type f -name '.*.tmp' | wc -l)
[ "$hidden" = 0 ] || fail "$hidden hidden objects left in the bucket after the crash"
echo "ok: SIGKILL mid-run and a restart: the sums of $(wc -l <"$work/got.rows") turnstile-windows as lake_expected.txt's, nothing hidden left"
