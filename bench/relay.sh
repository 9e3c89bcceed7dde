#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: the relay (turnstile-bridge --role relay, MQTT to Kafka) taking N readings
# (default 1,000,000) from C simulated agents (default 100), next to a bare mosquitto_sub
# reading the same stream from the same broker in the same run (the broker's own ceiling).
# The issue's target: the relay at least 50% of the mosquitto_sub rate.
#
# Setup: a private mosquitto (tests/integration/broker.sh; persistence false,
# max_queued_messages 0 = no limit, so the broker never drops for a consumer that falls
# behind; max_inflight_messages TS_RELAY_BROKER_INFLIGHT, default 100 as in
# config/mosquitto/turnstile.conf) and a real Kafka 3.9.1 (tests/integration/kafka.sh,
# KRaft, one node, loopback), both running for the whole benchmark. The publishers are
# bench/relay_pub.c: C libmosquitto clients in one process, one agent each with its own
# topic turnstile/v1/BENCH-SS/bench-agent-NNN/readings, QoS 1, W = TS_RELAY_WINDOW
# (default 100) not yet PUBACKed per client, valid 18-field lines formatted with
# ts_reading_format before connecting. The two consumers:
#   mosquitto_sub  mosquitto_sub -q 1 -c -i ID -t 'turnstile/v1/+/+/readings' -C N,
#                  output to /dev/null; a persistent session like the relay's, created
#                  (with its subscription) before anything is published; done when it
#                  exits after N messages
#   relay          turnstile-bridge -c CONF --role relay, the defaults of
#                  config/bridge.conf.example (queue_max_messages 100000, linger_ms 20,
#                  lz4, acks=all, idempotence) into a fresh 4-partition topic; done when
#                  its status line (status_interval_ms = 100) says Kafka confirmed all N;
#                  then SIGTERM, and the topic's end offsets (kcat -Q) must add up to N
# Each session is removed after its case, so that it does not queue the next one's readings.
# Two modes (TS_RELAY_MODES, default "live backlog"), each mosquitto_sub then relay, back
# to back, with identical publishing:
#   live     the consumer is subscribed and connected, then the publishers start: the
#            issue's case, N readings from C publishers through the broker into the
#            consumer; timed from the first PUBLISH
#   backlog  the publishers first put all N in the consumer's (offline) session, then the
#            consumer starts and drains it: what the consumer itself can take from the
#            broker, without publishers competing for the CPU; timed from its start
# Back to back, not both subscribed at once: each consumer has the broker to itself (a
# second subscriber doubles the broker's output work and takes CPU from the first), and
# both see the same publishers doing the same thing; Kafka runs (idle) during the
# mosquitto_sub cases too.
#
# What it measures:
#   readings/s  N / (from the start: live, the publishers' first PUBLISH, all C connected;
#               backlog, the consumer's start; to the consumer having all N:
#               mosquitto_sub's exit; the relay's status line saying N in Kafka, i.e.
#               confirmed with acks=all, at most 0.1 s late)
#   pub rate    the publishers' own: N / (first PUBLISH to last PUBACK)
#   CPU s       the consumer's user+sys (mosquitto_sub: bash's `times` when it exits;
#               the relay: /proc/PID/stat when Kafka has all N), the publishers' own
#               (getrusage, formatting included), the broker's and the Kafka JVM's
#               growth of /proc/PID/stat over the case
#   peak RSS    VmHWM from /proc/PID/status, sampled every 0.1 s (the relay's and
#               mosquitto_sub's)
#   threads     the relay's CPU seconds per thread when Kafka has all N: the MQTT
#               network thread (libmosquitto, the checks, rd_kafka_producev), the
#               delivery-report thread, librdkafka's threads
#
# Usage: bench/relay.sh [N]            (default 1000000)
#   TS_RELAY_MODES ("live backlog"), TS_RELAY_CLIENTS (100), TS_RELAY_WINDOW (100),
#   TS_RELAY_ROUNDS (1: with more, the cases alternate and medians are shown; the shared
#   machine's noise calls for 3), TS_RELAY_BROKER_INFLIGHT (100),
#   TS_RELAY_TIMEOUT (seconds a case may take, 1800), KAFKA_HEAP_OPTS (-Xms512m -Xmx1g).
# Builds nothing: expects ./scripts/build --release (binaries in $TS_BIN_DIR, default
# build-release/bin), mosquitto, mosquitto-clients, kcat and Java (scripts/deps).
set -euo pipefail
export LC_ALL=C # '.' in $EPOCHREALTIME and in awk's numbers
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-1000000}
clients=${TS_RELAY_CLIENTS:-100}
window=${TS_RELAY_WINDOW:-100}
rounds=${TS_RELAY_ROUNDS:-1}
read -ra modes <<<"${TS_RELAY_MODES:-live backlog}"
broker_inflight=${TS_RELAY_BROKER_INFLIGHT:-100}
timeout_s=${TS_RELAY_TIMEOUT:-1800}
bin=${TS_BIN_DIR:-build-release/bin}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}

