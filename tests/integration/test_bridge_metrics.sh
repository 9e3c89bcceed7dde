#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-bridge's [http] listener (docs/monitoring.md) with a real
# mosquitto, a real Kafka and a real agent reading a simulated gate, every
# scrape parsed by Prometheus' own text parser (tests/integration/prom.py):
#   0. a bad [http] listen is a config error naming the line; a port in use
#      stops the bridge at start with the reason;
#   1. /metrics parses; the readings' counters move as readings flow (in,
#      in Kafka, in the windows, rows, files, checkpoints); per partition
#      offsets and lag; the agent's figures from its retained status/state
#      (online, readings sent, polls, people counted, acked, ack age);
#   2. every metric the shipped Grafana dashboard queries is in the scrape;
#   3. /healthz is 200; Kafka stopped while the agent publishes: 503 naming
#      the relay's stall; Kafka back: 200 again;
#      the lake's disk (a 4 MiB tmpfs) filled: 503 naming the failing
#      checkpoints; room again: 200;
#   4. hostile HTTP: unknown paths 404, POST and DELETE 405, a 200 kB header
#      or request line refused, garbage refused; 4 x max_connections held
#      open with half a request: at most max_connections accepted, the idle
#      ones closed after timeout_s so that a scrape is served meanwhile; the
#      listener still serves afterwards, and the bridge has no sanitizer report.
# Waits poll with generous deadlines; nothing asserts on a duration.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-metrics.XXXXXX)
declare -A agent_pid=()
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"
prom() { /usr/bin/python3 "$src/tests/integration/prom.py" "$@"; }

# --- 0. [http] listen is checked --------------------------------------------------------------
for l in localhost:9464 127.0.0.1 127.0.0.1:0 127.0.0.1:65536 '::1:9464' '[::1:9464'; do
  printf '[bridge]\nid = b\nrole = relay\n[mqtt]\nhost = h\n[kafka]\nbrokers = k:1\n[http]\nlisten = %s\n' "$l" >"$work/bad.conf"
  rc=0; "$TS_BIN_DIR/turnstile-bridge" --check-config -c "$work/bad.conf" 2>"$work/bad.err" || rc=$?
  check "listen = $l: refused (78), naming the line" bash -c "[ $rc = 78 ] && grep -q 'bad.conf:9: \[http\] listen: ' '$work/bad.err'"
done

mkdir -p "$work/lake"   # a small tmpfs, filled in 3b
mount -t tmpfs -o size=4m tmpfs "$work/lake" || { echo "FAIL: cannot mount a tmpfs (not root?)"; exit 1; }
broker_start --conf 'max_queued_messages 1000000'
# a port in use: the bridge does not start, and says why
printf '[bridge]\nid = b0\nrole = relay\n[mqtt]\nhost = 127.0.0.1\nport = %s\n[kafka]\nbrokers = 127.0.0.1:1\n[http]\nlisten = 127.0.0.1:%s\n' \
  "$BROKER_PORT" "$BROKER_PORT" >"$work/busy.conf"
rc=0; timeout 60 "$TS_BIN_DIR/turnstile-bridge" -c "$work/busy.conf" 2>"$work/busy.err" || rc=$?
check "listen on a port in use: exit 1, 'cannot listen'" bash -c "[ $rc = 1 ] && grep -q 'cannot listen on 127.0.0.1:$BROKER_PORT' '$work/busy.err'"
kafka_start
kafka_create_topic turnstile.readings 2
kafka_create_topic turnstile.deadletter 1
sim_start --generate --slaves 1 --turnstiles 4 --speed 600
split_devices
agent_conf "$work/a1.conf" a1 "$work/slave-1.conf"
"${TS_BIN_DIR:?}/turnstile-agent" -c "$work/a1.conf" --quiet >>"$work/a1.out" 2>>"$work/a1.err" &
agent_pid[a1]=$!

http=127.0.0.1:$(free_port)
bridge_conf "$work/bridge.conf" b1 "$(printf '[http]\nlisten = %s\nstall_s = 3\nmax_connections = 4\ntimeout_s = 3\nmax_request_bytes = 8192' "$http")"
bridge_start b1 "$work/bridge.conf"

# --- 1. values move -----------------------------------------------------------------------
health_is() { # CODE: wait up to 60 s for /healthz to answer CODE
  local i
  for ((i = 0; i < 120; i++)); do
    prom health "$http" >"$work/health" 2>/dev/null || true
    [ "$(head -1 "$work/health")" = "$1" ] && return 0
    sleep 0.5
  done
  cat "$work/health"
  return 1
}
v() { prom value "$work/$1" "${@:2}" 2>/dev/null || echo -1; }
check "/healthz says 200 once the bridge consumes" health_is 200
prom scrape "$http" "$work/s1"
sleep 6
prom scrape "$http" "$work/s2"
check "the scrape parses (prometheus_client)" test -s "$work/s2"
for m in turnstile_bridge_relay_received_total turnstile_bridge_relay_delivered_total \
         turnstile_bridge_consumed_total turnstile_bridge_readings_total \
         turnstile_bridge_rows_total turnstile_bridge_checkpoints_total \
         turnstile_bridge_acks_published_total; do
  a=$(v s1 $m) b=$(v s2 $m)
  check "$m moves as readings flow ($a -> $b)" test "$b" -gt "$a" -a "$a" -ge 0
