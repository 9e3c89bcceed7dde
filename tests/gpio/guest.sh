#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tests/gpio/guest.sh - /init of the GPIO VM test (tests/gpio/test_gpio_vm.sh
# boots it): Debian's kernel, gpio-sim, the real turnstile-agent.
#
# Creates simulated gpiochips through configfs, runs the agent with GPIO
# turnstiles on them, drives pulses through gpio-sim's sysfs `pull`
# attributes and checks the readings the agent prints (no [mqtt]: stdout is
# the consumer; the store is on a tmpfs, so it survives an agent restart).
# Every check prints "GPIOVM ok: ..." or "GPIOVM FAIL: ..."; the last line is
# "GPIOVM done: P passed, F failed", then the VM powers off.
#
# The VM runs under qemu's -icount with sleep=off: guest time is counted in
# instructions, so a bounce burst written by this shell takes the same few
# hundred microseconds of guest time however loaded the host is, and sleeps
# cost no host time.
#
# TS_GPIO_VM_BREAK (kernel command line gpio_break=...) writes a wrong agent
# config while keeping the expectations, to see the test fail:
#   debounce    debounce_us = 0 on the pins device: bounces are counted
#   active_low  the active-low turnstile configured active-high
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /data /tmp /cfg
mount -t tmpfs data /data
mount -t tmpfs tmp /tmp
exec >/dev/console 2>&1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TZ=UTC
brk=$(sed -n 's/.*gpio_break=\([a-z_]*\).*/\1/p' /proc/cmdline)

pass=0 fail=0
check() { # NAME CMD...
  name=$1; shift
  if "$@"; then echo "GPIOVM ok: $name"; pass=$((pass + 1)); else echo "GPIOVM FAIL: $name"; fail=$((fail + 1)); fi
}
info() { echo "GPIOVM info: $*"; }
finish() {
  if [ "$fail" -ne 0 ]; then
    for f in /data/*.err /data/*.out /data/*.mon /data/*.rc; do
      [ -f "$f" ] && { echo "----- $f"; tail -n 60 "$f"; }
    done
  fi
  echo "GPIOVM done: $pass passed, $fail failed"
  sync
  poweroff -f
}

# wait_for FILE REGEX [TRIES [COUNT]]: until COUNT (1) lines of FILE match,
# up to TRIES (300) x 0.1 s of guest time
wait_for() {
  n=0
  while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "${4:-1}" ]; do
    n=$((n + 1)); [ "$n" -gt "${3:-300}" ] && return 1; sleep 0.1
  done
}

insmod /configfs.ko || { echo "GPIOVM FAIL: insmod configfs.ko"; fail=1; finish; }
insmod /gpiosim.ko || { echo "GPIOVM FAIL: insmod gpiosim.ko"; fail=1; finish; }
mount -t configfs none /cfg
info "kernel $(uname -r), gpio-sim loaded"

# make_chip NAME LABEL LINES: a live gpio-sim chip; sets SYS to its sysfs dir
make_chip() {
  mkdir /cfg/gpio-sim/$1 /cfg/gpio-sim/$1/bank0 &&
    echo "$3" >/cfg/gpio-sim/$1/bank0/num_lines &&
    echo "$2" >/cfg/gpio-sim/$1/bank0/label &&
    echo 1 >/cfg/gpio-sim/$1/live || return 1
  SYS=/sys/devices/platform/$(cat /cfg/gpio-sim/$1/dev_name)/$(cat /cfg/gpio-sim/$1/bank0/chip_name)
  [ -d "$SYS" ]
}
check "gpio-sim chip 'ts-sim' (16 lines) created through configfs" make_chip sim0 ts-sim 16
S0=$SYS

# ---- pulses: physical levels written to gpio-sim's pull attribute ---------
# H, G: press held and gap after it, both longer than the 10 ms debounce.
# The burst edges follow each other as fast as the shell writes (builtins
# only, no fork: some tens of microseconds of guest time apart).
H=0.05 G=0.05
hi() { echo pull-up >$S0/sim_gpio$1/pull; }
lo() { echo pull-down >$S0/sim_gpio$1/pull; }
pulse_high() { # LINE: an active-high press and release
  hi $1; sleep $H; lo $1; sleep $G
}
bouncy_high() { # LINE: the press bounces (5 edges), the release bounces (3 edges)
  hi $1; lo $1; hi $1; lo $1; hi $1; sleep $H
  lo $1; hi $1; lo $1; sleep $G
}
pulse_low() { # LINE: an active-low press (the line idles high)
  lo $1; sleep $H; hi $1; sleep $G
}
bouncy_low() {
  lo $1; hi $1; lo $1; hi $1; lo $1; sleep $H
  hi $1; lo $1; hi $1; sleep $G
}
together() { # HIGH-LINE LOW-LINE: two lines' bouncing presses interleaved, at once
  hi $1; lo $2; lo $1; hi $2; hi $1; lo $2; sleep $H
  lo $1; hi $2; hi $1; lo $2; lo $1; hi $2; sleep $G
}
rep() { # N CMD...
  k=$1; shift
  while [ "$k" -gt 0 ]; do "$@"; k=$((k - 1)); done
}

# How long a burst lasts in guest time, by the kernel's own event time stamps
# (gpiomon prints them): the premise of the bounce checks below.
timeout 30 gpiomon -n 8 ts-sim 6 >/data/burst.mon 2>&1 &
MON=$!
sleep 0.5
bouncy_high 6
wait $MON
span=$(sed -n 's/.*timestamp: \[ *\([0-9]*\)\.\([0-9]*\)\].*/\1 \2/p' /data/burst.mon |
       awk 'NR == 1 { t1 = $1 * 1e6 + $2 / 1e3 } NR == 5 { printf "%d", $1 * 1e6 + $2 / 1e3 - t1 }')
