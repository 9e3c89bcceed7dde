# SPDX-License-Identifier: Apache-2.0
# bridge.sh - turnstile-bridge and agents for bash tests, and reading the
# lake. Source it with `work` set (it sources lib.sh, broker.sh and kafka.sh
# if they are not yet); the functions below want the broker and Kafka started:
#
#   bridge_test_servers PARTS [ARGS]
#                                 starts the broker (broker_start ARGS) and
#                                 Kafka, creates turnstile.readings with PARTS
#                                 partitions and turnstile.deadletter
#   bridge_conf FILE ID [LINES]   writes a bridge config for this broker,
#                                 Kafka and the lake $work/lake; LINES are
#                                 appended (e.g. "[lake]" overrides go last);
#                                 $BRIDGE_EXTRA, if set, goes in [bridge]
#   bridge_agg_conf FILE ID LAKE  writes a config for an aggregator fed by
#                                 bench-aggregate fill: status every 0.1 s,
#                                 no processing-time closing, this broker and
#                                 Kafka; LAKE: the [lake] section's lines
#   bridge_start NAME FILE [ARGS] starts turnstile-bridge -c FILE ARGS in the
#                                 background, log $work/NAME.err; sets
#                                 BRIDGE_PID[NAME]
#   bridge_kill NAME [SIGNAL]     kills it (default SIGKILL) and reaps it
#   agg_status [NAME]             the last "aggregate: " status line of bridge
#                                 NAME (default agg)
#   agg_wait_status PATTERN SECONDS [NAME]
#                                 until that line matches PATTERN (grep); 1,
#                                 the log's tail and why on stderr, if it does
#                                 not within SECONDS or the bridge died
#   lake_expected_fill TOPIC K    step K (1 to 3) of the fixed input of
#                                 lake_expected.txt into TOPIC
#   lake_expected_input NAME TOPIC
#                                 the fixed input of lake_expected.txt
#                                 (test_bridge_lake_expected.sh) into TOPIC,
#                                 in its three steps, each waited for in
#                                 bridge NAME's status line, then SIGTERM
#   agent_conf FILE ID DEVICES    writes an agent config (end-to-end acks)
#                                 for this broker from a devices file
#   split_devices                 splits $work/devices.conf (turnstile-sim
#                                 --agent-config) into $work/slave-N.conf,
#                                 one per Modbus slave
#   lake_sums [DIR]               prints "SCP ENTRIES EXITS" summed over the
#                                 visible lake files (default $work/lake)
#   lake_rows [DIR]               prints every visible data row (no header)
#   bridge_test_cleanup [PID...]  an EXIT trap (set it before broker_start and
#                                 kafka_start): SIGKILLs the PIDs and the
#                                 agents (the test's agent_pid array), kills
#                                 the bridges, then test_cleanup (lib.sh)

_bridge_sh_dir=$(dirname "${BASH_SOURCE[0]}")
declare -F test_cleanup >/dev/null || . "$_bridge_sh_dir/lib.sh"
declare -F broker_start >/dev/null || . "$_bridge_sh_dir/broker.sh"
declare -F kafka_start >/dev/null || . "$_bridge_sh_dir/kafka.sh"

declare -A BRIDGE_PID=()

bridge_test_cleanup() {
  local p n
  for p in "$@" ${agent_pid[@]+"${agent_pid[@]}"}; do kill -9 "$p" 2>/dev/null || true; done
  for n in "${!BRIDGE_PID[@]}"; do bridge_kill "$n"; done
  test_cleanup "$@" ${agent_pid[@]+"${agent_pid[@]}"}
}

bridge_test_servers() {
  local parts=$1; shift
  broker_start "$@"
  kafka_start
  kafka_create_topic turnstile.readings "$parts"
  kafka_create_topic turnstile.deadletter 1
}

bridge_conf() {
  local file=$1 id=$2
  {
    printf '[bridge]\nid = %s\nstatus_interval_ms = 1000\n' "$id"
    [ -z "${BRIDGE_EXTRA:-}" ] || printf '%s\n' "$BRIDGE_EXTRA"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n' "$BROKER_PORT"
    printf 'ack_interval_ms = 100\n'
    printf '[kafka]\nbrokers = %s\nlinger_ms = 5\nsession_timeout_ms = 6000\n' "$KAFKA_BOOTSTRAP"
    printf '[lake]\npath = %s/lake\nwindow_s = 2\nlateness_s = 1\nidle_s = 3\n' "$work"
    printf 'checkpoint_interval_ms = 500\n'
    [ -z "${3:-}" ] || printf '%s\n' "$3"
  } >"$file"
}

bridge_agg_conf() {
  {
    printf '[bridge]\nid = %s\nstatus_interval_ms = 100\nmax_event_age_s = 0\n' "$2"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\n' "$BROKER_PORT"
    printf '[kafka]\nbrokers = %s\nsession_timeout_ms = 6000\n' "$KAFKA_BOOTSTRAP"
    printf '[lake]\n%s\n' "$3"
  } >"$1"
}

bridge_start() {
  local name=$1 conf=$2; shift 2
  "${TS_BIN_DIR:?}/turnstile-bridge" -c "$conf" "$@" >>"$work/$name.out" 2>>"$work/$name.err" &
  BRIDGE_PID[$name]=$!
}

