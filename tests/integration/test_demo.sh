#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/demo when an agent is stopped during the run, as a user does to see "offline" on the
# dashboard: the demo names the agent that stopped and how, still stops the rest, shows the
# lake (where it is, its rows and sums) and exits 3. The old demo exited 1 without a word
# (`kill` of a dead pid under `set -e`). A short run (10 s of traffic) of the sanitizer build's
# binaries (TS_DEMO_BIN), its lake in a temporary directory (TS_DEMO_LAKE).
set -euo pipefail
src=${TS_SRC_DIR:?} bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-demo-test.XXXXXX)
demo_pid=
cleanup() {
  # the demo's own INT/TERM trap stops everything it started
  [ -z "$demo_pid" ] || { kill -TERM "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; }
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"

TS_DEMO_BIN=$bin TS_DEMO_LAKE=$work/lake "$src/scripts/demo" 10 >"$work/out" 2>"$work/err" &
demo_pid=$!
for _ in $(seq 1800); do   # Kafka's start is most of it: up to 3 minutes on a busy machine
  grep -q 'agents and the bridge running' "$work/err" && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'agents and the bridge running' "$work/err" || { echo "the demo did not start:"; cat "$work/err"; exit 1; }

# the demo's agents are its own children: stop the first as a user would (kill PID)
agent=$(pgrep -P "$demo_pid" -x turnstile-agent | head -1)
[ -n "$agent" ] || { echo "no turnstile-agent child of the demo"; exit 1; }
name=$(tr '\0' ' ' </proc/"$agent"/cmdline | grep -o '[a-z0-9]*\.agent\.conf' | sed 's/\.agent\.conf//')
echo "stopping turnstile-agent demo-$name (pid $agent)"
kill -TERM "$agent"
for _ in $(seq 300); do kill -0 "$agent" 2>/dev/null || break; sleep 0.1; done

rc=0
wait "$demo_pid" || rc=$?
demo_pid=
echo "--- demo stderr"; cat "$work/err"; echo "---"
check "exit status 3 (an agent stopped early), was $rc" test "$rc" = 3
check "the stopped agent named with its pid" \
  grep -q "^demo: turnstile-agent demo-$name (pid $agent) stopped during the run: exit status 0" "$work/err"
check "the other agents stopped at the end" grep -q '^demo: agents stopped' "$work/err"
check "the lake shown" grep -q "^demo: the lake is at $work/lake:" "$work/err"
check "its rows counted" grep -q '^  [1-9][0-9]* files, [1-9][0-9]* rows' "$work/err"
check "its sums" grep -q '^demo: sums over the lake (ENTRIES, EXITS): [0-9]* [0-9]*$' "$work/err"
check "the early stop recalled after the lake" \
  grep -q "^  turnstile-agent demo-$name: exit status 0$" "$work/err"
check "first rows on stdout (the lake's header)" grep -q '^,CA,UNIT,SCP,STATION' "$work/out"
check "lake files written" test -n "$(find "$work/lake" -name '*.csv.gz' ! -name '.*')"
finish