info "gpiomon: $(grep -c EDGE /data/burst.mon) edges of a bouncing press and release; the 5 edges of the press took ${span:-?} us of guest time"
check "a bounce burst is shorter than the 10 ms debounce in guest time" eval '[ "${span:-99999}" -lt 10000 ]'

# ---- the agent -------------------------------------------------------------
# conf FILE STORE DEVICE-SECTIONS...: an agent config
conf() {
  f=$1 store=$2; shift 2
  cat >"$f" <<EOF
[agent]
id = vm-gpio-01
station_id = VM1
timezone = UTC
poll_interval_ms = 100
clock = trust
max_rate_per_min = 1000000
ca = A000
unit = R000
station = GPIO VM
linename = 1
division = IRT
[store]
path = $store
synchronous = normal
EOF
  for part in "$@"; do printf '%s\n' "$part" >>"$f"; done
}
deb=10000 lo_active=true
[ "$brk" = debounce ] && deb=0
[ "$brk" = active_low ] && lo_active=false
[ -n "$brk" ] && info "BROKEN CONFIG on purpose: $brk"
PINS="[device pins]
kind = gpio
chip = ts-sim
debounce_us = $deb
backoff_min_ms = 100
backoff_max_ms = 400
[turnstile hi]
device = pins
scp = 01-00-00
entry_line = 0
exit_line = 1
edge = rising
active_low = false
bias = pull-down
[turnstile lo]
device = pins
scp = 01-00-01
entry_line = 2
exit_line = 3
edge = rising
active_low = $lo_active
bias = pull-up"
RAW="[device raw]
kind = gpio
chip = ts-sim
debounce_us = 0
[turnstile raw]
device = raw
scp = 01-00-02
entry_line = 4
exit_line = 5
bias = pull-down"

AGENT_PID=
start_agent() { # NAME CONFIG
  turnstile-agent -c "$2" >/data/$1.out 2>/data/$1.err &
  AGENT_PID=$!
}
stop_agent() { # NAME: SIGTERM, wait; the exit status in /data/NAME.rc
  kill -TERM "$AGENT_PID" 2>/dev/null
  wait "$AGENT_PID"
  echo $? >/data/$1.rc
  AGENT_PID=
}
clean_exit() { # NAME: exit 0, no sanitizer report
  [ "$(cat /data/$1.rc)" = 0 ] && ! grep -q 'Sanitizer\|runtime error' /data/$1.err
}
# totals FILE SCP: "last-ENTRIES_CUM last-EXITS_CUM sum-ENTRIES sum-EXITS"
totals() {
  awk -F, -v scp="$2" 'NF >= 18 && $3 == scp { e = $15; x = $16; de += $10; dx += $11 }
                       END { print e + 0, x + 0, de + 0, dx + 0 }' "$1"
}
# flags FILE SCP-REGEX: the anomaly flags of those readings, sorted, one a line
flags() {
  awk -F, -v scp="^($2)\$" 'NF >= 18 && $3 ~ scp && $17 != "" { n = split($17, f, "|"); for (i = 1; i <= n; i++) print f[i] }' "$1" | sort -u
}
eq() { [ "$1" = "$2" ] || { info "expected '$2', got '$1'"; return 1; }; }
gt() { [ "$1" -gt "$2" ] || { info "expected more than $2, got $1"; return 1; }; }