readonly TARGET_PCT=50 PARTITIONS=4
readonly FILTER='turnstile/v1/+/+/readings'

die() { echo "relay.sh: $*" >&2; exit 1; }
for v in n clients window rounds broker_inflight timeout_s; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
for m in "${modes[@]}"; do
  [[ $m == live || $m == backlog ]] || die "TS_RELAY_MODES: '$m' is not live or backlog"
done
((n >= clients)) || die "N ($n) must be at least the number of clients ($clients)"
for b in turnstile-bridge relay-pub; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: run ./scripts/build --release first (or set TS_BIN_DIR)"
done
[ -x /usr/sbin/mosquitto ] || die "mosquitto not installed (scripts/deps)"
for c in mosquitto_sub kcat java; do
  command -v "$c" >/dev/null || die "$c not found (scripts/deps)"
done

work=$(mktemp -d /tmp/turnstile-relay.XXXXXX)
pids=() # every process started here: killed and reaped on exit
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT # broker.sh and kafka.sh put their clean-ups in front of it
trap 'exit 130' INT TERM
# shellcheck source=../tests/integration/broker.sh
. "$root/tests/integration/broker.sh"
# shellcheck source=../tests/integration/kafka.sh
. "$root/tests/integration/kafka.sh"
pd=()
command -v setpriv >/dev/null && pd=(setpriv --pdeathsig KILL) # die with this shell

. "$root/bench/proc.sh"   # tick, sample, ticks_s, field
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# --- the brokers ----------------------------------------------------------------------
broker_start --conf "$(printf '%s\n' 'persistence false' 'max_queued_messages 0' \
  'max_queued_bytes 0' "max_inflight_messages $broker_inflight")" || die "mosquitto did not start"
echo "relay.sh: mosquitto on 127.0.0.1:$BROKER_PORT (pid $BROKER_PID)" >&2
echo "relay.sh: starting Kafka ..." >&2
kafka_start || die "Kafka did not start"
echo "relay.sh: Kafka on $KAFKA_BOOTSTRAP (pid $KAFKA_PID)" >&2
kafka_create_topic bench.deadletter 1 || die "cannot create the dead-letter topic"
trap 'cleanup; kafka_cleanup; broker_cleanup' EXIT # this script's processes first

# forget MQTT session ID (a clean-session connection with the same client id), so that
# it does not queue the next case's readings
forget_session() {
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -i "$1" -t bench/none -E >/dev/null 2>&1 ||
    die "cannot remove the MQTT session $1"
}

# connections the broker logged for client id ID so far
connections() { grep -c " as $1 (" "$BROKER_LOG" || true; }

# wait_log FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN
wait_log() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qs -- "$2" "$1" && return 0
    kill -0 "$4" 2>/dev/null || return 1
    tick
  done
  return 1
}

# start_pub OUT: the publishers; sets pub
start_pub() {
  "${pd[@]}" "$bin/relay-pub" -p "$BROKER_PORT" -n "$n" -c "$clients" -w "$window" \
    --timeout "$timeout_s" >"$1.pub" 2>"$1.pub.err" &
  pub=$!
  pids+=("$pub")
}

