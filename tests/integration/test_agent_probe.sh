#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent --probe against the real simulator (issue 12, commissioning):
# over Modbus TCP (32-bit BADC counters) and over RTU through a socat pty pair
# (32-bit CDAB, two slaves on one line), with the right register map, a wrong
# word order and a wrong width. The probe must name the right interpretation,
# exit 0 for the right config and 3 for a wrong one, and with a device that
# cannot be read (a silent slave, a closed port, a missing gpiochip, a slave id
# nobody answers on the RS-485 line) exit 4 and still judge the others.
# The simulator runs at 600x from a weekday morning so that the counters move
# during a probe of a few seconds; max_rate_per_min = 12000 (100 people in
# 0.5 s) allows for it: the busiest generated turnstile does about 40 a second
# at 600x, and a wrong order moves by 256 or more per person. The bound scales
# with the time between reads, so a slow machine stretches the samples
# without changing the verdicts.
set -euo pipefail
bin=${TS_BIN_DIR:?}/turnstile-agent
simbin=${TS_BIN_DIR:?}/turnstile-sim
work=$(mktemp -d /tmp/ts-probe.XXXXXX)
sim_pid= rtu_pid= socat_pid=
cleanup() {
  for p in "$sim_pid" "$rtu_pid" "$socat_pid"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "${TS_SRC_DIR:?}/tests/integration/lib.sh"

head='[agent]
id = probe-agent
station_id = S1
max_rate_per_min = 12000
clock = trust'
traffic=(--generate --speed 600 --start '2023-05-30 08:00:00')

# probe NAME CONFIG: runs the probe (5 reads, 0.5 s apart) under a timeout; the
# report goes to $work/NAME.out, the exit status to $rc.
probe() {
  set +e
  timeout 60 "$bin" --probe --probe-samples 5 --probe-interval-ms 500 -c "$2" >"$work/$1.out" 2>"$work/$1.err"
  rc=$?
  set -e
}
verdict() { grep "^verdict $2: " "$work/$1.out" || true; }

# ---- Modbus TCP: 32-bit counters, BADC (high word first, bytes swapped) ----
sim_start "${traffic[@]}" --slaves 1,2 --turnstiles 2 --width 32 --order BADC
sim_pid=$SIM_PID
t0=SIM/R000/00-00-00 t1=SIM/R000/00-00-01
dev1=sim-$SIM_PORT-slave-1 dev2=sim-$SIM_PORT-slave-2
{ echo "$head"; cat "$work/devices.conf"; } >"$work/right.conf"
check "tcp config is valid" "$bin" --check-config -c "$work/right.conf"

probe tcp-right "$work/right.conf"
check "tcp right map: exit 0 (got $rc)" test "$rc" -eq 0
check "tcp right map: every turnstile right" \
  test "$(grep -c '^verdict .*: right: width 32 order BADC (configured) gives plausible counters$' "$work/tcp-right.out")" -eq 4
check "tcp right map: the configured row is plausible" \
  grep -Eq '^  32 +BADC +moving .* plausible, configured$' "$work/tcp-right.out"
check "tcp right map: ABCD is implausible" grep -Eq '^  32 +ABCD +implausible ' "$work/tcp-right.out"
check "tcp right map: every device read at every sample" \
  test "$(grep -c '^device .*: read at 5 of 5 samples$' "$work/tcp-right.out")" -eq 2
check "tcp right map: the last line says exit 0" grep -q '^probe: exit 0: ' "$work/tcp-right.out"

sed 's/^order = BADC$/order = ABCD/' "$work/right.conf" >"$work/order.conf"
probe tcp-order "$work/order.conf"
check "tcp wrong order: exit 3 (got $rc)" test "$rc" -eq 3
check "tcp wrong order: names BADC" \
  grep -q "^verdict $t0: wrong: width 32 order ABCD (configured) is implausible: .*; plausible: width 32 order BADC; set width = 32 and order = BADC in \[turnstile $t0\]$" \
  "$work/tcp-order.out"
check "tcp wrong order: every turnstile wrong" test "$(grep -c '^verdict .*: wrong: ' "$work/tcp-order.out")" -eq 4

sed 's/^width = 32$/width = 16/' "$work/right.conf" >"$work/width.conf"
probe tcp-width "$work/width.conf"
check "tcp wrong width: exit 3 (got $rc)" test "$rc" -eq 3
check "tcp wrong width: still while the 32-bit reading counts" \
  grep -q "^verdict $t1: wrong: width 16 order BADC (configured) is still while others count; plausible: width 32 order BADC; set width = 32 and order = BADC" \
  "$work/tcp-width.out"

# one slave silent, a closed port, a gpiochip that does not exist: exit 4, the rest judged
sim silent 2 on
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
  sed 's/^slave_id = .*/&\nresponse_timeout_ms = 200\nretries = 0/' "$work/right.conf"
  printf '\n[device closed]\nkind = modbus-tcp\nhost = 127.0.0.1\nport = %s\nresponse_timeout_ms = 200\n' "$closed"
  printf '[turnstile c0]\ndevice = closed\nca = X\nunit = R1\nscp = 00-00-09\nstation = S\nlinename = 1\ndivision = IRT\n'
  printf 'entries_address = 0\nexits_address = 2\n'
  printf '\n[device pulses]\nkind = gpio\nchip = gpiochip-none-%s\n' "$$"
  printf '[turnstile g0]\ndevice = pulses\nca = X\nunit = R1\nscp = 00-00-10\nstation = S\nlinename = 1\ndivision = IRT\n'
  printf 'entry_line = 1\nexit_line = 2\n'
} >"$work/faults.conf"
probe tcp-faults "$work/faults.conf"
check "tcp faults: exit 4 (got $rc)" test "$rc" -eq 4
check "tcp faults: the silent slave is unreadable (timeout)" \
  grep -q "^device $dev2 (modbus-tcp 127.0.0.1:$SIM_PORT slave 2): unreadable at 5 of 5 samples: timeout (first at sample 1)$" \
  "$work/tcp-faults.out"
