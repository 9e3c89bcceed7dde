#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/vm/test_vm_power_cut.sh [CUTS]   (default 3; TS_VM_CUTS=N too; TS_VM_SEED=N replays
# the moments)
#
# Real power cuts of a controller: the image of scripts/image boots in qemu-system-aarch64
# (TCG), its agent (default store settings: synchronous = full, WAL) polls a turnstile-sim
# replaying the MTA station "59 ST" on the host and publishes to the host's mosquitto; this
# test plays the bridge (it acknowledges the contiguous prefix it received). At a random
# moment while the agent writes, qemu is SIGKILLed: the guest's page cache, the ext4 journal's
# uncommitted transactions and SQLite's unsynced pages are gone, nothing is shut down. The
# same disk boots again (the kernel replays the ext4 journal, SQLite its WAL), the agent
# resumes. CUTS times. Then the simulator is paused, the agent reads the final registers, and
# the e2e harness's accounting decides: the truth per turnstile from the MTA file and the
# simulator's registers (tests/e2e/truth.awk) against the unique readings received
# (tests/integration/account.awk): nobody lost, nobody counted twice, no sequence number
# missing or covered twice, every duplicate (re-sent after a cut) identical. Last, the disk:
# e2fsck after the last cut, and the store read from it (debugfs, no mount): every number the
# agent handed out was received or is still in the store.
# Prints, per cut, its moment, what the agent had published, what its store held after the
# reboot (its own log line), the ext4 recovery, boot-to-READY and the cycle's length.
# Needs root (scripts/image) and qemu-system-arm (scripts/deps). ~50 s per cut here.
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"
cuts=${1:-${TS_VM_CUTS:-3}}
[[ $cuts =~ ^[0-9]+$ ]] && [ "$cuts" -ge 1 ] && [ "$cuts" -le 200 ] || { echo "usage: $0 [CUTS (1..200)]"; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "test_vm_power_cut: needs root (scripts/image)"; exit 1; }
for t in qemu-system-aarch64 sqlite3 debugfs e2fsck; do
  command -v "$t" >/dev/null || { echo "test_vm_power_cut: $t missing (scripts/deps)"; exit 1; }
