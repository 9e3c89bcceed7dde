#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent with its store and a real mosquitto: every reading polled
# reaches a subscriber, in order, through a broker restart and 20 SIGKILLs of
# the agent; the totals equal what the simulator's registers say. The test
# plays the bridge: it acknowledges on the ack topic the highest sequence N
# such that it has received every reading 1..N.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-mqtt.XXXXXX)
agent_pid= sub_pid= acker_pid=
trap 'test_cleanup $agent_pid $sub_pid $acker_pid' EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

broker_start
sim_start --generate --turnstiles 4 --speed 600 --fault pause
declare -A first_e first_x
for k in 0 1 2 3; do
  read -r e x < <(sim_get 1 $k)
  first_e[00-00-0$k]=$e first_x[00-00-0$k]=$x
done

{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n'
  printf 'max_rate_per_min = 100000\nstate_interval_ms = 500\n'
  printf '[store]\npath = %s/agent.db\nsynchronous = normal\n' "$work"
  printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n' "$BROKER_PORT"
  printf 'max_inflight = 50\nack_timeout_ms = 2000\n'
  cat "$work/devices.conf"
} >"$work/agent.conf"

topic=turnstile/v1/S1/a1
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i test-sub -t "$topic/readings" \
  >"$work/received.csv" 2>"$work/sub.err" &
sub_pid=$!
# the bridge's part: acknowledge the contiguous prefix received
(
  while :; do
    n=$(awk -F, 'NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2]; k++) have[k] = 1 }
                 END { n = 0; while ((n + 1) in have) n++; print n }' "$work/received.csv")
    [ "$n" -gt 0 ] && mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r -t "$topic/ack" -m "$n" 2>/dev/null || true
    sleep 0.3
  done
) &
acker_pid=$!

start_agent() {
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/agent.conf" >>"$work/agent.out" 2>>"$work/agent.err" &
  agent_pid=$!
}
start_agent
# resumed once the agent has read every turnstile's frozen registers (its first readings)
scps_seen() { test "$(awk -F, 'NF >= 13 { s[$3] = 1 } END { print length(s) }' "$work/received.csv")" -ge 4; }
wait_for 30 scps_seen || true   # "first reading is the registers at start" below tells
sim resume
sleep 3

# the broker goes away for a while (SIGTERM: it saves the sessions) and comes back
broker_stop
sleep 3
broker_restart
sleep 3

# 20 crashes under load, at random moments
for i in $(seq 20); do
  sleep "0.$((RANDOM % 8 + 2))"
  kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
  start_agent
done
sleep 2

# a malformed acknowledgement is ignored with a log line
mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$topic/ack" -m "12x" 
sleep 1

# stop the world: freeze the counters, let the agent read them, stop it cleanly
sim pause
declare -A last_e last_x
for k in 0 1 2 3; do
  read -r e x < <(sim_get 1 $k)
  last_e[00-00-0$k]=$e last_x[00-00-0$k]=$x
done
sleep 1.5
kill -TERM "$agent_pid"; wait "$agent_pid"; status=$?; agent_pid=
check "SIGTERM: clean exit 0" test "$status" -eq 0
# wait until the subscriber has everything the agent stored
for _ in $(seq 100); do
  sleep 0.2
  awk -f "$src/tests/integration/account.awk" "$work/received.csv" >"$work/account"
  [ "$(awk '$1 == "gaps" {print $2}' "$work/account")" -eq 0 ] && break
done
sleep 1
awk -f "$src/tests/integration/account.awk" "$work/received.csv" >"$work/account"
cat "$work/account"
get() { awk -v k="$1" '$1 == k {print $2}' "$work/account"; }
check "readings arrived" test "$(get readings)" -gt 200
check "no gap in the sequence numbers" test "$(get gaps)" -eq 0
check "no number covered twice" test "$(get overlaps)" -eq 0
check "duplicates are identical" test "$(get differing_duplicates)" -eq 0
check "first arrivals in order" test "$(get out_of_order)" -eq 0
check "no malformed payload" test "$(get malformed)" -eq 0
for k in 0 1 2 3; do
  scp=00-00-0$k
  read -r _ _ e x fe fx le lx < <(grep "^turnstile $scp " "$work/account")
  check "$scp: first reading is the registers at start" test "$fe $fx" = "${first_e[$scp]} ${first_x[$scp]}"
  check "$scp: last reading is the registers at the end" test "$le $lx" = "${last_e[$scp]} ${last_x[$scp]}"
  check "$scp: entries add up ($e = ${last_e[$scp]} - ${first_e[$scp]})" test "$e" -eq $((last_e[$scp] - first_e[$scp]))
  check "$scp: exits add up ($x = ${last_x[$scp]} - ${first_x[$scp]})" test "$x" -eq $((last_x[$scp] - first_x[$scp]))
done
check "the malformed ack was logged" grep -q "ack" "$work/agent.err"
check "the agent logged no error from the sanitizers" bash -c "! grep -q 'Sanitizer' '$work/agent.err'"
status_json=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/status" -C 1 -W 3 || true)
check "retained status says offline after the clean stop" grep -q '"state":"offline"' <<<"$status_json"
state_json=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/state" -C 1 -W 3 || true)
check "retained state lists the turnstiles and devices" grep -q '"scp":"00-00-03".*"devices":\[{"name"' <<<"$state_json"
if [ "$fails" -gt 0 ]; then tail -50 "$work/agent.err"; fi
finish
