#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The object lake's fence through two real bridges (issue 17): two
# turnstile-bridge --role aggregate processes in two consumer groups (so both
# believe they own both partitions of turnstile.readings) with the same
# [lake] url = s3://lake/t, a spool each, checkpoints every 300 ms, write one
# bucket of S3Proxy through s3_fault_proxy.py --conditional (S3Proxy 2.6.0
# ignores If-None-Match; the proxy refuses a conditional PUT of an existing key
# with 412, as AWS S3, GCS and MinIO do). conditional_writes is left at its
# default (yes): its probe must pass through the proxy.
#   1. both bridges open both partitions' lakes at generation 0 (the beginning);
#   2. 4 batches of readings, 0.4 s apart: both bridges take them and race for
#      every commit;
#   3. checks: every checkpoint (partition, generation) was committed by one
#      bridge only (the bridges' debug lines, and the proxy's log: one PUT of
#      each <generation>.ckpt key forwarded to the store); every copy to a
#      visible name is of the committer's temporary; a loser logs that
#      another bridge committed, and commits nothing of that partition after;
#      the visible objects' ENTRIES and EXITS summed per turnstile equal what
#      was sent (each reading once); after SIGTERM (the winners' last commits)
#      no hidden object is left in the bucket.
# TS_S3FENCE_UNFENCED=1 runs the same with the fence removed (the proxy
# without --conditional, conditional_writes = no): the test must then fail.
# Nothing asserts on a duration: waits poll with generous deadlines.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-s3fence.XXXXXX)
trap 'bridge_test_cleanup ${S3FAULT_PID:-}' EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; s3proxy_fault_log 10; exit 1; }
unfenced=${TS_S3FENCE_UNFENCED:-}
AGENTS=40 BASE=1685245200000 # 2023-05-28 03:40Z; a reading an agent a minute
FILLS=(15 $(seq 25 | sed 's/.*/1/')) # minutes a fill: 15 at once (windows close by event time: the
                                     # first commits have files), then one at a time

s3proxy_start lake || fail "S3Proxy did not start"
# fenced: the proxy refuses a conditional PUT of an existing key, the bridges' conditional_writes
# stay on (the default); unfenced: neither
fence=(--conditional)
[ -z "$unfenced" ] || fence=()
s3proxy_fault_start ${fence[@]+"${fence[@]}"} || fail "the fault proxy did not start"
bridge_test_servers 2

conf() { # FILE ID
  bridge_agg_conf "$1" "$2" "path = $work/spool-$2
$(s3proxy_lake s3://lake/t "$S3FAULT_ENDPOINT")
agent_idle_s = 0
window_s = 300
idle_s = 1
checkpoint_interval_ms = 300"
  sed -i -e "s/^\[kafka\]$/&\ngroup_id = $2/" -e 's/^\[bridge\]$/&\nlog_level = debug/' "$1"
  "$bin/turnstile-bridge" --check-config -c "$1" || fail "--check-config refused $1"
}
conf "$work/a.conf" fence-a
conf "$work/b.conf" fence-b

# what was sent (bench-aggregate fill): reading i of a fill (0-based) is agent i mod AGENTS,
# turnstile B<a>,R<a>,00-00-00, i mod 7 entries, i mod 5 exits; each fill restarts i at 0
awk -v m="${FILLS[*]}" -v a=$AGENTS 'BEGIN {
  nf = split(m, f, " ")
  for (r = 1; r <= nf; r++) for (i = 0; i < f[r] * a; i++) {
    k = sprintf("B%03d,R%03d,00-00-00", i % a, i % a); e[k] += i % 7; x[k] += i % 5 }
  for (k in e) print k","e[k]","x[k] }' | LC_ALL=C sort >"$work/want"
bucket=$S3PROXY_DATA/lake/t
sums() { # the bucket's visible data objects: ENTRIES and EXITS per turnstile
  (cd "$bucket" 2>/dev/null && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2
  done) | awk -F, '{k=$2","$3","$4; e[k]+=$11; x[k]+=$12} END {for (k in e) print k","e[k]","x[k]}' |
    LC_ALL=C sort
}
alive() { kill -0 "${BRIDGE_PID[$1]}" 2>/dev/null || { tail -n 20 "$work/$1.err" >&2; fail "bridge $1 died"; }; }
resumed() { [ "$(grep -c 'resuming at the beginning' "$work/$1.err" 2>/dev/null)" -ge 2 ]; }

# 1. both bridges hold both partitions at generation 0
bridge_start a "$work/a.conf" --role aggregate
bridge_start b "$work/b.conf" --role aggregate
end=$((SECONDS + 90))
until resumed a && resumed b; do
  [ $SECONDS -lt $end ] || { tail -n 5 "$work/a.err" "$work/b.err" >&2; fail "the bridges did not both open both partitions in 90 s"; }
  alive a; alive b
  sleep 0.2
done
echo "ok: both bridges opened both partitions' lakes at the beginning" \
     "($(grep -c ' If-None-Match=\*' "$work/plan.log" || true) conditional PUTs so far: the probes)"

# 2. the readings, in batches, while both commit every 300 ms
minute=0
for m in "${FILLS[@]}"; do
  "$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings $((m * AGENTS)) $AGENTS 1 \
    $((BASE + minute * 60000)) $((minute + 1)) >>"$work/fill.out"
  minute=$((minute + m))
  sleep 0.1
