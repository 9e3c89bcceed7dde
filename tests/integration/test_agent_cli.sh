#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-agent's command line: --help/--version, --check-config on the
# example configs (agent's and bridge's), and bad configs named by file, line and
# key, with exit status 78 and nothing started. Issue 12: every error of a file is
# reported, one a line in line order (at most 100, then "... and N more errors"),
# keys of another kind of device are errors, unknown keys suggest a close one. Hostile input to all three programs (issue 11):
# numeric options that are nan, inf, out of range, empty or trailed by garbage
# exit 2 at once (a hang fails: every run is under `timeout`); a line longer than
# the parser's limit, /dev/zero, a FIFO and a directory as the config file exit 78
# with one line naming the file (and the line), never hang; control bytes in a
# config come out escaped.
set -euo pipefail
bin=${TS_BIN_DIR:?}/turnstile-agent
bridge=${TS_BIN_DIR:?}/turnstile-bridge
sim=${TS_BIN_DIR:?}/turnstile-sim
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"

"$bin" --version | grep -q '^turnstile-agent [0-9]' ; check "--version" test $? -eq 0
"$bin" --help | grep -q -- '--check-config'; check "--help" test $? -eq 0
set +e
"$bin" >/dev/null 2>&1; check "no config is a usage error (2)" test $? -eq 2
for f in "$src"/config/*.conf.example; do # every example config passes, silently
  case $(basename "$f") in bridge*) prog=$bridge ;; *) prog=$bin ;; esac
  "$prog" --check-config -c "$f" >"$work/out" 2>"$work/err"
  check "example $(basename "$f") is valid" test $? -eq 0
  check "example $(basename "$f"): nothing on stderr" test ! -s "$work/err"
done
"$bin" --config-doc >"$work/doc"
for key in id station_id timezone poll_interval_ms kind host serial_port baud parity slave_id \
           response_timeout_ms retries backoff_min_ms chip debounce_us entries_address width \
           order direction entry_line edge active_low bias max_rate_per_min; do
  grep -q "| \`$key\` |" "$work/doc" || { echo "config-doc lacks $key"; fails=$((fails + 1)); }
done
# the kinds of device each key is for, from the key table
for row in 'host` | text |  |  | modbus-tcp |' 'slave_id` | integer | 0 .. 247 | 1 | modbus-tcp, modbus-rtu |' \
           'chip` | text |  |  | gpio |' 'backoff_min_ms` | integer | 10 .. 3600000 | 1000 | all |' \
           'entry_line` | integer | 0 .. 1023 |  | gpio |' 'width` | choice | 16, 32, 64 | 32 | modbus-tcp, modbus-rtu, sim, http |'; do
  check "config-doc: | \`$row" grep -qF "| \`$row" "$work/doc"
done

# A bad config: one line on stderr naming file, line and key; exit 78; no reading.
bad() { # NAME EXPECTED-REGEX CONFIG-TEXT
  printf '%s\n' "$3" >"$work/bad.conf"
  "$bin" -c "$work/bad.conf" --duration 2 >"$work/out" 2>"$work/err"
  local rc=$?
  check "$1: exit 78" test $rc -eq 78
  check "$1: names file, line, key" grep -Eq "^turnstile-agent: $work/bad.conf:$2" "$work/err"
  check "$1: one line" test "$(wc -l <"$work/err")" -eq 1
  check "$1: nothing started" test ! -s "$work/out"
}
good='[agent]
id = a1
station_id = S1
ca = A002
unit = R051
station = 59 ST
linename = NQR456W
division = BMT
[device d]
kind = modbus-tcp
host = 127.0.0.1
port = 1
[turnstile t1]
device = d
scp = 02-00-00
entries_address = 0
exits_address = 2'
bad "unknown key" "18: \[turnstile t1\] colour: unknown key" "$(printf '%s\ncolour = red\n' "$good")"
bad "bad width" "18: \[turnstile t1\] width: '48' is not one of" "$(printf '%s\nwidth = 48\n' "$good")"
bad "duplicate turnstile" "20: \[turnstile t2\] scp: duplicate turnstile" "$(printf '%s\n[turnstile t2]\ndevice = d\nscp = 02-00-00\nentries_address = 4\nexits_address = 6\n' "$good")"
bad "overlapping register map" "22: \[turnstile t2\] exits_address: overlaps" "$(printf '%s\n[turnstile t2]\ndevice = d\nscp = 02-00-01\nentries_address = 4\nexits_address = 5\n' "$good")"
bad "port out of range" "12: \[device d\] port: 0 is out of range" "$(sed 's/^port = 1$/port = 0/' <<<"$good")"
bad "comma in identifier" "6: \[agent\] station:" "$(sed 's/^station = 59 ST$/station = 59 ST, BKLYN/' <<<"$good")"
# [mqtt]'s connection keys are checked as the bridge's (one check, net/mqtt_cfg.c; issue 16):
# a password without username was an error of the agent only at start, without its line
bad "password without username" "22: \[mqtt\] password: needs username" "$(printf '%s\n[store]\npath = %s/s.db\n[mqtt]\nhost = 127.0.0.1\npassword = x\n' "$good" "$work")"
bad "keepalive out of the table's range" "22: \[mqtt\] keepalive_s: 3601 is out of range \[5, 3600\]" "$(printf '%s\n[store]\npath = %s/s.db\n[mqtt]\nhost = 127.0.0.1\nkeepalive_s = 3601\n' "$good" "$work")"
"$bin" -c "$work/missing.conf" >"$work/out" 2>"$work/err"
check "missing file: exit 78" test $? -eq 78
check "missing file: named" grep -q "missing.conf: cannot open" "$work/err"

# --- numeric options (issue 11): exit 2 at once, one line naming the option -------------
printf '%s\n' "$good" >"$work/good.conf"
cat >"$work/bridge.conf" <<CONF
[bridge]
id = b1
[mqtt]
host = 127.0.0.1
port = 1
[kafka]
brokers = 127.0.0.1:1
[lake]
path = $work/lake
CONF
usage_error() { # NAME OPTION CMD...: exit 2 within 20 s, stderr one line "PROG: OPTION: ..."
  local name=$1 opt=$2 rc=0
  shift 2
  timeout 20 "$@" </dev/null >"$work/out" 2>"$work/err" || rc=$?
  check "$name: exit 2 (got $rc$([ $rc = 124 ] && echo ', a hang'))" test $rc -eq 2
  check "$name: one line naming $opt" \
    bash -c "[ \$(wc -l <'$work/err') -eq 1 ] && grep -q -- ': $opt' '$work/err'"
}
for v in nan inf -inf 1e300 0 -1 '' ' 5' 5x 0x10 1e-400; do
  usage_error "agent --duration '$v'" --duration "$bin" -c "$work/good.conf" --quiet --duration "$v"
  usage_error "bridge --duration '$v'" --duration "$bridge" -c "$work/bridge.conf" --role relay --duration "$v"
done
simrun=("$sim" --tcp 127.0.0.1:0 --generate --turnstiles 1)
for v in nan inf 1e300 0 -5 '' 5x; do
  usage_error "sim --speed '$v'" --speed "${simrun[@]}" --speed "$v"
  usage_error "sim --max-rate '$v'" --max-rate "${simrun[@]}" --max-rate "$v"
done
for o in --baud --data-bits --stop-bits --turnstiles; do
  for v in nan 1e3 99999999999999999999 -1 '' 5x; do
    usage_error "sim $o '$v'" "$o" "${simrun[@]}" "$o" "$v"
  done
done
for v in -1 nan 18446744073709551616 '' 5x; do
  usage_error "sim --seed '$v'" --seed "${simrun[@]}" --seed "$v"
done
for v in 127.0.0.1:65536 127.0.0.1:nan 127.0.0.1:; do
  usage_error "sim --tcp '$v'" --tcp "$sim" --tcp "$v" --generate
done
usage_error "sim --slaves 1,inf" --slaves "${simrun[@]}" --slaves 1,inf
usage_error "sim --width 1e300" --width "${simrun[@]}" --width 1e300

# --- hostile config files (issue 11): exit 78, one line naming file (and line), no hang ---
config_error() { # NAME REGEX CMD...: exit 78 within 20 s, stderr one line matching REGEX
  local name=$1 re=$2 rc=0
  shift 2
  timeout 20 "$@" </dev/null >"$work/out" 2>"$work/err" || rc=$?
  check "$name: exit 78 (got $rc$([ $rc = 124 ] && echo ', a hang'))" test $rc -eq 78
  check "$name: one line: $re" bash -c "[ \$(wc -l <'$work/err') -eq 1 ] && grep -Eq -- '$re' '$work/err'"
  check "$name: nothing started" test ! -s "$work/out"
}
# config_errors NAME CMD... <<EOF: exit 78 within 20 s, nothing started, stderr exactly one
# line per regex of the here-document, in that order
config_errors() {
  local name=$1 rc=0
  shift
  cat >"$work/expected"
  timeout 20 "$@" </dev/null >"$work/out" 2>"$work/err" || rc=$?
  check "$name: exit 78 (got $rc$([ $rc = 124 ] && echo ', a hang'))" test $rc -eq 78
  check "$name: nothing started" test ! -s "$work/out"
  check "$name: $(wc -l <"$work/expected") lines on stderr" \
    test "$(wc -l <"$work/err")" -eq "$(wc -l <"$work/expected")"
  local i=0 re
  while IFS= read -r re; do
    i=$((i + 1))
    check "$name: line $i: $re" bash -c "sed -n ${i}p '$work/err' | grep -Eq -- \"\$1\"" _ "$re"
  done <"$work/expected"
}
mkfifo "$work/fifo"
long=$(printf '# %0197d' 0)   # 199 characters: the longest line; then the key from column 200
{ printf '%s\n' "$good" | sed -n 1p; printf '%spoll_interval_ms = 250 ;%0080d\n' "$long" 0
  printf '%s\n' "$good" | sed 1d; } >"$work/long.conf"
config_error "agent: a 300-character comment" "^turnstile-agent: $work/long.conf:2: line longer than 199 characters$" \
  "$bin" -c "$work/long.conf" --duration 2
{ printf '%s\n%s\n' "$good" "$long"; echo 'colour = red'; } >"$work/longest.conf"
config_error "agent: a 199-character line, then an error" "^turnstile-agent: $work/longest.conf:19: \[turnstile t1\] colour: unknown key$" \
  "$bin" -c "$work/longest.conf" --duration 2
{ echo '[bridge]'; printf 'id = b1 ; %0200d\n' 0; printf '[mqtt]\nhost = h\n[kafka]\nbrokers = k:9092\n'
  printf '# %0200d\n' 0; } >"$work/bridge-long.conf"
config_errors "bridge: two long lines (the key of one counts as set)" "$bridge" -c "$work/bridge-long.conf" --duration 2 <<EOF
^turnstile-bridge: $work/bridge-long.conf:2: line longer than 199 characters\$
^turnstile-bridge: $work/bridge-long.conf:7: line longer than 199 characters\$
EOF
for f in /dev/zero "$work/fifo" "$work"; do
  config_error "agent: $f as the config" "^turnstile-agent: $f: is a .*, not a regular file$" \
    "$bin" -c "$f" --duration 2
  config_error "bridge: $f as the config" "^turnstile-bridge: $f: is a .*, not a regular file$" \
    "$bridge" -c "$f" --duration 2
  config_error "agent --check-config $f" "not a regular file" "$bin" --check-config -c "$f"
done
printf '%s\ncol\001our\033[2J = red\n' "$good" >"$work/ctl.conf"
config_error "agent: control bytes in a key" "ctl.conf:18: \[turnstile t1\] col\\\\x01our\\\\x1b\[2J: unknown key" \
  "$bin" -c "$work/ctl.conf" --duration 2
check "agent: no raw control byte on stderr" bash -c "! LC_ALL=C grep -q \$'[\x01-\x1f\x7f-\xff]' '$work/err'"
printf '%s\n' "$good" >"$work/odd-$(printf '\033')[31m-$(printf '\351').conf"
printf 'colour = red\n' >>"$work/odd-$(printf '\033')[31m-$(printf '\351').conf"
config_error "agent: control bytes in the file name" 'odd-\\x1b\[31m-\\xe9\.conf:18: ' \
  "$bin" -c "$work/odd-$(printf '\033')[31m-$(printf '\351').conf" --duration 2
check "agent: no raw byte of the file name on stderr" bash -c "! LC_ALL=C grep -q \$'[\x01-\x1f\x7f-\xff]' '$work/err'"

# --- every error at once (issue 12) ---------------------------------------------------
cat >"$work/many.conf" <<'CONF'
[agent]
id = a1
station_id = S1
pol_interval_ms = 500
ca = A002
unit = R051
station = 59 ST
linename = NQR456W
division = BMT
clock = sometimes
this is not ini
[device d]
kind = modbus-tcp
host = 127.0.0.1
baud = 9600
chip = gpiochip0
[device pins]
kind = gpio
chip = gpiochip0
host = 10.0.0.1
[device line]
kind = modbus-rtu
serial_port = /dev/ttyS0
port = 502
[device replay]
kind = sim
mta_file = /tmp/week.csv
slave_id = 3
[turnstile t1]
device = d
scp = 02-00-00
entries_address = 0
exits_address = 1
entry_line = 3
[turnstile t2]
device = nowhere
scp = 02-00-01
colour = red
[turnstile t3]
device = pins
scp = 02-00-02
entry_line = 4
exit_line = 5
width = 16
scp = 02-00-03
[devcie x]
kind = gpio
CONF
m="$work/many.conf"
config_errors "agent: a file of many errors" "$bin" --check-config -c "$m" <<EOF
^turnstile-agent: $m:4: \[agent\] pol_interval_ms: unknown key; did you mean 'poll_interval_ms'\?\$
^turnstile-agent: $m:10: \[agent\] clock: 'sometimes' is not one of wait-sync trust\$
^turnstile-agent: $m:11: syntax error \(expected \[section\] or key = value\)\$
^turnstile-agent: $m:15: \[device d\] baud: means nothing for kind modbus-tcp \(only for modbus-rtu\)\$
^turnstile-agent: $m:16: \[device d\] chip: means nothing for kind modbus-tcp \(only for gpio\)\$
^turnstile-agent: $m:20: \[device pins\] host: means nothing for kind gpio \(only for modbus-tcp\)\$
^turnstile-agent: $m:24: \[device line\] port: means nothing for kind modbus-rtu \(only for modbus-tcp\)\$
^turnstile-agent: $m:28: \[device replay\] slave_id: means nothing for kind sim \(only for modbus-tcp and modbus-rtu\)\$
^turnstile-agent: $m:33: \[turnstile t1\] exits_address: overlaps the entries counter
^turnstile-agent: $m:34: \[turnstile t1\] entry_line: means nothing for a turnstile of modbus-tcp device 'd' \(only for gpio\)\$
^turnstile-agent: $m:36: \[turnstile t2\] device: no \[device nowhere\]\$
^turnstile-agent: $m:38: \[turnstile t2\] colour: unknown key\$
^turnstile-agent: $m:44: \[turnstile t3\] width: means nothing for a turnstile of gpio device 'pins' \(only for modbus-tcp, modbus-rtu, sim and http\)\$
^turnstile-agent: $m:45: \[turnstile t3\] scp: set twice \(first on line 41\)\$
^turnstile-agent: $m:46: \[devcie x\] unknown section kind 'devcie'; did you mean 'device'\?\$
EOF
# the same file, run (not checked): the same lines, and nothing starts
"$bin" -c "$m" --duration 2 >"$work/out" 2>"$work/err2"; rc=$?
check "agent: run with many errors: exit 78" test $rc -eq 78
check "agent: run with many errors: the same lines" cmp -s "$work/err" "$work/err2"

# the cap: 150 bad lines are 100 lines and a count; a 1 MiB file of bad lines the same
{ printf '%s\n' "$good"; for i in $(seq 150); do echo "colour$i = red"; done; } >"$work/cap.conf"
config_errors "agent: 150 errors" "$bin" --check-config -c "$work/cap.conf" < <(
  for i in $(seq 100); do echo "^turnstile-agent: $work/cap.conf:$((17 + i)): \[turnstile t1\] colour$i: unknown key\$"; done
  echo "^turnstile-agent: $work/cap.conf: \.\.\. and 50 more errors\$")
head -c 524288 /dev/zero | tr '\0' '\n' | sed 's/^$/x/' >"$work/hostile.conf"
config_errors "agent: 1 MiB of bad lines" "$bin" --check-config -c "$work/hostile.conf" < <(
  for i in $(seq 100); do echo "^turnstile-agent: $work/hostile.conf:$i: syntax error"; done
  echo "^turnstile-agent: $work/hostile.conf: \.\.\. and 524190 more errors\$")

# the bridge: every error too, with suggestions
cat >"$work/bridge-many.conf" <<CONF
[bridge]
id = b1
rol = relay
[mqtt]
host = 127.0.0.1
port = 0
password = secret
[kafka]
brokers = 127.0.0.1:1
compresion = lz4
deadletter_topic = turnstile.readings
[lake]
path = lake
window_s = 60
slide_s = 120
CONF
b="$work/bridge-many.conf"
config_errors "bridge: a file of many errors" "$bridge" --check-config -c "$b" <<EOF
^turnstile-bridge: $b:3: \[bridge\] rol: unknown key; did you mean 'role'\?\$
^turnstile-bridge: $b:6: \[mqtt\] port: 0 is out of range \[1, 65535\]\$
^turnstile-bridge: $b:7: \[mqtt\] password: needs username\$
^turnstile-bridge: $b:10: \[kafka\] compresion: unknown key; did you mean 'compression'\?\$
^turnstile-bridge: $b:11: \[kafka\] deadletter_topic: must differ from readings_topic\$
^turnstile-bridge: $b:13: \[lake\] path: must be an absolute path\$
^turnstile-bridge: $b:15: \[lake\] slide_s: must not exceed window_s \(60\)\$
EOF

finish
