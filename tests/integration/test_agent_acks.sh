#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Acknowledgements the agent must not believe (issue 11, the first two rows),
# turnstile-agent with its store and a real mosquitto; the test plays the
# bridge (it acknowledges the contiguous prefix it received) and the attacker.
#  1. A running agent gets an ack 100 above what it has published, retained,
#     so that it comes again on a reconnect. It used to move its cursor past
#     it and delete readings it never published. Now: nothing deleted, every
#     reading still published, one error line, counted in the retained status;
#     the bridge's real ack that comes later is taken and the backlog drains.
#  2. A new agent (a new store) finds a retained ack of 2^64 - 1: it used to
#     publish nothing, forever, silently (acked + 1 wrapped). Then 2^53, just
#     above the highest sequence number an agent uses. Now: an error, the
#     status says so, readings are kept and nothing is published; once the
#     retained ack is a sane value the agent renumbers past it and publishes
#     everything.
#  3. A new agent finds 2^53 (it used to renumber past it, numbers a
#     JavaScript dashboard cannot show): refused the same way; the operator
#     clears the retained ack and the agent publishes its own numbers.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-acks.XXXXXX)
agent_pid= sub_pid= acker_pid=
trap 'test_cleanup $agent_pid $sub_pid $acker_pid' EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"

broker_start
sim_start --generate --turnstiles 2 --speed 600 --start '2023-05-30 08:00:00'   # the morning rush

