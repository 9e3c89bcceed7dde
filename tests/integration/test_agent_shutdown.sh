#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's retained status on a real mosquitto, as README and docs/mqtt.md promise: online
# while it runs; {"state":"offline","reason":"shutdown",...} with the agent's whole body after a
# clean stop (SIGTERM; issue 15: the old agent's clean stop said offline without the reason);
# the last will {"state":"offline","reason":"lost"} after a SIGKILL. And --log-level, spelt
# and valued as the simulator's (issue 15): debug shows debug lines, error hides info and
# warnings, the option overrides the config's log_level, a bad value is a usage error (2).
set -euo pipefail
src=${TS_SRC_DIR:?} bin=${TS_BIN_DIR:?}/turnstile-agent
work=$(mktemp -d /tmp/ts-status.XXXXXX)
agent_pid=
trap 'test_cleanup $agent_pid' EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

broker_start
sim_start --generate --turnstiles 2 --speed 60
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n'
  printf '[store]\npath = %s/agent.db\n' "$work"
  printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nack = puback\n' "$BROKER_PORT"
  cat "$work/devices.conf"
} >"$work/agent.conf"
topic=turnstile/v1/S1/a1/status
retained() { timeout 10 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic" -C 1 -W 5 2>/dev/null || true; }
wait_for() { # PATTERN: until the retained status matches it (10 s)
  for _ in $(seq 50); do retained | grep -q "$1" && return 0; sleep 0.2; done
  return 1
}

# --- the clean stop -------------------------------------------------------------------------
"$bin" -c "$work/agent.conf" --quiet 2>"$work/agent1.log" &
agent_pid=$!
check "retained status online while it runs" wait_for '"state":"online"'
kill -TERM "$agent_pid"
rc=0; wait "$agent_pid" || rc=$?
agent_pid=
check "clean stop exits 0" test "$rc" = 0
status=$(retained)
echo "after SIGTERM: $status"
check "offline after the clean stop" grep -q '"state":"offline"' <<<"$status"
check "reason shutdown after the clean stop" grep -q '"reason":"shutdown"' <<<"$status"
check "the agent's whole body (agent, backlog) with it" \
  grep -q '"agent":"a1",.*"backlog":[0-9]' <<<"$status"
check "valid JSON" python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["reason"] == "shutdown"' "$status"

# --- a crash: the broker publishes the last will ----------------------------------------------
"$bin" -c "$work/agent.conf" --quiet 2>"$work/agent2.log" &
agent_pid=$!
check "online again" wait_for '"state":"online"'
kill -KILL "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=
check "reason lost after a SIGKILL (the will)" wait_for '"state":"offline".*"reason":"lost"'

# --- --log-level ------------------------------------------------------------------------------
noq=$work/level.conf   # log_level = warning; the MQTT client logs its packets at debug
sed 's/^\[agent\]$/[agent]\nlog_level = warning/' "$work/agent.conf" >"$noq"
set +e
run() { # ARGS...: a 1 s run, its log in $work/log
  timeout 30 "$bin" -c "$noq" --quiet --duration 1 "$@" 2>"$work/log" >/dev/null
}
run --log-level debug; check "--log-level debug: exit 0" test $? = 0
check "--log-level debug: debug lines" grep -q ' debug: ' "$work/log"
check "--log-level debug: info lines" grep -q ' info: ' "$work/log"
run -v; check "-v still means debug" grep -q ' debug: ' "$work/log"
run --log-level info; check "--log-level info: exit 0" test $? = 0
check "--log-level info overrides the config's warning: info lines" grep -q ' info: ' "$work/log"
check "--log-level info: no debug line" bash -c "! grep -q ' debug: ' '$work/log'"
run; check "without --log-level: the config's warning, no info line" bash -c "! grep -q ' info: ' '$work/log'"
run --log-level error; check "--log-level error: nothing below error" bash -c "! grep -q ' \(info\|notice\|warning\|debug\): ' '$work/log'"
run --log-level debug --log-level notice
check "the last --log-level wins" bash -c "! grep -q ' \(info\|debug\): ' '$work/log'"
timeout 10 "$bin" -c "$noq" --log-level verbose >/dev/null 2>"$work/err"
check "--log-level verbose: usage error (2)" test $? = 2
check "--log-level verbose: named" grep -q "^turnstile-agent: --log-level: 'verbose' is not one of error, warning, notice, info, debug$" "$work/err"
set -e
"$bin" --help >"$work/help"
check "--help lists --log-level LEVEL" grep -q -- '--log-level LEVEL' "$work/help"
check "--help gives the simulator's values" grep -q 'error, warning, notice, info, debug' "$work/help"
finish
