#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent under a (pretend) systemd: it sends READY=1 once polling,
# STATUS= and WATCHDOG=1 at least every half WatchdogSec, STOPPING=1 on
# SIGTERM. The notify socket is a datagram socket the test owns.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-notify.XXXXXX)
agent_pid= socat_pid=
cleanup() {
  for p in $agent_pid $socat_pid ${SIM_PID:-}; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"

sim_start --generate --turnstiles 2
{
  printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n'
  cat "$work/devices.conf"
} >"$work/agent.conf"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(4096) + b"\n")
' "$work/notify" "$work/notes.txt" &
socat_pid=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$work/notify WATCHDOG_USEC=1000000 \
  "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" --quiet 2>"$work/agent.err" &
agent_pid=$!
sleep 3.2
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
sleep 0.2
check "READY=1 sent once" test "$(grep -c '^READY=1' "$work/notes.txt")" -eq 1
check "WATCHDOG=1 at least every 0.5 s (>= 5 in 3.2 s)" test "$(grep -c '^WATCHDOG=1' "$work/notes.txt")" -ge 5
check "STATUS= tells what it does" grep -q '^STATUS=.*readings' "$work/notes.txt"
check "STOPPING=1 on SIGTERM" grep -q '^STOPPING=1' "$work/notes.txt"
finish