check "tcp faults: the closed port is unreadable" \
  grep -q '^device closed (modbus-tcp 127.0.0.1:[0-9]* slave 1): unreadable at 5 of 5 samples: connection failed' "$work/tcp-faults.out"
check "tcp faults: the missing gpiochip is unreadable" \
  grep -q '^device pulses (gpio gpiochip-none-[0-9]*): unreadable at 5 of 5 samples: connection failed' "$work/tcp-faults.out"
check "tcp faults: their turnstiles say so" \
  test "$(grep -Ec '^verdict (c0|g0|SIM/R000/00-00-0[23]): unreadable: device ' "$work/tcp-faults.out")" -eq 4
check "tcp faults: slave 1 is read at every sample all the same" \
  grep -q "^device $dev1 .*: read at 5 of 5 samples$" "$work/tcp-faults.out"
check "tcp faults: and judged right" \
  test "$(grep -Ec "^verdict ($t0|$t1): right: width 32 order BADC" "$work/tcp-faults.out")" -eq 2
check "tcp faults: the last line says exit 4" grep -q '^probe: exit 4: a device could not be read' "$work/tcp-faults.out"
sim silent 2 off

# ---- Modbus RTU over a socat pty pair: 32-bit CDAB, slaves 1 and 2 on one line ----
socat pty,raw,echo=0,link="$work/a" pty,raw,echo=0,link="$work/b" 2>/dev/null &
socat_pid=$!
for _ in $(seq 200); do [ -e "$work/a" ] && [ -e "$work/b" ] && break; sleep 0.05; done
"$simbin" --rtu "$work/a" --baud 38400 --slaves 1,2 --turnstiles 2 --width 32 --order CDAB "${traffic[@]}" \
  --agent-config "$work/rtu-sim.conf" --agent-serial-port "$work/b" \
  </dev/null >"$work/rtu-sim.out" 2>"$work/rtu-sim.err" &
rtu_pid=$!
for _ in $(seq 200); do grep -q '^listening rtu' "$work/rtu-sim.out" && break; sleep 0.05; done
check "rtu simulator listening" grep -q '^listening rtu' "$work/rtu-sim.out"

rtu_conf() { # ORDER SLAVE...
  local order=$1; shift
  echo "$head"
  for s in "$@"; do
    printf '\n[device slave%s]\nkind = modbus-rtu\nserial_port = %s\nbaud = 38400\nslave_id = %s\n' "$s" "$work/b" "$s"
    printf 'frame_delay_ms = 2\nresponse_timeout_ms = 200\nretries = 0\n'
    for k in 0 1; do
      printf '[turnstile r%s-%s]\ndevice = slave%s\nca = A002\nunit = R051\nscp = 0%s-00-0%s\n' "$s" "$k" "$s" "$s" "$k"
      printf 'station = 59 ST\nlinename = NQR456W\ndivision = BMT\n'
      printf 'entries_address = %d\nexits_address = %d\nwidth = 32\norder = %s\n' $((k * 4)) $((k * 4 + 2)) "$order"
    done
  done
}
# the simulator's own agent config names the agent's end of the line and loads as written
check "rtu simulator's agent config: serial_port is the agent's end" \
  test "$(grep -c "^serial_port = $work/b\$" "$work/rtu-sim.conf")" -eq 2
