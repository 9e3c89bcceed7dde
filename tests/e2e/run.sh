#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The end-to-end proof (docs/e2e.md): three station controllers, each in its own
# network namespace with its gate simulator (the real MTA week) and its agent;
# mosquitto, Kafka and turnstile-bridge on the central side. Faults are applied,
# then every reading and every person is accounted for. A webhook source
# (webhook_client.py) POSTs readings to the bridge throughout, retrying each
# request that got no 200, and is accounted for as an agent.
#
#   tests/e2e/run.sh [--faults all|LIST]          each fault once, in turn (ctest)
#   tests/e2e/run.sh --soak 30m [--seed N]        faults mixed at random for 30 min
#   tests/e2e/run.sh --cluster [--faults ...]     Kafka as a 3-node cluster; by default
#                                                 its faults only (leader kill, quorum
#                                                 loss, rolling restart, partitions added)
#   tests/e2e/run.sh --cluster --lake s3          the lake on S3Proxy, written by two bridges
#                                                 in one group; adds the object store's faults
#                                                 (tests/e2e/s3lake.sh; ctest e2e_cluster)
#   options: --keep (keep the work directory), --speed X (simulated s per real s)
#
# Needs root (ip netns, veth, tmpfs). Exit 0: nothing lost, nothing counted twice.
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${TS_BIN_DIR:-$src/build/bin}
mta=${TS_MTA_FILE:-$src/../shared/data/mta/turnstile_230603.csv.gz}
export TS_BIN_DIR=$bin TS_SRC_DIR=$src

faults= soak_s=0 seed= keep=${TS_KEEP:-} speed= cluster=0 lake=posix
while [ $# -gt 0 ]; do
  case $1 in
    --faults) faults=$2; shift ;;
    --cluster) cluster=1 ;;
    --lake) lake=$2; shift
      case $lake in posix|s3) ;; *) echo "run.sh: --lake posix or s3" >&2; exit 2 ;; esac ;;
    --soak)
      case $2 in
        *h) soak_s=$((${2%h} * 3600)) ;; *m) soak_s=$((${2%m} * 60)) ;;
        *s) soak_s=${2%s} ;; *) soak_s=$2 ;;
      esac
      shift ;;
    --seed) seed=$2; shift ;;
    --speed) speed=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "e2e: needs root (network namespaces); skipped"; exit 77; }
[ -r "$mta" ] || { echo "e2e: MTA file $mta not found (TS_MTA_FILE)" >&2; exit 1; }
[ -x "$bin/turnstile-agent" ] && [ -f "$bin/e2e-synced-fs.so" ] || { echo "e2e: build first (scripts/build)" >&2; exit 1; }

if [ "$soak_s" -gt 0 ]; then
  seed=${seed:-$(( $(date +%s) % 100000 ))}
  # the whole week (05/27 00:00 to 06/02 about 21:00) over the soak, plus a margin
  start_time='2023-05-27 00:00:00'
  speed=${speed:-$(( (165 * 3600) / (soak_s + 120) ))}
  [ "$speed" -ge 60 ] || speed=60
else
  seed=${seed:-1}
  # the reset at AVENUE U (06/01 13:00) comes about 100 s in at 600x
  start_time='2023-05-31 20:00:00'
  speed=${speed:-600}
fi
RANDOM=$seed
echo "e2e: seed $seed (replay with --seed $seed), speed ${speed}x from $start_time"

work=$(mktemp -d /tmp/ts-e2e.XXXXXX)
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/integration/kafka.sh"
. "$src/tests/integration/bridge.sh"
. "$src/tests/e2e/lib.sh"
. "$src/tests/e2e/s3lake.sh"
lake_dir=$work/lake   # the lake the accounting reads (--lake s3: the bucket's objects)

