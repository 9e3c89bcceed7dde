#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-bridge --role relay between a real mosquitto (broker.sh) and a
# real Kafka (kafka.sh), readings published with mosquitto_pub:
#   1. valid readings arrive in the readings topic, keyed by agent id, with
#      the mqtt_topic header, the payload unchanged;
#   2. malformed payloads (truncated, extra commas, NUL bytes, a line break,
#      13 fields, an ID of another agent, a 10 kB line, a topic id with a
#      space) land in the dead-letter topic with a reason header, and the
#      valid readings published between them all arrive;
#   3. Kafka stopped while 1500 readings are published (the producer queue,
#      1000, fills: back-pressure; the broker drops the relay for silence
#      past 1.5 x keepalive while it waits), then restarted: every reading
#      arrives (distinct IDs = sent);
#   4. the relay SIGKILLed, readings published while it is away, restarted:
#      its persistent session delivers them all;
#      the broker crashes and loses every session: the relay subscribes
#      again (on every connection), readings flow again;
#   5. SIGTERM: exit 0, the stop line, no sanitizer report.
# Waits poll with generous deadlines; nothing asserts on a duration.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-relay-test.XXXXXX)
relay_pid=
trap 'bridge_test_cleanup $relay_pid' EXIT
. "$src/tests/integration/bridge.sh"

t0=$SECONDS
bridge_test_servers 4
echo "broker and Kafka ready in $((SECONDS - t0)) s"

cat >"$work/bridge.conf" <<EOF
[bridge]
id = relay-test
role = relay
log_level = info
status_interval_ms = 1000
# the readings below are hand-made, dated 2023-05-27: no event-time age bound here
max_event_age_s = 0
[mqtt]
host = 127.0.0.1
port = $BROKER_PORT
keepalive_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 1000
[kafka]
brokers = $KAFKA_BOOTSTRAP
queue_max_messages = 1000
linger_ms = 5
EOF
log=$work/relay.log
: >"$log"

subscribed_times() { grep -c 'relay: mqtt: subscribed to turnstile/v1/+/+/readings' "$log" || true; }
relay_start() {
  local before
  before=$(subscribed_times)
  "$bin/turnstile-bridge" -c "$work/bridge.conf" --role relay >>"$log" 2>&1 &
  relay_pid=$!
  wait_for 20 eval '[ "$(subscribed_times)" -gt "$before" ]' ||
    { echo "the relay did not subscribe"; tail -20 "$log"; return 1; }
}

# one valid 18-field reading of AGENT number SEQ
reading() { # AGENT SEQ
  printf 'A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,04:00:00,REGULAR,1,0,%s:%s,2023-05-27 04:00:00,1685160000000,%s,0,,%s' \
    "$1" "$2" "$2" "$2"
}
# COUNT readings of AGENT from FIRST, one connection, QoS 1
publish_many() { # AGENT FIRST COUNT
  local s
  for ((s = $2; s < $2 + $3; s++)); do reading "$1" "$s"; echo; done |
    mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -i "pub-$1" -t "turnstile/v1/S1/$1/readings" -l
}
pub() { # TOPIC mosquitto_pub payload options...
  local t=$1; shift
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$t" "$@"
}
# the readings topic as "KEY HEADERS VALUE" lines
consume() {
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%k %h %s\n' \
    >"$work/readings.txt" 2>>"$work/kcat.err"
}
consume_dead() {
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q -f '%k|%h|%S\n' \
    >"$work/dead.txt" 2>>"$work/kcat.err"
}
# distinct sequence numbers of AGENT in the readings topic
distinct() { # AGENT
  awk -v a="$1" -F'[ ,]' '{ for (i = 1; i <= NF; i++) if ($i ~ "^" a ":[0-9]+$") print $i }' \
    "$work/readings.txt" | sort -u | wc -l | tr -d ' '
}
have_readings() { # AGENT COUNT
  consume && [ "$(distinct "$1")" -ge "$2" ]
}
have_dead() { # COUNT
  consume_dead && [ "$(wc -l <"$work/dead.txt" | tr -d ' ')" -ge "$1" ]
}
# every line: key = the ID's agent, header mqtt_topic = that agent's topic
keys_and_headers_right() {
  awk '{ key = $1; hdr = $2; n = split($0, f, ","); split(f[12], id, ":")
         if (key != id[1]) { print "key " key " for ID " f[12] > "/dev/stderr"; bad = 1 }
         if (hdr != "mqtt_topic=turnstile/v1/S1/" key "/readings") { print "header " hdr > "/dev/stderr"; bad = 1 }
         if (n != 18) { print "fields " n > "/dev/stderr"; bad = 1 } }
       END { exit bad }' "$work/readings.txt"
}

relay_start

