# SPDX-License-Identifier: Apache-2.0
# tests/e2e/lib.sh - the end-to-end proof's topology and faults (docs/e2e.md).
# Sourced by run.sh after tests/integration/{lib,broker,kafka,bridge}.sh, with
# `work`, `src`, `bin`, `mta`, `speed` and `start_time` set.
#
# Station N (1..3) is a controller: a network namespace ts-e2e-<pid>-N joined to
# the root namespace (the central host) by a veth pair, host side 10.231.X.1/30,
# station side 10.231.X.2/30. In it: turnstile-sim (Modbus TCP on the station's
# loopback, replaying its MTA station) and turnstile-agent, whose broker is the
# central mosquitto at 10.231.X.1. mosquitto, Kafka and turnstile-bridge run in
# the root namespace. A partition is the host side of the veth taken down.
# With run.sh --cluster Kafka is three nodes (kafka_cluster_start 3) and the
# fault_kafka_* functions below (CLUSTER_FAULTS) kill, stop and restart them.

E2E_TAG=$$
# third octets E2E_NET+1 .. +3: from the pid, moved on past blocks that another
# run (a concurrent e2e of another checkout) has on an interface already; two
# runs on one block route each other's stations into the void
E2E_NET=$(((E2E_TAG % 60) * 4 + 1))
for _ in $(seq 60); do
  ip -o -4 addr show 2>/dev/null | grep -qE "inet 10\.231\.($((E2E_NET + 1))|$((E2E_NET + 2))|$((E2E_NET + 3)))\." || break
  E2E_NET=$(((E2E_NET + 3) % 240 + 1))
done
declare -a ST_NAME=("" "59 ST" "AVENUE U" "57 ST-7 AV")
declare -a ST_TURN=("" 3 3 8)          # turnstiles per slave (slaves 1 and 2)
declare -a ST_POLL=("" 500 500 250)    # poll interval, ms
declare -a ST_NS=() ST_HOST_IF=() ST_IF=() ST_HOST_IP=() ST_IP=() ST_FD=() ST_SIM_PID=() ST_AGENT_PID=()
E2E_MQTT_PORT=0
E2E_MOUNTS=()
E2E_NS_MADE=()
capture_pid=

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# --- topology -------------------------------------------------------------------
net_up() { # N
  local n=$1 ns=ts-e2e-$E2E_TAG-$1 h=te${E2E_TAG}h$1 s=te${E2E_TAG}s$1 oct=$((E2E_NET + $1))
  ST_NS[$n]=$ns ST_HOST_IF[$n]=$h ST_IF[$n]=$s ST_HOST_IP[$n]=10.231.$oct.1 ST_IP[$n]=10.231.$oct.2
  ip netns add "$ns"
  E2E_NS_MADE+=("$ns")
  ip link add "$h" type veth peer name "$s"
  ip link set "$s" netns "$ns"
  ip addr add "10.231.$oct.1/30" dev "$h"
  ip link set "$h" up
  ip -n "$ns" addr add "10.231.$oct.2/30" dev "$s"
  ip -n "$ns" link set "$s" up
  ip -n "$ns" link set lo up
}

net_cleanup() {
  local ns n
  for n in 1 2 3; do
    [ -n "${ST_HOST_IF[$n]:-}" ] && ip link del "${ST_HOST_IF[$n]}" 2>/dev/null || true
  done
  for ns in "${E2E_NS_MADE[@]}"; do
    # anything still running in it (our own processes only) is killed first
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  E2E_NS_MADE=()
}

link_down() { ip link set "${ST_HOST_IF[$1]}" down; }
link_up() { ip link set "${ST_HOST_IF[$1]}" up; }

# --- simulators -------------------------------------------------------------------
sim_up() { # N: the station's simulator, paused at start_time
  local n=$1 d=$work/st$1
  mkdir -p "$d"
  mkfifo "$d/sim.in"
  ip netns exec "${ST_NS[$n]}" "$bin/turnstile-sim" --tcp 127.0.0.1:0 --mta "$mta" \
    --station "${ST_NAME[$n]}" --slaves 1,2 --turnstiles "${ST_TURN[$n]}" --speed "$speed" \
    --start "$start_time" --fault pause --agent-config "$d/devices.conf" --log-level warning \
    <"$d/sim.in" >"$d/sim.out" 2>"$d/sim.err" &
  ST_SIM_PID[$n]=$!
  local fd
  exec {fd}>"$d/sim.in"
  ST_FD[$n]=$fd
  for _ in $(seq 300); do grep -q '^listening' "$d/sim.out" && break; sleep 0.05; done
  grep -q '^listening' "$d/sim.out" || { echo "sim $n did not start"; cat "$d/sim.err"; return 1; }
}