cleanup() {
  set +e
  local n m
  for n in 1 2 3; do agent_kill "$n"; done
  for n in 1 2 3; do [ -n "${ST_SIM_PID[$n]:-}" ] && kill -9 "${ST_SIM_PID[$n]}" 2>/dev/null; done
  [ -n "$capture_pid" ] && kill "$capture_pid" 2>/dev/null
  [ -n "${bg_pid:-}" ] && kill "$bg_pid" 2>/dev/null
  [ -n "${wh_pid:-}" ] && kill "$wh_pid" 2>/dev/null
  http_gate_cleanup
  for n in "${!BRIDGE_PID[@]}"; do bridge_kill "$n"; done
  wait 2>/dev/null
  broker_cleanup 2>/dev/null
  kafka_cleanup 2>/dev/null
  net_cleanup
  for m in "${E2E_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  if [ -n "$keep" ]; then echo "e2e: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "e2e: line $LINENO failed: $BASH_COMMAND" >&2' ERR

# the faults to run in turn: one node, every fault by default; a cluster, its
# own by default ("cluster"), and "all" adds every other
list=
faults=${faults:-$([ "$cluster" = 1 ] && echo cluster || echo all)}
for f in ${faults//,/ }; do
  case $f in
    cluster) list+=" $CLUSTER_FAULTS" ;;
    all) list+=" $ALL_FAULTS"; [ "$cluster" = 0 ] || list+=" $CLUSTER_FAULTS" ;;
    *) list+=" $f" ;;
  esac
done
s3lake_faults   # --lake s3: adjusts $list; s3_* faults need it (s3lake.sh)
for f in $list; do
  declare -F "fault_$f" >/dev/null ||
    { echo "e2e: no fault '$f' (faults: $ALL_FAULTS; with --cluster: $CLUSTER_FAULTS; with --lake s3: $S3_FAULTS)" >&2; exit 2; }
  case $f in kafka_*) [ "$f" = kafka_outage ] || [ "$cluster" = 1 ] ||
    { echo "e2e: fault '$f' needs --cluster" >&2; exit 2; } ;;
  esac
done

t_begin=$SECONDS
# --- set up -----------------------------------------------------------------------
for n in 1 2 3; do net_up "$n"; done
E2E_MQTT_PORT=$(free_port)
listeners=$(for n in 1 2 3; do echo "listener $E2E_MQTT_PORT ${ST_HOST_IP[$n]}"; done)
broker_start --conf "max_queued_messages 1000000
$listeners"
if [ "$cluster" = 1 ]; then
  kafka_cluster_start 3   # replication factor 3, min.insync.replicas 2 (kafka.sh)
else
  kafka_start
fi
kafka_create_topic turnstile.readings 4
kafka_create_topic turnstile.deadletter 1
# the webhook source e2e-wh (station E2E-WH): POSTs to the bridge's listener
mkdir -p "$work/wh"
printf 'e2e-webhook-token-%s\n' "$RANDOM$RANDOM" >"$work/wh/token"
wh_port=$(free_port)
bridge_conf "$work/bridge.conf" b1 "keep_checkpoints = 100000
[http]
listen = 127.0.0.1:$wh_port
[webhook]
max_readings = 100
request_timeout_ms = 5000
[webhook_source e2e-wh]
station = E2E-WH
token_file = $work/wh/token"
if [ "$cluster" = 1 ]; then
  # a producer queue that the quorum loss fills: the relay must back-pressure;
  # checkpoints at the production default (5 s, not 0.5 s): state changed
  # since the last one is what a revocation checkpoints
  sed -i 's/^\[kafka\]$/[kafka]\nqueue_max_messages = 1500/; s/^checkpoint_interval_ms = .*/checkpoint_interval_ms = 5000/' "$work/bridge.conf"
fi
[ "$lake" = posix ] || s3lake_setup   # S3Proxy, [lake] url in bridge.conf, the second bridge's config
capture_start
bridge_up
http_gate_setup   # station 2's HTTP gate controller: its port goes into the agent's config
http_gate_registers >"$work/gate/regs.start"
[ "$lake" = posix ] || bridge2_up
for n in 1 2 3; do sim_up "$n"; station_setup "$n"; done
for n in 1 2 3; do sim_registers "$n" >"$work/st$n/regs.start"; done
t0=$(sim_time 1)
for n in 1 2 3; do agent_start "$n"; done
/usr/bin/python3 "$src/tests/e2e/webhook_client.py" "http://127.0.0.1:$wh_port/v1/readings" \
  "$(cat "$work/wh/token")" e2e-wh "$work/wh" 2>"$work/wh/client.err" &