# ---- commissioning: --probe counts the pulses made while it runs -----------
conf /data/a.conf /data/agent.db "$PINS" "$RAW"
turnstile-agent -c /data/a.conf --probe --probe-samples 20 --probe-interval-ms 100 \
  >/data/probe.out 2>/data/probe.err &
PROBE=$!
sleep 0.5                 # guest time: the probe has requested the lines
rep 2 bouncy_high 0
pulse_low 3
wait $PROBE
echo $? >/data/probe.rc
check "--probe: exit 0, the pulses made while it ran: hi 2 entries, lo 1 exit" eval \
  '[ "$(cat /data/probe.rc)" = 0 ] && grep -q "^verdict hi: pulses: 2 entries, 0 exits" /data/probe.out &&
   grep -q "^verdict lo: pulses: 0 entries, 1 exits" /data/probe.out'

# ---- run 1: ordinary pulses, bounces, active-low, two lines at once ---------
start_agent run1 /data/a.conf
check "run 1: the agent opened the chip by its label and requested the lines" \
  wait_for /data/run1.err 'device pins (gpio ts-sim): link up'
wait_for /data/run1.err 'device raw (gpio ts-sim): link up' || true
check "bias = pull-up reached the kernel: the active-low line idles high" eq "$(cat $S0/sim_gpio2/value)" 1
check "bias = pull-down: the active-high line idles low" eq "$(cat $S0/sim_gpio0/value)" 0

# a second agent for the same lines: the kernel refuses, the log names the holder
conf /data/b.conf /data/second.db "$PINS"
timeout 60 turnstile-agent -c /data/b.conf --duration 1 >/data/second.out 2>/data/second.err
check "a second agent: line 0 busy, used by turnstile-edge (the first agent)" \
  grep -q 'gpio pins: chip ts-sim line 0: cannot request for events: Device or resource busy, used by turnstile-edge' /data/second.err
check "a second agent: no reading of the busy device" eq "$(grep -c ',01-00-0[01],' /data/second.out)" 0
timeout 60 turnstile-agent -c /data/b.conf --probe --probe-samples 2 --probe-interval-ms 100 \
  >/data/probe2.out 2>/data/probe2.err
echo $? >/data/probe2.rc
check "--probe while the agent holds the lines: unreadable (exit 4), EBUSY on stderr" eval \
  '[ "$(cat /data/probe2.rc)" = 4 ] && grep -q "^verdict hi: unreadable" /data/probe2.out &&
   grep -q "Device or resource busy, used by turnstile-edge" /data/probe2.err'

rep 5 pulse_high 0      # hi entries: 5 clean presses
rep 3 pulse_high 1      # hi exits: 3
rep 4 bouncy_high 0     # hi entries: 4 bouncing presses
rep 4 bouncy_high 4     # raw (no debounce) entries: the same 4 bouncing presses
rep 4 pulse_low 2       # lo entries: 4 active-low presses
rep 3 bouncy_low 2      # lo entries: 3 bouncing active-low presses
rep 2 pulse_low 3       # lo exits: 2
rep 3 together 1 3      # hi exit and lo exit, bouncing together: 3 each
lo 2                      # lo entries: a press held across the agent's stop: counted at the press
sleep 0.5
stop_agent run1
hi 2                      # released while no agent runs: not seen, never counted
sleep 0.1
check "run 1: agent exits 0, no sanitizer report" clean_exit run1
check "run 1: active-high turnstile: cumulative and summed entries 9, exits 6" \
  eq "$(totals /data/run1.out 01-00-00)" "9 6 9 6"
check "run 1: active-low turnstile: entries 8 (one still held), exits 5" \
  eq "$(totals /data/run1.out 01-00-01)" "8 5 8 5"
raw=$(totals /data/run1.out 01-00-02)
info "run 1: without debounce the 4 bouncing presses counted ${raw%% *}"
check "run 1: the same bounces without debounce are counted (they reached the agent)" gt "${raw%% *}" 4
check "run 1: no anomaly flag but 'first'" eq "$(flags /data/run1.out '01-00-0[01]' | tr '\n' ' ')" "first "
line0=$(grep 'gpio pins: line 0 closed' /data/run1.err)
info "$line0"
ign=$(echo "$line0" | sed -n 's/.* \([0-9]*\) ignored as bounce.*/\1/p')
check "run 1: line 0 closed with 9 counted and the bounce edges ignored" \
  eval 'echo "$line0" | grep -q ": 9 counted, " && [ "${ign:-0}" -gt 0 ]'

