#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: turnstile-agent polling 64 turnstiles on 4 simulated Modbus TCP devices.
#
# Starts 4 turnstile-sim processes (Modbus TCP on loopback, generated traffic, 16
# turnstiles of 32-bit counters each, 60x clock), then runs, one after the other:
#   1. turnstile-agent at 1 Hz (the issue's case; targets: < 1% of one core, < 8 MiB),
#      and measures the 4 simulators while they serve it
#   2. turnstile-agent at 10 Hz
#   3. 4 mbpoll processes reading the same 4 x 64 registers at 1 Hz (a plain Modbus poller)
# and prints, for each, CPU % of one core, peak RSS and readings, with the targets.
#
# Usage: bench/agent_poll.sh [SECONDS]   (default 60: each case runs that long)
# Builds nothing: expects ./scripts/build --release (binaries in $TS_BIN_DIR, default
# build-release/bin). mbpoll is optional: case 3 is skipped without it.
#
# How it measures (no extra tools; bash builtins and /proc, nothing forked while a case runs):
#   CPU    of the agent and of mbpoll: user+sys of the processes reaped during the case,
#          from bash's `times` (getrusage RUSAGE_CHILDREN) before and after: exact, start-up
#          and exit included. Of the simulators (which keep running): the growth of their
#          threads' sum_exec_runtime (/proc/PID/task/*/schedstat, ns) over the agent's life.
#          CPU % of one core = CPU seconds / wall seconds * 100.
#   RSS    VmHWM from /proc/PID/status, sampled every 0.1 s; the last sample (peak so far).
#   readings  the agent's CSV lines: stdout goes to a file (not --quiet), so formatting and
#          writing them are measured too; counted with wc -l. mbpoll: values printed / 2.
set -euo pipefail
export LC_ALL=C # '.' in $EPOCHREALTIME, in `times` and in awk's numbers
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-60}
bin=${TS_BIN_DIR:-build-release/bin}
case $bin in /*) ;; *) bin=$root/$bin ;; esac

readonly N_DEVICES=4 TURNSTILES=16 SPEED=60 TARGET_CPU=1 TARGET_RSS_MIB=8

die() { echo "agent_poll: $*" >&2; exit 1; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, not '$seconds'"
for b in turnstile-sim turnstile-agent; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: run ./scripts/build --release first (or set TS_BIN_DIR)"
done

work=$(mktemp -d /tmp/turnstile-bench.XXXXXX)
pids=() # every process started here: killed and reaped on exit
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A 0.1 s sleep without a fork (a read that times out on a FIFO nobody writes).
mkfifo "$work/tick"
exec {tick_fd}<>"$work/tick"
tick() { read -r -t 0.1 -u "$tick_fd" _ || true; }

# child_ms: sets CHILD_MS to the CPU time (user+sys, ms) of every child this shell has
# reaped so far. `times` must run in this shell: in $(...) it would report a fresh fork's 0.
CHILD_MS=0
child_ms() {
  local u s t ms=0
  times >"$work/times"
  { read -r _; read -r u s; } <"$work/times"
  for t in "$u" "$s"; do
    [[ $t =~ ^([0-9]+)m([0-9]+)\.([0-9]{3})s$ ]] || die "cannot parse the output of times: '$t'"
    ms=$((ms + BASH_REMATCH[1] * 60000 + 10#${BASH_REMATCH[2]} * 1000 + 10#${BASH_REMATCH[3]}))
  done
  CHILD_MS=$ms
}

# sample PID: records the process's VmHWM (kB) in hwm[PID]; fails once it has exited
# (gone, or a zombie).
declare -A hwm=()
sample() {
  local pid=$1 line k v rest
  { read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 1
  rest=${line##*) }
  [ "${rest:0:1}" != Z ] || return 1
  { while read -r k v rest; do
      if [ "$k" = VmHWM: ]; then hwm[$pid]=$v; break; fi
    done <"/proc/$pid/status"; } 2>/dev/null || true
  return 0
}

# sched_ns PID...: sets SCHED_NS to the summed run time (ns) of the live threads of these
# processes, and records their VmHWM.
SCHED_NS=0
sched_ns() {
  local pid t ns rest total=0
  for pid in "$@"; do
    sample "$pid" || die "simulator $pid exited"
    for t in /proc/"$pid"/task/*/schedstat; do
      { read -r ns rest <"$t"; } 2>/dev/null && total=$((total + ns))
    done
  done
  SCHED_NS=$total
}