write_config() { # AGENT_ID
  {
    printf '[agent]\nid = %s\nstation_id = S1\npoll_interval_ms = 200\nclock = trust\n' "$1"
    printf 'max_rate_per_min = 100000\nstate_interval_ms = 300\n'
    printf '[store]\npath = %s/%s.db\nsynchronous = normal\n' "$work" "$1"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n' "$BROKER_PORT"
    printf 'max_inflight = 20\nack_timeout_ms = 60000\n'
    cat "$work/devices.conf"
  } >"$work/$1.conf"
}
start_agent() { # AGENT_ID
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/$1.conf" >>"$work/$1.out" 2>>"$work/$1.err" &
  agent_pid=$!
}
start_subscriber() { # AGENT_ID
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i "sub-$1" -t "turnstile/v1/S1/$1/readings" \
    >>"$work/$1.csv" 2>>"$work/sub.err" &
  sub_pid=$!
}
start_acker() { # AGENT_ID BASE: the bridge's part, the contiguous prefix received above BASE
  (
    while :; do
      n=$(awk -F, -v n="$2" 'NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2] + 0; k++) have[k] = 1 }
                   END { while ((n + 1) in have) n++; print n }' "$work/$1.csv")
      [ "$n" -gt "$2" ] && mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r \
        -t "turnstile/v1/S1/$1/ack" -m "$n" 2>/dev/null || true
      sleep 0.3
    done
  ) &
  acker_pid=$!
}
publish_ack() { # AGENT_ID VALUE (retained)
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r -t "turnstile/v1/S1/$1/ack" -m "$2"
}
status_of() { # AGENT_ID: the retained status
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/S1/$1/status" -C 1 -W 3 || true
}
db() { sqlite3 "$work/$1.db" "$2" 2>/dev/null || echo -1; }
max_received() { awk -F, 'NF == 18 { split($12, id, ":"); if (id[2] + 0 > m) m = id[2] + 0 } END { print m + 0 }' "$work/$1.csv"; }
have_all() { # AGENT_ID FROM TO: every number FROM..TO was received
  awk -F, -v a="$2" -v b="$3" 'NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2] + 0; k++) have[k] = 1 }
    END { for (k = a; k <= b; k++) if (!(k in have)) { print "missing " k; exit 1 } }' "$work/$1.csv"
}
wait_for() { # TENTHS 'COMMAND': until COMMAND (evaluated each time) succeeds
  local n=$1; shift
  for _ in $(seq "$n"); do eval "$1" && return 0; sleep 0.1; done
  eval "$1"
}
registers() { for k in 0 1; do read -r e x < <(sim_get 1 "$k"); printf '00-00-0%s %s %s\n' "$k" "$e" "$x"; done; }
stop_and_account() { # AGENT_ID BASE
  sim pause
  registers >"$work/regs.end"
  sleep 1.5
  kill -TERM "$agent_pid"; wait "$agent_pid"; status=$?; agent_pid=
  check "$1: clean exit" test "$status" -eq 0
  local last
  last=$(db "$1" 'select next_seq - 1 from meta')
  if [ $((last - $2)) -gt 100000 ] || [ "$(max_received "$1")" -gt $((last + 100000)) ]; then
    check "$1: sequence numbers in a sane range (last stored $last)" false
    return
  fi
  wait_for 150 "have_all $1 $(($2 + 1)) $last >/dev/null" || true
  awk -v base="$2" -f "$src/tests/integration/account.awk" "$work/$1.csv" >"$work/account"
  head -8 "$work/account"
  get() { awk -v k="$1" '$1 == k {print $2}' "$work/account"; }
  check "$1: every reading up to the last stored ($last) arrived" test "$(get max_seq)" -eq "$last"
  check "$1: no gap in the sequence numbers" test "$(get gaps)" -eq 0
  check "$1: no number covered twice" test "$(get overlaps)" -eq 0
  check "$1: duplicates are identical" test "$(get differing_duplicates)" -eq 0
  for k in 0 1; do
    read -r _ _ e x fe fx le lx < <(grep "^turnstile 00-00-0$k " "$work/account" || echo "t - -1 -1 0 0 - -")
    read -r _ re rx < <(grep "^00-00-0$k " "$work/regs.end")
    check "$1: 00-00-0$k: the last reading is the registers at the end" test "$le $lx" = "$re $rx"
    check "$1: 00-00-0$k: people add up ($e = $le - $fe)" test "$e" -eq $((le - fe)) -a "$x" -eq $((lx - fx))
  done
  check "$1: no sanitizer report" bash -c "! grep -q Sanitizer '$work/$1.err'"
}

# --- 1. an ack above what a running agent has published ------------------------
write_config a1
start_subscriber a1
start_agent a1
wait_for 100 'test "$(max_received a1)" -ge 20'
h=$(max_received a1)
forged=$((h + 100))
echo "published up to $h: forged ack $forged"
publish_ack a1 "$forged"
# a reconnect: the retained forged ack comes again
sleep 0.5
broker_stop
broker_restart
wait_for 100 'status_of a1 | grep -q "\"acks_refused\":[2-9]"' || true
st=$(status_of a1)
echo "status: $st"
check "a1: the retained status counts the refusals (first and after the reconnect)" \
  grep -q '"acks_refused":[2-9]' <<<"$st"
check "a1: the status names the refused ack" grep -q "\"ack_refused\":\"$forged\"" <<<"$st"
check "a1: the status says what is wrong" \
  grep -q '"ack_error":"acknowledgement above what was published: ignored"' <<<"$st"
# the agent goes on past the forged number (10 readings a second)
wait_for 300 "test \$(db a1 'select next_seq from meta') -gt $((forged + 10))" || true
wait_for 50 "have_all a1 1 $((forged + 5)) >/dev/null" || true
check "a1: nothing deleted: the store still holds 1..$forged" \
  test "$(db a1 "select count(*) from readings where seq <= $forged")" -eq "$forged"
check "a1: the cursor did not jump: every reading 1..$((forged + 5)) was published" have_all a1 1 $((forged + 5))
check "a1: the refusal is logged once, at error level" \
  test "$(grep -c 'error: mqtt: acknowledgement [0-9]* on .* above anything this agent may have published' "$work/a1.err")" -eq 1

# the bridge's real ack comes later: taken, the backlog drains
start_acker a1 0
wait_for 200 "test \$(db a1 'select count(*) from readings') -lt 40" || true
check "a1: the bridge's ack is taken: the backlog drained" test "$(db a1 'select count(*) from readings')" -lt 40
wait_for 50 'status_of a1 | grep -q "\"ack_error\":\"\""' || true
check "a1: the status is clear again" grep -q '"ack_error":""' <<<"$(status_of a1)"
stop_and_account a1 0
kill "$acker_pid" "$sub_pid" 2>/dev/null || true; wait "$acker_pid" "$sub_pid" 2>/dev/null || true
acker_pid= sub_pid=

# --- 2. a new store finds an absurd retained ack -----------------------------------
sim resume
publish_ack a2 18446744073709551615
write_config a2
start_subscriber a2
start_agent a2
wait_for 50 'status_of a2 | grep -q implausible' || true
st=$(status_of a2)
echo "status: $st"
check "a2: 2^64-1: the status says so" grep -q '"ack_error":"implausible acknowledgement: not renumbering"' <<<"$st"
check "a2: 2^64-1: the status names it" grep -q '"ack_refused":"18446744073709551615"' <<<"$st"
check "a2: 2^64-1: an error line" grep -q 'error: the acknowledgement on turnstile/v1/S1/a2/ack is 18446744073709551615' "$work/a2.err"
rows=$(db a2 'select count(*) from readings')
publish_ack a2 9007199254740992
wait_for 50 'status_of a2 | grep -q 9007199254740992' || true
st=$(status_of a2)
check "a2: 2^53: the status names it" grep -q '"ack_refused":"9007199254740992"' <<<"$st"
check "a2: 2^53: still refused" grep -q '"ack_error":"implausible acknowledgement: not renumbering"' <<<"$st"
check "a2: 2^53: an error line" grep -q 'error: the acknowledgement on turnstile/v1/S1/a2/ack is 9007199254740992' "$work/a2.err"
check "a2: the readings are kept meanwhile ($rows, then more)" test "$(db a2 'select count(*) from readings')" -gt "$rows" -a "$rows" -gt 0
check "a2: nothing was published" test ! -s "$work/a2.csv"
check "a2: the error is not repeated every loop" test "$(grep -c 'error: the acknowledgement on' "$work/a2.err")" -le 2
# the operator publishes the bridge's real value: renumbered past it, published
publish_ack a2 5000
wait_for 100 'test -s "$work/a2.csv"' || true
check "a2: renumbered: the first reading published is a2:5001" \
  test "$(grep -o 'a2:[0-9]*' "$work/a2.csv" | head -1)" = a2:5001
check "a2: the recovery is logged" grep -q 'renumbered past it, publishing again' "$work/a2.err"
start_acker a2 5000
wait_for 50 'status_of a2 | grep -q "\"ack_error\":\"\""' || true
check "a2: the status is clear again" grep -q '"ack_error":""' <<<"$(status_of a2)"
check "a2: no reading numbered above 2^53 - 1 was published" \
  bash -c "! grep -Eq 'a2:[0-9]{16,}' '$work/a2.csv'"
stop_and_account a2 5000
kill "$acker_pid" "$sub_pid" 2>/dev/null || true; wait "$acker_pid" "$sub_pid" 2>/dev/null || true
acker_pid= sub_pid=

# --- 3. a new store finds 2^53 (it used to renumber past it); the operator clears it --
sim resume
publish_ack a3 9007199254740992
write_config a3
start_subscriber a3
start_agent a3
wait_for 50 'status_of a3 | grep -q implausible' || true
sleep 1
st=$(status_of a3)
echo "status: $st"
check "a3: 2^53: the status says so" grep -q '"ack_error":"implausible acknowledgement: not renumbering"' <<<"$st"
check "a3: 2^53: an error line" grep -q 'error: the acknowledgement on turnstile/v1/S1/a3/ack is 9007199254740992' "$work/a3.err"
check "a3: nothing was published" test ! -s "$work/a3.csv"
mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r -t turnstile/v1/S1/a3/ack -n
wait_for 100 'test -s "$work/a3.csv"' || true
check "a3: the retained ack cleared: it publishes its own numbers from a3:1" \
  test "$(grep -o 'a3:[0-9]*' "$work/a3.csv" | head -1)" = a3:1
check "a3: logged" grep -q 'is gone: publishing' "$work/a3.err"
stop_and_account a3 0
if [ "$fails" -gt 0 ]; then tail -n 30 "$work/a1.err" "$work/a2.err" "$work/a3.err"; fi
finish
