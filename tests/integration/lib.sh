# SPDX-License-Identifier: Apache-2.0
# lib.sh - shared pieces of the bash integration tests. Source it after
# setting `work` (a temp dir the test removes).
#
#   check NAME CMD...      runs CMD; counts and prints ok/FAIL
#   finish                 prints "N passed, M failed" and returns non-zero on failure
#   sim_start ARGS...      starts turnstile-sim --tcp 127.0.0.1:0 ARGS with a
#                          control FIFO on fd 7; sets SIM_PID, SIM_PORT and writes
#                          the agent sections to $work/devices.conf
#   sim CMD...             sends a control command and waits for its ok
#   sim_get S K            prints "ENTRIES EXITS" served now by slave S turnstile K
#   wait_until SECS CMD... runs CMD every 0.1 s until it succeeds (returns 0) or SECS
#                          have passed (returns 1): for what takes longer under qemu or load

passes=0 fails=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
wait_until() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

sim_start() {
  mkfifo "$work/sim.in"
  "${TS_BIN_DIR:?}/turnstile-sim" --tcp 127.0.0.1:0 --agent-config "$work/devices.conf" "$@" \
    <"$work/sim.in" >"$work/sim.out" 2>"$work/sim.err" &
  SIM_PID=$!
  exec 7>"$work/sim.in"
  for _ in $(seq 200); do grep -q '^listening' "$work/sim.out" && break; sleep 0.05; done
  grep -q '^listening' "$work/sim.out" || { echo "turnstile-sim did not start"; cat "$work/sim.err"; return 1; }
  SIM_PORT=$(awk '/^listening tcp/ {print $3}' "$work/sim.out")
}

sim() {
  local before
  before=$(grep -c '^\(ok\|error\)' "$work/sim.out" || true)
  echo "$*" >&7
  for _ in $(seq 250); do
    [ "$(grep -c '^\(ok\|error\)' "$work/sim.out" || true)" -gt "$before" ] && break
    sleep 0.02
  done
  grep '^\(ok\|error\)' "$work/sim.out" | tail -1 | grep -q '^ok' ||
    { echo "sim command '$*' failed: $(tail -1 "$work/sim.out")"; return 1; }
}

sim_get() {
  sim get "$1" "$2" && grep '^ok get' "$work/sim.out" | tail -1 | awk '{print $5, $6}'
}
