#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The live dashboard (bridge/dashboard/, docs/dashboard.md) in a real browser: Debian's
# chromium, headless, driven by playwright-core (tests/integration/test_dashboard.js).
#
# mosquitto serves the page itself from two websockets listeners with http_dir (built by
# scripts/dashboard-build): one anonymous (as the demo runs it), one that wants a password and
# applies the production dashboard ACL (config/mosquitto/turnstile-dashboard.acl) with the
# read-only turnstile-dashboard account. A turnstile-sim, a turnstile-agent (end-to-end acks), Kafka
# and turnstile-bridge (2 s windows) feed it. The browser loads the page, sees the agent
# online, counts appear and then change, the device and backlog shown, the window chart fill
# and grow; the password listener asks for a login, refuses a wrong password, takes the form
# and a kiosk URL (?username=&password=); a webhook source (hookD of station ST-hook, readings
# POSTed to the bridge) is shown as a controller, online; SIGTERM to the agent marks it offline (its retained
# shutdown status) on both pages. Then the production broker config (config/mosquitto/,
# rewritten to loopback ports and test certificates as test_broker_acl.sh does): the page from
# its plain-HTTP page listener, MQTT over its TLS WebSocket listener, signed in as the
# dashboard account, shows what an agent and the bridge published there; the page listener's
# own MQTT sees nothing (mount_point); no password goes unencrypted to a remote host. Screenshots: $TS_ARTIFACT_DIR (default: the build
# directory's test-artifacts/), dashboard.png, dashboard-login.png, dashboard-offline.png.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-dashboard.XXXXXX)
artifacts=${TS_ARTIFACT_DIR:-$(cd "$bin/.." && pwd)/test-artifacts}
chromium=${DASH_CHROMIUM:-/usr/bin/chromium}
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/ports.sh"
. "$src/tests/integration/broker.sh"   # for its test certificates (_broker_certs)
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
mpid= ppid_= agent_pid= SIM_PID=
cleanup() {
  for p in $agent_pid $SIM_PID; do kill -9 "$p" 2>/dev/null || true; done
  for n in "${!BRIDGE_PID[@]}"; do bridge_kill "$n"; done
  for p in $mpid $ppid_; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  kafka_cleanup 2>/dev/null || true
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
t0=$SECONDS

# --- the page and the browser ---------------------------------------------------------------
www=$("$src/scripts/dashboard-build")
modules=$(dirname "$www")/node_modules
[ -x "$chromium" ] || { echo "FAIL: $chromium missing (scripts/deps installs Debian's chromium)"; exit 1; }
check "the page is built ($www)" test -s "$www/app.js" -a -s "$www/index.html" -a -s "$www/style.css"
mkdir -p "$artifacts"

# --- mosquitto: MQTT for the agent and the bridge; the page on two websockets listeners ------
user=turnstile-dashboard
password='kiosk pass&word=+%'   # the URL must carry it intact
mosquitto_passwd -c -b "$work/passwd" "$user" "$password" >/dev/null
cp "$src/config/mosquitto/turnstile-dashboard.acl" "$work/"
start_broker() {
  BROKER_PORT=$(free_port) ws_anon=$(free_port) ws_auth=$(free_port)
  cat >"$work/mosquitto.conf" <<CONF
user root
per_listener_settings true
persistence false
log_dest file $work/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
max_queued_messages 100000
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
listener $ws_anon 127.0.0.1
protocol websockets
http_dir $www
allow_anonymous true
listener $ws_auth 127.0.0.1
protocol websockets
http_dir $www
allow_anonymous false
password_file $work/passwd
acl_file $work/turnstile-dashboard.acl
CONF
  /usr/sbin/mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.out" 2>&1 &
  mpid=$!
  for _ in $(seq 500); do
    port_accepts "$BROKER_PORT" && port_accepts "$ws_anon" && port_accepts "$ws_auth" && return 0
    kill -0 "$mpid" 2>/dev/null || break
    sleep 0.01
  done
  kill "$mpid" 2>/dev/null || true
  wait "$mpid" 2>/dev/null || true
  mpid=
  return 1
}
for attempt in 1 2 3; do start_broker && break; done
[ -n "$mpid" ] || { echo "FAIL: mosquitto did not start"; tail "$work/mosquitto.out" "$work/mosquitto.log"; exit 1; }
check "mosquitto serves the page on $ws_anon (anonymous) and $ws_auth (production ACL)" kill -0 "$mpid"

# --- the production config: agent p1 (station S1), the bridge and the dashboard accounts ----
prod=$work/prod
mkdir "$prod"
(BROKER_DIR=$prod && _broker_certs)   # ca.crt, server.crt/key (127.0.0.1), client.crt/key
cp "$src/config/mosquitto/turnstile.acl" "$src/config/mosquitto/turnstile-dashboard.acl" "$prod/"
echo pw-p1 | "$src/scripts/mosquitto-add-agent" --acl "$prod/turnstile.acl" --passwd "$prod/passwd" \
  --dashboard-passwd "$prod/dashboard.passwd" --password-file - S1 p1 2>/dev/null
mosquitto_passwd -b "$prod/passwd" turnstile-bridge pw-bridge
mosquitto_passwd -c -b "$prod/dashboard.passwd" "$user" "$password"   # the WebSocket listeners' own file
start_prod() {
  pport=$(free_port) pwss=$(free_port) ppage=$(free_port)
  sed -e "s|^listener 8883$|listener $pport 127.0.0.1|" \
      -e "s|^listener 8443$|listener $pwss 127.0.0.1|" \
      -e "s|^listener 8080$|listener $ppage 127.0.0.1|" \
      -e "s|^http_dir /usr/share/turnstile/dashboard$|http_dir $www|" \
      -e "s|/etc/mosquitto/turnstile.passwd|$prod/passwd|" \
      -e "s|/etc/mosquitto/turnstile.acl|$prod/turnstile.acl|" \
      -e "s|/etc/mosquitto/turnstile-dashboard.passwd|$prod/dashboard.passwd|" \
      -e "s|/etc/mosquitto/turnstile-dashboard.acl|$prod/turnstile-dashboard.acl|" \
      -e "s|/etc/mosquitto/ca/turnstile-ca.crt|$prod/ca.crt|" \
      -e "s|/etc/mosquitto/certs/broker.crt|$prod/server.crt|" \
      -e "s|/etc/mosquitto/certs/broker.key|$prod/server.key|" \
      "$src/config/mosquitto/turnstile.conf" >"$prod/mosquitto.conf"
  printf 'user root\npersistence_location %s/\nlog_dest file %s/mosquitto.log\n' "$prod" "$prod" \
    >>"$prod/mosquitto.conf"
  /usr/sbin/mosquitto -c "$prod/mosquitto.conf" >>"$prod/mosquitto.out" 2>&1 &
  ppid_=$!
  for _ in $(seq 500); do
    port_accepts "$pport" && port_accepts "$pwss" && port_accepts "$ppage" && return 0
    kill -0 "$ppid_" 2>/dev/null || break
    sleep 0.01
  done
  kill "$ppid_" 2>/dev/null || true
  wait "$ppid_" 2>/dev/null || true
  ppid_=
  return 1
}
for attempt in 1 2 3; do start_prod && break; done
[ -n "$ppid_" ] || { echo "FAIL: the production config did not start"; tail "$prod/mosquitto.out" "$prod/mosquitto.log"; exit 1; }
check "the production config starts (page on $ppage, wss on $pwss)" \
  bash -c "! grep -q '^[^#]*/etc/mosquitto' '$prod/mosquitto.conf'"
ppub() { # USER PASSWORD TOPIC MESSAGE: retained, over the agents' TLS listener
  mosquitto_pub -h 127.0.0.1 -p "$pport" --cafile "$prod/ca.crt" --cert "$prod/client.crt" \
    --key "$prod/client.key" -u "$1" -P "$2" -q 1 -r -t "$3" -m "$4"
}
now_ms=$(($(date +%s) * 1000))
ppub p1 pw-p1 turnstile/v1/S1/p1/status \
  '{"state":"online","agent":"p1","station":"S1","version":"test","started":"2026-01-01T00:00:00Z","backlog":3}'
# T2: read in the wrong word order, the agent's anomaly warning (docs/mqtt.md)
ppub p1 pw-p1 turnstile/v1/S1/p1/state "{\"agent\":\"p1\",\"station\":\"S1\",\"clock\":\"synced\",\"backlog\":3,\
\"warnings\":1,\"turnstiles\":[{\"name\":\"T1\",\"ca\":\"A002\",\"unit\":\"R051\",\"scp\":\"02-00-00\",\"station\":\"59 ST\",\
\"entries\":1000,\"exits\":500,\"entries_counted\":12,\"exits_counted\":8,\"time_ms\":$now_ms,\
\"anomaly_s\":0,\"anomaly\":\"\",\"warning\":\"\"},{\"name\":\"T2\",\"ca\":\"A002\",\"unit\":\"R051\",\
\"scp\":\"02-00-01\",\"station\":\"59 ST\",\"entries\":65536000,\"exits\":0,\"entries_counted\":0,\
\"exits_counted\":0,\"time_ms\":$now_ms,\"anomaly_s\":930,\"anomaly\":\"glitch\",\"warning\":\"every reading \
of entries that moved for 930 s was an anomaly (glitch) and counted nobody: a wrong word order or width is the usual \
cause (turnstile-agent --probe)\"}],\
\"devices\":[{\"name\":\"gate\",\"kind\":\"modbus-tcp\",\"link\":\"backoff\",\"polls\":9,\"errors\":2,\
\"timeouts\":2,\"exceptions\":0,\"crc_errors\":0,\"short_responses\":0,\"connect_errors\":1,\
\"last_error\":\"timed out\",\"rtt_us\":0}]}"
ppub turnstile-bridge pw-bridge turnstile/v1/S1/window "{\"station_id\":\"S1\",\"window_start_ms\":$((now_ms - 300000)),\
\"window_end_ms\":$now_ms,\"date\":\"11/26/2026\",\"time\":\"01:05:00\",\"turnstiles\":[{\"ca\":\"A002\",\
\"unit\":\"R051\",\"scp\":\"02-00-00\",\"station\":\"59 ST\",\"linename\":\"NQR456W\",\"division\":\"BMT\",\
\"desc\":\"REGULAR\",\"entries\":12,\"exits\":8}]}"

# --- the simulator and the agent (it publishes at once; its backlog waits for the bridge) ---
if [ -r "${TS_MTA_FILE:-}" ]; then
  sim_start --mta "$TS_MTA_FILE" --station "59 ST" --turnstiles 6 --speed 1800 \
    --start "2023-06-01 07:00:00" --log-level warning
else
  sim_start --generate --turnstiles 4 --speed 600
fi
agent_conf "$work/a1.conf" a1 "$work/devices.conf"
"$bin/turnstile-agent" -c "$work/a1.conf" --quiet >>"$work/a1.out" 2>>"$work/a1.err" &
agent_pid=$!

# --- Kafka and the bridge: window summaries on turnstile/v1/ST-a1/window -------------------
kafka_start
kafka_create_topic turnstile.readings 2
kafka_create_topic turnstile.deadletter 1
# a webhook source, station ST-hook (its own: the agent's station must go down when the agent
# stops, below): the bridge publishes its status and state, and the page shows it as a
# controller (docs/bridge.md, "A webhook source as a controller")
export TS_TEST_TOKD=tokD-dashboard-0123456789
wh_http=127.0.0.1:$(free_port)
bridge_conf "$work/bridge.conf" dash "$(printf '[http]\nlisten = %s\n[webhook]\n[webhook_source hookD]\nstation = ST-hook\ntoken_env = TS_TEST_TOKD' "$wh_http")"
bridge_start b1 "$work/bridge.conf"
/usr/bin/python3 "$src/tests/integration/webhook.py" gen hookD 1 3 >"$work/hookD.csv"
code=
for _ in $(seq 60); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $TS_TEST_TOKD" \
    -H 'Content-Type: text/csv' --data-binary @"$work/hookD.csv" "http://$wh_http/v1/readings" || true)
  [ "$code" = 200 ] && break
  sleep 1
done
check "the webhook source hookD POSTed 3 readings (200)" test "$code" = 200
echo "stack up after $((SECONDS - t0)) s"

# --- the browser ---------------------------------------------------------------------------
rc=0
DASH_ANON=http://127.0.0.1:$ws_anon/ DASH_AUTH=http://127.0.0.1:$ws_auth/ \
DASH_USER=$user DASH_PASSWORD=$password DASH_AGENT=a1 DASH_STATION=ST-a1 DASH_WEBHOOK=hookD \
DASH_AGENT_PID=$agent_pid DASH_ARTIFACTS=$artifacts DASH_CHROMIUM=$chromium \
DASH_PROD_PAGE=http://127.0.0.1:$ppage/ DASH_PROD_WSS=wss://127.0.0.1:$pwss/mqtt \
NODE_PATH=$modules nice node "$src/tests/integration/test_dashboard.js" >"$work/browser.out" 2>&1 || rc=$?
cat "$work/browser.out"
passes=$((passes + $(grep -c '^ok: ' "$work/browser.out" || true)))
fails=$((fails + $(grep -c '^FAIL' "$work/browser.out" || true)))
check "the browser test exits 0" test "$rc" -eq 0

# the agent got its SIGTERM from the browser test, after the pages saw it online
arc=0
wait "$agent_pid" || arc=$?
agent_pid=
check "the agent stopped cleanly on SIGTERM (exit $arc)" test "$arc" -eq 0
for f in dashboard dashboard-login dashboard-offline dashboard-warning; do
  check "screenshot $artifacts/$f.png" bash -c "head -c 8 '$artifacts/$f.png' 2>/dev/null | grep -q PNG"
done
if [ "$fails" -ne 0 ]; then
  echo "--- mosquitto log (tail)"; tail -n 30 "$work/mosquitto.log" || true
  echo "--- production mosquitto log (tail)"; tail -n 15 "$prod/mosquitto.log" || true
  echo "--- bridge log (tail)"; tail -n 30 "$work/b1.err" || true
  echo "--- agent log (tail)"; tail -n 20 "$work/a1.err" || true
fi
echo "dashboard screenshots: $artifacts/dashboard.png (live), $artifacts/dashboard-offline.png, $artifacts/dashboard-login.png, $artifacts/dashboard-warning.png"
echo "took $((SECONDS - t0)) s"
finish