# ---- run 2: restart on the same store, a line busy at start -----------------
gpiomon ts-sim 0 >/data/gpiomon.mon 2>&1 &
MON=$!
sleep 0.2
start_agent run2 /data/a.conf
check "run 2: line 0 held by gpiomon: busy, the log names gpiomon" \
  wait_for /data/run2.err 'chip ts-sim line 0: cannot request for events: Device or resource busy, used by gpiomon'
check "run 2: the agent keeps running and retries (back-off)" \
  wait_for /data/run2.err 'device pins (gpio ts-sim): connection failed; backing off'
kill $MON; wait $MON 2>/dev/null
check "run 2: gpiomon gone: the device opens" wait_for /data/run2.err 'device pins (gpio ts-sim): link up'
rep 2 pulse_high 0      # hi entries +2
rep 1 bouncy_low 3      # lo exits +1
sleep 0.5
stop_agent run2
check "run 2: agent exits 0, no sanitizer report" clean_exit run2
check "run 2: active-high: cumulative entries 11, exits 6 (the base persisted); 2 and 0 counted in this run" \
  eq "$(totals /data/run2.out 01-00-00)" "11 6 2 0"
check "run 2: active-low: cumulative entries 8, exits 6; 0 and 1 counted in this run" \
  eq "$(totals /data/run2.out 01-00-01)" "8 6 0 1"
check "run 2: no reset, glitch or other anomaly after the restart (only 'recovered' after the busy line)" \
  eval '[ -z "$(flags /data/run2.out "01-00-0[01]" | grep -v "^recovered$")" ]'

# ---- run 3: a missing chip, which appears later ------------------------------
LATE="[device late]
kind = gpio
chip = ts-late
debounce_us = 10000
backoff_min_ms = 100
backoff_max_ms = 400
[turnstile late]
device = late
scp = 01-01-00
entry_line = 0
exit_line = 1
bias = pull-down"
conf /data/c.conf /data/late.db "$LATE"
start_agent run3 /data/c.conf
check "run 3: missing chip: the log names it and says why" \
  wait_for /data/run3.err 'gpio late: cannot open chip "ts-late": No such file or directory'
check "run 3: missing chip: the agent keeps running and retries" \
  wait_for /data/run3.err 'device late (gpio ts-late): connection failed; backing off'
check "run 3: the agent is still running" kill -0 "$AGENT_PID"
check "gpio-sim chip 'ts-late' created while the agent runs" make_chip sim1 ts-late 4
S0=$SYS
check "run 3: the chip appeared: the device opens" wait_for /data/run3.err 'device late (gpio ts-late): link up'
rep 3 pulse_high 0
rep 1 bouncy_high 1
sleep 0.5
# the chip goes away under the running agent (unplugged), and comes back
echo 0 >/cfg/gpio-sim/sim1/live
check "run 3: chip removed while the lines are held: the event wait fails, named" \
  wait_for /data/run3.err 'gpio late: chip ts-late: reading events failed: No such device'
check "run 3: ... the next read is an I/O error: the device closes and backs off" \
  wait_for /data/run3.err 'device late (gpio ts-late): turnstile late: I/O error; backing off'
echo 1 >/cfg/gpio-sim/sim1/live
S0=/sys/devices/platform/$(cat /cfg/gpio-sim/sim1/dev_name)/$(cat /cfg/gpio-sim/sim1/bank0/chip_name)
check "run 3: the chip is back: the device opens again" wait_for /data/run3.err 'link up' 300 2
rep 2 pulse_high 0
sleep 0.5
stop_agent run3
check "run 3: agent exits 0, no sanitizer report" clean_exit run3
check "run 3: the late chip's turnstile: entries 3 + 2 (counts carry over the reopen), exits 1" \
  eq "$(totals /data/run3.out 01-01-00)" "5 1 5 1"
check "run 3: no anomaly flag but 'first' and 'recovered'" \
  eval '[ -z "$(flags /data/run3.out 01-01-00 | grep -v "^first$" | grep -v "^recovered$")" ]'

finish
