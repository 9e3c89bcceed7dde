#!/usr/bin/env bash
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
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TS_BIN_DIR=${TS_BIN_DIR:-$src/build/bin}
work=$(mktemp -d /tmp/ts-repro-waitsync.XXXXXX)
agent_pid=
trap 'kill -9 $agent_pid ${SIM_PID:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"
mode=${1:-wait-sync} clock=${1:-wait-sync}
[ "$mode" = kill ] && clock=wait-sync
sim_start --generate --turnstiles 1 --fault pause --fault 'set 1 0 1000 500'
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = %s\n' "$clock"
  printf 'timezone = UTC\nmax_rate_per_min = 6000\n'
  printf '[store]\npath = %s/agent.db\n' "$work"   # the counters' state survives a crash
  cat "$work/devices.conf"
} >"$work/agent.conf"
echo "0 -94608000000" >"$work/clock"       # unsynchronised, three years behind
TS_CLOCK_FAKE=$work/clock "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" \
  >"$work/readings.csv" 2>"$work/agent.err" &
agent_pid=$!
sleep 1
sim set 1 0 1010 505; sleep 1      # +10 in, +5 out
if [ "$mode" = kill ]; then
  kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true   # a crash during the hold
  TS_CLOCK_FAKE=$work/clock "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" \
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