sum_hwm() { local s=0 p; for p in "$@"; do s=$((s + ${hwm[$p]:-0})); done; echo "$s"; }
pct_ms() { awk -v t="$1" -v w="$2" 'BEGIN { printf "%.3f", t / 1000 / w * 100 }'; } # MS WALL_S
mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
wall_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# Result rows: what | CPU % | peak RSS MiB | readings
rows=()
row() { rows+=("$1|$2|$3|$4"); }

# --- the 4 simulated devices -------------------------------------------------------
ports=() sim_pids=()
for ((i = 1; i <= N_DEVICES; i++)); do
  mkfifo "$work/sim$i.in"
  "$bin/turnstile-sim" --tcp 127.0.0.1:0 --generate --turnstiles "$TURNSTILES" --speed "$SPEED" \
    --agent-config "$work/sim$i.conf" --log-level warning \
    <"$work/sim$i.in" >"$work/sim$i.out" 2>"$work/sim$i.err" &
  pids+=($!) sim_pids+=($!)
  exec {fd}>"$work/sim$i.in" # hold the control channel open for the whole run
  for _ in $(seq 100); do
    grep -q '^listening tcp' "$work/sim$i.out" && break
    kill -0 "${sim_pids[-1]}" 2>/dev/null || break
    tick
  done
  grep -q '^listening tcp' "$work/sim$i.out" ||
    die "simulator $i did not start: $(tail -3 "$work/sim$i.err" | tr '\n' ' ')"
  ports+=("$(awk '/^listening tcp/ {print $3; exit}' "$work/sim$i.out")")
done
echo "agent_poll: $N_DEVICES x turnstile-sim --generate --turnstiles $TURNSTILES --speed $SPEED" \
  "on 127.0.0.1 ports ${ports[*]}" >&2

# make_config FILE POLL_INTERVAL_MS: [agent] plus each simulator's [device]/[turnstile]
# sections. The generated turnstiles are SIM/R000/00-00-KK on every simulator, so device
# i's get UNIT R00i to keep the 64 identities distinct.
make_config() {
  {
    printf '[agent]\nid = bench-agent\nstation_id = BENCH\npoll_interval_ms = %s\n' "$2"
    printf '# generated traffic: at most 60 people per simulated minute, %d per real minute at %dx\n' \
      $((60 * SPEED)) "$SPEED"
    printf 'max_rate_per_min = %d\n\n' $((120 * SPEED))
    for ((i = 1; i <= N_DEVICES; i++)); do
      sed -e "s#^\[turnstile SIM/R000/#[turnstile SIM/R00$i/#" -e "s/^unit = R000\$/unit = R00$i/" \
        "$work/sim$i.conf"
    done
  } >"$1"
  "$bin/turnstile-agent" --check-config -c "$1" >/dev/null || die "generated config $1 is invalid"
}

# run_agent LABEL POLL_INTERVAL_MS [sims]: the agent for $seconds (it stops itself at
# --duration). With "sims", also the simulators' CPU while it runs.
run_agent() {
  local label=$1 conf=$work/agent-$2.conf out=$work/agent-$2.out err=$work/agent-$2.err
  local pid t0 t1 rc=0 wall cpu0 sim0=0 sim1=0
  make_config "$conf" "$2"
  echo "agent_poll: $label: ${seconds}s ..." >&2
  [ "${3:-}" != sims ] || { sched_ns "${sim_pids[@]}"; sim0=$SCHED_NS; }
  child_ms; cpu0=$CHILD_MS
  t0=$EPOCHREALTIME
  "$bin/turnstile-agent" -c "$conf" --duration "$seconds" >"$out" 2>"$err" &
  pid=$!
  pids+=("$pid")
  while sample "$pid"; do
    [ "${3:-}" != sims ] || { sched_ns "${sim_pids[@]}"; sim1=$SCHED_NS; }
    tick
    ((${EPOCHREALTIME%.*} - ${t0%.*} < seconds + 30)) || die "$label: the agent did not stop at --duration"
  done
  wait "$pid" || rc=$?
  t1=$EPOCHREALTIME
  child_ms
  [ "$rc" -eq 0 ] || die "$label: turnstile-agent exited with status $rc: $(tail -3 "$err" | tr '\n' ' ')"
  wall=$(wall_s "$t0" "$t1")
  row "$label" "$(pct_ms $((CHILD_MS - cpu0)) "$wall")" "$(mib "${hwm[$pid]:-0}")" "$(wc -l <"$out")"
  if [ "${3:-}" = sims ]; then
    row "  turnstile-sim x$N_DEVICES serving it (sum)" "$(pct_ms $(((sim1 - sim0) / 1000000)) "$wall")" \
      "$(mib "$(sum_hwm "${sim_pids[@]}")")" "-"
  fi
  # the agent's own account: readings, anomalies, polls and faults per device
  sed -n -e 's/^.*info: \(stopping: .*\)$/    \1/p' \
    -e 's/^.*info: device \([^ ]*: [0-9]* polls, [0-9]* faults\).*$/    \1/p' "$err" >"$work/agent-$2.summary"
}

