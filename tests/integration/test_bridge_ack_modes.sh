#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What each [bridge] ack_after mode guarantees when a partition's lake cannot
# commit and Kafka deletes records the lake never took (docs/bridge.md,
# "Retention"). One mosquitto, one Kafka, one simulator, two bridges side by
# side:
#   bk  ack_after = kafka, topic tk (2 partitions), agents k0a (partition 0)
#       and k1a (partition 1), on the broker's plain listener;
#   bl  ack_after = lake,  topic tl (1 partition), agent l0a, on a second
#       mosquitto (neither relay sees the other's agents).
# Only partition 0 of each topic fails: its manifest directory is a small
# tmpfs of its own that the test fills (checkpoints fail with ENOSPC); the
# data files and every other partition are on the ordinary disk. Both topics
# declare retention.ms = 30 s (Kafka deletes nothing by itself here: only
# closed segments expire and none closes); the test deletes records with
# DeleteRecordsCommand at a moment it chooses, which is what retention does
# to a lake stuck for too long. It shows:
#   - failing checkpoints back off (5, 10, 20 s between attempts), are logged
#     with their count, put the bridge's retained status to "degraded" and
#     systemd's STATUS to "DEGRADED: ...", and partition 1 keeps committing;
#   - kafka mode: the agent's acks keep advancing while the lake is stuck;
#     after the deletion exactly the deleted records the lake never took are
#     reported lost (log, records_lost, the status's problems), the lake
#     misses exactly the people of those readings, and the agent's acks do
#     not stall for good;
#   - lake mode: the agent's ack never passes what the last checkpoint holds
#     while the lake is stuck; after the deletion the agent re-sends and the
#     lake's sums equal the registers' movement exactly;
#   - the backlog nearing the retention is warned of (log and status);
#   - Kafka frozen (SIGSTOP): kafka mode's acks stand still, and every number
#     an ack ever covered is in Kafka.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-ackmodes.XXXXXX)
declare -A agent_pid=()
notify_pid= mq2_pid=
cleanup() {
  [ -z "${KAFKA_PID:-}" ] || kill -CONT "$KAFKA_PID" 2>/dev/null || true
  bridge_test_cleanup $notify_pid $mq2_pid   # and the tmpfs mounted on the tk-0, tl-0 manifests
}
trap cleanup EXIT
. "$src/tests/integration/bridge.sh"

# --- helpers --------------------------------------------------------------
# the bridges' and agents' retained messages; PORT: the broker's (default bk's)
retained() { mosquitto_sub -p "${2:-$BROKER_PORT}" -t "$1" -C 1 -W 2 2>/dev/null || true; }
ack_of() { retained "turnstile/v1/ST-$1/$1/ack" "${2:-}"; }            # AGENT [PORT]
# (an agent's retained state has its backlog every second; its status only every minute)
backlog_of() { retained "turnstile/v1/ST-$1/$1/state" "${2:-}" | jq -r .backlog; }
bstatus() { retained "turnstile/bridge/$1/status" "${2:-}"; }            # BRIDGE [PORT]
part_field() { bstatus "$1" | jq -r ".aggregate.partitions[] | select(.partition == $2) | .$3"; }
# waits up to SECONDS for a line matching RE in FILE
wait_log() { # FILE RE SECONDS
  local i
  for ((i = 0; i < $3 * 5; i++)); do grep -qE "$2" "$1" && return 0; sleep 0.2; done
  return 1
}
# the latest checkpoint of a partition: its offset_next, or an agent's
# contiguous number in its state
ckpt_latest() { find "$1" -name '*.ckpt' | sort | tail -1; }
ckpt_offset() { awk '/^offset_next / { print $2; exit }' "$(ckpt_latest "$1")"; }
ckpt_contiguous() { grep -a "^$2	" "$(ckpt_latest "$1")" | cut -f2 | cut -d';' -f1; }
# the end of a partition now (the offset after its last record); "OFFSET<TAB>CSV"
# of its records FROM..TO-1 (kcat -e would not stop while agents keep sending)
end_of() { echo $(( $(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -p "$2" -o -1 -c 1 -q -f '%o\n' 2>/dev/null) + 1 )); }
dump() { # TOPIC PARTITION FROM TO
  [ "$4" -gt "$3" ] || return 0
  kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -p "$2" -o "$3" -c $(($4 - $3)) -q -f '%o\t%s\n' 2>/dev/null
}
conf() { # FILE ID ACK_AFTER MQTT_PORT TOPIC LAKE
  {
    printf '[bridge]\nid = %s\nstatus_interval_ms = 1000\nack_after = %s\n' "$2" "$3"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n' "$4"
    printf 'ack_interval_ms = 100\n'
    printf '[kafka]\nbrokers = %s\nreadings_topic = %s\ngroup_id = g-%s\n' "$KAFKA_BOOTSTRAP" "$5" "$2"
    printf 'linger_ms = 5\nsession_timeout_ms = 6000\n'
    printf '[lake]\npath = %s\nwindow_s = 2\nlateness_s = 1\nidle_s = 3\ncheckpoint_interval_ms = 500\n' "$6"
  } >"$1"
}
start_agent() { # ID SLAVE PORT
  AGENT_BROKER_PORT=$3 agent_conf "$work/$1.conf" "$1" "$work/slave-$2.conf"
  sed -i 's/^ack_timeout_ms = .*/ack_timeout_ms = 2000/' "$work/$1.conf"
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/$1.conf" --quiet >>"$work/$1.out" 2>>"$work/$1.err" &
  agent_pid[$1]=$!
}
scps() { for s in "$@"; do awk '/^scp = / {print $3}' "$work/slave-$s.conf"; done | sort; }
expected_for() { join <(scps "$@") "$work/expected"; }   # SLAVE...: "SCP ENTRIES EXITS"