ssim() { # N CMD...: a control command to station N's simulator; waits for its answer
  local n=$1 d=$work/st$1 before; shift
  before=$(grep -c '^\(ok\|error\)' "$d/sim.out" || true)
  echo "$*" >&"${ST_FD[$n]}"
  for _ in $(seq 500); do
    [ "$(grep -c '^\(ok\|error\)' "$d/sim.out" || true)" -gt "$before" ] && break
    sleep 0.01
  done
  grep '^\(ok\|error\)' "$d/sim.out" | tail -1 | grep -q '^ok' ||
    { echo "sim $n: '$*' failed: $(tail -1 "$d/sim.out")" >&2; return 1; }
}

sim_all() { local n; for n in 1 2 3; do ssim "$n" "$@"; done; }

# prints "CA UNIT SCP ENTRIES EXITS" of every turnstile of station N (sim paused)
sim_registers() { # N
  local n=$1 d=$work/st$1 s k line
  ssim "$n" list
  grep '^turnstile ' "$d/sim.out" | tail -n $((2 * ST_TURN[n])) >"$d/list"
  while read -r _ s k ca unit scp _; do
    ssim "$n" get "$s" "$k"
    line=$(grep '^ok get' "$d/sim.out" | tail -1)
    echo "$ca $unit $scp $(echo "$line" | awk '{print $5, $6}')"
  done <"$d/list"
}

sim_time() { # N: simulated time, UTC ms
  ssim "$1" time && grep '^ok time' "$work/st$1/sim.out" | tail -1 | awk '{print $3}'
}

# --- agents ---------------------------------------------------------------------
agent_config() { # N
  local n=$1 d=$work/st$1 store_dir sync=full clock=trust
  store_dir=$d/store
  [ "$n" = 1 ] && { sync=normal; clock=wait-sync; }
  [ "$n" = 3 ] && store_dir=$d/disk
  {
    printf '[agent]\nid = e2e-st%s\nstation_id = st-%s\ntimezone = America/New_York\n' "$n" "$n"
    printf 'poll_interval_ms = %s\nclock = %s\n' "${ST_POLL[$n]}" "$clock"
    # the simulator runs `speed` times faster than real time: scale the plausible rate
    printf 'max_rate_per_min = %s\nstate_interval_ms = 2000\n' "$((240 * speed))"
    printf '[store]\npath = %s/agent.db\nsynchronous = %s\nmax_rows = 1000\nmerge_batch = 200\n' "$store_dir" "$sync"
    printf '[mqtt]\nhost = %s\nport = %s\nkeepalive_s = 5\n' "${ST_HOST_IP[$n]}" "$E2E_MQTT_PORT"
    printf 'reconnect_min_ms = 100\nreconnect_max_ms = 1000\nmax_inflight = 100\n'
    printf 'ack_timeout_ms = 10000\nack = end-to-end\n'
    sed 's/^slave_id = .*/&\nresponse_timeout_ms = 300\nbackoff_min_ms = 200\nbackoff_max_ms = 1000/' "$d/devices.conf"
    [ "$n" != "$E2E_GATE_ST" ] || http_gate_config   # its HTTP gate controller (below)
  } >"$d/agent.conf"
}

# the most people one poll of station N may count (the agent's L for one poll)
lpoll() { echo $((240 * speed * ST_POLL[$1] / 60000)); }

agent_start() { # N
  local n=$1 d=$work/st$1 env=()
  if [ "$n" = 1 ]; then
    # the power-cut station: the shim keeps what was fsynced (docs/e2e.md);
    # its clock starts three years behind and unsynchronised
    env=(LD_PRELOAD="$bin/e2e-synced-fs.so" TS_E2E_SYNCED_DIR="$d/store" TS_E2E_SHADOW_DIR="$d/shadow"
         ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
         TS_CLOCK_FAKE="$d/clock")
  fi
  ip netns exec "${ST_NS[$n]}" env "${env[@]}" "$bin/turnstile-agent" -c "$d/agent.conf" \
    >>"$d/agent.out" 2>>"$d/agent.err" &
  ST_AGENT_PID[$n]=$!
}

