#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: turnstile-agent draining a backlog of N stored readings to a local mosquitto
# at QoS 1, against two baselines in the same run, all counted at one subscriber.
#
# Setup: a private mosquitto (tests/integration/broker.sh), an agent config with 64
# turnstiles on a Modbus TCP device that is never reachable (a closed loopback port, one
# hour of back-off: the agent produces no new readings), and bench/fill_store.c, which
# creates the agent's store with N readings (64 a transaction with the state blob, like
# poll cycles) twice, synchronous = full and = normal, printing the append rates, and
# writes the N reading lines the agent will publish. Then, for each window W:
#   min-pub    bench/min_pub.c: the N lines from memory, libmosquitto, QoS 1, W in flight
#              (the issue's ceiling for a libmosquitto publisher: minimal, not optimal)
#   agent      turnstile-agent --quiet on a fresh copy of the synchronous = full store,
#              [mqtt] ack = puback, max_inflight = W: rows leave the store as the broker
#              PUBACKs them; SIGTERM once the subscriber has all N
#   paho       bench/paho_pub.py: the same lines with paho-mqtt (Debian's
#              python3-paho-mqtt), QoS 1, W in flight (the reference pipeline's way)
# each with a fresh bench/count_sub.c (QoS 1, clean session) subscribed before the
# publisher starts; the case is done when it has all N distinct sequence numbers.
#
# Usage: bench/drain.sh [N] [WINDOW...]   (default 1000000 readings, windows 100 1000)
#        TS_DRAIN_ROUNDS=3 bench/drain.sh   (every case 3 times, interleaved; medians)
# Builds nothing: expects ./scripts/build --release (binaries in $TS_BIN_DIR, default
# build-release/bin), mosquitto, and /usr/bin/python3 (or $TS_PYTHON) with paho-mqtt
# (scripts/deps). TS_DRAIN_TIMEOUT: seconds a case may take (default 3600).
#
# What it measures:
#   readings/s  at the subscriber: N / (time from the first message to the one that
#               completed the set); the publishers' start-up (loading the lines, opening
#               the store) is outside it
#   peak RSS    VmHWM from /proc/PID/status, sampled every 0.1 s (the last sample)
#   CPU s       the publisher's user+sys: min-pub and paho_pub.py report their own
#               (getrusage, loading the lines included); the agent's from /proc/PID/stat
#               when the subscriber has all N (start-up included). The broker's is the
#               growth of its /proc/PID/stat over the case.
set -euo pipefail
export LC_ALL=C # '.' in $EPOCHREALTIME and in awk's numbers
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-1000000}
shift || true
windows=("$@")
((${#windows[@]})) || windows=(100 1000)
bin=${TS_BIN_DIR:-build-release/bin}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
python=${TS_PYTHON:-/usr/bin/python3}

readonly TURNSTILES=64 TARGET_MIN_PCT=80 TARGET_PAHO_X=5 TARGET_RSS_MIB=16
readonly AGENT_ID=bench-drain STATION_ID=BENCH
readonly TOPIC=turnstile/v1/$STATION_ID/$AGENT_ID/readings

die() { echo "drain: $*" >&2; exit 1; }
[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$n'"
for w in "${windows[@]}"; do
  [[ $w =~ ^[1-9][0-9]*$ ]] && ((w <= 65000)) || die "a window is 1..65000, not '$w'"
done
for b in turnstile-agent fill-store count-sub min-pub; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: run ./scripts/build --release first (or set TS_BIN_DIR)"
done
[ -x /usr/sbin/mosquitto ] || die "mosquitto not installed (scripts/deps)"
"$python" -c 'import paho.mqtt.client' 2>/dev/null ||
  die "$python cannot import paho.mqtt: apt-get install python3-paho-mqtt (scripts/deps)"

work=$(mktemp -d /tmp/turnstile-drain.XXXXXX)
pids=() # every process started here: killed and reaped on exit
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT # broker.sh runs broker_cleanup first, then this
trap 'exit 130' INT TERM
# shellcheck source=../tests/integration/broker.sh
. "$root/tests/integration/broker.sh"

. "$root/bench/proc.sh"   # tick, sample, ticks_s, field
mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }

free_port() { # a loopback port nobody listens on
  local p
  for _ in $(seq 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}

# make_config FILE WINDOW: the agent, 64 turnstiles on a device that never answers.
dead_port=$(free_port) || die "no free port"
make_config() {
  {
    printf '[agent]\nid = %s\nstation_id = %s\nclock = trust\nlog_level = info\n' \
      "$AGENT_ID" "$STATION_ID"
    printf 'ca = A002\nunit = R051\nstation = 59 ST\nlinename = NQR456W\ndivision = BMT\n\n'
    printf '[store]\npath = %s\nmax_rows = %d\nmax_bytes = 1000000000000\n' \
      "$work/drain.db" $((2 * n + 1000))
    printf 'synchronous = full\n\n'
    printf '[mqtt]\nhost = 127.0.0.1\nport = %d\nack = puback\nmax_inflight = %d\n\n' \
      "$BROKER_PORT" "$2"
    printf '# never reachable: nothing listens on this port; one hour of back-off\n'
    printf '[device gone]\nkind = modbus-tcp\nhost = 127.0.0.1\nport = %d\nretries = 0\n' \
      "$dead_port"
    printf 'backoff_min_ms = 3600000\nbackoff_max_ms = 3600000\n\n'
    for ((i = 0; i < TURNSTILES; i++)); do
      printf '[turnstile t%02d]\ndevice = gone\nscp = 02-%02d-%02d\n' "$i" $((i / 16)) $((i % 16))
      printf 'entries_address = %d\nexits_address = %d\n\n' $((4 * i)) $((4 * i + 2))
    done
  } >"$1"
}

# --- the broker ---------------------------------------------------------------------
# No persistence (a bench); no limit on the messages queued for the subscriber (the
# default 100000 of broker.sh would drop); 1000 in flight towards the subscriber.
broker_start --conf "$(printf '%s\n' 'persistence false' 'max_queued_messages 0' \
  'max_inflight_messages 1000')" || die "the broker did not start"
echo "drain: mosquitto on 127.0.0.1:$BROKER_PORT (pid $BROKER_PID)" >&2

# --- the backlog --------------------------------------------------------------------
make_config "$work/agent.conf" "${windows[0]}"
"$bin/turnstile-agent" --check-config -c "$work/agent.conf" >/dev/null ||
  die "the agent config is refused: $work/agent.conf"
echo "drain: fill-store: $n readings, twice ..." >&2
"$bin/fill-store" -c "$work/agent.conf" -n "$n" --lines "$work/lines.csv" \
  "$work/full.db" "$work/normal.db" >"$work/fill.out" || die "fill-store failed"
append_full=$(sed -n 's/^append synchronous=full: .* s: \([0-9]*\) readings\/s, \([0-9.]*\) transactions\/s.*$/\1 readings\/s, \2 transactions\/s/p' "$work/fill.out")
append_normal=$(sed -n 's/^append synchronous=normal: .* s: \([0-9]*\) readings\/s, \([0-9.]*\) transactions\/s.*$/\1 readings\/s, \2 transactions\/s/p' "$work/fill.out")
db_mib=$(mib $(($(stat -c %s "$work/full.db") / 1024)))

# --- the cases ----------------------------------------------------------------------
# One line a run: kind|window|round|readings/s|duplicates|peak RSS kB|CPU s|broker CPU s
runs=()
timeout_s=${TS_DRAIN_TIMEOUT:-3600}
paho_version=$("$python" -c 'import paho.mqtt as m; print(m.__version__)')
declare -A label=([min-pub]="min-pub (libmosquitto, from memory)" [agent]="turnstile-agent"
  [paho]="paho_pub.py (paho-mqtt $paho_version)")

# run_case KIND WINDOW ROUND
run_case() {
  local kind=$1 w=$2 round=$3 sub pub rc=0 b0 cpu
  local out=$work/$kind-$w-$round
  echo "drain: round $round/$rounds: $kind, window $w, $n readings ..." >&2
  "$bin/count-sub" -p "$BROKER_PORT" -t "$TOPIC" -n "$n" --timeout "$timeout_s" --idle 60 \
    >"$out.sub" 2>"$out.sub.err" &
  sub=$!
  pids+=("$sub")
  for _ in $(seq 100); do
    grep -qs '^ready' "$out.sub" && break
    kill -0 "$sub" 2>/dev/null || break
    tick
  done
  grep -qs '^ready' "$out.sub" || die "count-sub did not subscribe: $(tr '\n' ' ' <"$out.sub.err")"
  sample "$BROKER_PID" || die "the broker is gone"
  b0=${ticks[$BROKER_PID]}
  case $kind in
    agent)
      make_config "$work/agent.conf" "$w"
      rm -f "$work"/drain.db*
      cp "$work/full.db" "$work/drain.db"
      "$bin/turnstile-agent" -c "$work/agent.conf" --quiet >"$out.pub" 2>"$out.pub.err" & ;;
    min-pub)
      "$bin/min-pub" -p "$BROKER_PORT" -t "$TOPIC" -f "$work/lines.csv" -w "$w" \
        >"$out.pub" 2>"$out.pub.err" & ;;
    paho)
      "$python" "$root/bench/paho_pub.py" -p "$BROKER_PORT" -t "$TOPIC" -f "$work/lines.csv" \
        -w "$w" >"$out.pub" 2>"$out.pub.err" & ;;
  esac
  pub=$!
  pids+=("$pub")
  while sample "$sub"; do
    sample "$pub" || [ "$kind" != agent ] ||
      die "turnstile-agent exited: $(tail -3 "$out.pub.err" | tr '\n' ' ')"
    sample "$BROKER_PID" || true
    tick
  done
  wait "$sub" || rc=$?
  sample "$BROKER_PID" || true
  [ "$rc" -eq 0 ] || die "$kind, window $w: count-sub failed: $(tr '\n' ' ' <"$out.sub.err")"
  if [ "$kind" = agent ]; then
    sample "$pub" || true
    cpu=$(ticks_s "${ticks[$pub]}")
    kill -TERM "$pub" 2>/dev/null || true
    wait "$pub" || die "turnstile-agent exited with status $?: $(tail -3 "$out.pub.err" | tr '\n' ' ')"
    # rows leave the store as they are PUBACKed: the agent says what it kept
    sed -n 's/^.*info: \(store: .*\)$/\1/p' "$out.pub.err" >"$work/agent-$w.kept"
  else
    wait "$pub" || die "$kind exited with status $?: $(tr '\n' ' ' <"$out.pub.err")"
    cpu=$(field cpu_s "$out.pub")
  fi
  runs+=("$kind|$w|$round|$(field rate "$out.sub")|$(field duplicates "$out.sub")|${hwm[$pub]:-0}|$cpu|$(ticks_s $((ticks[$BROKER_PID] - b0)))")
  echo "drain:   $(field rate "$out.sub") readings/s at the subscriber" >&2
}

# Rounds: the three publishers one after the other, for each window, ROUNDS times, so
# that each comparison is between neighbours in time (other load on the machine drifts).
rounds=${TS_DRAIN_ROUNDS:-1}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "TS_DRAIN_ROUNDS must be a positive integer"
for ((r = 1; r <= rounds; r++)); do
  for w in "${windows[@]}"; do
    for kind in min-pub agent paho; do run_case "$kind" "$w" "$r"; done
  done
done

# --- report -------------------------------------------------------------------------
# stat KIND WINDOW COLUMN(4..8) median|max|min|sum|list: over the rounds
stat() {
  local r k w rd v vals=()
  for r in "${runs[@]}"; do
    IFS='|' read -r k w rd _ <<<"$r"
    [ "$k" = "$1" ] && [ "$w" = "$2" ] || continue
    v=$(cut -d'|' -f"$3" <<<"$r")
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | sort -g | awk -v op="$4" '{ v[NR] = $1; s += $1 } END {
    n = NR
    if (op == "median") print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    else if (op == "max") print v[n]; else if (op == "min") print v[1]; else if (op == "sum") print s }'
}
# per-round ratio of the agent's rate to KIND's, as a list
ratios() { # KIND WINDOW
  local r k w rd rate out=()
  declare -A a=() b=()
  for r in "${runs[@]}"; do
    IFS='|' read -r k w rd rate _ <<<"$r"
    [ "$w" = "$2" ] || continue
    [ "$k" = agent ] && a[$rd]=$rate
    [ "$k" = "$1" ] && b[$rd]=$rate
  done
  for ((rd = 1; rd <= rounds; rd++)); do
    out+=("$(awk -v x="${a[$rd]}" -v y="${b[$rd]}" 'BEGIN { printf "%.2f", x / y }')")
  done
  echo "${out[*]}"
}

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "drain: $(date '+%Y-%m-%d %H:%M %Z'), $(nproc) cores (${model:-unknown CPU}), Linux $(uname -r)," \
  "mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -1)"
