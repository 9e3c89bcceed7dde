#!/usr/bin/env bash
# turnstile-agent's command line: --help/--version, --check-config on the
# example config, and bad configs named by file, line and key, with exit
# status 78 and nothing started.
set -euo pipefail
bin=${TS_BIN_DIR:?}/turnstile-agent
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"

"$bin" --version | grep -q '^turnstile-agent [0-9]' ; check "--version" test $? -eq 0
"$bin" --help | grep -q -- '--check-config'; check "--help" test $? -eq 0
set +e
"$bin" >/dev/null 2>&1; check "no config is a usage error (2)" test $? -eq 2
"$bin" --check-config -c "$src/config/agent.conf.example" >"$work/out" 2>&1
check "example config is valid" test $? -eq 0
"$bin" --config-doc >"$work/doc"
for key in id station_id timezone poll_interval_ms kind host serial_port baud parity slave_id \
           response_timeout_ms retries backoff_min_ms chip debounce_us entries_address width \
           order direction entry_line edge active_low bias max_rate_per_min; do
  grep -q "| \`$key\` |" "$work/doc" || { echo "config-doc lacks $key"; fails=$((fails + 1)); }
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
"$bin" -c "$work/missing.conf" >"$work/out" 2>"$work/err"
check "missing file: exit 78" test $? -eq 78
check "missing file: named" grep -q "missing.conf: cannot open" "$work/err"

finish