# threads PID: the relay's CPU seconds per thread: its main thread, then the threads it
# starts in this order: librdkafka's (named rdk:...), the delivery-report thread, the MQTT
# network thread (checks and produce run there)
threads() {
  local t comm line rest k=0 out=()
  local -a f
  for t in $(ls "/proc/$1/task" | sort -n); do
    read -r comm <"/proc/$1/task/$t/comm" 2>/dev/null || continue
    read -r line <"/proc/$1/task/$t/stat" 2>/dev/null || continue
    rest=${line##*) }
    read -ra f <<<"$rest"
    if [[ $comm != rdk:* ]]; then
      case $((k++)) in 0) comm=main ;; 1) comm=delivery-reports ;; 2) comm=mqtt ;; esac
    fi
    out+=("$comm $(ticks_s $((f[11] + f[12])))")
  done
  local IFS=,
  echo "${out[*]}" | sed 's/,/, /g'
}

# iso2epoch 2026-11-26T06:20:01.123Z: seconds since the epoch
iso2epoch() { date -u -d "$1" +%s.%N; }

# One line a run: kind|round|readings/s|elapsed s|pub rate|CPU s|peak RSS kB|pub CPU s|
# broker CPU s|Kafka CPU s|note (relay: seconds until it had taken all N from MQTT)
runs=()

