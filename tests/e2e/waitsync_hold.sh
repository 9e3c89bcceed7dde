#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regression test of two losses the e2e harness found (docs/e2e.md, "Findings"),
# both fixed in agent/tally.c: clock = wait-sync used to hold, per turnstile,
# only the first and the latest sample, in memory, while the clock was
# unsynchronised. A counter reset between the two was then invisible, and a
# crash lost the held samples. Now every sample goes through the counters as it
# comes and the held reading is stored with the counters' state.
#   registers 1000/500 -> 1010/505 (+10, +5) -> reset to 0/0 -> 7/3 (+7, +3)
#   true: 17 in, 8 out (it used to publish 7 in, 3 out)
# The same sequence with clock = trust publishes 17 and 8.
# `waitsync_hold.sh kill`: no reset, the agent is SIGKILLed during the hold
# instead: the held samples were only in memory, the restarted agent takes a new
# baseline, and the people before the kill were lost the same way (17/8 -> 7/3).
# `waitsync_hold.sh powercut`: the same with a power cut instead of the SIGKILL
# (the e2e shim, synced_fs.c, with `synchronous = normal`): nothing is published
# during the hold, so no publish mark ever synced the store, and the cut used to
# discard all of it, counter state included: a new store, a new baseline, 7/3
# (found by tests/e2e/run.sh --faults power_cut). Now the first state a process
# stores is synced (agent/store.c), and the cut rolls back to it: 17/8.
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TS_BIN_DIR=${TS_BIN_DIR:-$src/build/bin}
work=$(mktemp -d /tmp/ts-repro-waitsync.XXXXXX)
agent_pid=
trap 'kill -9 $agent_pid ${SIM_PID:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"
mode=${1:-wait-sync} clock=${1:-wait-sync}
[ "$mode" = kill ] || [ "$mode" = powercut ] && clock=wait-sync
store=$work sync=full env=()
if [ "$mode" = powercut ]; then
  [ -f "$TS_BIN_DIR/e2e-synced-fs.so" ] || { echo "build first (scripts/build)" >&2; exit 1; }
  store=$work/store sync=normal
  mkdir -p "$store" "$work/shadow"
  env=(LD_PRELOAD="$TS_BIN_DIR/e2e-synced-fs.so" TS_E2E_SYNCED_DIR="$store" TS_E2E_SHADOW_DIR="$work/shadow"
       ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
fi
sim_start --generate --turnstiles 1 --fault pause --fault 'set 1 0 1000 500'
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = %s\n' "$clock"
  printf 'timezone = UTC\nmax_rate_per_min = 6000\n'
  printf '[store]\npath = %s/agent.db\nsynchronous = %s\n' "$store" "$sync"   # the counters' state survives a crash
  cat "$work/devices.conf"
} >"$work/agent.conf"
echo "0 -94608000000" >"$work/clock"       # unsynchronised, three years behind
env "${env[@]}" TS_CLOCK_FAKE="$work/clock" "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" \
  >"$work/readings.csv" 2>"$work/agent.err" &
agent_pid=$!
sleep 1
sim set 1 0 1010 505; sleep 1      # +10 in, +5 out
if [ "$mode" = kill ] || [ "$mode" = powercut ]; then
  if [ "$mode" = powercut ]; then
    # the shim cuts the power once the WAL holds an unsynced commit (a poll's
    # state); then each store file is put back to its last synced content
    echo 1 >"$work/shadow/.cut"
    for _ in $(seq 100); do [ -s "$work/shadow/.cut-done" ] && break; sleep 0.1; done
    check "the shim cut the power with unsynced commits ($(cat "$work/shadow/.cut-done" 2>/dev/null))" \
      test -s "$work/shadow/.cut-done"
    rm -f "$work/shadow/.cut"
  fi
  kill -9 "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true   # a crash during the hold
  if [ "$mode" = powercut ]; then
    for f in "$store"/*; do
      case $f in
        *-shm) rm -f "$f" ;;
        *) if [ -f "$work/shadow/${f##*/}" ]; then cp "$work/shadow/${f##*/}" "$f"; else rm -f "$f"; fi ;;
      esac
    done
    echo "after the cut: $(ls "$store" | tr '\n' ' ')"
  fi
  env "${env[@]}" TS_CLOCK_FAKE="$work/clock" "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" \
    >>"$work/readings.csv" 2>>"$work/agent.err" &
  agent_pid=$!
  sleep 1
  sim set 1 0 1017 508; sleep 1    # +7 in, +3 out
else
  sim reset 1 0 0 0;    sleep 1    # the gate controller resets its counters
  sim set 1 0 7 3;      sleep 1    # +7 in, +3 out since the reset
fi
echo "1 0" >"$work/clock"; sleep 2 # synchronised: the held readings are released
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=
head -3 "$work/readings.csv" | cut -d, -f9-18
got=$(awk -F, '{ e += $10; x += $11 } END { print e + 0 " " x + 0 }' "$work/readings.csv")
echo "$mode: published ${got% *} in, ${got#* } out; true: 17 in, 8 out"
check "every person published across a $mode while the clock was unsynchronised" test "$got" = "17 8"
finish