# --- set-up ---------------------------------------------------------------
# the agent ids land on these partitions of a 2-partition topic (crc32 % 2)
for id in k0a:0 k1a:1; do
  [ "$(python3 -c 'import sys, zlib; print(zlib.crc32(sys.argv[1].encode()) % 2)' "${id%:*}")" = "${id#*:}" ] ||
    { echo "agent ${id%:*} is not on partition ${id#*:}"; exit 1; }
done
for d in lakeK/turnstile/_manifest/tk-0 lakeL/turnstile/_manifest/tl-0; do
  mkdir -p "$work/$d"
  mount -t tmpfs -o size=1m tmpfs "$work/$d" || { echo "SKIP: cannot mount a tmpfs (not root?)"; exit 1; }
done
broker_start --conf 'max_queued_messages 1000000'
# bl's broker: a second mosquitto of its own
mkdir -p "$work/mq2"
lake_port=$(free_port)
printf 'user root\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nlog_dest file %s\nlistener %s 127.0.0.1\n' \
  "$work/mq2/mosquitto.log" "$lake_port" >"$work/mq2/mosquitto.conf"
setpriv --pdeathsig KILL /usr/sbin/mosquitto -c "$work/mq2/mosquitto.conf" >"$work/mq2/out" 2>&1 &
mq2_pid=$!
for _ in $(seq 100); do port_accepts "$lake_port" && break; sleep 0.05; done
kafka_start
kafka_create_topic tk 2 --config retention.ms=30000
kafka_create_topic tl 1 --config retention.ms=30000
kafka_create_topic turnstile.deadletter 1
sim_start --generate --slaves 1,2,3 --turnstiles 2 --speed 600 --fault pause
split_devices
registers_first 1 2 3
start_agent k0a 1 "$BROKER_PORT"
start_agent k1a 2 "$BROKER_PORT"
start_agent l0a 3 "$lake_port"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(8192) + b"\n")
' "$work/notify" "$work/notes.txt" &
notify_pid=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.05; done
conf "$work/bk.conf" bk kafka "$BROKER_PORT" tk "$work/lakeK"
conf "$work/bl.conf" bl lake "$lake_port" tl "$work/lakeL"
NOTIFY_SOCKET=$work/notify bridge_start bk "$work/bk.conf"
bridge_start bl "$work/bl.conf"
sleep 2
sim resume
deadline=$((SECONDS + 40))
while [ "$SECONDS" -lt "$deadline" ]; do
  [ "$(ack_of k0a)" -gt 0 ] 2>/dev/null && [ "$(ack_of k1a)" -gt 0 ] 2>/dev/null &&
    [ "$(ack_of l0a "$lake_port")" -gt 0 ] 2>/dev/null && break
  sleep 0.2
done
check "every agent is acknowledged" test "$(ack_of l0a "$lake_port")" -gt 0 -a "$(ack_of k0a)" -gt 0
check "the bridges know the topics' retention" \
  grep -q 'tk keeps its records for 30000 ms' "$work/bk.err"
sleep 3

