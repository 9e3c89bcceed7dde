#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-bridge --role aggregate --until-end: a run that reads the readings topic up
# to its end, checkpoints and exits by itself (a catch-up run, as Spark's availableNow).
# A real mosquitto and Kafka, a 2-partition topic.
#   - refused with another role (exit 2, nothing started);
#   - on an empty topic it exits 0 at once (nothing past the checkpoints);
#   - the fixed input of test_bridge_lake_expected, step by step: each step is produced,
#     then one run reads it and exits 0 by itself; its last status line counts exactly
#     that step (the next run resumes at the last one's checkpoint: nothing twice, nothing
#     skipped). After the three runs the lake holds exactly the rows of
#     tests/integration/lake_expected.txt (each row with its folder and kind, part or late;
#     without its row number, which counts within a file: three runs cut other files).
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
expected=$src/tests/integration/lake_expected.txt
work=$(mktemp -d /tmp/ts-until-end.XXXXXX)
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

bridge_test_servers 2

fail() { echo "FAIL: $*" >&2; exit 1; }

topic=until.end
kafka_create_topic "$topic" 2
bridge_agg_conf "$work/agg.conf" until-end "path = $work/lake
window_s = 300
idle_s = 0
checkpoint_interval_ms = 3600000"
sed -i "s/^\[kafka\]\$/[kafka]\nreadings_topic = $topic\ngroup_id = until-end/" "$work/agg.conf"

# another role: a usage error, nothing started
for role in all relay; do
  rc=0
  "$bin/turnstile-bridge" -c "$work/agg.conf" --role "$role" --until-end >/dev/null 2>"$work/usage.err" || rc=$?
  [ "$rc" = 2 ] || fail "--until-end --role $role exited $rc, not 2"
  grep -q -- "--until-end: only with the aggregate role" "$work/usage.err" ||
    fail "--until-end --role $role: no clear message: $(cat "$work/usage.err")"
done
echo "ok: --until-end with the relay or all role is a usage error"

# run NAME PATTERN: one run to the end; exits 0 by itself (bounded), its last status line
# matches PATTERN
run() {
  local name=$1 pattern=$2 rc=0 end=$((SECONDS + 120))
  bridge_start "$name" "$work/agg.conf" --role aggregate --until-end
  while kill -0 "${BRIDGE_PID[$name]}" 2>/dev/null; do
    [ $SECONDS -lt $end ] || { tail -n 5 "$work/$name.err" >&2; fail "$name: still running after 120 s"; }
    sleep 0.2
  done
  wait "${BRIDGE_PID[$name]}" || rc=$?
  BRIDGE_PID[$name]=
  [ "$rc" = 0 ] || { tail -n 20 "$work/$name.err" >&2; fail "$name: exited $rc"; }
  grep -q 'every partition is read up to its end (--until-end)' "$work/$name.err" ||
    { tail -n 20 "$work/$name.err" >&2; fail "$name: exited without reaching the end"; }
  agg_status "$name" | grep -q -- "$pattern" ||
    fail "$name: its last status line is not '$pattern': $(agg_status "$name")"
}

run empty ' 0 readings, 0 duplicates, 0 dead-lettered, 0 passed, 0 rows (0 late)'
echo "ok: an empty topic: the run exits 0 at once"

# the fixed input of lake_expected.txt (lake_expected_fill), a run for each step; the counts
# are each run's own
runs=(
  ' 720 readings, 0 duplicates, 0 dead-lettered, 0 passed, 108 rows (0 late)'
  ' 180 readings, 0 duplicates, 0 dead-lettered, 0 passed, 36 rows (36 late)'
  ' 0 readings, 54 duplicates, 0 dead-lettered, 0 passed, 0 rows (0 late)')
for k in 1 2 3; do
  lake_expected_fill "$topic" "$k" || fail "step $k: bench-aggregate fill failed"
  run "step$k" "${runs[$k - 1]}"
  echo "ok: step $k: the run exited 0:${runs[$k - 1]}"
done

# the rows of each: "FOLDER KIND ROW" without the row number, sorted
awk '/^== / { f = $2; d = f; sub(/\/[^\/]*$/, "", d); k = f; sub(/.*\//, "", k); k = substr(k, 1, 4); next }
     /^,CA,/ { next }
     { r = $0; sub(/^[^,]*,/, "", r); print d, k, r }' "$expected" | LC_ALL=C sort >"$work/want"
(cd "$work/lake" && find . -name '*.csv.gz' ! -name '.*' | while read -r f; do
   f=${f#./}
   gzip -dc "$f" | awk -v d="${f%/*}" -v k="${f##*/}" 'NR > 1 { sub(/^[^,]*,/, ""); print d, substr(k, 1, 4), $0 }'
 done) | LC_ALL=C sort >"$work/got"
[ -s "$work/want" ] || fail "no rows read from $expected"
if ! diff -u "$work/want" "$work/got" >"$work/diff"; then
  head -n 40 "$work/diff" >&2
  fail "the lake of three --until-end runs differs from $expected ($(grep -c '^[-+][^-+]' "$work/diff") lines)"
fi
echo "ok: three --until-end runs wrote the rows of $expected: $(wc -l <"$work/got") rows"