echo "  $n readings ($TURNSTILES turnstiles, $(($(wc -c <"$work/lines.csv") / n)) bytes a line)," \
  "QoS 1 to 127.0.0.1, counted at one QoS 1 subscriber; $rounds round(s)"
echo "  the agent: ack = puback (rows leave the store as PUBACKed), store synchronous = full"
echo
echo "  store append (fill-store, $TURNSTILES readings + state blob a transaction; store file $db_mib MiB):"
echo "    synchronous = full    $append_full"
echo "    synchronous = normal  $append_normal"
echo
fmt='  %-38s %6s %11s %15s %9s %7s %9s %8s %10s %5s\n'
printf "$fmt" "publisher" "window" "readings/s" "" "% min-pub" "x paho" "peak RSS" "CPU s" "broker CPU" "dups"
printf "$fmt" "" "" "(at sub)" "(min-max)" "" "" "MiB" "(pub)" "s" ""
verdicts=()
for w in "${windows[@]}"; do
  m=$(stat min-pub "$w" 4 median) p=$(stat paho "$w" 4 median)
  for kind in min-pub agent paho; do
    rate=$(stat "$kind" "$w" 4 median)
    range="-"
    ((rounds == 1)) || range="$(stat "$kind" "$w" 4 min)-$(stat "$kind" "$w" 4 max)"
    rss=$(mib "$(stat "$kind" "$w" 6 max)")
    printf "$fmt" "${label[$kind]}" "$w" "$rate" "$range" \
      "$(awk -v a="$rate" -v b="$m" 'BEGIN { printf "%.0f%%", 100 * a / b }')" \
      "$(awk -v a="$rate" -v b="$p" 'BEGIN { printf "%.2f", a / b }')" "$rss" \
      "$(stat "$kind" "$w" 7 median)" "$(stat "$kind" "$w" 8 median)" "$(stat "$kind" "$w" 5 sum)"
    [ "$kind" = agent ] || continue
    verdicts+=("$(awk -v w="$w" -v a="$rate" -v m="$m" -v p="$p" -v r="$rss" \
      -v tm="$TARGET_MIN_PCT" -v tp="$TARGET_PAHO_X" -v tr="$TARGET_RSS_MIB" 'BEGIN {
      printf "window %s: %.0f%% of min-pub (target >= %d%%: %s), %.2f x paho (target >= %d: %s), " \
        "peak RSS %s MiB (target < %d: %s)", w, 100 * a / m, tm, (100 * a / m >= tm) ? "met" : "MISSED",
        a / p, tp, (a / p >= tp) ? "met" : "MISSED", r, tr, (r < tr) ? "met" : "MISSED" }')")
    ((rounds == 1)) || verdicts+=("  per round: agent / min-pub $(ratios min-pub "$w"); agent / paho $(ratios paho "$w")")
  done
done
echo "  (readings/s: the median over the rounds; % min-pub and x paho: ratios of the medians;"
echo "   peak RSS: the highest; CPU s: the median, the publisher's and the broker's over the case)"
echo
for w in "${windows[@]}"; do
  [ -s "$work/agent-$w.kept" ] && echo "  agent, window $w, at SIGTERM: $(cat "$work/agent-$w.kept")"
done
echo
echo "  targets (issue): the agent's drain >= $TARGET_MIN_PCT% of min-pub and >= $TARGET_PAHO_X x paho" \
  "at the same window; peak RSS < $TARGET_RSS_MIB MiB"
for v in "${verdicts[@]}"; do echo "  $v"; done