bridge_kill() {
  local name=$1 sig=${2:-KILL} pid=${BRIDGE_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  BRIDGE_PID[$name]=
}

agg_status() { grep 'aggregate: ' "$work/${1:-agg}.err" 2>/dev/null | tail -n 1; }

# the fixed input's steps: readings, the first one's time (ms), its first number (bench-aggregate
# fill, 6 agents x 3 turnstiles): 720 from 2023-05-28 03:40Z; 180 new ones from 03:50Z, late for
# two closed windows; 54 again with numbers 1..9, duplicates
LAKE_EXPECTED_STEPS=('720 1685245200000 1' '180 1685245800000 121' '54 1685245200000 1')

lake_expected_fill() {
  local n ms seq
  read -r n ms seq <<<"${LAKE_EXPECTED_STEPS[$2 - 1]}"
  "${TS_BIN_DIR:?}/bench-aggregate" fill "$KAFKA_BOOTSTRAP" "$1" "$n" 6 3 "$ms" "$seq" \
    >>"$work/fill.out" 2>&1 || { echo "bench-aggregate fill $n failed" >&2; return 1; }
}

lake_expected_input() {
  local name=$1 topic=$2 k
  local -a after=( # the status line after each step
    ' 720 readings, 0 duplicates, 0 dead-lettered, 0 passed, 108 rows (0 late)'
    ' 900 readings, 0 duplicates, 0 dead-lettered, 0 passed, 144 rows (36 late)'
    ' 900 readings, 54 duplicates, 0 dead-lettered, 0 passed, 144 rows (36 late)')
  for k in 1 2 3; do
    lake_expected_fill "$topic" "$k" || return 1
    agg_wait_status "${after[$k - 1]}" 120 "$name" || return 1
  done
  bridge_kill "$name" TERM
}

agg_wait_status() {
  local name=${3:-agg} end=$((SECONDS + $2))
  until agg_status "$name" | grep -q -- "$1"; do
    if [ $SECONDS -ge $end ]; then
      tail -n 5 "$work/$name.err" >&2
      echo "no status line with '$1' in $2 s" >&2
      return 1
    fi
    if ! kill -0 "${BRIDGE_PID[$name]:-0}" 2>/dev/null; then
      tail -n 20 "$work/$name.err" >&2
      echo "the bridge $name died" >&2
      return 1
    fi
    sleep 0.2
  done
}

agent_conf() {
  local file=$1 id=$2 devices=$3
  {
    printf '[agent]\nid = %s\nstation_id = ST-%s\npoll_interval_ms = 200\nclock = trust\n' "$id" "$id"
    printf 'max_rate_per_min = 1000000\nstate_interval_ms = 1000\n'
    printf '[store]\npath = %s/%s.db\nsynchronous = normal\n' "$work" "$id"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n' \
      "${AGENT_BROKER_PORT:-$BROKER_PORT}"
    printf 'max_inflight = 100\nack_timeout_ms = 5000\nack = end-to-end\n'
    cat "$devices"
  } >"$file"
}

split_devices() {
  # blocks are separated by blank lines; a device block names its slave in
  # its name (sim-PORT-slave-N), a turnstile block in its "device =" line
  awk -v dir="$work" '
    function flush() { if (block != "" && slave != "") printf "%s\n", block >> (dir "/slave-" slave ".conf"); block = ""; slave = "" }
    /^#/ { next }
    /^$/ { flush(); next }
    /^\[device / { flush(); n = split($2, a, "-slave-"); slave = a[n]; sub(/\]$/, "", slave) }
    /^device = / { n = split($3, a, "-slave-"); slave = a[n] }
    { block = block $0 "\n" }
    END { flush() }
  ' "$work/devices.conf"
}

_lake_files() {
  find "${1:-$work/lake}" -name '*.csv.gz' ! -name '.*' -path '*/event_date=*' 2>/dev/null | sort
}

lake_rows() {
  local f
  for f in $(_lake_files "$@"); do zcat "$f" | tail -n +2; done
}

lake_sums() {
  lake_rows "$@" | awk -F, '{ e[$4] += $11; x[$4] += $12 } END { for (s in e) print s, e[s], x[s] }' | sort
}

# The truth from the simulator's registers (the simulator paused, so that they
# stand still while read):
#   registers_first SLAVE...  reads every turnstile of those slaves (listed in
#                             $work/slave-N.conf) into $work/registers.first
#   registers_last            reads them again and writes "SCP ENTRIES EXITS",
#                             what each moved by, to $work/expected
#   wait_lake_sums SECONDS    until lake_sums equals $work/expected (or the
#                             time is up); leaves the sums in $work/sums and
#                             prints both side by side
_registers_read() { # FILE
  local s k scp e x
  : >"$1"
  for s in $_register_slaves; do
    k=0
    for scp in $(awk '/^scp = / {print $3}' "$work/slave-$s.conf"); do
      read -r e x < <(sim_get "$s" "$k")
      echo "$scp $e $x" >>"$1"
      k=$((k + 1))
    done
  done
}
registers_first() {
  _register_slaves="$*"
  _registers_read "$work/registers.first"
}
registers_last() {
  _registers_read "$work/registers.last"
  join <(sort "$work/registers.first") <(sort "$work/registers.last") |
    awk '{ print $1, $4 - $2, $5 - $3 }' >"$work/expected"
}
wait_lake_sums() {
  local i
  for ((i = 0; i < ${1:-60}; i++)); do
    lake_sums >"$work/sums"
    cmp -s "$work/sums" "$work/expected" && break
    sleep 1
  done
  echo "expected (SCP ENTRIES EXITS) | lake:"
  paste -d'|' "$work/expected" "$work/sums"
}
