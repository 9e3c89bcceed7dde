#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent on a controller whose clock starts three years behind and not
# synchronised (a Raspberry Pi without RTC before NTP): no reading is stamped
# with the wrong date; once the clock is synchronised the held readings come
# out stamped right and nobody is lost; a later clock step neither reorders
# nor duplicates readings. The clock is faked through TS_CLOCK_FAKE (clock.h).
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-clock.XXXXXX)
agent_pid=
cleanup() {
  for p in $agent_pid ${SIM_PID:-}; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"

sim_start --generate --turnstiles 2 --fault pause --fault 'set 1 0 1000 500' --fault 'set 1 1 2000 900'
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = wait-sync\n'
  printf 'timezone = UTC\nmax_rate_per_min = 6000\n'
  cat "$work/devices.conf"
} >"$work/agent.conf"

echo "0 -94608000000" >"$work/clock"       # not synchronised, three years behind
TS_CLOCK_FAKE=$work/clock "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" \
  >"$work/readings.csv" 2>"$work/agent.err" &
agent_pid=$!
sleep 1
sim set 1 0 1005 503
sleep 1
sim set 1 0 1012 505
sleep 1
check "nothing stamped while the clock is not synchronised" test ! -s "$work/readings.csv"
check "the hold is logged" grep -q "not synchronised" "$work/agent.err"

echo "1 0" >"$work/clock"                  # NTP has set the clock
sleep 2
year=$(date -u +%Y)
check "held readings released once synchronised" test "$(wc -l <"$work/readings.csv")" -ge 4
check "every reading stamped with the right year" \
  test "$(awk -F, -v y="$year" 'substr($13, 1, 4) != y' "$work/readings.csv" | wc -l)" -eq 0
check "nobody lost while held: turnstile 0 counted 12 in, 5 out" \
  test "$(awk -F, '$3 == "00-00-00" { e += $10; x += $11 } END { print e " " x }' "$work/readings.csv")" = "12 5"
check "the reading covering the hold is RECOVR AUD" \
  grep -q '^SIM,R000,00-00-00,.*,RECOVR AUD,12,5,' "$work/readings.csv"

echo "1 -3600000" >"$work/clock"           # the clock steps back an hour
sleep 1.5
sim set 1 0 1020 509
sleep 1.5
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
check "sequence numbers run 1..N through the step" \
  test "$(awk -F, '{ split($12, id, ":"); if (id[2] != NR) bad++ } END { print bad + 0 }' "$work/readings.csv")" -eq 0
check "no duplicate ID" test "$(cut -d, -f12 "$work/readings.csv" | sort | uniq -d | wc -l)" -eq 0
check "the step shows in the stamps, not in the order" \
  test "$(awk -F, 'NR > 1 && $14 < prev - 3000000 { n++ } { prev = $14 } END { print n + 0 }' "$work/readings.csv")" -ge 1
check "people after the step counted: 20 in, 9 out in all" \
  test "$(awk -F, '$3 == "00-00-00" { e += $10; x += $11 } END { print e " " x }' "$work/readings.csv")" = "20 9"
finish
