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
#   wait_for SECONDS CMD...
#                          runs CMD every 0.3 s until it succeeds; false if it has
#                          not within SECONDS (a test may define its own wait_for)
#   test_cleanup [PID...]  an EXIT trap (set it before the servers start; in single
#                          quotes, so that the PIDs are read at exit): SIGKILLs the
#                          PIDs and the simulator, reaps them (no other child: one
#                          left running cannot hang the exit), stops the broker and
#                          Kafka (if started), unmounts a file system the test
#                          mounted below $work, removes $work unless TS_KEEP is set

passes=0 fails=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
test_cleanup() {
  local p m pids=("$@" ${SIM_PID:-})
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ ${#pids[@]} = 0 ] || wait "${pids[@]}" 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  kafka_cleanup 2>/dev/null || true
  for m in $([ -z "${work:-}" ] || awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || true
  done
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.3
  done
}
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
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
