#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real bridge SIGKILLed at each store operation of the object lake
# (issue 17): turnstile-bridge --role aggregate with [lake] url = s3://kill/t
# on S3Proxy through s3_fault_proxy.py --conditional, a real mosquitto and
# Kafka (2 partitions), checkpoints every 300 ms, max_agents = 4 and
# agent_idle_s = 1 (the agents' archive rewritten at most commits). In each
# round the proxy is told to hold the first request of one kind (plan word
# hold:METHOD:REGEX: not forwarded, not answered, a marker file written), a
# minute of readings is sent, and once the marker is there the bridge is
# SIGKILLed with that request in flight, then started again (in a fresh
# consumer group, so that it need not wait for the dead member's session to
# end: its positions come from the lake's checkpoints). The kinds:
#   upload   PUT of a hidden data object (.part-...tmp)
#   ckpt     PUT of a checkpoint (<generation>.ckpt, If-None-Match: *)
#   copy     the server-side copy to a visible name (part-....csv.gz)
#   delete   DELETE of a hidden data object after its copy
#   archive  PUT of the agents' archive (_manifest/.../agents-....txt)
# After each restart the ENTRIES and EXITS summed per turnstile over the
# bucket's visible objects must come to what was sent so far (nothing lost,
# nothing twice) and no hidden object may be left; the same at the end, after
# every reading is sent again (all duplicates) and the bridge stopped.
# Nothing asserts on a duration: waits poll with generous deadlines.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-s3kill.XXXXXX)
trap 'bridge_test_cleanup ${S3FAULT_PID:-}' EXIT
. "$src/tests/integration/bridge.sh"
. "$src/tests/integration/s3proxy.sh"

fail() { echo "FAIL: $*" >&2; s3proxy_fault_log 10; exit 1; }
AGENTS=40 BASE=1685245200000 # 2023-05-28 03:40Z; a reading an agent a minute
KINDS=(upload ckpt copy delete archive)
declare -A HOLD=(
  [upload]='hold:PUT:/\.(part|late)-[^/]*\.tmp$'
  [ckpt]='hold:PUT:/[0-9]{12}\.ckpt$'
  [copy]='hold:PUT:/(part|late)-[^/]*\.csv\.gz$'
  [delete]='hold:DELETE:/\.(part|late)-[^/]*\.tmp$'
  [archive]='hold:PUT:/_manifest/[^/]*/agents-[^/]*\.txt$'
)

s3proxy_start kill || fail "S3Proxy did not start"
s3proxy_fault_start --conditional || fail "the fault proxy did not start"
bridge_test_servers 2

conf() { # GROUP
  bridge_agg_conf "$work/bridge.conf" s3kill "path = $work/spool
$(s3proxy_lake s3://kill/t "$S3FAULT_ENDPOINT")
max_agents = 4
agent_idle_s = 1
window_s = 300
idle_s = 1
checkpoint_interval_ms = 300"
  sed -i -e "s/^\[kafka\]$/&\ngroup_id = $1/" "$work/bridge.conf"
}
conf s3kill-0
"$bin/turnstile-bridge" --check-config -c "$work/bridge.conf" || fail "--check-config refused it"

bucket=$S3PROXY_DATA/kill/t
sums() { # the bucket's visible data objects: ENTRIES and EXITS per turnstile
  (cd "$bucket" 2>/dev/null && find . -type f -name '*.csv.gz' ! -name '.*' | while read -r f; do
    zcat "$f" | tail -n +2
  done) | awk -F, '{k=$2","$3","$4; e[k]+=$11; x[k]+=$12} END {for (k in e) print k","e[k]","x[k]}' |
    LC_ALL=C sort
}
want() { # STEPS: what steps 0..STEPS-1 sent; bench-aggregate fill: reading i of a fill (0-based)
  # is agent i mod AGENTS, turnstile B<a>,R<a>,00-00-00, i mod 7 entries, i mod 5 exits
  awk -v s="$1" -v a=$AGENTS 'BEGIN {
    for (r = 0; r < s; r++) for (i = 0; i < a; i++) {
      k = sprintf("B%03d,R%03d,00-00-00", i, i); e[k] += i % 7; x[k] += i % 5 }
    for (k in e) print k","e[k]","x[k] }' | LC_ALL=C sort
}
hidden() { (cd "$bucket" 2>/dev/null && find . -type f -name '.*') | wc -l; }
step() { # S: one reading of every agent, minute S
  "$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings $AGENTS $AGENTS 1 \
    $((BASE + $1 * 60000)) $(($1 + 1)) >>"$work/fill.out"
}
alive() { kill -0 "${BRIDGE_PID[agg]}" 2>/dev/null || { tail -n 20 "$work/agg.err" >&2; fail "the bridge died"; }; }
settle() { # STEPS WHAT: the sums equal want STEPS and nothing hidden is left
  want "$1" >"$work/want"
  local end=$((SECONDS + 90))
  until sums | cmp -s - "$work/want" && [ "$(hidden)" = 0 ]; do
    if [ $SECONDS -ge $end ]; then
      { echo "want | got:"; sums | diff -y --suppress-common-lines "$work/want" - | head -n 10; } >&2 || true
      (cd "$bucket" && find . -type f -name '.*' | head -n 5) >&2 || true
      fail "$2: the bucket's sums are not what was sent, or hidden objects are left ($(hidden)), after 90 s"
    fi
    alive
    sleep 0.3
  done
}