# run_mbpoll: one mbpoll per device, each reading its 16 turnstiles' 64 registers
# (32 x 32-bit big-endian values) every 1000 ms for $seconds, then SIGINT; summed.
run_mbpoll() {
  local label="mbpoll x$N_DEVICES, 1 Hz, same registers (sum)" i t0 t1 p wall values=0 n cpu0
  local -a mb=()
  echo "agent_poll: $label: ${seconds}s ..." >&2
  child_ms; cpu0=$CHILD_MS
  t0=$EPOCHREALTIME
  for ((i = 1; i <= N_DEVICES; i++)); do
    mbpoll -m tcp -p "${ports[i - 1]}" -a 1 -0 -r 0 -c $((2 * TURNSTILES)) -t 4:int -B -l 1000 \
      127.0.0.1 >"$work/mbpoll$i.out" 2>"$work/mbpoll$i.err" &
    mb+=($!) pids+=($!)
  done
  while ((${EPOCHREALTIME/./} - ${t0/./} < seconds * 1000000)); do
    for p in "${mb[@]}"; do
      sample "$p" || die "mbpoll exited early: $(cat "$work"/mbpoll*.err | tr '\n' ' ')"
    done
    tick
  done
  for p in "${mb[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${mb[@]}"; do wait "$p" 2>/dev/null || true; done
  t1=$EPOCHREALTIME
  child_ms
  for ((i = 1; i <= N_DEVICES; i++)); do
    n=$(grep -c '^\[' "$work/mbpoll$i.out" || true)
    values=$((values + n))
  done
  wall=$(wall_s "$t0" "$t1")
  row "$label" "$(pct_ms $((CHILD_MS - cpu0)) "$wall")" "$(mib "$(sum_hwm "${mb[@]}")")" $((values / 2))
}

run_agent "turnstile-agent, 1 Hz (64 turnstiles, 4 devices)" 1000 sims
run_agent "turnstile-agent, 10 Hz (poll_interval_ms = 100)" 100
if command -v mbpoll >/dev/null; then
  run_mbpoll
else
  echo "agent_poll: mbpoll not installed: no mbpoll comparison (apt-get install mbpoll)" >&2
fi

# --- report ------------------------------------------------------------------------
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "agent_poll: $(date '+%Y-%m-%d %H:%M %Z'), $(nproc) cores (${model:-unknown CPU}), Linux $(uname -r)"
echo "  $seconds s a case; $N_DEVICES devices x $TURNSTILES turnstiles (32-bit counters, 64 registers a" \
  "device), Modbus TCP on loopback"
echo "  CPU % of one core = (user+sys) / wall; peak RSS = VmHWM (summed over processes where x4);"
echo "  readings: agent CSV lines (stdout to a file), mbpoll 32-bit values / 2; one a turnstile a poll"
echo
printf '  %-52s %16s %13s %9s\n' "what" "CPU % of 1 core" "peak RSS MiB" "readings"
printf '  %-52s %16s %13s %9s\n' "target (issue): turnstile-agent at 1 Hz" "< $TARGET_CPU" \
  "< $TARGET_RSS_MIB" "~$((64 * seconds))"
for r in "${rows[@]}"; do
  IFS='|' read -r what cpu rss n <<<"$r"
  printf '  %-52s %16s %13s %9s\n' "$what" "$cpu" "$rss" "$n"
done
for hz in 1000:1 100:10; do
  f=$work/agent-${hz%%:*}.summary
  [ -s "$f" ] || continue
  echo
  echo "  the agent at ${hz#*:} Hz, its own account:"
  cat "$f"
done
IFS='|' read -r _ cpu rss _ <<<"${rows[0]}"
echo
awk -v c="$cpu" -v r="$rss" -v tc="$TARGET_CPU" -v tr="$TARGET_RSS_MIB" 'BEGIN {
  printf "  1 Hz agent: CPU %s%% of one core (target < %s%%), peak RSS %s MiB (target < %s MiB): %s\n",
    c, tc, r, tr, (c < tc && r < tr) ? "within the targets" : "OVER A TARGET" }'
