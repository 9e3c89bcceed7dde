#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole shared MTA week, as published, through turnstile-sim and the
# agent's configuration (issue 12), without editing any file:
#   1. turnstile-sim loads every row of the week and serves every turnstile
#      (--turnstiles all); its --agent-config holds them all;
#   2. split per station (one agent config each, as a station controller
#      would have), `turnstile-agent --check-config` accepts every one of
#      them, the stations whose names hold apostrophes included, with the
#      names exactly as in the file;
#   3. the same week written as other publishers write it (CA instead of
#      C/A, no index column, CR LF, a byte order mark, padded header names,
#      every name in RFC 4180 quotes) gives the same turnstiles and names.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
mta=${TS_MTA_FILE:?}
work=$(mktemp -d /tmp/ts-sim-week.XXXXXX)
cleanup() {
  [ -z "${SIM_PID:-}" ] || kill -9 "$SIM_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
[ -r "$mta" ] || { echo "MTA file $mta not found (TS_MTA_FILE)"; exit 1; }

# What the file holds, read here without the loader: "CA/UNIT/SCP<TAB>STATION"
# per turnstile (the shared week has no quotes; its first column is an index).
zcat -f "$mta" | awk -F, 'NR == 1 { off = ($1 == "" ? 1 : 0); next }
  { print $(1 + off) "/" $(2 + off) "/" $(3 + off) "\t" $(4 + off) }' | sort -u >"$work/file.ks"
cut -f1 "$work/file.ks" | sort -u >"$work/file.keys"
cut -f2 "$work/file.ks" | sort -u >"$work/file.stations"
echo "the file: $(wc -l <"$work/file.keys") turnstiles, $(wc -l <"$work/file.stations") stations," \
  "$(grep -c "'" "$work/file.stations" || true) with an apostrophe"

# --- 1. the simulator serves the whole week ---------------------------------
serve_week() { # FILE: starts turnstile-sim on FILE (every turnstile, 3 slaves), lists them, quits
  rm -f "$work/sim.in"
  sim_start --mta "$1" --slaves 1,2,3 --turnstiles all --speed 1 --log-level notice
  sim list
  sim quit
  wait "$SIM_PID" 2>/dev/null || true
  SIM_PID=
  exec 7>&-
}
serve_week "$mta"
cp "$work/devices.conf" "$work/week.conf"
cp "$work/sim.err" "$work/week.err"
n_list=$(awk '/^ok list/ {print $3}' "$work/sim.out")
n_conf=$(grep -c '^\[turnstile ' "$work/week.conf" || true)
awk '/^\[turnstile / { sub(/^\[turnstile /, ""); sub(/\]$/, ""); print }' "$work/week.conf" |
  sort >"$work/conf.keys"
check "the simulator serves every turnstile of the file ($n_list)" \
  test "$n_list" -eq "$(wc -l <"$work/file.keys")"
check "its agent config holds every one of them ($n_conf)" cmp -s "$work/conf.keys" "$work/file.keys"
check "no name of the week had to be renamed" bash -c "! grep -q renamed '$work/week.err'"

# --- 2. one agent config per station: every one is accepted ---------------
# Blocks are separated by blank lines; a station's config gets the [device]
# sections its turnstiles use and its [turnstile] sections, names as written.
mkdir "$work/st"
awk -v dir="$work/st" '
  function flush() {
    if (block == "") return
    if (kind == "device") dev[name] = block
    else if (kind == "turnstile") {
      if (!(station in idx)) { idx[station] = ++n; printf "%d\t%s\n", n, station > (dir "/stations.tsv") }
      i = idx[station]; body[i] = body[i] "\n" block; uses[i, device] = 1
    }
    block = ""; kind = ""
  }
  /^#/ { next }
  /^$/ { flush(); next }
  /^\[device / { kind = "device"; name = substr($0, 9, length($0) - 9) }
  /^\[turnstile / { kind = "turnstile" }
  /^device = / { device = substr($0, 10) }
  /^station = / { station = substr($0, 11) }
  { block = block $0 "\n" }
  END {
    flush()
    for (i = 1; i <= n; i++) {
      f = dir "/station-" i ".conf"
      printf "[agent]\nid = st%d\nstation_id = ST-%d\n", i, i > f
      for (d in dev) if ((i, d) in uses) printf "\n%s", dev[d] > f
      printf "%s", body[i] > f
      close(f)
    }
  }' "$work/week.conf"
cut -f2- "$work/st/stations.tsv" | sort >"$work/conf.stations"
check "one config per station of the file ($(wc -l <"$work/conf.stations"))" \
  cmp -s "$work/conf.stations" "$work/file.stations"
refused=0
while IFS=$'\t' read -r i station; do
  if ! "$bin/turnstile-agent" --check-config -c "$work/st/station-$i.conf" >/dev/null 2>"$work/check.err"; then
    refused=$((refused + 1))
    [ "$refused" -gt 5 ] || echo "refused: $station: $(cat "$work/check.err")"
  fi
done <"$work/st/stations.tsv"
check "turnstile-agent --check-config accepts all $(wc -l <"$work/st/stations.tsv") station configs (refused $refused)" \
  test "$refused" -eq 0
apos=$(grep -c "'" "$work/file.stations" || true)
check "the file has stations whose names hold an apostrophe ($apos)" test "$apos" -gt 0
while read -r station; do
  i=$(awk -F'\t' -v s="$station" '$2 == s {print $1}' "$work/st/stations.tsv")
  want=$(awk -F'\t' -v s="$station" '$2 == s' "$work/file.ks" | wc -l)
  check "$station: its config holds its $want turnstiles, the name as in the file" \
    test -n "$i" -a "$(grep -cxF "station = $station" "$work/st/station-$i.conf")" -eq "$want"
done < <(grep "'" "$work/file.stations")

# --- 3. the same week as other publishers write it ------------------------
# CA for C/A, no index column, CR LF, a byte order mark, "EXITS" padded,
# every name (and some numbers) quoted; plain CSV, not gzip.
zcat -f "$mta" | awk -F, 'BEGIN { OFS = "," }
  NR == 1 { printf "\xef\xbb\xbf\"CA\",UNIT , SCP,STATION,linename,Division,DATE,TIME,DESC,ENTRIES,\"EXITS      \"\r\n"; next }
  { for (i = 2; i <= 7; i++) $i = "\"" $i "\""; $12 = "\"" $12 "\""; $1 = ""; sub(/^,/, ""); printf "%s\r\n", $0 }' \
  >"$work/week-other.csv"
serve_week "$work/week-other.csv"
# the same sections but for the device names, which carry the port
sed -E 's/sim-[0-9]+-slave/sim-P-slave/; /^port = /d' "$work/week.conf" >"$work/a.conf"
sed -E 's/sim-[0-9]+-slave/sim-P-slave/; /^port = /d' "$work/devices.conf" >"$work/b.conf"
check "the week as others write it: the same agent config, names and all" cmp -s "$work/a.conf" "$work/b.conf"

# --- 4. a name that would need quoting is refused where it enters ---------
# (the agent's config: file, line, section, key and why); an apostrophe is not
bad_name() { # NAME VALUE WHY
  local conf="$work/bad.conf" rc=0
  printf '[agent]\nid = a1\nstation_id = ST-1\n\n' >"$conf"
  sed -n '/^\[device /,/^$/p' "$work/st/station-1.conf" >>"$conf"
  printf "[turnstile X'1]\ndevice = %s\nca = X'1\nunit = R1\nscp = 00\nstation = %s\n" \
    "$(awk '/^\[device / {sub(/^\[device /, ""); sub(/\]$/, ""); print; exit}' "$conf")" "$2" >>"$conf"
  printf 'linename = L\ndivision = D\nentries_address = 0\nexits_address = 2\n' >>"$conf"
  "$bin/turnstile-agent" --check-config -c "$conf" >/dev/null 2>"$work/bad.err" || rc=$?
  if [ -z "$3" ]; then
    check "agent config: $1 is accepted" test "$rc" -eq 0
  else
    line=$(grep -an '^station = ' "$conf" | cut -d: -f1)
    check "agent config: $1 is refused naming file, line, section and key (exit $rc)" \
      bash -c "[ $rc -eq 78 ] && grep -qF \"$conf:$line: [turnstile X'1] station: $3\" '$work/bad.err'"
  fi
}
bad_name "an apostrophe" "B'WAY-LAFAYETTE" ""
bad_name "UTF-8" "CAFÉ" ""
bad_name "a comma" "FOO, BAR" "holds a comma"
bad_name "a double quote" 'FOO "BAR"' "holds a double quote"
bad_name "a byte that is not UTF-8" $'FOO \xff' "is not valid UTF-8"
bad_name "a C1 control character" $'FOO \xc2\x85' "holds a control character"

check "no sanitizer report from the simulator" bash -c "! grep -q Sanitizer '$work/week.err' '$work/sim.err'"
finish