# --- case: mosquitto_sub ---------------------------------------------------------------
# run_sub MODE ROUND
run_sub() {
  local mode=$1 r=$2 out=$work/sub-$1-$2 id=bench-sub-$1-$2 sub msub="" b0 k0 rc t_end t0 cpu c0
  echo "relay.sh: round $r/$rounds, $mode: mosquitto_sub, $n readings ..." >&2
  # the persistent session and its subscription exist before anything is published
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -i "$id" -c -q 1 -t "$FILTER" -E ||
    die "mosquitto_sub cannot subscribe"
  if [ "$mode" = backlog ]; then # everything queued in the session first
    start_pub "$out"
    wait "$pub" || die "relay-pub failed: $(cat "$out.pub.err")"
  fi
  sample "$BROKER_PID" || die "mosquitto is gone"
  sample "$KAFKA_PID" || die "Kafka is gone"
  b0=${ticks[$BROKER_PID]} k0=${ticks[$KAFKA_PID]}
  c0=$(connections "$id")
  t0=$EPOCHREALTIME
  (
    rc=0
    mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -i "$id" -c -q 1 -t "$FILTER" -C "$n" \
      >/dev/null 2>"$out.err" || rc=$?
    t=$EPOCHREALTIME
    times >"$out.times"
    echo "$rc $t" >"$out.end"
  ) &
  sub=$!
  pids+=("$sub")
  if [ "$mode" = live ]; then
    for _ in $(seq 100); do
      (($(connections "$id") > c0)) && break
      tick
    done
    (($(connections "$id") > c0)) || die "mosquitto_sub did not connect: $(cat "$out.err")"
    start_pub "$out"
  fi
  for _ in $(seq 20); do # mosquitto_sub, the subshell's child
    read -r msub _ <"/proc/$sub/task/$sub/children" 2>/dev/null || true
    [ -z "$msub" ] || break
    tick
  done
  while sample "$sub"; do
    [ -z "$msub" ] || sample "$msub" || true
    sample "$BROKER_PID" || true
    sample "$KAFKA_PID" || true
    tick
  done
  wait "$sub" || true
  [ "$mode" = backlog ] || wait "$pub" || die "relay-pub failed: $(cat "$out.pub.err")"
  read -r rc t_end <"$out.end"
  [ "$rc" = 0 ] || die "mosquitto_sub exited with status $rc: $(cat "$out.err")"
  sample "$BROKER_PID" || true
  sample "$KAFKA_PID" || true
  # times: the subshell's own line, then its children's (mosquitto_sub): 0m1.234s 0m0.567s
  cpu=$(sed -n 2p "$out.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] } printf "%.2f", s }')
  [ "$mode" = backlog ] || t0=$(field start "$out.pub")
  runs+=("sub-$mode|$r|$(awk -v n="$n" -v a="$t0" -v b="$t_end" 'BEGIN { printf "%.0f|%.2f", n / (b - a), b - a }')|$(field rate "$out.pub")|$cpu|${hwm[${msub:-0}]:-0}|$(field cpu_s "$out.pub")|$(ticks_s $((ticks[$BROKER_PID] - b0)))|$(ticks_s $((ticks[$KAFKA_PID] - k0)))|-")
  forget_session "$id"
  echo "relay.sh:   $(cut -d'|' -f3 <<<"${runs[-1]}") readings/s" >&2
}

# --- case: the relay -------------------------------------------------------------------
# start_relay OUT LOG: sets relay; returns once it has subscribed
start_relay() {
  # (no JOURNAL_STREAM: the log lines carry their time)
  env -u JOURNAL_STREAM "${pd[@]}" "$bin/turnstile-bridge" -c "$1.conf" --role relay 2>"$2" &
  relay=$!
  pids+=("$relay")
  wait_log "$2" 'relay: mqtt: subscribed to' 30 "$relay" ||
    die "the relay did not subscribe: $(tail -5 "$2")"
}

# run_relay MODE ROUND
run_relay() {
  local mode=$1 r=$2 out=$work/relay-$1-$2 topic=bench.readings.$1.$2 relay b0 k0 cpu rest line
  local partial="" t_kafka="" t_mqtt="" got=0 deadline offsets t0 t1 tm id=bench-relay-$1-$2
  local re='info: relay: [a-z]+, ([0-9]+) received, ([0-9]+) in Kafka, ([0-9]+) dead letters'
  echo "relay.sh: round $r/$rounds, $mode: turnstile-bridge --role relay, $n readings ..." >&2
  kafka_create_topic "$topic" "$PARTITIONS" || die "cannot create $topic"
  {
    printf '[bridge]\nid = %s\nrole = relay\nlog_level = info\n' "$id"
    printf 'status_interval_ms = 100\n'
    printf 'max_event_age_s = 0\n\n'   # relay-pub's readings are from 2023: no age bound
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\n\n' "$BROKER_PORT"
    printf '[kafka]\nbrokers = %s\nreadings_topic = %s\ndeadletter_topic = bench.deadletter\n' \
      "$KAFKA_BOOTSTRAP" "$topic"
  } >"$out.conf"
  "$bin/turnstile-bridge" --check-config -c "$out.conf" >/dev/null ||
    die "the bridge refuses $out.conf"
  if [ "$mode" = backlog ]; then
    # the relay's persistent session and its subscription, then everything queued in it
    start_relay "$out" "$out.first.log"
    kill -TERM "$relay"
    wait "$relay" || die "turnstile-bridge exited with status $?: $(tail -5 "$out.first.log")"
    start_pub "$out"
    wait "$pub" || die "relay-pub failed: $(cat "$out.pub.err")"
  fi
  sample "$BROKER_PID" || die "mosquitto is gone"
  sample "$KAFKA_PID" || die "Kafka is gone"
  b0=${ticks[$BROKER_PID]} k0=${ticks[$KAFKA_PID]}
  t0=$EPOCHREALTIME
  start_relay "$out" "$out.log"
  exec {log_fd}<"$out.log"
  [ "$mode" = backlog ] || start_pub "$out"
  deadline=$((SECONDS + timeout_s))
  while [ -z "$t_kafka" ]; do
    sample "$relay" || die "turnstile-bridge exited: $(tail -5 "$out.log")"
    sample "$BROKER_PID" || true
    sample "$KAFKA_PID" || true
    # the new lines of the relay's log (a partial last line is kept for the next turn)
    while IFS= read -r line <&"$log_fd" || { partial+=$line; false; }; do
      line=$partial$line partial=""
      [[ $line =~ $re ]] || continue
      got=${BASH_REMATCH[2]}
      ((BASH_REMATCH[3] == 0)) || die "the relay sent readings to the dead-letter topic: $line"
      [ -n "$t_mqtt" ] || ((BASH_REMATCH[1] < n)) || t_mqtt=${line%% *}
      ((got < n)) || { t_kafka=${line%% *}; break; }
    done
    ((SECONDS < deadline)) || die "timeout: $got of $n in Kafka after $timeout_s s"
    [ -n "$t_kafka" ] || tick
  done
  exec {log_fd}<&-
  sample "$relay" || true
  cpu=$(ticks_s "${ticks[$relay]}")
  threads "$relay" >"$work/relay-$mode-$r.threads"
  [ "$mode" = backlog ] || wait "$pub" || die "relay-pub failed: $(cat "$out.pub.err")"
  sample "$BROKER_PID" || true
  sample "$KAFKA_PID" || true
  kill -TERM "$relay"
  wait "$relay" || die "turnstile-bridge exited with status $?: $(tail -5 "$out.log")"
  forget_session "turnstile-bridge-$id"
  # Kafka's own count: the topic's end offsets
  offsets=$(for ((p = 0; p < PARTITIONS; p++)); do printf -- '-t %s:%d:-1 ' "$topic" "$p"; done)
  # shellcheck disable=SC2086 # the -t options
  kcat -b "$KAFKA_BOOTSTRAP" -Q $offsets >"$out.offsets" 2>&1 || die "kcat -Q failed: $(cat "$out.offsets")"
  rest=$(awk '/ offset / { s += $NF } END { print s + 0 }' "$out.offsets")
  [ "$rest" = "$n" ] || die "$topic holds $rest messages, not $n: $(tr '\n' ' ' <"$out.offsets")"
  [ "$mode" = backlog ] || t0=$(field start "$out.pub")
  t1=$(iso2epoch "$t_kafka") tm=$(iso2epoch "$t_mqtt")
  runs+=("relay-$mode|$r|$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f|%.2f", n / (b - a), b - a }')|$(field rate "$out.pub")|$cpu|${hwm[$relay]:-0}|$(field cpu_s "$out.pub")|$(ticks_s $((ticks[$BROKER_PID] - b0)))|$(ticks_s $((ticks[$KAFKA_PID] - k0)))|$(awk -v a="$t0" -v b="$tm" 'BEGIN { printf "%.2f", b - a }')")
  sed -n 's/^.*info: relay: stopped: \(.*\)$/\1/p' "$out.log" >"$work/relay-$mode-$r.stopped"
  echo "relay.sh:   $(cut -d'|' -f3 <<<"${runs[-1]}") readings/s into Kafka ($topic: $rest messages)" >&2
}

for ((r = 1; r <= rounds; r++)); do
  for mode in "${modes[@]}"; do
    run_sub "$mode" "$r"
    run_relay "$mode" "$r"
  done
done

# --- report ----------------------------------------------------------------------------
# stat KIND COLUMN(3..10) median|max|min: over the rounds
stat() {
  local x k v vals=()
  for x in "${runs[@]}"; do
    IFS='|' read -r k _ <<<"$x"
    [ "$k" = "$1" ] || continue
    v=$(cut -d'|' -f"$2" <<<"$x")
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | sort -g | awk -v op="$3" '{ v[NR] = $1 } END {
    n = NR
    if (op == "median") print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    else if (op == "max") print v[n]; else if (op == "min") print v[1] }'
}

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
kafka_version=$(sed -n 's/.*<kafka.version>\(.*\)<\/kafka.version>.*/\1/p' scripts/kafka/pom.xml 2>/dev/null | head -1)
pub_out=$(ls "$work"/sub-*.pub | head -1)
echo
echo "relay: $(date '+%Y-%m-%d %H:%M %Z'), $(nproc) cores (${model:-unknown CPU}), Linux $(uname -r)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -1)" \
  "(persistence false, max_queued_messages 0, max_inflight_messages $broker_inflight)," \
  "Kafka ${kafka_version:-3.9.x} (KRaft, 1 node, $KAFKA_HEAP_OPTS), librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?')"
