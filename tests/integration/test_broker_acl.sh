#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The production mosquitto configuration (config/mosquitto/turnstile.conf, turnstile.acl and
# turnstile-dashboard.acl, agents added by scripts/mosquitto-add-agent) run for real on free
# loopback ports, with test certificates and passwords in a temp dir: an agent publishes only
# its own topics and reads only its own ack; the bridge reads every agent's readings, status
# and state and writes every ack and window summary; the dashboard's listeners start (the page
# over HTTP from http_dir, MQTT over WebSockets with TLS); bad credentials, a missing client
# certificate, an untrusted broker and plain TCP are refused. The WebSocket listeners (issue
# 11): the bridge's and an agent's credentials are refused at CONNECT there (CONNACK 135), on
# the wss listener and on the page listener; the dashboard accounts (turnstile-dashboard and
# a kiosk's, of their own password file) read status, state and window summaries over wss and
# nothing else, and every publish of theirs is refused (PUBACK 135, and no subscriber gets
# it); on the page listener they see nothing (mount_point); the dashboard's password is
# refused on the TLS listener. mosquitto PUBACKs a refused publish and drops it (MQTT 3.1.1
# clients cannot tell), so "refused" over TLS is checked by a subscriber allowed to see the
# topic receiving nothing. The WebSocket side is reached with MQTT.js from the dashboard's
# node_modules (tests/integration/mqtt_ws.js; mosquitto 2.0.11's own clients cannot).
# A webhook source (hook1 of S1, the ACL's commented template filled in): the bridge writes its
# status and the dashboard reads it, and the bridge still cannot write an agent's status.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-acl.XXXXXX)
mpid=
pids=()
cleanup() {
  for p in "${pids[@]}" $mpid; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"   # for its test certificates (_broker_certs) and ports

# --- the broker: the production files, paths and port rewritten ------------------------
BROKER_DIR=$work
_broker_certs   # ca.crt, server.crt/key (127.0.0.1), client.crt/key, other-ca.crt
cp "$src/config/mosquitto/turnstile.acl" "$src/config/mosquitto/turnstile-dashboard.acl" "$work/"
# a webhook source, as docs/bridge.md says to add one: the template's lines, uncommented
sed -i 's|^#topic write turnstile/v1/STATION/NAME/|topic write turnstile/v1/S1/hook1/|' "$work/turnstile.acl"
# the dashboard listeners' own password file: read-only accounts only
mosquitto_passwd -c -b "$work/dashboard.passwd" turnstile-dashboard pw-dash
mosquitto_passwd -b "$work/dashboard.passwd" kiosk-2 pw-kiosk
add() { # STATION AGENT PASSWORD
  printf '%s\n' "$3" | "$src/scripts/mosquitto-add-agent" --acl "$work/turnstile.acl" \
    --passwd "$work/passwd" --dashboard-passwd "$work/dashboard.passwd" --password-file - \
    "$1" "$2" 2>>"$work/add.log"
}
add S1 a1 pw-a1
add S1 a2 pw-a2
add S2 b1 pw-b1
mosquitto_passwd -b "$work/passwd" turnstile-bridge pw-bridge
rc=0
add S1 kiosk-2 pw-x || rc=$?
check "mosquitto-add-agent refuses an id that has a dashboard account" \
  bash -c "[ $rc = 1 ] && ! grep -q '^kiosk-2:' '$work/passwd' && ! grep -q 'user kiosk-2' '$work/turnstile.acl'"
mkdir "$work/www"
echo '<!doctype html><title>turnstile dashboard test page</title>' >"$work/www/index.html"
# a port found free may be taken by another process before mosquitto binds it
# (the ephemeral range overlaps free_port's): three tries with new ports
for try in 1 2 3; do
  port=$(free_port)
  wsport=$(free_port)
  pageport=$(free_port)
  sed -e "s|^listener 8883$|listener $port 127.0.0.1|" \
      -e "s|^listener 8443$|listener $wsport 127.0.0.1|" \
      -e "s|^listener 8080$|listener $pageport 127.0.0.1|" \
      -e "s|^http_dir /usr/share/turnstile/dashboard$|http_dir $work/www|" \
      -e "s|/etc/mosquitto/turnstile.passwd|$work/passwd|" \
      -e "s|/etc/mosquitto/turnstile.acl|$work/turnstile.acl|" \
      -e "s|/etc/mosquitto/turnstile-dashboard.passwd|$work/dashboard.passwd|" \
      -e "s|/etc/mosquitto/turnstile-dashboard.acl|$work/turnstile-dashboard.acl|" \
      -e "s|/etc/mosquitto/ca/turnstile-ca.crt|$work/ca.crt|" \
      -e "s|/etc/mosquitto/certs/broker.crt|$work/server.crt|" \
      -e "s|/etc/mosquitto/certs/broker.key|$work/server.key|" \
      "$src/config/mosquitto/turnstile.conf" >"$work/mosquitto.conf"
  printf 'user root\npersistence_location %s/\nlog_dest file %s/mosquitto.log\n' "$work" "$work" \
    >>"$work/mosquitto.conf"
  /usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
  mpid=$!
  up() { port_accepts "$port" && port_accepts "$wsport" && port_accepts "$pageport"; }
  for _ in $(seq 500); do up && break; kill -0 "$mpid" || break; sleep 0.01; done
  up && break
  kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null || true
  [ "$try" = 3 ] && { cat "$work/mosquitto.out" "$work/mosquitto.log"; exit 1; }
  echo "mosquitto did not start on $port/$wsport/$pageport: again with other ports"
done
check "every /etc path of the production config was rewritten" \
  bash -c "! grep -q '^[^#]*/etc/mosquitto' '$work/mosquitto.conf'"
check "the production config starts (TLS on $port, dashboard: wss on $wsport, page on $pageport)" kill -0 "$mpid"
check "the page listener serves the dashboard (http_dir)" bash -c "{ exec 3<>/dev/tcp/127.0.0.1/$pageport; \
  printf 'GET / HTTP/1.0\r\n\r\n' >&3; timeout 3 cat <&3; } 2>/dev/null | grep -q 'turnstile dashboard test page'"
check "the dashboard's WebSocket listener speaks TLS with the broker's certificate" bash -c \
  "timeout 10 openssl s_client -verify_return_error -CAfile '$work/ca.crt' -connect 127.0.0.1:$wsport \
     </dev/null 2>/dev/null | grep -q 'Verify return code: 0 (ok)'"
check "queue limits in force" grep -q '^max_queued_messages 6000000$' "$work/mosquitto.conf"
check "settings per listener" grep -qx 'per_listener_settings true' "$work/mosquitto.conf"

# MQTT over WebSockets: MQTT.js (the dashboard's node_modules) driven by mqtt_ws.js
modules=$(dirname "$("$src/scripts/dashboard-build")")/node_modules
wss=wss://127.0.0.1:$wsport/mqtt page=ws://127.0.0.1:$pageport/mqtt
ws() { # URL USER PASSWORD ARGS...: "connect ok|refused", "suback", "puback", "message" lines
  NODE_PATH=$modules timeout 60 node "$src/tests/integration/mqtt_ws.js" "$@" --ca "$work/ca.crt"
}

tls=(-h 127.0.0.1 -p "$port" --cafile "$work/ca.crt" --cert "$work/client.crt" --key "$work/client.key")
pub() { # USER PASSWORD TOPIC MESSAGE [ARGS]
  mosquitto_pub "${tls[@]}" -u "$1" -P "$2" -q 1 -t "$3" -m "$4" "${@:5}"
}
sub() { # OUTFILE USER PASSWORD TOPIC...: in the background for 8 s, "topic payload" lines
  local out=$1 u=$2 pw=$3 args=()
  shift 3
  for t in "$@"; do args+=(-t "$t"); done
  mosquitto_sub "${tls[@]}" -u "$u" -P "$pw" -q 1 -v -W 8 -i "sub-$u-$RANDOM" "${args[@]}" \
    >"$out" 2>"$out.err" &
  pids+=($!)
}

# --- who sees what -------------------------------------------------------------------
sub "$work/bridge.txt" turnstile-bridge pw-bridge 'turnstile/v1/+/+/readings' \
  'turnstile/v1/+/+/status' 'turnstile/v1/+/+/state'
sub "$work/bridge-share.txt" turnstile-bridge pw-bridge '$share/bridges/turnstile/v1/+/+/readings'
sub "$work/a1.txt" a1 pw-a1 'turnstile/v1/S1/a1/ack'
# the dashboard, over wss, asks for more than it may read
ws "$wss" turnstile-dashboard pw-dash --sub 'turnstile/v1/+/+/status' --sub 'turnstile/v1/+/+/state' \
  --sub 'turnstile/v1/+/window' --sub 'turnstile/v1/+/+/readings' --sub 'turnstile/v1/+/+/ack' \
  --sub 'turnstile/bridge/+/status' --sub '#' --wait 8000 >"$work/dash.txt" 2>&1 &
pids+=($!)
# a2 tries to read a1's ack and everything else
sub "$work/a2.txt" a2 pw-a2 'turnstile/v1/S1/a1/ack' 'turnstile/v1/#' '#' 'turnstile/v1/+/+/readings'
for _ in $(seq 400); do [ "$(grep -c '^suback' "$work/dash.txt")" -ge 7 ] && break; sleep 0.05; done
check "the dashboard signs in over wss and subscribes" grep -q '^connect ok$' "$work/dash.txt"
sleep 1.5   # the subscriptions are in place

pub a1 pw-a1 turnstile/v1/S1/a1/readings own-reading
pub a1 pw-a1 turnstile/v1/S1/a1/status '{"state":"online"}' -r
pub a1 pw-a1 turnstile/v1/S1/a1/state '{"turnstiles":[]}' -r
pub a1 pw-a1 turnstile/v1/S1/a2/readings forged-into-a2          # another agent's topic
pub a1 pw-a1 turnstile/v1/S1/a2/status '{"forged":1}' -r
pub a1 pw-a1 turnstile/v1/S2/b1/readings forged-into-b1          # another station's agent
pub a1 pw-a1 turnstile/v1/S2/a1/readings own-id-other-station    # its id, wrong station
pub a1 pw-a1 turnstile/v1/S1/a1/ack 999999                        # acknowledging itself
pub a2 pw-a2 turnstile/v1/S1/a1/ack 888888                        # another agent's ack
pub turnstile-bridge pw-bridge turnstile/v1/S1/a1/readings bridge-forged  # bridge: acks only
pub turnstile-bridge pw-bridge turnstile/v1/S1/a1/ack 42 -r
pub b1 pw-b1 turnstile/v1/S2/b1/readings b1-reading
pub turnstile-bridge pw-bridge turnstile/v1/S2/window '{"station_id":"S2"}' -r   # a window summary
pub a1 pw-a1 turnstile/v1/S1/window a1-forged-window                          # agents: no
pub turnstile-bridge pw-bridge turnstile/bridge/b1/status '{"bridge":"b1"}' -r   # its own status
pub a1 pw-a1 turnstile/bridge/b1/status a1-forged-bridge-status -r             # agents: no
pub turnstile-bridge pw-bridge turnstile/v1/S1/hook1/status '{"source":"webhook"}' -r  # a webhook source's
pub turnstile-bridge pw-bridge turnstile/v1/S1/hook1/state '{"source":"webhook"}' -r
pub turnstile-bridge pw-bridge turnstile/v1/S1/a1/status bridge-as-a1-status -r       # an agent's: no
# the dashboard, over wss, retained: reads only
ws "$wss" turnstile-dashboard pw-dash --retain --pub turnstile/v1/S1/window dash-forged-window \
  --pub turnstile/v1/S1/a1/status dash-forged-status --pub turnstile/v1/S1/a1/ack 777777 \
  --pub turnstile/v1/S1/a1/readings dash-forged-reading --wait 0 >"$work/dash-pub.txt" 2>&1 || true
wait "${pids[@]}" 2>/dev/null || true
pids=()

check "bridge reads an agent's readings" grep -qx 'turnstile/v1/S1/a1/readings own-reading' "$work/bridge.txt"
check "bridge reads readings of another station's agent" grep -qx 'turnstile/v1/S2/b1/readings b1-reading' "$work/bridge.txt"
check "bridge reads status" grep -qx 'turnstile/v1/S1/a1/status {"state":"online"}' "$work/bridge.txt"
check "bridge reads state" grep -qx 'turnstile/v1/S1/a1/state {"turnstiles":\[\]}' "$work/bridge.txt"
check "bridge's shared subscription (\$share) gets readings" grep -q 'own-reading' "$work/bridge-share.txt"
check "a1 cannot publish into a2's readings" bash -c "! grep -q forged-into-a2 '$work/bridge.txt'"
check "a1 cannot publish a2's status" bash -c "! grep -q forged '$work/bridge.txt'"
check "a1 cannot publish into another station's agent" bash -c "! grep -q forged-into-b1 '$work/bridge.txt'"
check "a1 cannot publish under another station id" bash -c "! grep -q own-id-other-station '$work/bridge.txt'"
check "the bridge cannot publish readings" bash -c "! grep -q bridge-forged '$work/bridge.txt'"
check "bridge writes a1's ack and a1 reads it" grep -qx 'turnstile/v1/S1/a1/ack 42' "$work/a1.txt"
check "a1 cannot acknowledge itself" bash -c "! grep -q 999999 '$work/a1.txt'"
check "a2 cannot write a1's ack" bash -c "! grep -q 888888 '$work/a1.txt'"
check "a2 reads nothing of a1 (ack, readings, status) nor window summaries" test ! -s "$work/a2.txt"
check "dashboard reads status (wss)" grep -qx 'message turnstile/v1/S1/a1/status {"state":"online"}' "$work/dash.txt"
check "dashboard reads state (wss)" grep -qx 'message turnstile/v1/S1/a1/state {"turnstiles":\[\]}' "$work/dash.txt"
check "bridge writes a window summary and the dashboard reads it (wss)" \
  grep -qx 'message turnstile/v1/S2/window {"station_id":"S2"}' "$work/dash.txt"
check "dashboard reads no readings" bash -c "! grep -q '^message .*/readings ' '$work/dash.txt'"
check "dashboard reads no acks" bash -c "! grep -q '^message .*/ack ' '$work/dash.txt'"
check "an agent cannot write a window summary" bash -c "! grep -q a1-forged-window '$work/dash.txt'"
check "bridge writes its status and the dashboard reads it (wss)" \
  grep -qx 'message turnstile/bridge/b1/status {"bridge":"b1"}' "$work/dash.txt"
check "an agent cannot write the bridge's status" bash -c "! grep -q a1-forged-bridge-status '$work/dash.txt'"
check "bridge writes a webhook source's status and the dashboard reads it (wss)" \
  grep -qx 'message turnstile/v1/S1/hook1/status {"source":"webhook"}' "$work/dash.txt"
check "  and its state" grep -qx 'message turnstile/v1/S1/hook1/state {"source":"webhook"}' "$work/dash.txt"
check "bridge cannot write an agent's status" bash -c "! grep -q bridge-as-a1-status '$work/dash.txt' '$work/bridge.txt'"
check "every publish of the dashboard over wss is refused (PUBACK 135)" \
  bash -c "[ \$(grep -c '^puback turnstile/v1/.* 135$' '$work/dash-pub.txt') -eq 4 ]"
check "dashboard cannot write a window summary" bash -c "! grep -q dash-forged-window '$work/dash.txt'"
check "dashboard cannot write status or readings" bash -c "! grep -q dash-forged '$work/bridge.txt'"
check "dashboard cannot write an ack" bash -c "! grep -q 777777 '$work/a1.txt'"

# a retained ack is not served to another agent subscribing later
mosquitto_sub "${tls[@]}" -u a2 -P pw-a2 -t 'turnstile/v1/S1/a1/ack' -t 'turnstile/v1/+/+/ack' \
  -C 1 -W 2 >"$work/a2-late.txt" 2>/dev/null || true
check "a2 does not get a1's retained ack" test ! -s "$work/a2-late.txt"
mosquitto_sub "${tls[@]}" -u a1 -P pw-a1 -t 'turnstile/v1/S1/a1/ack' -C 1 -W 3 >"$work/a1-late.txt" 2>/dev/null || true
check "a1 gets its retained ack on subscribing" grep -qx 42 "$work/a1-late.txt"

# a last will on another agent's status: mosquitto 2.0.11 accepts the CONNECT, but the will
# is subject to the ACL when the broker publishes it (here: after a SIGKILL of the client)
sub "$work/bridge-will.txt" turnstile-bridge pw-bridge 'turnstile/v1/+/+/status'
sleep 1
for who in a2 a1; do   # a1's will on a2's status (refused), then on its own (delivered)
  mosquitto_sub "${tls[@]}" -u a1 -P pw-a1 -q 1 -t turnstile/v1/S1/a1/ack -k 5 \
    --will-topic "turnstile/v1/S1/$who/status" --will-payload "will-on-$who" >/dev/null 2>&1 &
  wpid=$!
  sleep 0.7
  kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true
done
wait "${pids[@]}" 2>/dev/null || true
pids=()
check "a will on another agent's status is not delivered" bash -c "! grep -q will-on-a2 '$work/bridge-will.txt'"
check "a will on its own status is delivered" grep -qx 'turnstile/v1/S1/a1/status will-on-a1' "$work/bridge-will.txt"

# --- credentials -------------------------------------------------------------------------
refused() { # DESCRIPTION MOSQUITTO_PUB ARGS...: the client exits non-zero
  local what=$1 rc=0
  shift
  timeout 10 mosquitto_pub -q 1 -t turnstile/v1/S1/a1/readings -m x "$@" >"$work/refused.err" 2>&1 || rc=$?
  check "$what is refused ($(head -c 80 "$work/refused.err" | tr '\n' ' '))" test "$rc" -ne 0
}
refused "a wrong password" "${tls[@]}" -u a1 -P wrong
refused "another agent's password" "${tls[@]}" -u a1 -P pw-a2
refused "an unknown user" "${tls[@]}" -u nobody -P pw-a1
refused "no username (anonymous)" "${tls[@]}"
refused "no client certificate" -h 127.0.0.1 -p "$port" --cafile "$work/ca.crt" -u a1 -P pw-a1
refused "a broker certificate from an unknown CA" -h 127.0.0.1 -p "$port" --cafile "$work/other-ca.crt" \
  --cert "$work/client.crt" --key "$work/client.key" -u a1 -P pw-a1
refused "plain TCP on the TLS port" -h 127.0.0.1 -p "$port" -u a1 -P pw-a1
check "the good credentials still work" pub a1 pw-a1 turnstile/v1/S1/a1/readings ok
refused "the dashboard's password on the TLS listener" "${tls[@]}" -u turnstile-dashboard -P pw-dash

# --- the WebSocket listeners take only the dashboard's read-only accounts (issue 11) -------
ws_refused() { # DESCRIPTION URL USER PASSWORD: CONNACK refused, no SUBACK, no PUBACK
  local what=$1 rc=0
  shift
  ws "$@" --sub 'turnstile/v1/#' --pub turnstile/v1/S1/a1/ack 555555 --wait 0 >"$work/ws.out" 2>&1 || rc=$?
  check "$what is refused ($(head -c 80 "$work/ws.out" | tr '\n' ' '))" \
    bash -c "[ $rc = 3 ] && grep -q '^connect refused 135 ' '$work/ws.out' && ! grep -q '^suback\|^puback' '$work/ws.out'"
}
for l in "wss $wss" "page $page"; do
  set -- $l
  ws_refused "the bridge's password on the $1 listener" "$2" turnstile-bridge pw-bridge
  ws_refused "an agent's password on the $1 listener" "$2" a1 pw-a1
  ws_refused "a wrong dashboard password on the $1 listener" "$2" turnstile-dashboard wrong
  ws_refused "no username on the $1 listener" "$2" '' ''
done
ws "$wss" kiosk-2 pw-kiosk --sub 'turnstile/v1/+/+/status' --pub turnstile/v1/S1/a1/ack 666666 \
  --wait 1500 >"$work/kiosk.txt" 2>&1 || true
check "another dashboard account (kiosk-2) reads the retained status over wss" \
  grep -qx 'message turnstile/v1/S1/a1/status {"state":"online"}' "$work/kiosk.txt"
check "... and cannot publish (PUBACK 135)" grep -qx 'puback turnstile/v1/S1/a1/ack 135' "$work/kiosk.txt"
ws "$page" turnstile-dashboard pw-dash --sub 'turnstile/v1/+/+/status' --sub '#' \
  --pub turnstile/v1/S1/a1/ack 444444 --wait 1500 >"$work/page.txt" 2>&1 || true
check "the dashboard signs in on the page listener" grep -q '^connect ok$' "$work/page.txt"
check "... and sees nothing there (mount_point)" bash -c "! grep -q '^message' '$work/page.txt'"
check "... and cannot publish there (PUBACK 135)" grep -qx 'puback turnstile/v1/S1/a1/ack 135' "$work/page.txt"
mosquitto_sub "${tls[@]}" -u a1 -P pw-a1 -t 'turnstile/v1/S1/a1/ack' -C 1 -W 3 >"$work/a1-ack.txt" 2>/dev/null || true
check "a1's retained ack is still the bridge's (no forged ack from any WebSocket client)" grep -qx 42 "$work/a1-ack.txt"

# --- adding an agent to a running broker: SIGHUP re-reads both files ---------------------
refused "a3 before it is added" "${tls[@]}" -u a3 -P pw-a3
add S1 a3 pw-a3
mosquitto_passwd -b "$work/dashboard.passwd" kiosk-3 pw-kiosk-3
kill -HUP "$mpid"
sleep 0.5
check "a3 connects after the reload" pub a3 pw-a3 turnstile/v1/S1/a3/readings a3-reading
ws "$wss" kiosk-3 pw-kiosk-3 --wait 0 >"$work/kiosk-3.txt" 2>&1 || true
check "a dashboard account added to its file signs in after the reload" grep -q '^connect ok$' "$work/kiosk-3.txt"
ws_refused "a3's password on the wss listener" "$wss" a3 pw-a3
check "the broker survived everything" kill -0 "$mpid"
finish