bridge_start agg "$work/bridge.conf" --role aggregate
s=0
step $s; s=$((s + 1))
settle $s "before any kill"
echo "ok: the first minute's readings in the bucket"
round=0
for k in "${KINDS[@]}"; do
  rm -f "$work/plan.held"
  echo "${HOLD[$k]}" >"$work/plan"
  # readings until the bridge sends such a request (the archive, the copy and the delete
  # come only with a commit, a commit only with rows: a window closed, 1 s idle)
  end=$((SECONDS + 60))
  until [ -s "$work/plan.held" ]; do
    [ $SECONDS -lt $end ] || fail "$k: no request held in 60 s"
    alive
    step $s; s=$((s + 1))
    wait_for 3 test -s "$work/plan.held" || true
  done
  bridge_kill agg KILL
  : >"$work/plan"
  echo "killed at $k: $(cat "$work/plan.held");" \
       "$(cd "$bucket" && find . -type f -name '*.csv.gz' ! -name '.*' | wc -l) visible, $(hidden) hidden"
  round=$((round + 1))
  conf "s3kill-$round"
  bridge_start agg "$work/bridge.conf" --role aggregate
  settle $s "after the kill at $k"
  echo "ok: $k: restarted, every reading of $s minutes once, nothing hidden left"
done

# everything again, in one fill (same agents, times and sequence numbers; other ENTRIES, so
# that a reading counted again would show): all duplicates (in memory or in the archive)
"$bin/bench-aggregate" fill "$KAFKA_BOOTSTRAP" turnstile.readings $((s * AGENTS)) $AGENTS 1 $BASE 1 >>"$work/fill.out"
end=$((SECONDS + 90))
until grep 'aggregate: ' "$work/agg.err" | tail -n 1 | grep -q " $((s * AGENTS)) duplicates"; do
  [ $SECONDS -lt $end ] || { grep 'aggregate: ' "$work/agg.err" | tail -n 1 >&2; fail "the re-sent readings were not all duplicates"; }
  alive
  sleep 0.3
done
bridge_kill agg TERM
want "$s" >"$work/want"
sums >"$work/got"
cmp -s "$work/want" "$work/got" || { { echo "want | got:"; diff -y --suppress-common-lines "$work/want" "$work/got" | head -n 10; } >&2 || true; fail "re-sent readings counted again"; }
[ "$(hidden)" = 0 ] || fail "$(hidden) hidden objects left at the end"
echo "ok: $((s * AGENTS)) readings sent again: all duplicates; every reading once," \
     "$(cd "$bucket" && find . -type f -name '*.csv.gz' | wc -l) visible objects, nothing hidden left"