# --- partition 0's lake gets stuck ------------------------------------------
c1_before=$(part_field bk 1 checkpoint_offset)
for d in lakeK/turnstile/_manifest/tk-0 lakeL/turnstile/_manifest/tl-0; do
  dd if=/dev/zero of="$work/$d/filler" bs=16k 2>/dev/null || true
done
wait_log "$work/bk.err" 'partition 0: checkpoint failed' 10 || true
wait_log "$work/bl.err" 'partition 0: checkpoint failed' 10 || true
check "kafka mode: the failed checkpoint is logged with its count" \
  grep -q 'partition 0: checkpoint failed (.*), 1 in a row' "$work/bk.err"
ak0=$(ack_of k0a) al0=$(ack_of l0a "$lake_port") bl0=$(backlog_of l0a "$lake_port")
cl0=$(ckpt_contiguous "$work/lakeL/turnstile/_manifest/tl-0" l0a)
echo "after the first failure: ack k0a $ak0, ack l0a $al0 (its last checkpoint holds 1..$cl0), backlog l0a $bl0"
check "lake mode: the ack is within the last checkpoint ($al0 <= $cl0)" test "$al0" -le "$cl0"
wait_log "$work/bk.err" 'partition 0: checkpoint failed .*, 2 in a row' 15 || true
for _ in $(seq 50); do [ "$(ack_of k0a)" -gt "$ak0" ] && break; sleep 0.2; done
ak1=$(ack_of k0a) al1=$(ack_of l0a "$lake_port") bl1=$(backlog_of l0a "$lake_port")
cl1=$(ckpt_contiguous "$work/lakeL/turnstile/_manifest/tl-0" l0a)
echo "after the second failure: ack k0a $ak1, ack l0a $al1 (checkpoint 1..$cl1), backlog l0a $bl1"
check "kafka mode: the acks advance while the lake is stuck ($ak0 -> $ak1)" test "$ak1" -gt "$ak0"
check "lake mode: the ack stands still while the lake is stuck ($al0 -> $al1)" test "$al1" = "$al0"
check "lake mode: ... within the checkpoint ($al1 <= $cl1)" test "$al1" -le "$cl1"
check "lake mode: the agent keeps its rows (backlog $bl0 -> $bl1)" test "$bl1" -gt "$bl0"
st=$(bstatus bk)
check "kafka mode: the retained status is degraded" test "$(jq -r .health <<<"$st")" = degraded
check "... naming partition 0's failing checkpoints" \
  grep -q 'partition 0: [0-9]* checkpoint(s) failed in a row' <<<"$(jq -r '.problems[]' <<<"$st")"
check "... and not partition 1 (failures_in_row 0)" \
  test "$(jq -r '.aggregate.partitions[] | select(.partition == 1) | .failures_in_row' <<<"$st")" = 0
c1_now=$(jq -r '.aggregate.partitions[] | select(.partition == 1) | .checkpoint_offset' <<<"$st")
check "partition 1 goes on committing ($c1_before -> $c1_now)" test "$c1_now" -gt "$c1_before"
check "systemd's STATUS says DEGRADED with the partition" grep -q '^STATUS=DEGRADED: .*partition 0: ' "$work/notes.txt"
check "the log says DEGRADED" grep -q 'DEGRADED: .*partition 0: ' "$work/bk.err"
check "lake mode: the retained status is degraded too" test "$(bstatus bl "$lake_port" | jq -r .health)" = degraded

# --- Kafka deletes what the lake did not take --------------------------------
# everything up to the end of the partition now (dumped first: the test's
# accounting) goes, as retention would delete it
ck=$(ckpt_offset "$work/lakeK/turnstile/_manifest/tk-0")
cl=$(ckpt_offset "$work/lakeL/turnstile/_manifest/tl-0")
ek=$(end_of tk 0) el=$(end_of tl 0)
dump tk 0 0 "$ek" >"$work/tk0.before"
printf '{"version":1,"partitions":[{"topic":"tk","partition":0,"offset":%s},{"topic":"tl","partition":0,"offset":%s}]}\n' \
  "$ek" "$el" >"$work/delete.json"
kafka_tool org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
  --offset-json-file "$work/delete.json" >"$work/delete.out" 2>&1 || cat "$work/delete.out"
echo "deleted tk/0 up to $ek (its checkpoint: $ck), tl/0 up to $el (checkpoint: $cl)"
check "records the lake never took are deleted (tk/0 $ck..$((ek - 1)), tl/0 $cl..$((el - 1)))" \
  test "$ek" -gt "$ck" -a "$el" -gt "$cl"