done
end=$((SECONDS + 90))
until sums | cmp -s - "$work/want"; do
  if [ $SECONDS -ge $end ]; then
    { echo "want | got:"; sums | diff -y --suppress-common-lines "$work/want" - | head -n 10; } >&2 || true
    fail "the bucket's sums are not what was sent in 90 s"
  fi
  alive a; alive b
  sleep 0.5
done
echo "ok: the visible objects' sums equal what was sent ($(wc -l <"$work/want") turnstiles)"
bridge_kill a TERM
bridge_kill b TERM

# 3. one committer per (partition, generation)
committed() { # NAME: "PARTITION GENERATION NAME" of each checkpoint it committed
  sed -n 's/.*aggregate: partition \([0-9]*\): checkpoint \([0-9]*\) at offset.*/\1 \2/p' "$work/$1.err" |
    sed "s/\$/ $1/"
}
{ committed a; committed b; } | sort -n -k1,1 -k2,2 >"$work/committed"
twice=$(awk '{print $1, $2}' "$work/committed" | uniq -d)
[ -z "$twice" ] || fail "checkpoints committed by both bridges (partition generation): $(echo $twice)"
for p in 0 1; do
  [ -n "$(awk -v p=$p '$1 == p' "$work/committed")" ] || fail "no checkpoint of partition $p committed"
done
# the store's view: each <generation>.ckpt key written once (a second PUT refused with 412:
# the proxy logs it as "fwd" when it comes and "cond412" when it refuses it)
puts=$(awk '$2 ~ /^\/lake\/t\/turnstile\/_manifest\/.*\/[0-9]+\.ckpt$/ && $1 == "PUT" {
    n[$2] += ($3 == "cond412") ? -1 : 1 }
  END { for (k in n) if (n[k] > 1) c++; print c + 0 }' "$work/plan.log")
refused=$(grep -c '\.ckpt cond412$' "$work/plan.log" || true)
[ "$puts" = 0 ] || fail "$puts checkpoint keys written more than once"
echo "ok: every checkpoint committed by one bridge: $(wc -l <"$work/committed") in all" \
     "(a: $(grep -c ' a$' "$work/committed" || true), b: $(grep -c ' b$' "$work/committed" || true));" \
     "conditional PUTs refused by the proxy: $refused"

# what became visible: every copy to a visible name is of a temporary of the bridge that
# committed that partition's generation (the proxy's log names the copy's source)
sed -n 's|^PUT /lake/t/turnstile/[^ ]*/[a-z]*-turnstile\.readings-\([0-9]*\)-0*\([0-9][0-9]*\)\(-[0-9]*\)\{0,1\}\.csv\.gz fwd.* x-amz-copy-source=[^ ]*\.fence-\([ab]\)-[0-9]*-[0-9a-f]*\.tmp.*|\1 \2 \4|p' \
  "$work/plan.log" | LC_ALL=C sort -u >"$work/copied"
[ -s "$work/copied" ] || fail "no copy to a visible name in the proxy's log"
wrong=$(LC_ALL=C sort "$work/committed" | LC_ALL=C comm -23 "$work/copied" -)
[ -z "$wrong" ] || fail "made visible from a bridge that did not commit that checkpoint (partition generation bridge): $(echo $wrong)"
echo "ok: the $(wc -l <"$work/copied") copies to visible names, by (partition, generation, writer), are of the committers' temporaries"

# the losers: each partition lost by exactly one bridge (both opened it at generation 0 and
# both had readings to commit), which commits nothing of it afterwards
for p in 0 1; do
  losers=()
  for n in a b; do
    grep -q "partition $p: another bridge committed a checkpoint of it" "$work/$n.err" && losers+=("$n")
  done
  [ ${#losers[@]} = 1 ] || fail "partition $p lost by ${#losers[@]} bridges (${losers[*]:-none}), not one"
  n=${losers[0]}
  after=$(sed -n "/partition $p: another bridge committed/,\$p" "$work/$n.err" |
    grep -c "partition $p: checkpoint [0-9]* at offset" || true)
  [ "$after" = 0 ] || fail "bridge $n committed $after checkpoints of partition $p after losing it"
  tmps=$(grep -Ec "^PUT [^ ]*/\.(part|late)-turnstile\.readings-$p-[0-9]{12}[^ ]*\.fence-$n-[0-9]+-[0-9a-f]+\.tmp fwd" \
    "$work/plan.log" || true)
  echo "ok: partition $p: bridge $n lost it at checkpoint" \
       "$(grep -o "checkpoint [0-9]* or a newer one exists" "$work/$n.err" | head -n 1 | cut -d' ' -f2)" \
       "($tmps hidden objects of it uploaded) and committed nothing of it after"
done

# 4. after the last commits: the sums again, nothing hidden left
sums >"$work/got"
cmp -s "$work/want" "$work/got" || { { echo "want | got:"; diff -y --suppress-common-lines "$work/want" "$work/got" | head -n 10; } >&2 || true; fail "rows lost or twice after SIGTERM"; }
hidden=$(cd "$bucket" && find . -type f -name '.*' | wc -l)
[ "$hidden" = 0 ] || { (cd "$bucket" && find . -type f -name '.*' | head -n 5) >&2; fail "$hidden hidden objects left in the bucket"; }
echo "ok: after SIGTERM: every reading once in $(cd "$bucket" && find . -type f -name '*.csv.gz' | wc -l)" \
     "visible objects, nothing hidden left"