done
mta=${TS_MTA_FILE:-$src/../shared/data/mta/turnstile_230603.csv.gz}
seed=${TS_VM_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$seed
work=$(mktemp -d /tmp/ts-vm-cut.XXXXXX)
sub_pid= acker_pid=
cleanup() {
  vm_cut
  for p in $sub_pid $acker_pid ${ST_SIM_PID[1]:-}; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  if [ -n "${TS_KEEP:-}" ] || [ "${fails:-0}" -gt 0 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/e2e/lib.sh"
. "$src/tests/vm/vm.sh"

# ~50 s of real time per cycle; the replay must stay inside the MTA week (05/27 to 06/02)
if [ "$cuts" -le 5 ]; then vm_station 600 '2023-05-31 20:00:00'
else vm_station "$(( 140 * 3600 / (cuts * 60 + 120) < 600 ? 140 * 3600 / (cuts * 60 + 120) : 600 ))" '2023-05-27 00:00:00'; fi
echo "vm power cut: $cuts cuts, seed $seed (TS_VM_SEED=$seed replays the moments), speed ${speed}x from $start_time"
broker_start
t=$SECONDS
vm_image
echo "image: $((SECONDS - t)) s ($(grep -q 'is current' "$work/image.log" && echo cached || echo built))"
vm_disk
topic=turnstile/v1/R051/vm-ctrl-01
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i vm-capture -t "$topic/readings" \
  >"$work/received.csv" 2>"$work/sub.err" &
sub_pid=$!
vm_acker "$topic" & acker_pid=$!
sim_registers 1 >"$work/regs.start"
t0=$(sim_time 1)

received() { awk -F, 'NF == 18' "$work/received.csv" | wc -l; }
max_seq() { awk -F, 'NF == 18 { split($12, id, ":"); if (id[2] + 0 > m) m = id[2] + 0 } END { print m + 0 }' "$work/received.csv"; }
wait_new() { # N SECONDS: until more than N readings were received
  for _ in $(seq $(($2 * 5))); do [ "$(received)" -gt "$1" ] && return 0; sleep 0.2; done
  return 1
}

vm_boot 0
ready=$(vm_wait_ready 0 300) || { check "first boot reaches READY" false; finish; exit 1; }
wait_new 0 60 || { check "readings arrive after the first boot" false; finish; exit 1; }
ssim 1 resume   # the agent has its baseline: the registers above
echo "boot 0: READY after $ready s"
printf '%-4s %7s %9s %-58s %-24s %6s %6s\n' cut "at (s)" published "store after reboot (the agent's log)" "ext4 at mount" READY cycle >"$work/cuts"
boot_times=("$ready") cycle_times=()
for i in $(seq "$cuts"); do
  # a random moment 4 to 15 s into the run: the agent commits a poll every 500 ms
  wait_s=$((4 + RANDOM % 12)).$((RANDOM % 10))
  sleep "$wait_s"
  before=$(max_seq) lines=$(received)
  tc=$(date +%s.%N)
  vm_cut
  vm_boot "$i"
  ready=$(vm_wait_ready "$i" 300) || { check "boot after cut $i reaches READY" false; break; }
  wait_new "$lines" 60 || { check "readings arrive after cut $i" false; break; }
  cycle=$(awk -v a="$tc" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  opened=$(grep -o 'store [^ ]*: opened: .*' "$work/boot-$i.log" | head -1 | sed 's/^store [^ ]*: opened: //; s/, synchronous.*//')
  ext4=$(grep -oE 'EXT4-fs \(vda\): (recovery complete|orphan cleanup on readonly fs|[0-9]+ orphan inodes? deleted)' "$work/boot-$i.log" |
           sed 's/EXT4-fs (vda): //' | paste -sd, || true)
  printf '%-4s %7s %9s %-58s %-24s %6s %6s\n' "$i" "+$wait_s" "1..$before" "${opened:-?}" "${ext4:-clean}" "$ready" "$cycle" >>"$work/cuts"
  boot_times+=("$ready") cycle_times+=("$cycle")
  echo "cut $i: +$wait_s s, published up to $before; after the reboot: ${opened:-?}; ext4: ${ext4:-clean}; READY $ready s, cycle $cycle s"
  # the agent's next number is past everything it had published before the cut
  next=$(sed -n 's/.*next seq \([0-9]*\).*/\1/p' <<<"$opened")
  check "cut $i: the store's next seq ($next) is past every number published before the cut ($before)" \
    test "${next:-0}" -gt "$before"
done

# the end: registers frozen, the agent reads them, everything arrives
sleep 3
ssim 1 pause
sim_registers 1 >"$work/regs.end"
t1=$(sim_time 1)
for _ in $(seq 150); do
  awk -f "$src/tests/integration/account.awk" "$work/received.csv" >"$work/account"
  done_=1
  while read -r _ _ scp e x; do
    read -r _ _ _ _ _ _ le lx < <(grep "^turnstile $scp " "$work/account") || true
    [ "${le:-} ${lx:-}" = "$e $x" ] || done_=0
  done <"$work/regs.end"
  [ "$done_" = 1 ] && [ "$(awk '$1 == "gaps" {print $2}' "$work/account")" -eq 0 ] && break
  sleep 0.4
done
sleep 2   # let the last acknowledgement reach the agent
awk -f "$src/tests/integration/account.awk" "$work/received.csv" >"$work/account"
vm_cut   # a last power cut: the store is read from the disk as it stands
cat "$work/cuts"

# the truth (the e2e harness's): MTA file + the registers at start and end
paste -d' ' "$work/regs.start" <(cut -d' ' -f4,5 "$work/regs.end") >"$work/keys"
zcat "$mta" | awk -v t0="$t0" -v t1="$t1" -v lpoll="$(lpoll 1)" -v lwin="$((240 * speed))" \
  -f "$src/tests/e2e/truth.awk" "$work/keys" - >"$work/truth"
# the disk: the journal replayed by e2fsck, then consistent; the store's files by debugfs
e2fsck -fy "$work/disk.ext4" >"$work/fsck1.log" 2>&1 && fsck1=0 || fsck1=$?
e2fsck -fn "$work/disk.ext4" >"$work/fsck2.log" 2>&1 && fsck2=0 || fsck2=$?
mkdir -p "$work/store"
for f in agent.db agent.db-wal; do
  debugfs -R "dump /var/lib/turnstile/$f $work/store/$f" "$work/disk.ext4" >/dev/null 2>&1 || true
done
generated=$(sqlite3 "$work/store/agent.db" 'select next_seq - 1 from meta' 2>/dev/null || echo 0)
generated=${generated:-0}
sqlite3 -separator ' ' "$work/store/agent.db" 'select seq, merged_from from readings' >"$work/pending" 2>/dev/null || true

get() { awk -v k="$1" '$1 == k {print $2}' "$work/account"; }
read -r lost_n twice_n <<<"$(awk -v gen="$generated" -v pending="$work/pending" '
  FILENAME == pending { for (k = $2; k <= $1; k++) held[k] = 1; next }
  NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2]; k++) { if (!(id[2] in seen)) cov[k]++ } seen[id[2]] = 1 }
  END { for (k = 1; k <= gen; k++) { if (!(k in cov) && !(k in held)) lost++; if (cov[k] > 1) twice++ }
        print lost + 0, twice + 0 }' FS=' ' "$work/pending" FS=, "$work/received.csv")"
people=$(join <(awk '{print $1 "/" $2 "/" $3, $4, $5}' "$work/truth" | sort) \
              <(awk '$1 == "turnstile" {print "A002/R051/" $2, $3, $4}' "$work/account" | sort) |
         awk '{ te += $2; tx += $3; le += $4; lx += $5
                d = $4 - $2; if (d < 0) lost -= d; else twice += d
                d = $5 - $3; if (d < 0) lost -= d; else twice += d
                if ($2 != $4 || $3 != $5) differ++ }
              END { print te + 0, tx + 0, le + 0, lx + 0, lost + 0, twice + 0, differ + 0, NR }')
read -r te tx re rx plost ptwice pdiffer nturn <<<"$people"
row() { printf '| %-46s | %13s |\n' "$1" "$2"; }
{
  echo "| accounting ($cuts power cuts, seed $seed)          |         value |"
  echo "|------------------------------------------------|---------------|"
  row "readings generated (the store's next_seq - 1)" "$generated"
  row "readings received (unique IDs)" "$(get readings)"
  row "  duplicates received (re-sent after cuts)" "$(get duplicates)"
  row "  still in the store (not acknowledged)" "$(wc -l <"$work/pending")"
  row "readings lost" "$lost_n"
  row "numbers covered twice" "$twice_n"
  row "gaps / overlaps in the numbers received" "$(get gaps) / $(get overlaps)"
  row "duplicates with differing content" "$(get differing_duplicates)"
  row "people in (truth / received)" "$te / $re"
  row "people out (truth / received)" "$tx / $rx"
  row "people lost" "$plost"
  row "people counted twice" "$ptwice"
  row "turnstiles differing (of $nturn)" "$pdiffer"
  row "e2fsck after the last cut (replay / check)" "$fsck1 / $fsck2"
} | tee "$work/table"
awk '$6 != "-" {print "  replay anomaly valued by truth.awk: " $1 "/" $2 "/" $3 ": " $6}' "$work/truth"
echo "boot to READY (s): ${boot_times[*]}"
echo "cut cycle, SIGKILL to new readings (s): ${cycle_times[*]}"

check "every cut rebooted and the agent published again" test "${#cycle_times[@]}" -eq "$cuts"
check "readings received" test "$(get readings)" -gt 100
check "the store was read from the disk" test "$generated" -gt 0
check "no reading lost (every number received or still stored)" test "$lost_n" -eq 0
check "no number covered twice" test "$twice_n" -eq 0
check "no gap, no overlap in the numbers received" test "$(get gaps) $(get overlaps)" = "0 0"
check "duplicates are identical" test "$(get differing_duplicates)" -eq 0
check "no malformed payload" test "$(get malformed)" -eq 0
check "6 turnstiles in the truth and in the readings" test "$nturn" -eq 6
check "nobody lost ($plost)" test "$plost" -eq 0
check "nobody counted twice ($ptwice)" test "$ptwice" -eq 0
check "people passed while the test ran" test "$te" -gt 0
check "e2fsck: the replayed journal leaves a consistent filesystem" test "$fsck1" -le 1 -a "$fsck2" -eq 0
check "the guest's journals have no agent error" \
  bash -c "! grep -hE 'turnstile-agent\[[0-9]+\]: (error|critical)' '$work'/boot-*.log"
finish