check "rtu simulator: an --agent-serial-port that would add a config line is refused (exit 2)" \
  bash -c 'timeout 10 "$1" --rtu /dev/null --agent-serial-port "$(printf "x\nhost = evil")" --agent-config /dev/null 2>/dev/null; test $? -eq 2' _ "$simbin"
{ echo "$head"; cat "$work/rtu-sim.conf"; } >"$work/rtu-sim-full.conf"
check "rtu simulator's agent config: --check-config accepts it" \
  "$bin" --check-config -c "$work/rtu-sim-full.conf"
rtu_conf CDAB 1 2 >"$work/rtu-right.conf"
probe rtu-right "$work/rtu-right.conf"
check "rtu right map: exit 0 (got $rc)" test "$rc" -eq 0
check "rtu right map: every turnstile right" \
  test "$(grep -c '^verdict r[12]-[01]: right: width 32 order CDAB (configured) gives plausible counters$' "$work/rtu-right.out")" -eq 4

rtu_conf ABCD 1 2 >"$work/rtu-order.conf"
probe rtu-order "$work/rtu-order.conf"
check "rtu wrong order: exit 3 (got $rc)" test "$rc" -eq 3
check "rtu wrong order: names CDAB" \
  test "$(grep -c '^verdict r[12]-[01]: wrong: width 32 order ABCD (configured) is implausible: .*; set width = 32 and order = CDAB in ' "$work/rtu-order.out")" -eq 4

# slave 9 is on the line but nobody answers for it: it times out, slaves 1 and 2 go on
rtu_conf CDAB 1 9 2 >"$work/rtu-dead.conf"
probe rtu-dead "$work/rtu-dead.conf"
check "rtu dead slave: exit 4 (got $rc)" test "$rc" -eq 4
check "rtu dead slave: it is unreadable (timeout)" \
  grep -q "^device slave9 (modbus-rtu $work/b slave 9): unreadable at 5 of 5 samples: timeout" "$work/rtu-dead.out"
check "rtu dead slave: its neighbours are read at every sample" \
  test "$(grep -Ec '^device slave[12] .*: read at 5 of 5 samples$' "$work/rtu-dead.out")" -eq 2
check "rtu dead slave: and judged right" \
  test "$(grep -Ec '^verdict r[12]-[01]: right: width 32 order CDAB' "$work/rtu-dead.out")" -eq 4

# the built-in simulator (kind = sim): no registers, its counters judged as configured
{
  echo "$head"
  printf '[device replay]\nkind = sim\nmta_file = %s\nspeed = 600\n' "${TS_MTA_FILE:?}"
  printf '[turnstile m0]\ndevice = replay\nca = A002\nunit = R051\nscp = 02-00-00\nstation = 59 ST\n'
  printf 'linename = NQR456W\ndivision = BMT\n'
} >"$work/sim.conf"
probe sim-kind "$work/sim.conf"
check "sim device: exit 0 (got $rc)" test "$rc" -eq 0
check "sim device: judged without a register map" \
  grep -q '^verdict m0: right: the simulated counters are plausible.* (sim: no register map to check)$' "$work/sim-kind.out"

# the options are checked like every number on the command line
set +e
"$bin" --probe --probe-samples 1 -c "$work/right.conf" >/dev/null 2>"$work/opt.err"
check "--probe-samples 1 is a usage error (2)" test $? -eq 2
check "--probe-samples names the range" grep -q "^turnstile-agent: --probe-samples: '1' is out of range \[2, 1000\]" "$work/opt.err"
"$bin" --probe --probe-interval-ms 5x -c "$work/right.conf" >/dev/null 2>&1
check "--probe-interval-ms 5x is a usage error (2)" test $? -eq 2
"$bin" --help | grep -q -- '--probe-samples'
check "--help documents --probe" test $? -eq 0
"$bin" --help | grep -q '3 a configured register map is implausible'
check "--help documents the probe's exit status" test $? -eq 0
set -e

if [ "$fails" -gt 0 ]; then
  for f in "$work"/*.out; do echo "--- $f"; cat "$f"; done
  for f in "$work"/*.err; do [ -s "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
fi
finish