agent_kill() { # N [SIGNAL]
  local pid=${ST_AGENT_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -"${2:-KILL}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ST_AGENT_PID[$1]=
}

station_setup() { # N
  local n=$1 d=$work/st$1
  mkdir -p "$d/store" "$d/shadow" "$d/disk"
  if [ "$n" = 3 ]; then
    mount -t tmpfs -o size=6m tmpfs "$d/disk"
    E2E_MOUNTS+=("$d/disk")
  fi
  [ "$n" = 1 ] && echo "0 -94608000000" >"$d/clock"   # unsynchronised, three years behind
  agent_config "$n"
}

# --- the central side -------------------------------------------------------------
capture_start() { # every reading on the central broker, as "TOPIC PAYLOAD" lines
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i e2e-capture -v \
    -t 'turnstile/v1/+/+/readings' >>"$work/capture.txt" 2>>"$work/capture.err" &
  capture_pid=$!
}
capture_check() { kill -0 "$capture_pid" 2>/dev/null || capture_start; }

bridge_up() { bridge_start b1 "$work/bridge.conf"; }

# --- faults: each leaves the system running and connected -----------------------
# Sets FAULT_NOTE to what happened (one line for the log).
kafka_down_s=15

fault_partition_one() { # station 3 cut off for longer than window + lateness + idle (6 s)
  link_down 3; sleep 16; link_up 3; sleep 3
  FAULT_NOTE="station 3 partitioned 16 s"
}
fault_partition_all() {
  local n
  for n in 1 2 3; do link_down "$n"; done
  sleep 12
  for n in 1 2 3; do link_up "$n"; done
  sleep 3
  FAULT_NOTE="all stations partitioned 12 s"
}
fault_broker_restart() {
  broker_stop; sleep 2; broker_restart; capture_check; sleep 4
  FAULT_NOTE="mosquitto stopped (SIGTERM) 2 s and restarted"
}
fault_broker_kill() {
  broker_kill; sleep 1; broker_restart; capture_check; sleep 5
  FAULT_NOTE="mosquitto SIGKILLed and restarted"
}
fault_kafka_outage() {
  kafka_stop; sleep "$kafka_down_s"; kafka_restart; sleep 5
  FAULT_NOTE="Kafka stopped ${kafka_down_s} s and restarted"
}
fault_bridge_kill() { # twice at a random moment (mid-window), then while a lake file is being written
  local i caught=0 tmps=0 try
  for i in 1 2; do
    sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
    bridge_kill b1; bridge_up
  done
  for try in 1 2 3; do   # mid-file: as soon as a data temporary exists
    sleep 2
    for _ in $(seq 1000); do
      if find "$work/lake" -name '.*.tmp' -path '*/event_date=*' 2>/dev/null | grep -q .; then caught=1; break; fi
      sleep 0.005
    done
    bridge_kill b1
    tmps=$(find "$work/lake" -name '.*.tmp' 2>/dev/null | wc -l)
    bridge_up
    [ "$caught" = 0 ] || break
  done
  sleep 4
  FAULT_NOTE="bridge SIGKILLed $((2 + try)) times (the last with $tmps lake temporaries on disk; caught mid-file: $caught)"
  [ "$caught" = 0 ] || E2E_MIDFILE=$((E2E_MIDFILE + 1))
  return 0
}
fault_agent_kill() {
  agent_kill 2; sleep 1; agent_start 2; sleep 3
  FAULT_NOTE="agent of station 2 SIGKILLed, restarted after 1 s"
}
# Station 1's store after its agent died: each file put back to its last synced
# content (the shim's shadow copy; never synced: deleted; SQLite's -shm index
# always deleted). Prints how many bytes of agent.db and its WAL differed from
# the synced state (differing bytes plus the difference in length): what the
# cut discarded.
store_power_cut() {
  local d=$work/st1 f s lost=0 a b
  for f in "$d"/store/agent.db "$d"/store/agent.db-wal; do
    [ -f "$f" ] || continue
    s=$d/shadow/${f##*/}
    a=$(stat -c %s "$f")
    if [ -f "$s" ]; then
      b=$(stat -c %s "$s")
      lost=$((lost + (a > b ? a - b : b - a) + $(cmp -l "$f" "$s" 2>/dev/null | wc -l || true)))
    else
      lost=$((lost + a))
    fi
  done
  for f in "$d"/store/*; do
    [ -e "$f" ] || continue
    case $f in
      *-shm) rm -f "$f" ;;
      *) if [ -f "$d/shadow/${f##*/}" ]; then cp "$d/shadow/${f##*/}" "$f"; else rm -f "$f"; fi ;;
    esac
  done
  echo "$lost"
}

# One power cut at station 1: the shim (synced_fs.c) is armed to cut the
# power when its agent starts writing after N commits that are in the WAL but
# not synced; sets E2E_CUT_NOTE. After 15 s without a cut (N commits never
# came between two syncs: no acknowledgement arrived, say) any unsynced commit
# will do; after 30 s the agent is SIGKILLed all the same, and the run fails.
power_cut_once() { # N
  local d=$work/st1 n=$1 by=harness what= lost i
  rm -f "$d/shadow/.cut-done"
  echo "$n" >"$d/shadow/.cut"
  for i in $(seq 300); do
    [ -s "$d/shadow/.cut-done" ] && break
    if [ "$i" = 150 ] && [ "$n" -gt 1 ]; then echo 1 >"$d/shadow/.cut"; n="1 (not $n within 15 s)"; fi
    sleep 0.1
  done
  agent_kill 1
  rm -f "$d/shadow/.cut"
  if [ -s "$d/shadow/.cut-done" ]; then by=shim what=$(cat "$d/shadow/.cut-done"); fi
  lost=$(store_power_cut)
  E2E_POWER_CUTS=$((E2E_POWER_CUTS + 1))
  if [ "$by" = shim ] && [ "$lost" -gt 0 ]; then E2E_POWER_CUTS_DISCARDING=$((E2E_POWER_CUTS_DISCARDING + 1)); fi
  E2E_CUT_NOTE="cut by the $by after $n ${what:+(unsynced: $what)}, $lost bytes of the store discarded"
}
E2E_POWER_CUTS=0 E2E_POWER_CUTS_DISCARDING=0

# Station 1's power is cut twice, each time while the WAL holds commits that
# synchronous = normal has not synced: they must vanish with the counter state
# of the same transactions, and the people be recounted. First connected,
# after 2 unsynced commits: between two publish marks (each syncs) the agent
# commits a poll's readings and state, and an acknowledgement's deletion, so
# the cut lands after both, before the next mark syncs them. Then partitioned:
# the agent keeps publishing into the dead link (and syncing each publish
# mark) until keepalive_s tells it, or max_inflight fills; after that it only
# appends, and the cut lands after 2 to 5 such commits.
fault_power_cut() {
  local a b k=$((RANDOM % 4 + 2))
  power_cut_once 2; a=$E2E_CUT_NOTE
  agent_start 1; sleep 2
  link_down 1
  power_cut_once "$k"; b=$E2E_CUT_NOTE
  agent_start 1; sleep 2; link_up 1; sleep 3
  FAULT_NOTE="power cut at station 1, connected: $a; then partitioned: $b"
}
fault_disk_full() { # station 3's store file system fills up, then space returns
  # The agent is restarted first (SIGTERM: SQLite checkpoints and removes its
  # WAL), so that its WAL has to grow again while the disk is full: a WAL at its
  # high-water size is rewritten in place and would never see ENOSPC.
  agent_kill 3 TERM; agent_start 3; sleep 1.5
  dd if=/dev/zero of="$work/st3/disk/filler" bs=16k 2>/dev/null || true
  sleep 8
  rm -f "$work/st3/disk/filler"
  sleep 4
  FAULT_NOTE="station 3's disk full for 8 s ($(grep -ci 'full' "$work/st3/agent.err" || true) log lines say full)"
}
fault_clock() { # station 1's clock: not synchronised and three years behind, then right
  echo "0 -94608000000" >"$work/st1/clock"; sleep 6
  echo "1 0" >"$work/st1/clock"; sleep 4
  FAULT_NOTE="station 1's clock 3 years behind and unsynchronised for 6 s, then stepped right"
}
fault_slave() { # station 1's slave 2 slow (answers after the agent's timeout), then dead
  ssim 1 slow 2 800; sleep 4; ssim 1 slow 2 off
  ssim 1 silent 2 on; sleep 5; ssim 1 silent 2 off
  ssim 2 glitch 1 0 99999999 2     # two reads of garbage on station 2: withheld
  sleep 3
  FAULT_NOTE="station 1 slave 2 slow (800 ms) 4 s then silent 5 s; a 2-read glitch on station 2"
}
E2E_DEADLETTERS=0 E2E_MIDFILE=0
fault_inject() { # duplicates and malformed messages published on the central broker
  local n=0 topic
  capture_check
  tail -n 300 "$work/capture.txt" | awk 'NF > 1 && $1 ~ /\/readings$/' >"$work/dups.txt" || true
  while read -r topic; do
    grep "^$topic " "$work/dups.txt" | cut -d' ' -f2- |
      mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$topic" -l
    n=$((n + $(grep -c "^$topic " "$work/dups.txt")))
  done < <(cut -d' ' -f1 "$work/dups.txt" | sort -u)
  local p=(-h 127.0.0.1 -p "$BROKER_PORT" -q 1)
  mosquitto_pub "${p[@]}" -t turnstile/v1/st-1/e2e-st1/readings -m 'garbage'
  mosquitto_pub "${p[@]}" -t turnstile/v1/st-1/e2e-st1/readings \
    -m 'A002,R051,02-00-00,59 ST,NQR456W,BMT,06-01-23,00:00:00,REGULAR,1,1,e2e-st1:1,2023-06-01 00:00:00'
  printf 'A\0B,,,\n\xff\xfe' | mosquitto_pub "${p[@]}" -t turnstile/v1/st-2/e2e-st2/readings -s
  head -1 "$work/dups.txt" | cut -d' ' -f2- | tr -d '\n' |
    mosquitto_pub "${p[@]}" -t turnstile/v1/st-zz/intruder/readings -s   # a reading, wrong agent
  mosquitto_pub "${p[@]}" -t turnstile/v1/st-3/e2e-st3/readings \
    -m "$(head -c 600 /dev/zero | tr '\0' x)"                              # too long
  E2E_DEADLETTERS=$((E2E_DEADLETTERS + 5))
  sleep 2
  FAULT_NOTE="$n readings published again, 5 malformed messages"
}

# --- the HTTP gate controller (kind = http, docs/http.md) -------------------------
# Station E2E_GATE_ST's agent also polls a gate controller that serves its
# counters as JSON (tests/integration/http_gate.py, on the station's loopback,
# two turnstiles, the bearer token from a file). http_gate_people moves its
# counters while the simulators run; http_gate_down kills it (fault_http_gate)
# and people keep passing; it comes back on the same port. The truth of its
# turnstiles is what its counters moved between the agent's baseline and the
# end; the accounting treats them as any Modbus turnstile's.
E2E_GATE_ST=2
E2E_GATE_CA=B025 E2E_GATE_UNIT=R150 E2E_GATE_SCPS="09-00-00 09-00-01"
E2E_GATE_PID= E2E_GATE_PEOPLE_PID= E2E_GATE_PORT=0
E2E_GATE_OUTAGES=0 E2E_GATE_BACK=0

http_gate_counters() { # E0 X0 E1 X1: what the gate serves from now on
  local g=$work/gate
  printf '{"gates":[{"in":%s,"out":%s},{"in":%s,"out":%s}],"model":"e2e"}\n' "$@" >"$g/counters.json.tmp"
  mv "$g/counters.json.tmp" "$g/counters.json"
}
# prints "CA UNIT SCP ENTRIES EXITS" of the gate's turnstiles, as it serves them
http_gate_registers() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for scp, g in zip(sys.argv[4:], d["gates"]):
    print(sys.argv[2], sys.argv[3], scp, g["in"], g["out"])' \
    "$work/gate/counters.json" "$E2E_GATE_CA" "$E2E_GATE_UNIT" $E2E_GATE_SCPS
}
http_gate_up() { # starts the gate in station E2E_GATE_ST's namespace (on its former port, if any)
  local g=$work/gate
  rm -f "$g/port"
  ip netns exec "${ST_NS[$E2E_GATE_ST]}" env GATE_TOKEN="$(cat "$g/token")" \
    python3 "$src/tests/integration/http_gate.py" "$g" "$E2E_GATE_PORT" >/dev/null 2>>"$g/err" &
  E2E_GATE_PID=$!
  for _ in $(seq 200); do [ -f "$g/port" ] && break; sleep 0.05; done
  [ -f "$g/port" ] || { echo "http_gate.py did not start: $(cat "$g/err")" >&2; return 1; }
  E2E_GATE_PORT=$(cat "$g/port")
}
http_gate_down() { # SIGKILL: the controller is gone, its port refuses
  [ -n "$E2E_GATE_PID" ] || return 0
  kill -9 "$E2E_GATE_PID" 2>/dev/null || true
  wait "$E2E_GATE_PID" 2>/dev/null || true
  E2E_GATE_PID=
}
http_gate_setup() { # before station E2E_GATE_ST's agent_config
  local g=$work/gate
  mkdir -p "$g"
  printf 'e2e-gate-token-%s\n' "$RANDOM$RANDOM" >"$g/token"
  echo normal >"$g/mode"
  http_gate_counters 52000 31000 7000 90000
  http_gate_up
}
http_gate_config() { # the agent's [device] and [turnstile] sections for the gate
  local scp k=0
  printf '\n[device e2e-gate]\nkind = http\nurl = http://127.0.0.1:%s/counters\n' "$E2E_GATE_PORT"
  printf 'token_file = %s\ntimeout_ms = 1000\nconnect_timeout_ms = 500\n' "$work/gate/token"
  printf 'backoff_min_ms = 200\nbackoff_max_ms = 1000\n'
  for scp in $E2E_GATE_SCPS; do
    printf '\n[turnstile gate-%s]\ndevice = e2e-gate\nca = %s\nunit = %s\nscp = %s\n' \
      "$k" "$E2E_GATE_CA" "$E2E_GATE_UNIT" "$scp"
    printf 'station = %s\nlinename = BQ\ndivision = BMT\n' "${ST_NAME[$E2E_GATE_ST]}"
    printf 'entries_path = /gates/%s/in\nexits_path = /gates/%s/out\n' "$k" "$k"
    k=$((k + 1))
  done
}
# People pass the gate's turnstiles (0 to 3 in, 0 to 2 out each, every 0.2 s)
# until $work/gate/stop exists, whether the gate is up or not.
http_gate_people() {
  ( local e0 x0 e1 x1
    read -r _ _ _ e0 x0 < <(http_gate_registers | sed -n 1p)
    read -r _ _ _ e1 x1 < <(http_gate_registers | sed -n 2p)
    while [ ! -e "$work/gate/stop" ]; do
      e0=$((e0 + RANDOM % 4)) x0=$((x0 + RANDOM % 3)) e1=$((e1 + RANDOM % 4)) x1=$((x1 + RANDOM % 3))
      http_gate_counters "$e0" "$x0" "$e1" "$x1"
      sleep 0.2
    done ) &
  E2E_GATE_PEOPLE_PID=$!
}
http_gate_people_stop() {
  [ -n "$E2E_GATE_PEOPLE_PID" ] || return 0
  touch "$work/gate/stop"
  wait "$E2E_GATE_PEOPLE_PID" 2>/dev/null || true
  E2E_GATE_PEOPLE_PID=
}
http_gate_cleanup() {
  [ -z "$E2E_GATE_PEOPLE_PID" ] || kill "$E2E_GATE_PEOPLE_PID" 2>/dev/null
  http_gate_down
}
# The gate controller is SIGKILLed for 6 s while people pass, and comes back on
# the same port: the agent must log the device's fault, read it again ("link
# up"), and count the people of the outage once (its reading after is RECOVR AUD).
fault_http_gate() {
  local log=$work/st$E2E_GATE_ST/agent.err fails0 ups0 fails ups reqs
  fails0=$(grep -c 'device e2e-gate .*connection failed' "$log" || true)
  ups0=$(grep -c 'device e2e-gate .*link up' "$log" || true)
  http_gate_down
  sleep 6
  http_gate_up
  reqs=$(wc -l <"$work/gate/requests")
  sleep 4
  fails=$(( $(grep -c 'device e2e-gate .*connection failed' "$log" || true) - fails0 ))
  ups=$(( $(grep -c 'device e2e-gate .*link up' "$log" || true) - ups0 ))
  reqs=$(( $(wc -l <"$work/gate/requests") - reqs ))
  E2E_GATE_OUTAGES=$((E2E_GATE_OUTAGES + 1))
  [ "$fails" -gt 0 ] && [ "$ups" -gt 0 ] && [ "$reqs" -gt 0 ] && E2E_GATE_BACK=$((E2E_GATE_BACK + 1))
  FAULT_NOTE="the HTTP gate controller of station $E2E_GATE_ST SIGKILLed 6 s, back on port $E2E_GATE_PORT: $fails connection failures logged, link up $ups time(s), $reqs requests since"
  return 0
}

# --- faults of a Kafka cluster (run.sh --cluster: 3 nodes, docs/e2e.md) -----------
E2E_TOPICS="turnstile.readings turnstile.deadletter __consumer_offsets"
E2E_BRIDGE_EXITS=0   # times the bridge was found dead after a Kafka fault (it must never exit)

# the bridge must live through every Kafka fault: note it if it did not, and
# start it again so that the run can still account for everything (every
# bridge of E2E_BRIDGES: b1, and with --lake s3 the aggregator b2 too)
E2E_BRIDGES=b1
declare -A E2E_FENCED=()
kafka_fault_bridge_check() { # FAULT
  local fenced b
  for b in $E2E_BRIDGES; do
    fenced=$(grep -c 'aggregate: consumer failed for good' "$work/$b.err" || true)
    if [ "$fenced" -gt "${E2E_FENCED[$b]:-0}" ]; then
      log "$1: $b's aggregator's consumer failed for good $((fenced - ${E2E_FENCED[$b]:-0})) time(s) and was replaced"
      E2E_FENCED[$b]=$fenced
    fi
    if ! kill -0 "${BRIDGE_PID[$b]:-0}" 2>/dev/null; then
      E2E_BRIDGE_EXITS=$((E2E_BRIDGE_EXITS + 1))
      echo "$1: bridge $b exited: $(grep -E 'error|stopping' "$work/$b.err" | tail -3 | tr '\n' ' ')" >>"$work/bridge_exits"
      log "$1: BRIDGE $b EXITED; restarted"
      if [ "$b" = b1 ]; then bridge_up; else bridge2_up; fi
    fi
  done
}

# the group's coordinator: the node that leads the __consumer_offsets
# partition of group turnstile-bridge (-1: unknown)
kafka_group_coordinator() {
  kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server \
    "$KAFKA_BOOTSTRAP" --describe --state --group turnstile-bridge 2>/dev/null |
    awk '$1 == "turnstile-bridge" { gsub(/[()]/, "", $3); c = $3 } END { print (c == "" ? -1 : c) }'
}

# "N in Kafka" from the bridge's latest status line (the relay's delivered count)
relay_delivered() {
  grep 'info: relay: [a-z]*, [0-9]* received' "$work/b1.err" | tail -1 | sed -n 's/.* \([0-9]*\) in Kafka,.*/\1/p'
}

# The node that is the group's coordinator (and leads readings partitions)
# crashes: the bridge loses its coordinator and the leaders it fetches from at
# once; other in-sync replicas take over. Twice (the coordinator has moved to
# another node by then): whether the bridge's group session outlives the
# failover (about 4 to 9 s here, against session_timeout_ms 6 s) is a race,
# and the bridge must survive both outcomes.
_kafka_leader_kill_once() { # sets E2E_KILL_NOTE (not in a subshell: the node must be this shell's child)
  local c l p t t0 led=
  c=$(kafka_group_coordinator)
  for p in 0 1 2 3; do [ "$(kafka_leader turnstile.readings "$p")" != "$c" ] || led+=" $p"; done
  l=$c
  [ -n "$led" ] || { l=$(kafka_leader turnstile.readings 0); led=" 0"; }
  [ "$l" -ge 1 ] 2>/dev/null || { E2E_KILL_NOTE="no leader found: skipped"; return 0; }
  p=${led# }; p=${p%% *}
  t0=$(date +%s%3N)
  kafka_node_kill "$l"
  for _ in $(seq 300); do   # a new leader from the in-sync replicas
    [ "$(kafka_leader turnstile.readings "$p")" -ge 1 ] && [ "$(kafka_leader turnstile.readings "$p")" != "$l" ] && break
    sleep 0.1
  done
  E2E_KILL_NOTE="node $l (coordinator: $([ "$l" = "$c" ] && echo yes || echo no), leader of readings${led}) SIGKILLed, partition $p led by $(kafka_leader turnstile.readings "$p") after $(( $(date +%s%3N) - t0 )) ms"
  sleep 8
  kafka_node_restart "$l"
  for t in $E2E_TOPICS; do kafka_wait_isr "$t" 90 >/dev/null || true; done
  sleep 3
}
fault_kafka_leader_kill() {
  local a b
  _kafka_leader_kill_once; a=$E2E_KILL_NOTE
  kafka_fault_bridge_check kafka_leader_kill
  _kafka_leader_kill_once; b=$E2E_KILL_NOTE
  kafka_fault_bridge_check kafka_leader_kill
  FAULT_NOTE="$a; restarted, in sync; then $b; restarted, in sync"
}

# Two of three nodes die for kafka_quorum_s: no controller quorum, no ISR that
# can acknowledge, so produce stalls (the relay back-pressures) and the group
# coordinator cannot store anything. The survivor is the group's coordinator
# (the bridge keeps talking to it while its commits and heartbeats stall).
kafka_quorum_s=30
fault_kafka_quorum_loss() {
  local c victims=() n t d0 d1 pid=${BRIDGE_PID[b1]:-}
  c=$(kafka_group_coordinator)
  for n in 1 2 3; do [ "$n" = "$c" ] || victims+=("$n"); done
  [ ${#victims[@]} = 2 ] || victims=(1 2)
  kafka_node_kill "${victims[@]}"
  sleep 10
  d0=$(relay_delivered)
  sleep $((kafka_quorum_s - 10))
  d1=$(relay_delivered)
  # produce must have stalled: the relay's delivered count did not move for the last 20 s
  [ -n "$d0" ] && [ "$d0" = "$d1" ] && E2E_QUORUM_STALLED=$((E2E_QUORUM_STALLED + 1))
  kafka_node_restart "${victims[@]}"
  for t in $E2E_TOPICS; do kafka_wait_isr "$t" 120 >/dev/null || true; done
  sleep 5
  [ -n "$pid" ] && [ "$pid" = "${BRIDGE_PID[b1]:-}" ] && kill -0 "$pid" 2>/dev/null &&
    E2E_QUORUM_SURVIVED=$((E2E_QUORUM_SURVIVED + 1))
  FAULT_NOTE="nodes ${victims[*]} SIGKILLed for ${kafka_quorum_s} s (node ${c} the group coordinator survived); relay delivered $d0 -> $d1 (stalled: $([ "$d0" = "$d1" ] && echo yes || echo no)); restarted, in sync again"
  kafka_fault_bridge_check kafka_quorum_loss
}
E2E_QUORUM_STALLED=0 E2E_QUORUM_SURVIVED=0

fault_kafka_rolling_restart() { # every node in turn: SIGTERM, start, wait until in sync
  local n t
  for n in 1 2 3; do
    kafka_node_stop "$n"
    kafka_node_restart "$n"
    for t in $E2E_TOPICS; do kafka_wait_isr "$t" 90 >/dev/null; done
  done
  sleep 3
  FAULT_NOTE="nodes 1, 2, 3 stopped and restarted in turn, each back in sync before the next"
  kafka_fault_bridge_check kafka_rolling_restart
}

# turnstile.readings grows from 4 to 8 partitions while readings flow. Nothing
# moves (the relay places readings by the lake's layout: docs/bridge.md,
# "Adding partitions"); then the documented procedure puts the new partitions
# to use: the bridge stopped, one aggregator drains every partition,
# turnstile-bridge --repartition moves the agents' states, the bridge starts
# again. The accounting at the end covers the readings of both layouts.
fault_kafka_add_partitions() {
  local before after moved rc=0
  before=$(_kafka_partitions turnstile.readings | wc -l)
  after=$((before * 2))
  kafka_add_partitions turnstile.readings "$after"
  sleep 8
  kafka_fault_bridge_check kafka_add_partitions
  . "$src/tests/integration/repartition.sh"
  repartition_procedure "$work/bridge.conf" "bridge_kill b1 TERM" "bridge_up" "$work/repartition.log" || rc=$?
  # readings of the new layout reach the partitions added (within 90 s: on a loaded
  # machine the relay may still be working off a backlog queued before the procedure)
  local waited
  for ((waited = 0; waited < 90; waited += 3)); do
    sleep 3
    moved=$(for ((p = before; p < after; p++)); do
              kcat -b "$KAFKA_BOOTSTRAP" -Q -t "turnstile.readings:$p:-1" -m 10 2>/dev/null | awk '{print $NF}'
            done | awk '{s += $1} END {print s + 0}')
    [ "$moved" -gt 0 ] && break
  done
  E2E_REPARTITIONED=$((E2E_REPARTITIONED + (rc == 0 && moved > 0)))
  FAULT_NOTE="turnstile.readings grown from $before to $after partitions; nothing moved until the procedure (exit $rc), then $moved record(s) in the partitions added"
}
E2E_REPARTITIONED=0

ALL_FAULTS="clock partition_one partition_all broker_restart broker_kill kafka_outage bridge_kill agent_kill power_cut disk_full slave inject http_gate"
CLUSTER_FAULTS="kafka_leader_kill kafka_quorum_loss kafka_rolling_restart kafka_add_partitions"   # run.sh --cluster
BACKGROUND_FAULTS="partition_one partition_all slave clock"   # they change no process id