echo "  $n readings from $clients publishers (relay-pub: one libmosquitto client each, QoS 1," \
  "$window in flight each, $(($(field bytes "$pub_out") / n)) bytes a reading); $rounds round(s)"
fmt='  %-46s %10s %8s %7s %9s %6s %7s %7s %8s %9s\n'
declare -A title=([live]="live: the consumer subscribed, then the publishers start; time from the first PUBLISH"
  [backlog]="backlog: all N queued in the consumer's session first; time from the consumer's start")
declare -A label=([sub]="mosquitto_sub -q 1 -c (output to /dev/null)" [relay]="turnstile-bridge --role relay (into Kafka)")
verdicts=()
for mode in "${modes[@]}"; do
  echo
  echo "  ${title[$mode]}"
  printf "$fmt" consumer readings/s "% of sub" "secs" "pub rate" "CPU s" "RSS MiB" "pub CPU" "mosq CPU" "Kafka CPU"
  s_rate=$(stat "sub-$mode" 3 median)
  for kind in sub relay; do
    k=$kind-$mode
    rate=$(stat "$k" 3 median)
    printf "$fmt" "${label[$kind]}" "$rate" "$(awk -v a="$rate" -v b="$s_rate" 'BEGIN { printf "%.0f%%", 100 * a / b }')" \
      "$(stat "$k" 4 median)" "$(stat "$k" 5 median)" "$(stat "$k" 6 median)" \
      "$(mib "$(stat "$k" 7 max)")" "$(stat "$k" 8 median)" "$(stat "$k" 9 median)" \
      "$(stat "$k" 10 median)"
  done
  verdicts+=("$(awk -v m="$mode" -v a="$(stat "relay-$mode" 3 median)" -v b="$s_rate" -v t="$TARGET_PCT" 'BEGIN {
    printf "%s: the relay at %.0f%% of the mosquitto_sub rate (%.0f / %.0f readings/s): %s", m, 100 * a / b, a, b,
      (100 * a / b >= t) ? "met" : "MISSED" }')")
  if ((rounds > 1)); then # relay / mosquitto_sub round by round (neighbours in time)
    declare -A rs=() rl=()
    for x in "${runs[@]}"; do
      IFS='|' read -r k rd rate _ <<<"$x"
      [ "$k" = "sub-$mode" ] && rs[$rd]=$rate
      [ "$k" = "relay-$mode" ] && rl[$rd]=$rate
    done
    per=()
    for ((rd = 1; rd <= rounds; rd++)); do
      per+=("$(awk -v a="${rl[$rd]}" -v b="${rs[$rd]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')")
    done
    verdicts+=("  round by round: ${per[*]}")
    unset rs rl
  fi
done
echo
echo "  readings/s: N / (start .. the consumer has all N: mosquitto_sub's exit, the relay's status"
echo "  line saying Kafka confirmed all N), the median over the rounds; secs: that time; pub rate:"
echo "  the publishers' own (first PUBLISH .. last PUBACK); CPU s: the consumer's (the relay's: all"
echo "  its threads); RSS MiB: its peak (VmHWM); pub CPU: the publishers'; mosq CPU: the broker's in"
echo "  the case; Kafka CPU: the Kafka JVM's in the case (all CPU figures user+sys seconds)"
echo
for x in "${runs[@]}"; do
  IFS='|' read -r k rd rate secs _ <<<"$x"
  [[ $k == relay-* ]] || { ((rounds == 1)) || printf '  round %d %-14s %8s readings/s in %s s\n' "$rd" "$k" "$rate" "$secs"; continue; }
  printf '  round %d %-14s %8s readings/s in %s s; all taken from MQTT after %s s\n' \
    "$rd" "$k" "$rate" "$secs" "$(cut -d'|' -f11 <<<"$x")"
  echo "    CPU s by thread: $(cat "$work/${k}-$rd.threads")"
  echo "    at SIGTERM: $(cat "$work/${k}-$rd.stopped")"
done
echo
echo "  target (issue): the relay >= $TARGET_PCT% of the mosquitto_sub rate"
for v in "${verdicts[@]}"; do echo "  $v"; done
