#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agents' archive on the object lake (issue 17): turnstile-bridge --role
# aggregate with [lake] url = s3://agents/t on a real S3 API server (S3Proxy),
# a real mosquitto and Kafka (2 partitions), max_agents = 4 and
# agent_idle_s = 1 (refused with url before: the archive was a local file).
# 60 agents, one turnstile each, one reading a minute (bench-aggregate fill):
#   1. readings 1-5 of every agent; each partition holds about 30 agents, so
#      most leave memory at once, and the rest once idle: the partitions'
#      archives are objects under t/turnstile/_manifest/ in the bucket;
#   2. readings 6-10, the bridge SIGKILLed once it has taken some of them
#      (agents coming back from the archive, checkpoints being written);
#   3. restarted on an empty local spool (as on another machine: the archive
#      must come from the bucket) while S3Proxy is down: the bridge stays up,
#      its partitions assigned, paused and loaded again later (it exited
#      before, when a listing failed at its start); S3Proxy back, it resumes
#      from the checkpoints and their archives: ENTRIES and EXITS summed per
#      turnstile over the bucket's visible files equal what was sent (nothing
#      lost, nothing twice);
#   4. readings 1-10 of every agent sent again: all 600 are duplicates (most
#      agents' positions are in the archive), the sums do not change;
#   5. no hidden object is left, and old archives are pruned from the bucket.
# Nothing asserts on a duration: waits poll with generous deadlines.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-agents-s3.XXXXXX)
trap 'bridge_test_cleanup ${fill_pid:-}' EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
AGENTS=60 BASE=1685245200000 # 2023-05-28 03:40Z
s3proxy_start agents || fail "S3Proxy did not start"
bridge_test_servers 2