# the third attempt meets the deletion (and fails again); then the lake frees
wait_log "$work/bk.err" 'partition 0: checkpoint failed .*, 3 in a row' 25 || true
wait_log "$work/bl.err" 'partition 0: checkpoint failed .*, 3 in a row' 10 || true
for d in lakeK/turnstile/_manifest/tk-0 lakeL/turnstile/_manifest/tl-0; do rm -f "$work/$d/filler"; done
al2=$(ack_of l0a "$lake_port")
check "lake mode: the ack still stands still ($al0 -> $al2)" test "$al2" = "$al0"
wait_log "$work/bk.err" "partition 0: its oldest record not yet in the lake is .* of the topic's retention" 10 || true
check "the backlog nearing the retention is warned of in the log" \
  grep -q "partition 0: its oldest record not yet in the lake is .* of the topic's retention" "$work/bk.err"
# the status is published on its own period, so the newest retained one may
# predate the log line: read it again for up to 15 s
status_warns() {
  local i
  for ((i = 0; i < 15; i++)); do
    bstatus bk | jq -r '.problems[]' |
      grep -q "partition 0: its oldest record not in the lake is .* of the topic's retention" && return 0
    sleep 1
  done
  return 1
}
check "... and in the retained status" status_warns
mapfile -t pauses < <(grep -o 'partition 0: checkpoint failed.*resuming from the last checkpoint in [0-9]* s' "$work/bk.err" |
  grep -o '[0-9]* s$' | cut -d' ' -f1)
check "failing checkpoints back off: pauses ${pauses[*]} s" test "${pauses[*]:0:3}" = "5 10 20"

# --- the lake works again ---------------------------------------------------
wait_log "$work/bk.err" 'partition 0: checkpoints work again' 40 || true
wait_log "$work/bl.err" 'partition 0: checkpoints work again' 10 || true
check "kafka mode: checkpoints work again" grep -q 'partition 0: checkpoints work again' "$work/bk.err"
check "lake mode: checkpoints work again" grep -q 'partition 0: checkpoints work again' "$work/bl.err"
sleep 2
st=$(bstatus bk)
lost=$(jq -r .aggregate.records_lost <<<"$st")
check "kafka mode: exactly the deleted records the lake never took are reported lost ($lost = $ek - $ck)" \
  test "$lost" = $((ek - ck))
check "... in the log" grep -q "partition 0: $((ek - ck)) record(s), offsets $ck..$((ek - 1)), were deleted by Kafka" "$work/bk.err"
check "... and as a problem of the retained status" \
  grep -q "$((ek - ck)) record(s) were deleted by Kafka before the lake took them" <<<"$(jq -r '.problems[]' <<<"$st")"
stl=$(bstatus bl "$lake_port")
check "lake mode: nothing is reported lost (records_lost $(jq -r .aggregate.records_lost <<<"$stl"))" \
  test "$(jq -r .aggregate.records_lost <<<"$stl")" = 0
check "lake mode: the deleted records are counted as expired ($(jq -r .aggregate.records_expired <<<"$stl"))" \
  test "$(jq -r .aggregate.records_expired <<<"$stl")" = $((el - cl))

# --- Kafka frozen: kafka mode's acks stand still -----------------------------
kill -STOP "$KAFKA_PID"
# what the aggregators had fetched before is taken and acknowledged first
f0= f1=
for _ in $(seq 10); do
  sleep 1
  [ "$f0 $f1" = "$(ack_of k0a) $(ack_of k1a)" ] && break
  f0=$(ack_of k0a) f1=$(ack_of k1a)
done
fb=$(backlog_of k1a)
sleep 4
g0=$(ack_of k0a) g1=$(ack_of k1a) gb=$(backlog_of k1a)
kill -CONT "$KAFKA_PID"
echo "Kafka frozen: acks k0a $f0 -> $g0, k1a $f1 -> $g1, backlog k1a $fb -> $gb"
check "kafka mode: with Kafka frozen the acks stand still" test "$f0 $f1" = "$g0 $g1"
check "... while the agent goes on counting (backlog $fb -> $gb)" test "$gb" -gt "$fb"

