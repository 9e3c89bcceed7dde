#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's store under pressure, with a real broker:
#  1. retention full: the broker is unreachable, the store passes max_rows, the
#     oldest unpublished readings are merged per turnstile; when the broker
#     returns, every person still arrives exactly once (totals conserved, the
#     sequence numbers covered without gap through MERGED_FROM);
#  2. disk full: the store's filesystem (a small tmpfs) fills up; the agent
#     keeps polling into memory, reports it, and writes everything once space
#     returns. No crash, no lost reading.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-retention.XXXXXX)
agent_pid= sub_pid= acker_pid= mounted=
cleanup() {
  for p in $agent_pid $sub_pid $acker_pid ${SIM_PID:-}; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  [ -n "$mounted" ] && umount "$work/disk" 2>/dev/null || true
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

topic=turnstile/v1/S1/a1
broker_start
sim_start --generate --turnstiles 16 --speed 300 --fault pause

write_config() { # STORE_PATH MAX_ROWS
  {
    printf '[agent]\nid = a1\nstation_id = S1\npoll_interval_ms = 100\nclock = trust\n'
    printf 'max_rate_per_min = 100000\n'
    printf '[store]\npath = %s\nmax_rows = %s\nmerge_batch = 200\nsynchronous = normal\n' "$1" "$2"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 300\n' "$BROKER_PORT"
    printf 'max_inflight = 100\nack_timeout_ms = 3000\n'
    cat "$work/devices.conf"
  } >"$work/agent.conf"
}
start_subscriber() { # OUTFILE
  # the persistent session and its subscription exist before this returns (-E exits on
  # the SUBACK): on a loaded machine the background client may connect after the
  # agent's first readings, which the session then keeps for it
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i "sub-$1" -t "$topic/readings" -E \
    2>>"$work/sub.err"
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i "sub-$1" -t "$topic/readings" \
    >>"$work/$1" 2>>"$work/sub.err" &
  sub_pid=$!
}
start_acker() { # FILE BASE: acknowledges, as the bridge would, the highest N such that
  # every reading BASE+1..N was received (BASE: what the bridge acknowledged before)
  (
    while :; do
      n=$(awk -F, -v n="$2" 'NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2] + 0; k++) have[k] = 1 }
                   END { while ((n + 1) in have) n++; print n }' "$work/$1")
      [ "$n" -gt 0 ] && mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r -t "$topic/ack" -m "$n" 2>/dev/null || true
      sleep 0.3
    done
  ) &
  acker_pid=$!
}
registers() { # prints "SCP ENTRIES EXITS" for the 16 turnstiles
  for k in $(seq 0 15); do
    read -r e x < <(sim_get 1 "$k")
    printf '00-00-%02d %s %s\n' "$k" "$e" "$x"
  done
}
settle_and_account() { # FILE MIN_MAX_SEQ BASE
  for _ in $(seq 150); do
    sleep 0.2
    awk -v base="$3" -f "$src/tests/integration/account.awk" "$work/$1" >"$work/account"
    [ "$(awk '$1 == "gaps" {print $2}' "$work/account")" -eq 0 ] &&
      [ "$(awk '$1 == "max_seq" {print $2}' "$work/account")" -ge "$2" ] && break
  done
  awk -v base="$3" -f "$src/tests/integration/account.awk" "$work/$1" >"$work/account"
}
get() { awk -v k="$1" '$1 == k {print $2}' "$work/account"; }
totals_conserved() { # label: every turnstile's sums equal last - first register values
  local bad=0
  while read -r scp e0 x0; do
    read -r e1 x1 < <(awk -v s="$scp" '$1 == s {print $2, $3}' "$work/regs.end")
    read -r _ _ e x _ < <(grep "^turnstile $scp " "$work/account" || echo "t $scp -1 -1")
    if ! [[ $e =~ ^[0-9]+$ && $x =~ ^[0-9]+$ ]] || [ "$e" -ne $((e1 - e0)) ] || [ "$x" -ne $((x1 - x0)) ]; then
      echo "  $scp: got $e/$x people, registers say $((e1 - e0))/$((x1 - x0))"; bad=1
    fi
  done <"$work/regs.start"
  return $bad
}

# --- 1. retention full while the broker is away ---------------------------------
start_subscriber received1.csv
sleep 0.5
broker_stop                      # the subscriber's session is kept
registers >"$work/regs.start"
write_config "$work/agent.db" 1000
"$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
sleep 0.5
sim resume
sleep 12                         # 160 readings a second: past max_rows several times
sim pause
registers >"$work/regs.end"
sleep 0.5
broker_restart
start_acker received1.csv 0
max=$(sqlite3 "$work/agent.db" 'select max(seq) from readings' 2>/dev/null || echo 0)
settle_and_account received1.csv "${max:-0}" 0
acked1=$(awk '$1 == "max_seq" {print $2}' "$work/account")
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=
kill "$acker_pid" "$sub_pid" 2>/dev/null || true; wait "$acker_pid" "$sub_pid" 2>/dev/null || true
# The acker went on until killed and the agent polled on until stopped, while the account
# above was read at one moment: the ack the broker retains (behind it or past it) is what a
# new store must number past
retained_ack=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/ack" -C 1 -W 3 || true)
echo "retained ack: ${retained_ack:-none}, accounted: $acked1"
check "retention: the bridge's ack is retained" grep -Eqx '[0-9]+' <<<"$retained_ack"
[[ $retained_ack =~ ^[0-9]+$ ]] && acked1=$retained_ack
cat "$work/account" | head -9
check "retention: readings were merged" test "$(get merged)" -gt 0
check "retention: the agent reported the merges" grep -q "merge" "$work/agent.err"
status_json=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/status" -C 1 -W 3 || true)
check "retention: the status counts the merges" grep -Eq '"merges":[1-9]' <<<"$status_json"
check "retention: no gap in the sequence numbers" test "$(get gaps)" -eq 0
check "retention: no number covered twice" test "$(get overlaps)" -eq 0
check "retention: duplicates identical" test "$(get differing_duplicates)" -eq 0
check "retention: totals conserved for every turnstile" totals_conserved

# --- 2. disk full ------------------------------------------------------------------
mkdir -p "$work/disk"
if mount -t tmpfs -o size=8m tmpfs "$work/disk" 2>/dev/null; then
  mounted=1
  pkill -9 -f "mosquitto_sub.*sub-received2" 2>/dev/null || true
  start_subscriber received2.csv
  # A new store for the same agent id (a replaced SD card): the bridge has
  # acknowledged up to acked1 already, so the new store must number past it.
  start_acker received2.csv "$acked1"
  registers >"$work/regs.start"
  write_config "$work/disk/agent.db" 2000000
  : >"$work/agent.err"
  "$TS_BIN_DIR/turnstile-agent" -c "$work/agent.conf" >"$work/agent.out" 2>"$work/agent.err" &
  agent_pid=$!
  sim resume
  sleep 2
  dd if=/dev/zero of="$work/disk/filler" bs=4k 2>/dev/null || true   # until ENOSPC
  sleep 4
  check "disk full: the agent is still running" kill -0 "$agent_pid"
  check "disk full: reported" grep -Eqi "full|no space|I/O error" "$work/agent.err"
  status_json=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/status" -C 1 -W 3 || true)
  check "disk full: the retained status says so" grep -Eq '"store_error":"(full|I/O error)"' <<<"$status_json"
  rm -f "$work/disk/filler"
  for _ in $(seq 50); do grep -q "writing again" "$work/agent.err" && break; sleep 0.2; done
  check "disk full: writing resumed when space returned" grep -q "writing again" "$work/agent.err"
  sleep 2
  sim pause
  registers >"$work/regs.end"
  sleep 1
  kill -TERM "$agent_pid"; wait "$agent_pid"; status=$?; agent_pid=
  check "disk full: clean exit afterwards" test "$status" -eq 0
  max=$(sqlite3 "$work/disk/agent.db" 'select next_seq - 1 from meta' 2>/dev/null || echo 0)
  settle_and_account received2.csv "${max:-0}" "$acked1"
  check "disk full: the new store numbered past what the bridge had acknowledged" \
    test "$(grep -o 'a1:[0-9]*' "$work/received2.csv" | head -1 | cut -d: -f2)" -eq $((acked1 + 1))
  head -9 "$work/account"
  check "disk full: no gap in the sequence numbers" test "$(get gaps)" -eq 0
  check "disk full: totals conserved for every turnstile" totals_conserved
  check "disk full: the agent logged no sanitizer error" bash -c "! grep -q Sanitizer '$work/agent.err'"
else
  echo "disk full: cannot mount a tmpfs here (not root?): part 2 not run"
fi
if [ "$fails" -gt 0 ]; then tail -40 "$work/agent.err"; fi
finish