bridge_agg_conf "$work/bridge.conf" agents-s3 "path = $work/spool
$(s3proxy_lake s3://agents/t)
max_agents = 4
agent_idle_s = 1
window_s = 300
idle_s = 1
checkpoint_interval_ms = 300"
"$bin/turnstile-bridge" --check-config -c "$work/bridge.conf" || fail "--check-config refused it"

# fill N SEQ_FROM START_MS: readings SEQ_FROM.. of every agent, one a minute from START_MS
fill() { "$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings "$1" "$AGENTS" 1 "$3" "$2" >>"$work/fill.out"; }
wait_status() { agg_wait_status "$1" "$2" || fail "waiting for the status line '$1'"; }
bucket=$S3PROXY_DATA/agents/t
manifest=$bucket/turnstile/_manifest
archives() { find "$manifest" -type f -name 'agents-*.txt' 2>/dev/null | sort; }
sums() { # the bucket's visible files: ENTRIES and EXITS per turnstile
  (cd "$bucket" && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2
  done) | awk -F, '{k=$2","$3","$4; e[k]+=$11; x[k]+=$12} END {for (k in e) print k","e[k]","x[k]}' |
    LC_ALL=C sort
}
# what was sent (bench-aggregate's fill): reading i of the run (0-based) is agent i mod AGENTS,
# turnstile B<a>,R<a>,00-00-00, i mod 7 entries, i mod 5 exits; each fill restarts i at 0
awk -v n=$((AGENTS * 5)) -v a=$AGENTS 'BEGIN {
  for (r = 0; r < 2; r++) for (i = 0; i < n; i++) {
    k = sprintf("B%03d,R%03d,00-00-00", i % a, i % a); e[k] += i % 7; x[k] += i % 5 }
  for (k in e) print k","e[k]","x[k] }' | LC_ALL=C sort >"$work/want"

# 1. readings 1-5: agents leave memory for the archive in the bucket
bridge_start agg "$work/bridge.conf" --role aggregate
fill $((AGENTS * 5)) 1 $BASE
wait_status " $((AGENTS * 5)) readings, 0 duplicates" 120
# each partition holds about 30 agents: past max_agents all but 3 leave at once (the idle
# ones too, but only a checkpoint moves them, and one is made only when something changed)
archived() { agg_status | sed -n 's/.* with gaps, \([0-9]*\) archived).*/\1/p'; }
end=$((SECONDS + 60))
until [ "$(archived)" -ge $((AGENTS - 8)) ] 2>/dev/null; do
  [ $SECONDS -lt $end ] || { agg_status >&2; fail "the agents did not reach the archives in 60 s"; }
  sleep 0.2
done
[ -n "$(archives)" ] || fail "no archive in the bucket under $manifest"
echo "ok: step 1: $(agg_status | grep -o '[0-9]* agents ([^)]*)'); in the bucket: $(archives | wc -l) archive(s)," \
     "$(cat $(archives) | wc -l) lines"

# 2. readings 6-10, SIGKILL once the bridge has taken some of them
fill $((AGENTS * 5)) 6 $((BASE + 5 * 60000)) &
fill_pid=$!
readings() { agg_status | sed -n 's/.*), \([0-9]*\) readings,.*/\1/p'; }
end=$((SECONDS + 120))
until [ "$(readings)" -gt $((AGENTS * 5)) ] 2>/dev/null; do
  [ $SECONDS -lt $end ] || { agg_status >&2; fail "the bridge took none of readings 6-10 in 120 s"; }
  sleep 0.05
done
bridge_kill agg KILL
wait $fill_pid || fail "bench-aggregate fill failed"
echo "killed: $(agg_status)"

# 3. restart on an empty spool, the store down: the archives come from the bucket once it is back
rm -rf "$work/spool"
s3proxy_stop
bridge_start agg "$work/bridge.conf" --role aggregate
wait_for 60 grep -q 'the object store is out of reach; loading the partition again' "$work/agg.err" ||
  { tail -n 20 "$work/agg.err" >&2; fail "the bridge did not wait for the object store at its start"; }
kill -0 "${BRIDGE_PID[agg]}" 2>/dev/null || { tail -n 20 "$work/agg.err" >&2; fail "the bridge died"; }
echo "ok: step 3: started with the store down: $(grep -c 'out of reach; loading the partition again' \
  "$work/agg.err") partition load(s) put off"
s3proxy_restart || fail "S3Proxy did not start again"
end=$((SECONDS + 120))
until sums | cmp -s - "$work/want"; do
  if [ $SECONDS -ge $end ]; then
    sums | diff "$work/want" - | head -n 20 >&2
    fail "after the restart the bucket's sums are not what was sent in 120 s"
  fi
  kill -0 "${BRIDGE_PID[agg]}" 2>/dev/null || { tail -n 20 "$work/agg.err" >&2; fail "the bridge died"; }
  sleep 0.5
done
grep -q 'resuming at offset .*, [1-9][0-9]* archived;' "$work/agg.err" ||
  { grep 'resuming' "$work/agg.err" >&2; fail "no partition resumed with agents in its archive"; }
echo "ok: step 3: restarted on an empty spool, every reading once:" \
     "$(grep -o 'resuming at offset [^;]*' "$work/agg.err" | tail -n 2 | tr '\n' ' ')"

# 4. everything again: duplicates, found in memory or in the archives
fill $((AGENTS * 5)) 1 $BASE
fill $((AGENTS * 5)) 6 $((BASE + 5 * 60000))
wait_status " $((AGENTS * 10)) duplicates" 120
bridge_kill agg TERM # its last checkpoints
sums >"$work/got"
cmp -s "$work/want" "$work/got" ||
  { diff "$work/want" "$work/got" | head -n 20 >&2; fail "re-sent readings were counted again"; }
echo "ok: step 4: $((AGENTS * 10)) re-sent readings all duplicates, sums unchanged"

# 5. nothing hidden left; at most the current and the replaced archive of each partition
hidden=$(cd "$bucket" && find . -type f -name '.*' | wc -l)
[ "$hidden" = 0 ] || fail "$hidden hidden objects left in the bucket"
for d in "$manifest"/turnstile.readings-*; do
  n=$(find "$d" -type f -name 'agents-*.txt' | wc -l)
  [ "$n" -le 2 ] || { ls "$d" >&2; fail "$n archives in $d: the old ones were not pruned"; }
done
echo "ok: step 5: nothing hidden left; archives in the bucket: $(archives | wc -l)"