# --- the end: every agent is acknowledged up to what it sent ------------------
sleep 3
sim pause
registers_last
# an agent goes on sending readings (of nobody) every poll: its number now
declare -A upto=()
for a in k0a k1a "l0a $lake_port"; do
  set -- $a
  upto[$1]=$(mosquitto_sub -p "${2:-$BROKER_PORT}" -t "turnstile/v1/ST-$1/$1/readings" -C 1 -W 3 | cut -d, -f12 | cut -d: -f2)
done
for _ in $(seq 60); do
  [ "$(ack_of k0a)" -ge "${upto[k0a]}" ] && [ "$(ack_of k1a)" -ge "${upto[k1a]}" ] &&
    [ "$(ack_of l0a "$lake_port")" -ge "${upto[l0a]}" ] && break
  sleep 1
done
declare -A final=([k0a]=$(ack_of k0a) [k1a]=$(ack_of k1a) [l0a]=$(ack_of l0a "$lake_port"))
check "kafka mode: the agent of the lossy partition is acknowledged to the end (${final[k0a]} >= ${upto[k0a]})" \
  test "${final[k0a]}" -ge "${upto[k0a]}"
check "so is every other agent (${final[k1a]} >= ${upto[k1a]}, ${final[l0a]} >= ${upto[l0a]})" \
  test "${final[k1a]}" -ge "${upto[k1a]}" -a "${final[l0a]}" -ge "${upto[l0a]}"

# the readings of tk/0 that Kafka had only in the deleted range: lost
dump tk 0 "$ek" "$(end_of tk 0)" >"$work/tk0.after"
awk -F'\t' -v ck="$ck" -v ek="$ek" '
  { split($2, f, ",") }
  FNR == NR && $1 >= ck && $1 < ek { deleted[f[12]] = f[3] " " f[10] " " f[11]; next }
  { held[f[12]] = 1 }
  END { for (id in deleted) if (!(id in held)) { split(deleted[id], v, " "); e[v[1]] += v[2]; x[v[1]] += v[3] }
        for (s in e) print s, e[s], x[s] }' "$work/tk0.before" "$work/tk0.after" | sort >"$work/lost"
echo "people lost to the lake on partition 0 (SCP ENTRIES EXITS):"; cat "$work/lost"
expected_for 1 2 >"$work/expected.k"
expected_for 3 >"$work/expected.l"
for _ in $(seq 40); do
  lake_sums "$work/lakeK" >"$work/sums.k"
  lake_sums "$work/lakeL" >"$work/sums.l"
  join -a1 -e0 -o 0,1.2,1.3,2.2,2.3 "$work/sums.k" "$work/lost" | awk '{ print $1, $2 + $4, $3 + $5 }' >"$work/sums.k+lost"
  cmp -s "$work/sums.k+lost" "$work/expected.k" && cmp -s "$work/sums.l" "$work/expected.l" && break
  sleep 1
done
echo "kafka mode, expected | lake + lost:"; paste -d'|' "$work/expected.k" "$work/sums.k+lost"
echo "lake mode, expected | lake:"; paste -d'|' "$work/expected.l" "$work/sums.l"
check "kafka mode: some readings were only in the deleted records (lost)" test -s "$work/lost"
check "... per turnstile, lake + lost = the registers' movement" cmp -s "$work/sums.k+lost" "$work/expected.k"
check "lake mode: per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums.l" "$work/expected.l"

# every number an ack of kafka mode covered was in Kafka
for a in k0a:0 k1a:1; do
  id=${a%:*} p=${a#*:}
  n=${final[$id]}
  { cat "$work/tk0.before" "$work/tk0.after"; [ "$p" = 0 ] || dump tk "$p" 0 "$(end_of tk "$p")"; } >"$work/all.$id"
  missing=$(awk -F'\t' -v id="$id" -v n="$n" '
    { split($2, f, ","); split(f[12], i, ":"); if (i[1] != id) next
      from = f[18] == "" ? i[2] : f[18]; for (s = from; s <= i[2]; s++) seen[s] = 1 }
    END { m = 0; for (s = 1; s <= n; s++) if (!(s in seen)) m++; print m }' "$work/all.$id")
  check "kafka mode: every number up to $id's ack $n reached Kafka ($missing missing)" test "$missing" = 0
done

for b in bk bl; do bridge_kill "$b" TERM; done
check "no sanitizer report from the bridges" bash -c "! grep -q 'Sanitizer' '$work/bk.err' '$work/bl.err'"
if [ "$fails" -gt 0 ]; then for b in bk bl; do echo "--- $b"; grep -E 'error|warning|DEGRADED' "$work/$b.err" | tail -15; done; fi
finish