# ---- 1 and 2: valid readings, and dead letters between them ----
good=ag-1
publish_many $good 1 5
t=turnstile/v1/S1/$good/readings
pub "$t" -m 'A002,R051,02-00-00,59 ST,NQR'                                   # truncated
publish_many $good 6 5
pub "$t" -m "$(reading $good 100),,,"                                         # extra commas
printf 'A002,R051\0,02-00-00,59 ST\0' >"$work/nul.bin"
pub "$t" -f "$work/nul.bin"                                                   # NUL bytes
pub "$t" -m "$(reading $good 101)
$(reading $good 102)"                                                         # a line break
pub "$t" -m 'A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,04:00:00,REGULAR,9,5,ag-1:103,2023-05-27 04:00:00'  # 13 fields
pub "$t" -m "$(reading ag-2 104)"                                             # ID of another agent
head -c 10000 /dev/zero | tr '\0' 'x' >"$work/huge.txt"
pub "$t" -f "$work/huge.txt"                                                  # 10 kB
pub "turnstile/v1/S 1/$good/readings" -m "$(reading $good 105)"               # a station id with a space
publish_many $good 11 5

check "15 valid readings arrive" wait_for 30 have_readings $good 15
check "exactly those 15, no dead letter among them" \
  eval '[ "$(wc -l <"$work/readings.txt" | tr -d " ")" = 15 ] && [ "$(distinct $good)" = 15 ]'
check "keyed by agent id, header mqtt_topic, 18 fields" keys_and_headers_right
check "the payload arrives unchanged" grep -qxF "$good $(printf 'mqtt_topic=%s' "$t") $(reading $good 7)" "$work/readings.txt"
check "8 dead letters" wait_for 30 have_dead 8
check "exactly 8 dead letters" eval '[ "$(wc -l <"$work/dead.txt" | tr -d " ")" = 8 ]'
check "dead letters carry reason and mqtt_topic headers" \
  eval '[ "$(grep -c "reason=.*mqtt_topic=turnstile/v1/" "$work/dead.txt")" = 8 ]'
for why in 'not a reading: fewer than 13 fields' 'not a reading: too many fields' \
           'payload holds a NUL byte' 'payload holds a line break' 'not a reading: 13 fields' \
           "ID names agent 'ag-2'" 'payload of 10000 bytes' 'topic is not turnstile'; do
  check "dead letter: $why" grep -aqF "reason=$why" "$work/dead.txt"
done
check "the NUL payload is kept as received" grep -aq "payload holds a NUL byte.*|$(wc -c <"$work/nul.bin" | tr -d " ")\$" "$work/dead.txt"
check "the 10 kB payload is kept as received" grep -aq '|10000$' "$work/dead.txt"
check "invalid messages are logged" grep -q 'relay: invalid message on' "$log"

# ---- 3: Kafka away, back-pressure ----
kafka_stop
t1=$SECONDS
publish_many ag-3 1 1500
check "the producer queue fills: back-pressure" wait_for 60 grep -q 'relay: Kafka producer queue full' "$log"
# waiting for room, the relay sends nothing: the broker drops it after 7.5 s
check "the broker drops the relay while it waits" \
  wait_for 30 grep -q 'Client turnstile-bridge-relay-test has exceeded timeout' "$BROKER_LOG"
kafka_restart
echo "Kafka was away for $((SECONDS - t1)) s"
check "every reading published while Kafka was away arrives" wait_for 90 have_readings ag-3 1500
check "1500 distinct IDs of ag-3" eval '[ "$(distinct ag-3)" = 1500 ]'
check "the relay re-connected (session resumed)" \
  eval '[ "$(grep -c "relay: mqtt: connected to .*(session resumed)" "$log")" -ge 1 ]'

# ---- 4: relay SIGKILLed, persistent session ----
kill -9 "$relay_pid"
wait "$relay_pid" 2>/dev/null || true
relay_pid=
publish_many ag-4 1 200
relay_start
check "readings published while the relay was dead arrive" wait_for 60 have_readings ag-4 200
check "200 distinct IDs of ag-4" eval '[ "$(distinct ag-4)" = 200 ]'
check "all earlier readings still there" \
  eval '[ "$(distinct ag-1)" = 15 ] && [ "$(distinct ag-3)" = 1500 ]'
check "keys and headers right throughout" keys_and_headers_right

# ---- the broker loses every session (crash, no persistence file): the relay
# subscribes again on its new session ----
before=$(subscribed_times)
broker_kill
rm -f "$BROKER_DIR/mosquitto.db"
broker_restart
check "after a broker crash the relay subscribes again" \
  wait_for 30 eval '[ "$(subscribed_times)" -gt "$before" ]'
publish_many ag-5 1 50
check "readings published after the broker crash arrive" wait_for 60 have_readings ag-5 50

# ---- 5: clean stop ----
kill -TERM "$relay_pid"
rc=0
wait "$relay_pid" || rc=$?
relay_pid=
check "SIGTERM: exit status 0" [ "$rc" = 0 ]
check "the stop line" grep -q 'relay: stopped: ' "$log"
check "no sanitizer report" eval '! grep -q "AddressSanitizer\|runtime error:\|LeakSanitizer" "$log"'
grep 'relay: stopped' "$log" || true

echo "test took $((SECONDS - t0)) s"
if [ "$fails" -gt 0 ]; then tail -40 "$log"; fi
finish