done
check "the bridge's info names it" test "$(v s2 turnstile_bridge_info bridge=b1 role=all)" = 1
check "agents seen: 1" test "$(v s2 turnstile_bridge_agents)" = 1
check "per partition offsets (2 partitions)" test "$(grep -c '^turnstile_bridge_partition_offset{' "$work/s2")" = 2
check "per partition lag is served" grep -q '^turnstile_bridge_partition_lag{partition="0"}' "$work/s2"
check "dead letters by reason are served" grep -q '^turnstile_bridge_dead_letters_total{reason="malformed",stage="relay"} 0' "$work/s2"
check "healthy = 1, status not degraded" test "$(v s2 turnstile_bridge_healthy)/$(v s2 turnstile_bridge_status_degraded)" = 1/0
# the agent's figures, from its retained status and state (agent_status.h)
A=(station=ST-a1 agent=a1)
check "agent a1 online" test "$(v s2 turnstile_agent_online "${A[@]}")" = 1
a=$(v s1 turnstile_agent_readings_sent_total "${A[@]}") b=$(v s2 turnstile_agent_readings_sent_total "${A[@]}")
check "agent a1: readings sent move ($a -> $b)" test "$b" -gt "$a" -a "$a" -ge 0
a=$(v s1 turnstile_agent_device_polls_total "${A[@]}") b=$(v s2 turnstile_agent_device_polls_total "${A[@]}")
check "agent a1: device polls move ($a -> $b)" test "$b" -gt "$a" -a "$a" -ge 0
check "agent a1: people counted" test "$(v s2 turnstile_agent_entries_counted_total "${A[@]}")" -gt 0
check "agent a1: 4 turnstiles, 1 device up" test "$(v s2 turnstile_agent_turnstiles "${A[@]}")/$(v s2 turnstile_agent_devices_up "${A[@]}")" = 4/1
check "agent a1: acked seq served" test "$(v s2 turnstile_agent_acked_seq "${A[@]}")" -gt 0
check "agent a1: backlog and ack age served" test "$(v s2 turnstile_agent_backlog "${A[@]}")" -ge 0 -a "$(v s2 turnstile_agent_ack_age_seconds "${A[@]}")" -ge 0

# --- 2. the dashboard's metrics exist ----------------------------------------------------------
check "every metric the Grafana dashboard queries is in the scrape" \
  prom dashboard "$work/s2" "$src/config/grafana/turnstile-edge.json"

# --- 3. /healthz follows Kafka ---------------------------------------------------------------
kafka_stop
check "Kafka stopped while readings flow: /healthz 503" health_is 503
check "  naming the relay's stall" grep -q 'relay: Kafka has confirmed nothing' "$work/health"
prom scrape "$http" "$work/s3"
check "  healthy = 0, relay_stalled_seconds > 0" test "$(v s3 turnstile_bridge_healthy)" = 0 -a \
  "$(v s3 turnstile_bridge_relay_stalled_seconds | cut -d. -f1)" -ge 1
kafka_restart
check "Kafka back: /healthz 200 again" health_is 200

# --- 3b. /healthz follows the lake: its disk full, checkpoints fail -----------------------------
dd if=/dev/zero of="$work/lake/filler" bs=64k 2>/dev/null || true
check "the lake's disk full: /healthz 503" health_is 503
check "  naming the failing checkpoints" grep -q 'checkpoint(s) failed in a row' "$work/health"
sleep 2   # a status interval (1 s here)
prom scrape "$http" "$work/s5"
check "  the status says degraded, checkpoint failures counted" test "$(v s5 turnstile_bridge_status_degraded)" = 1 -a \
  "$(v s5 turnstile_bridge_checkpoint_failures_total)" -gt 0
rm -f "$work/lake/filler"
check "room again: /healthz 200 again" health_is 200

# --- 4. hostile HTTP -------------------------------------------------------------------------
prom hostile "$http" 4 | tee "$work/hostile"
check "unknown path: 404" grep -q '^unknown path: HTTP/1.1 404' "$work/hostile"
check "POST: 405" grep -q '^POST: HTTP/1.1 405' "$work/hostile"
check "DELETE: 405" grep -q '^DELETE: HTTP/1.1 405' "$work/hostile"
check "/../metrics: not served" bash -c "grep '^dotdot:' '$work/hostile' | grep -qv ' 200'"
check "a 200 kB header: refused (4xx or closed)" bash -c "grep -qE '^huge header: (HTTP/1.1 4|reset|\$)' '$work/hostile'"
check "a 200 kB request line: refused" bash -c "grep -qE '^huge line: (HTTP/1.1 4|reset|\$)' '$work/hostile'"
check "garbage: refused" bash -c "grep '^garbage:' '$work/hostile' | grep -qv ' 200'"
accepted=$(awk '/^opened:/ {print $NF}' "$work/hostile")
check "16 connections held open: the bridge accepts at most max_connections = 4 ($accepted)" test "$accepted" -le 4 -a "$accepted" -ge 1
check "a scrape is served while they are held (the idle ones time out)" grep -q '^scrape while held: 200' "$work/hostile"
check "the listener still serves" prom scrape "$http" "$work/s4"
check "  and /healthz is 200" health_is 200

bridge_kill b1 TERM
check "no sanitizer report from the bridge" bash -c "! grep -q 'Sanitizer' '$work/b1.err'"
if [ "$fails" -gt 0 ]; then grep -E 'error|warning|http' "$work/b1.err" | tail -20; fi
finish