wh_pid=$!
sleep 5   # every agent has its baseline (the registers above) before the clocks run
sim_all resume
http_gate_people   # people pass the HTTP gate controller from now on
log "set up in $((SECONDS - t_begin)) s: 3 stations ($(cat "$work"/st?/regs.start | wc -l) turnstiles), mosquitto :$BROKER_PORT/:$E2E_MQTT_PORT, Kafka $KAFKA_BOOTSTRAP ($KAFKA_NODES node(s))$([ "$lake" = posix ] || echo ", lake s3://lake/e2e on S3Proxy $S3PROXY_ENDPOINT, bridges b1 b2")"
bridge_pid0=${BRIDGE_PID[b1]}

# --- faults -------------------------------------------------------------------------
run_fault() { # NAME
  local t=$SECONDS
  FAULT_NOTE=
  "fault_$1"
  log "fault $1 ($((SECONDS - t)) s): $FAULT_NOTE"
  echo "$1" >>"$work/faults.done"
}
if [ "$soak_s" -gt 0 ]; then
  kafka_down_s=60
  deadline=$((SECONDS + soak_s))
  fg=() bgl=()
  soak_list=$ALL_FAULTS
  [ "$cluster" = 0 ] || soak_list="$ALL_FAULTS $CLUSTER_FAULTS"
  for f in $soak_list; do
    case " $BACKGROUND_FAULTS " in *" $f "*) bgl+=("$f") ;; *) fg+=("$f") ;; esac
  done
  step=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    step=$((step + 1))
    bg_pid=
    if [ $((RANDOM % 2)) = 0 ]; then   # a fault in the background, overlapping the next
      b=${bgl[RANDOM % ${#bgl[@]}]}
      ( run_fault "$b" ) &
      bg_pid=$!
    fi
    if [ $((RANDOM % 3)) != 0 ]; then run_fault "${fg[RANDOM % ${#fg[@]}]}"; fi
    [ -z "$bg_pid" ] || wait "$bg_pid" || true
    bg_pid=
    sleep "$((RANDOM % 8 + 2))"
    for n in 1 2 3; do   # nothing may stay down between steps
      kill -0 "${ST_AGENT_PID[$n]}" 2>/dev/null || { log "agent $n had died: restarted"; agent_start "$n"; }
    done
    kill -0 "${BRIDGE_PID[b1]:-0}" 2>/dev/null || { log "the bridge had died: restarted"; bridge_up; }
    [ "$lake" = posix ] || kill -0 "${BRIDGE_PID[b2]:-0}" 2>/dev/null || { log "bridge b2 had died: restarted"; bridge2_up; }
  done
else
  for f in $list; do
    run_fault "$f"
    sleep 2
  done
  sleep 5
fi
for n in 1 2 3; do link_up "$n"; done
echo "1 0" >"$work/st1/clock"

# --- quiesce: freeze the registers, let the agents read them, stop the readings -----
sim_all pause
http_gate_people_stop
t1=$(sim_time 1)
for n in 1 2 3; do sim_registers "$n" >"$work/st$n/regs.end"; done
http_gate_registers >"$work/gate/regs.end"
sleep 3
for n in 1 2 3; do ssim "$n" silent 1 on; ssim "$n" silent 2 on; done   # no more readings
http_gate_down   # nor from the HTTP gate (a reading every poll, even of nobody)
touch "$work/wh/stop"   # the webhook client: its batch in hand answered 200, then no more
wait "$wh_pid" || true
wh_pid=
log "traffic stopped after $((SECONDS - t_begin)) s; simulated $(( (t1 - t0) / 3600000 )) h"

# Kafka's readings topic, as "PARTITION OFFSET PAYLOAD"
kafka_dump() {
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%p %o %s\n' 2>/dev/null
}
# "AGENT NEXT_SEQ-1" from each agent's store
store_heads() {
  local n
  for n in 1 2 3; do
    local db=$work/st$n/store/agent.db
    [ "$n" = 3 ] && db=$work/st3/disk/agent.db
    echo "e2e-st$n $(sqlite3 "file:$db?mode=ro" 'select next_seq - 1 from meta' 2>/dev/null || echo -1)"
  done
  cat "$work/wh/head" 2>/dev/null || echo "e2e-wh -1"   # the webhook client's numbers made
}
# per-agent highest number covered from 1 without a gap, in Kafka
kafka_contiguous() {
  awk '{ p = $0; sub(/^[0-9]+ [0-9]+ /, "", p); n = split(p, f, ","); if (n != 18) next
         split(f[12], id, ":"); for (k = f[18]; k <= id[2] + 0; k++) have[id[1], k] = 1; ag[id[1]] = 1 }
       END { for (a in ag) { c = 0; while ((a SUBSEP (c + 1)) in have) c++; print a, c } }' "$1"
}
# the lake: files listed in the checkpoints, summed per turnstile
lake_listed() {
  cat "$lake_dir"/turnstile/_manifest/*/*.ckpt 2>/dev/null | awk '$1 == "file" {print $2, $10}' | sort -u
}
lake_sums_listed() { # "CA UNIT SCP ENTRIES EXITS"
  local f late
  lake_listed | while read -r f late; do if [ -f "$lake_dir/$f" ]; then zcat "$lake_dir/$f" | tail -n +2; fi; done |
    awk -F, '{ k = $2 " " $3 " " $4; e[k] += $11; x[k] += $12 } END { for (k in e) print k, e[k], x[k] }' | sort
}
kafka_sums() { # unique readings per turnstile: "CA UNIT SCP ENTRIES EXITS"
  awk '{ p = $0; sub(/^[0-9]+ [0-9]+ /, "", p); n = split(p, f, ","); if (n != 18 || (f[12] in seen)) next
         seen[f[12]] = 1; k = f[1] " " f[2] " " f[3]; e[k] += f[10]; x[k] += f[11] }
       END { for (k in e) print k, e[k], x[k] }' "$1" | sort
}

log "waiting for Kafka to hold every reading and the lake to hold every person..."
converged=0
for _ in $(seq 120); do
  kafka_dump >"$work/kafka.txt"
  store_heads >"$work/heads"
  kafka_contiguous "$work/kafka.txt" >"$work/contig"
  kafka_sums "$work/kafka.txt" >"$work/kafka.sums"
  lake_sums_listed >"$work/lake.sums"
  if [ "$(join <(sort "$work/heads") <(sort "$work/contig") | awk '$2 >= 0 && $3 >= $2' | wc -l)" = 4 ] &&
     cmp -s "$work/kafka.sums" "$work/lake.sums"; then converged=1; break; fi
  sleep 2
done
log "converged: $converged ($((SECONDS - t_begin)) s)"
for n in 1 2 3; do agent_kill "$n" TERM; done
bridge_pid_end=${BRIDGE_PID[b1]:-}
bridge_kill b1 TERM
[ "$lake" = posix ] || bridge_kill b2 TERM
kill "$capture_pid" 2>/dev/null || true; wait "$capture_pid" 2>/dev/null || true; capture_pid=

# --- accounting -----------------------------------------------------------------------
kafka_dump >"$work/kafka.txt"
kafka_sums "$work/kafka.txt" >"$work/kafka.sums"
lake_sums_listed >"$work/lake.sums"
store_heads >"$work/heads"
for n in 1 2 3; do   # rows still in the stores (not acknowledged): "SEQ MERGED_FROM ENTRIES EXITS"
  db=$work/st$n/store/agent.db; [ "$n" = 3 ] && db=$work/st3/disk/agent.db
  sqlite3 -separator ' ' "file:$db?mode=ro" 'select seq, merged_from, entries, exits from readings' \
    2>/dev/null | sed "s/^/e2e-st$n /"
done >"$work/pending"
cat "$work/wh/pending" >>"$work/pending" 2>/dev/null || true   # a batch that never got its 200

# the truth, from the MTA file and the simulator's registers
for n in 1 2 3; do
  paste -d' ' "$work/st$n/regs.start" <(cut -d' ' -f4,5 "$work/st$n/regs.end") >"$work/st$n/keys"
  zcat "$mta" | awk -v t0="$t0" -v t1="$t1" -v lpoll="$(lpoll "$n")" -v lwin="$((240 * speed))" -f "$src/tests/e2e/truth.awk" \
    "$work/st$n/keys" - >"$work/st$n/truth"
done
# the webhook source's truth: what it made (sent.csv), per SCP
{ cat "$work"/st?/truth | awk '{print $1, $2, $3, $4, $5}'
  awk -F, '{ k = $1 " " $2 " " $3; e[k] += $10; x[k] += $11 } END { for (k in e) print k, e[k], x[k] }' "$work/wh/sent.csv"
  # the HTTP gate controller's: what its counters moved from the agent's baseline to the end
  paste -d' ' "$work/gate/regs.start" <(cut -d' ' -f4,5 "$work/gate/regs.end") | awk '{print $1, $2, $3, $6 - $4, $7 - $5}'
} | sort >"$work/truth.sums"

# readings: generated (numbers handed out), published (seen on MQTT), in Kafka, lost, twice
awk -v heads="$work/heads" -v pending="$work/pending" -v capture="$work/capture.txt" '
  BEGIN {
    while ((getline l < heads) > 0) { split(l, w, " "); gen[w[1]] = w[2] }
    while ((getline l < pending) > 0) { split(l, w, " "); for (k = w[3]; k <= w[2]; k++) pend[w[1], k] = 1 }
    while ((getline l < capture) > 0) {
      sub(/^[^ ]+ /, "", l); n = split(l, f, ","); if (n != 18) continue
      if (!(f[12] in pub)) { pub[f[12]] = 1; npub++ }
    }
  }
  { p = $0; sub(/^[0-9]+ [0-9]+ /, "", p); n = split(p, f, ","); if (n != 18) { bad++; next }
    if (f[12] in line) { dup++; if (line[f[12]] != p) diff++; next }
    line[f[12]] = p; uniq++
    split(f[12], id, ":")
    merged += id[2] - f[18]
    for (k = f[18]; k <= id[2] + 0; k++) { if ((id[1], k) in cov) over++; cov[id[1], k] = 1 } }
  END {
    for (ag in gen) for (k = 1; k <= gen[ag]; k++) {
      g++
      if ((ag, k) in cov) continue
      if ((ag, k) in pend) pending_n++; else { lost++; if (lost <= 10) print "LOST " ag ":" k > "/dev/stderr" }
    }
    for (i in pub) if (!(i in line)) { split(i, id, ":"); if (!((id[1], id[2]) in pend)) publost++ }
    printf "generated %d\npublished %d\nkafka_unique %d\nkafka_duplicates %d\ndiffering_duplicates %d\n", g, npub, uniq, dup, diff
    printf "lost %d\npublished_not_in_kafka %d\npending %d\ncovered_twice %d\nkafka_not_readings %d\nmerged_numbers %d\n", lost, publost, pending_n, over, bad, merged
  }' "$work/kafka.txt" >"$work/account"
get() { awk -v k="$1" '$1 == k {print $2}' "$work/account"; }

# the lake: every visible file listed by a checkpoint, every listed file there, sums as recorded
lake_listed >"$work/listed"
find "$lake_dir" -name '*.csv.gz' ! -name '.*' -path '*/event_date=*' | sed "s|^$lake_dir/||" | sort >"$work/visible"
unlisted=$(comm -13 <(cut -d' ' -f1 "$work/listed" | sort) "$work/visible" | wc -l)
missing=$(comm -23 <(cut -d' ' -f1 "$work/listed" | sort) "$work/visible" | wc -l)
late_rows=0
while read -r f late; do
  if [ "$late" = 1 ] && [ -f "$lake_dir/$f" ]; then
    late_rows=$((late_rows + $(zcat "$lake_dir/$f" | tail -n +2 | wc -l)))
  fi
done <"$work/listed"
bad_sums=$(cat "$lake_dir"/turnstile/_manifest/*/*.ckpt | awk -v root="$lake_dir" '$1 == "file" {
    cmd = "zcat \"" root "/" $2 "\" | tail -n +2"; e = 0; x = 0; r = 0
    while ((cmd | getline l) > 0) { split(l, c, ","); e += c[11]; x += c[12]; r++ }
    close(cmd); if (e != $6 || x != $8 || r != $4) bad++ } END { print bad + 0 }')
dead=$(kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q -f 'x%k\n' 2>/dev/null | grep -c '^x' || true)
# the lake covers Kafka: each partition's latest checkpoint resumes after its last message
uncovered=0
for p in $(seq 0 $(($(_kafka_partitions turnstile.readings | wc -l) - 1))); do
  hi=$(awk -v p="$p" '$1 == p { if ($2 + 1 > m) m = $2 + 1 } END { print m + 0 }' "$work/kafka.txt")
  ck=$(find "$lake_dir/turnstile/_manifest/turnstile.readings-$p" -name '*.ckpt' 2>/dev/null | sort | tail -1 || true)
  next_off=0
  [ -z "$ck" ] || next_off=$(awk '$1 == "offset_next" {print $2}' "$ck")
  [ "$next_off" -ge "$hi" ] || { uncovered=$((uncovered + hi - next_off)); echo "partition $p: lake resumes at $next_off, Kafka has $hi"; }
done

# people: per turnstile, truth vs lake vs Kafka (unique readings)
join -j1 <(awk '{print $1 "/" $2 "/" $3, $4, $5}' "$work/truth.sums" | sort) \
     <(awk '{print $1 "/" $2 "/" $3, $4, $5}' "$work/lake.sums" | sort) -a1 -e 0 -o 0,1.2,1.3,2.2,2.3 |
  join -j1 - <(awk '{print $1 "/" $2 "/" $3, $4, $5}' "$work/kafka.sums" | sort) -a1 -e 0 -o 0,1.2,1.3,1.4,1.5,2.2,2.3 \
  >"$work/people"
awk '{ te += $2; tx += $3; le += $4; lx += $5
       d = $4 - $2; if (d < 0) lostp -= d; else twice += d
       d = $5 - $3; if (d < 0) lostp -= d; else twice += d
       if ($2 != $4 || $3 != $5 || $4 != $6 || $5 != $7) { bad++; print "MISMATCH " $0 > "/dev/stderr" } }
     END { printf "true_entries %d\ntrue_exits %d\nlake_entries %d\nlake_exits %d\npeople_lost %d\npeople_twice %d\nturnstiles_differing %d\nturnstiles %d\n",
           te, tx, le, lx, lostp, twice, bad, NR }' "$work/people" >>"$work/account"

echo
echo "faults applied: $(sort "$work/faults.done" 2>/dev/null | uniq -c | awk '{printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1}')"
echo "anomalies in the replay (truth.awk notes):"
cat "$work"/st?/truth | awk '$6 != "-" {print "  " $1 "/" $2 "/" $3 ": " $6}' | sed 's/,/, /g' | head -20
echo
printf '| %-46s | %13s |\n' "accounting (seed $seed, ${speed}x, $(( (t1 - t0) / 3600000 )) h simulated)" value
printf '|%s|%s|\n' "------------------------------------------------" "---------------"
row() { printf '| %-46s | %13s |\n' "$1" "$2"; }
row "readings generated (sequence numbers)" "$(get generated)"
row "readings published (seen on MQTT)" "$(get published)"
row "readings in Kafka (unique IDs) = in the lake" "$(get kafka_unique)"
row "  numbers merged into them (MERGED_FROM)" "$(get merged_numbers)"
row "  duplicates in Kafka (removed by the bridge)" "$(get kafka_duplicates)"
row "  still in an agent's store (never acked)" "$(get pending)"
row "readings lost" "$(get lost)"
row "published, not in Kafka" "$(get published_not_in_kafka)"
row "readings counted twice (numbers covered 2x)" "$(get covered_twice)"
row "duplicates with differing content" "$(get differing_duplicates)"
row "Kafka offsets not covered by the lake" "$uncovered"
row "lake files: listed / unlisted / missing" "$(wc -l <"$work/listed") / $unlisted / $missing"
row "lake files whose sums differ from the manifest" "$bad_sums"
row "late rows" "$late_rows"
[ "$lake" = posix ] || s3lake_rows   # the object store's rows of the table (s3lake.sh)
row "dead-lettered (injected)" "$dead ($E2E_DEADLETTERS)"
wh_stat() { awk -v k="$1" '{ for (i = 1; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$work/wh/stats" 2>/dev/null; }
row "webhook: readings POSTed (e2e-wh)" "$(awk '{print $2}' "$work/wh/head" 2>/dev/null)"
row "webhook: requests / retried (timeout or 503)" "$(wh_stat requests) / $(wh_stat timeouts)"
gate_people() { # the HTTP gate's turnstiles in $work/people: "TRUTH_IN/OUT LAKE_IN/OUT"
  awk -v ca="$E2E_GATE_CA" -v unit="$E2E_GATE_UNIT" -v scps=" $E2E_GATE_SCPS " '
    { split($1, k, "/") } k[1] == ca && k[2] == unit && index(scps, " " k[3] " ") {
      te += $2; tx += $3; le += $4; lx += $5; n++ }
    END { printf "%d %d/%d %d/%d\n", n, te, tx, le, lx }' "$work/people"
}
gate_recovered=$(awk -F, -v ca="$E2E_GATE_CA" -v unit="$E2E_GATE_UNIT" '$1 ~ ca && $2 == unit && $3 ~ /^09-/ && $9 == "RECOVR AUD"' \
  "$work/capture.txt" | wc -l)
row "http gate: outages / people in, out (truth)" "$E2E_GATE_OUTAGES / $(gate_people | cut -d' ' -f2)"
row "http gate: people in, out (lake)" "$(gate_people | cut -d' ' -f3)"
row "people in (truth / lake)" "$(get true_entries) / $(get lake_entries)"
row "people out (truth / lake)" "$(get true_exits) / $(get lake_exits)"
row "people lost" "$(get people_lost)"
row "people counted twice" "$(get people_twice)"
row "turnstiles differing (of $(get turnstiles))" "$(get turnstiles_differing)"
echo
echo "per turnstile (CA/UNIT/SCP: truth in/out | lake in/out | Kafka in/out):"
awk '{printf "  %-22s %9d %9d | %9d %9d | %9d %9d%s\n", $1, $2, $3, $4, $5, $6, $7, ($2 != $4 || $3 != $5) ? "  <-- differs" : ""}' "$work/people"

check "converged: Kafka holds every reading, the lake every reading of Kafka" test "$converged" = 1
check "readings were generated" test "$(get generated)" -gt 1000
check "no reading lost" test "$(get lost)" = 0 -a "$(get published_not_in_kafka)" = 0
check "no reading counted twice" test "$(get covered_twice)" = 0 -a "$(get differing_duplicates)" = 0
check "the lake covers every Kafka offset" test "$uncovered" = 0
check "every visible lake file is listed in a checkpoint, and every listed one exists" test "$unlisted" = 0 -a "$missing" = 0
check "lake files' sums equal their checkpoint records" test "$bad_sums" = 0
check "people: per turnstile the lake equals the truth (nobody lost, nobody twice)" test "$(get turnstiles_differing)" = 0
check "dead letters: exactly the malformed messages injected" test "$dead" = "$E2E_DEADLETTERS"
check "the webhook source made readings and got every batch answered 200" \
  bash -c "[ \"\$(awk '{print \$2}' '$work/wh/head')\" -gt 0 ] && [ ! -s '$work/wh/pending' ]"
if grep -qwE 'kafka_outage|bridge_kill|kafka_quorum_loss' "$work/faults.done" 2>/dev/null; then
  check "the webhook source retried requests that timed out (Kafka or the bridge away)" test "$(wh_stat timeouts)" -gt 0
fi
if grep -qw http_gate "$work/faults.done" 2>/dev/null; then
  check "the HTTP gate controller went away and came back: the agent logged its faults and read it again ($E2E_GATE_BACK of $E2E_GATE_OUTAGES)" \
    test "$E2E_GATE_BACK" = "$E2E_GATE_OUTAGES" -a "$E2E_GATE_OUTAGES" -gt 0
  check "the HTTP gate's first reading after an outage is RECOVR AUD ($gate_recovered)" test "$gate_recovered" -gt 0
fi
check "the HTTP gate's people are in the truth and the lake has them, once ($(gate_people))" \
  bash -c "set -- $(gate_people); [ \$1 = 2 ] && [ \$2 = \$3 ] && [ \${2%%/*} -gt 0 ]"
if grep -qw partition_one "$work/faults.done" 2>/dev/null; then
  check "late rows written (a partition longer than the window)" test "$late_rows" -gt 0
fi
if grep -qw bridge_kill "$work/faults.done" 2>/dev/null && [ "$soak_s" = 0 ]; then
  check "the bridge was killed at least once with a lake file half written" test "$E2E_MIDFILE" -gt 0
fi
if grep -qw power_cut "$work/faults.done" 2>/dev/null; then
  # a cut that discarded nothing proves nothing: the shim cuts while the WAL
  # holds unsynced commits, and each must have lost bytes
  check "every power cut landed while unsynced commits existed and discarded them ($E2E_POWER_CUTS_DISCARDING of $E2E_POWER_CUTS)" \
    test "$E2E_POWER_CUTS_DISCARDING" = "$E2E_POWER_CUTS"
fi
if grep -qw disk_full "$work/faults.done" 2>/dev/null; then
  check "station 3 reported its disk full and wrote again" \
    bash -c "grep -Eqi 'full|no space' '$work/st3/agent.err' && grep -q 'writing again' '$work/st3/agent.err'"
fi
if [ "$cluster" = 1 ]; then
  # the bridge must ride out every fault of the cluster by itself
  check "the bridge never exited during a Kafka fault ($(cat "$work/bridge_exits" 2>/dev/null | tr '\n' ' '))" test "$E2E_BRIDGE_EXITS" = 0
  if grep -qw kafka_quorum_loss "$work/faults.done" 2>/dev/null; then
    check "quorum loss: produce stalled (the relay delivered nothing for 20 s)" test "$E2E_QUORUM_STALLED" -ge 1
    check "quorum loss: the relay back-pressured (its producer queue was full)" grep -q 'Kafka producer queue full' "$work/b1.err"
    check "quorum loss: the same bridge process before and after, no restart" test "$E2E_QUORUM_SURVIVED" -ge 1
  fi
  if grep -qw kafka_add_partitions "$work/faults.done" 2>/dev/null; then
    check "partitions added: the procedure moved the agents and readings reach the new partitions" \
      test "$E2E_REPARTITIONED" -ge 1
  fi
  # the repartition procedure restarts the bridge by design
  if ! grep -qwE 'bridge_kill|kafka_add_partitions' "$work/faults.done" 2>/dev/null; then
    check "one bridge process for the whole run" test "$bridge_pid_end" = "$bridge_pid0"
  fi
  log "aggregator: $(grep -c 'aggregate: consumer failed for good' "$work/b1.err" || true) consumer failure(s) (fenced), $(grep -c 'aggregate: new Kafka consumer' "$work/b1.err" || true) new consumer(s)"
fi
[ "$lake" = posix ] || s3lake_checks   # the object store's faults and the bucket (s3lake.sh)
check "no sanitizer report" bash -c "! cat '$work'/st?/agent.err '$work'/b?.err | grep -q 'Sanitizer'"
log "total $((SECONDS - t_begin)) s"
if [ "$fails" -gt 0 ]; then
  keep=1
  echo "--- bridge log tail"; tail -15 "$work/b1.err"
fi
finish
