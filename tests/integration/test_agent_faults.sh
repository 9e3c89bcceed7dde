#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent against turnstile-sim over Modbus TCP, with the simulator's
# faults injected: counter reset, glitch, a counter running backwards, a silent
# slave (a gap: RECOVR AUD) and exception responses. The people counted must
# add up exactly to what the test put on the registers, every anomaly must be
# flagged, and the sequence numbers must run 1..N without a gap.
set -euo pipefail
bindir=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-faults.XXXXXX)
sim_pid= agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "${TS_SRC_DIR:?}/tests/integration/lib.sh"

sim_start --generate --turnstiles 2 --fault pause --fault 'set 1 0 1000 500' --fault 'set 1 1 2000 900'
sim_pid=$SIM_PID

{
  printf '[agent]\nid = faults-agent\nstation_id = S1\npoll_interval_ms = 200\n'
  printf 'recovered_after_polls = 3\nmax_rate_per_min = 600\nclock = trust\n'
  sed 's/^slave_id = .*/&\nresponse_timeout_ms = 150\nbackoff_min_ms = 200\nbackoff_max_ms = 400/' "$work/devices.conf"
} >"$work/agent.conf"
"$bindir/turnstile-agent" -c "$work/agent.conf" >"$work/readings.csv" 2>"$work/agent.err" &
agent_pid=$!

step() { sleep "${1:-0.7}"; }
step 1.0                           # baseline readings (first)
sim set 1 0 1008 504; step         # +8 in, +4 out
sim reset 1 0 3 2; step            # counter reset to a small value: +3 in, +2 out
sim glitch 1 0 99999999 2; step    # two reads of garbage: withheld
step 0.5
sim set 1 0 9 6; step              # +6 in, +4 out
sim silent 1 on; step 1.2          # the slave stops answering ...
sim set 1 0 15 8; step 0.3         # ... people pass meanwhile: +6 in, +2 out
sim silent 1 off; step 1.2         # ... and it answers again: RECOVR AUD
sim exception 1 4; step 0.8        # slave device failure for a while
sim exception 1 off; step 1.0
for v in 1995 1990 1985 1980 1975 1970; do  # turnstile 1 counts backwards: 30 in, 30 out
  sim set 1 1 $v $((v - 1100)); step
done
step 0.5
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=

csv=$work/readings.csv
sum() { awk -F, -v scp="$1" -v col="$2" '$3 == scp { s += $col } END { print s + 0 }' "$csv"; }
flag_count() { awk -F, -v scp="$1" -v f="$2" '$3 == scp && ("|" $17 "|") ~ ("\\|" f "\\|") { n++ } END { print n + 0 }' "$csv"; }
scp0=$(awk '/^scp = /{print $3; exit}' "$work/devices.conf")
scp1=$(awk '/^scp = /{n++; if (n == 2) {print $3; exit}}' "$work/devices.conf")

check "readings were produced" test "$(wc -l <"$csv")" -gt 20
check "every line has 18 fields" test "$(awk -F, 'NF != 18' "$csv" | wc -l)" -eq 0
check "sequence runs 1..N without a gap" \
  test "$(awk -F, '{ split($12, id, ":"); if (id[2] != NR) bad++ } END { print bad + 0 }' "$csv")" -eq 0
check "turnstile 0 entries add up to 23 (got $(sum "$scp0" 10))" test "$(sum "$scp0" 10)" -eq 23
check "turnstile 0 exits add up to 12 (got $(sum "$scp0" 11))" test "$(sum "$scp0" 11)" -eq 12
check "turnstile 1 entries add up to 30 (got $(sum "$scp1" 10))" test "$(sum "$scp1" 10)" -eq 30
check "turnstile 1 exits add up to 30 (got $(sum "$scp1" 11))" test "$(sum "$scp1" 11)" -eq 30
check "first readings flagged" test "$(flag_count "$scp0" first)" -eq 1
check "the reset is flagged once" test "$(flag_count "$scp0" reset)" -eq 1
check "the glitch is flagged" test "$(flag_count "$scp0" glitch)" -ge 1
check "the backward counter is flagged downward" test "$(flag_count "$scp1" downward)" -ge 1
check "the reading after the gap is RECOVR AUD" \
  test "$(awk -F, -v scp="$scp0" '$3 == scp && $9 == "RECOVR AUD" && $10 == 6 && $11 == 2' "$csv" | wc -l)" -ge 1
check "no glitch value was published as people" test "$(awk -F, '$10 > 100 || $11 > 100' "$csv" | wc -l)" -eq 0
check "the timeouts were logged with the device" grep -q 'device sim-[0-9]*-slave-1 .*timeout' "$work/agent.err"
check "the exception was logged" grep -q 'slave device failure' "$work/agent.err"
check "the device summary counts the faults" grep -Eq 'faults \(timeouts [1-9][0-9]*, exceptions [1-9]' "$work/agent.err"

if [ "$fails" -gt 0 ]; then
  echo "--- readings"; cat "$csv"; echo "--- agent log"; cat "$work/agent.err"
fi
finish
