#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One verdict for the relay and the aggregator (bridge/verdict.c), with a real
# mosquitto, a real Kafka and turnstile-bridge (relay + aggregate, default
# event-time bounds: 90 days back, 120 s ahead). One case per row of issue 11's
# table, each agent with its own SCP so that the lake's sums show every
# person counted; genuine readings have 1 entry each, forged ones 1000:
#   (a) a record produced straight into turnstile.readings whose key and
#       mqtt_topic header name agent vb but whose ID names agent va (a copy of
#       va's reading 1), in vb's partition, not va's: dead-lettered by the
#       aggregator, not in the lake, no ack for vb, and vb's partition still
#       checkpoints past it;
#   (b) EPOCH_MS = -1 on vd's topic, between genuine readings: dead-lettered
#       at the relay, and vd's ack passes it (the marker) up to its last one;
#   (c) a retained reading vc:50 with MERGED_FROM 1 (1000 people) on vc's
#       topic before the bridge starts, then vc's genuine 1..50: refused
#       (retained), the genuine readings counted, the ack reaches 50;
#   (d) vf's readings 100 days old and 1 hour ahead between genuine ones:
#       dead letters naming max_event_age_s and max_event_ahead_s, the ack
#       passes them, the lake's sums exact;
#   (e) vg:7 with MERGED_FROM 3 produced around the relay after vg's 1..5:
#       dead-lettered by the aggregator (first come wins); vg's genuine 6 and
#       7 are counted.
# Then the bridge restarts: the retained message comes again and is refused
# again; nothing is counted twice. Last, (f): the aggregator alone with its
# dead-letter topic missing: a refused record's partition does not checkpoint
# past it until Kafka confirmed its dead letter. Waits poll with generous deadlines;
# nothing asserts on a duration.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-verdict-test.XXXXXX)
acks_pid=
cleanup() {
  [ -z "$acks_pid" ] || kill "$acks_pid" 2>/dev/null || true
  bridge_test_cleanup
}
trap cleanup EXIT
. "$src/tests/integration/bridge.sh"

t0=$SECONDS
bridge_test_servers 4
echo "broker and Kafka ready in $((SECONDS - t0)) s"

now_ms() { echo $(($(date +%s%3N))); }
# one 18-field reading: AGENT SEQ MERGED_FROM EPOCH_MS ENTRIES (SCP from the agent)
reading() {
  local ms=$4 s
  s=$((ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000)))
  printf 'A002,R051,%s-00-00,59 ST,NQR456W,BMT,%s,%s,REGULAR,%s,0,%s:%s,%s,%s,%s,0,,%s' \
    "$1" "$(date -u -d "@$s" +%m-%d-%y)" "$(date -u -d "@$s" +%H:%M:%S)" "$5" "$1" "$2" \
    "$(date -u -d "@$s" '+%Y-%m-%d %H:%M:%S')" "$ms" "$2" "$3"
}
topic() { echo "turnstile/v1/S1/$1/readings"; }
# genuine readings AGENT FIRST LAST, stamped now, 1 entry each, one connection
publish_genuine() {
  local s t
  t=$(now_ms)
  for ((s = $2; s <= $3; s++)); do reading "$1" "$s" "$s" "$t" 1; echo; done |
    mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$(topic "$1")" -l
}
pub() { # AGENT PAYLOAD [mosquitto_pub options]
  local a=$1 p=$2; shift 2
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "$(topic "$a")" -m "$p" "$@"
}
# a record produced straight into the readings topic: KEY HEADER_AGENT VALUE
produce_around() {
  printf '%s\n' "$3" | kcat -P -b "$KAFKA_BOOTSTRAP" -t turnstile.readings -k "$1" \
    -H "mqtt_topic=$(topic "$2")" 2>>"$work/kcat.err"
}
dead() { # the dead-letter topic as "KEY|HEADERS"
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q -f '%k|%h\n' \
    >"$work/dead.txt" 2>>"$work/kcat.err"
}
has_dead() { # PATTERN: a dead letter whose line matches
  dead && grep -q -- "$1" "$work/dead.txt"
}
records() { # the readings topic as "PARTITION OFFSET KEY|HEADERS|VALUE"
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%p %o %k|%h|%s\n' \
    >"$work/records.txt" 2>>"$work/kcat.err"
}
last_ack() { # AGENT: the newest ack published for it
  awk -v t="turnstile/v1/S1/$1/ack" '$1 == t { v = $2 } END { print v + 0 }' "$work/acks.txt"
}
ack_is() { [ "$(last_ack "$1")" = "$2" ]; }
sums_are() { # expected "SCP ENTRIES EXITS" lines (sorted) as arguments
  lake_sums >"$work/sums"
  printf '%s\n' "$@" | sort >"$work/want"
  cmp -s "$work/sums" "$work/want"
}
ckpt_next() { # PARTITION: offset_next of its latest checkpoint (-1: none)
  local ck
  ck=$(find "$work/lake/turnstile/_manifest/turnstile.readings-$1" -name '*.ckpt' 2>/dev/null | sort | tail -1 || true)
  if [ -z "$ck" ]; then echo -1; else awk '$1 == "offset_next" {print $2}' "$ck"; fi
}

# (c) part 1: the retained forgery is on the broker before the bridge subscribes
pub vc "$(reading vc 50 1 "$(now_ms)" 1000)" -r

mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'turnstile/v1/+/+/ack' -v >"$work/acks.txt" 2>/dev/null &
acks_pid=$!
bridge_conf "$work/bridge.conf" v1
bridge_start v1 "$work/bridge.conf"
check "the bridge subscribes" wait_for 30 grep -q 'relay: mqtt: subscribed' "$work/v1.err"

# (c) the retained message is refused at the relay; the genuine readings count
check "(c) the retained reading is a dead letter" \
  wait_for 30 has_dead '^vc|reason=a retained message is not a reading'
publish_genuine vc 1 50

# (a) va's genuine readings, then a copy of va:1 keyed and headed vb
publish_genuine va 1 5
check "(a) va's readings are acknowledged" wait_for 30 ack_is va 5
produce_around vb vb "$(reading va 1 1 "$(now_ms)" 1000)"

# (b) EPOCH_MS = -1 between genuine readings
publish_genuine vd 1 2
pub vd "$(reading vd 3 3 -1 1000)"
publish_genuine vd 4 5

# (d) too old and too far ahead between genuine readings
publish_genuine vf 1 1
pub vf "$(reading vf 2 2 $(($(now_ms) - 100 * 86400000)) 1000)"
pub vf "$(reading vf 3 3 $(($(now_ms) + 3600000)) 1000)"
publish_genuine vf 4 4

# (e) a merged range over seen numbers, produced around the relay
publish_genuine vg 1 5
check "(e) vg's readings are acknowledged" wait_for 30 ack_is vg 5
produce_around vg vg "$(reading vg 7 3 "$(now_ms)" 1000)"
check "(e) the merged range over seen numbers is a dead letter" \
  wait_for 30 has_dead "^vg|reason=MERGED_FROM 3 of vg:7 covers numbers already seen"
publish_genuine vg 6 7

# ---- what the agents are told ----
check "(b) vd's ack passes the refused reading 3" wait_for 30 ack_is vd 5
check "(c) vc's ack reaches 50" wait_for 30 ack_is vc 50
check "(d) vf's ack passes the refused readings 2 and 3" wait_for 30 ack_is vf 4
check "(e) vg's ack reaches 7" wait_for 30 ack_is vg 7
check "(a) no ack for vb" eval '! grep -q "^turnstile/v1/S1/vb/ack " "$work/acks.txt"'

# ---- the dead letters ----
check "(a) the aggregator dead-letters the record keyed vb whose ID names va" \
  wait_for 30 has_dead "^vb|reason=ID names agent 'va', the topic agent 'vb',mqtt_topic=turnstile/v1/S1/vb/readings,source_topic=turnstile.readings"
check "(b) EPOCH_MS -1: a dead letter at the relay" \
  has_dead "^vd|reason=EPOCH_MS -1 is not a time the lake can hold"
check "(d) too old: a dead letter naming max_event_age_s" \
  has_dead "^vf|reason=reading time .* before the bridge's clock, more than max_event_age_s 7776000"
check "(d) too far ahead: a dead letter naming max_event_ahead_s" \
  has_dead "^vf|reason=reading time .* ahead of the bridge's clock, more than max_event_ahead_s 120"
check "exactly 6 dead letters" eval '[ "$(wc -l <"$work/dead.txt")" = 6 ]'

# ---- Kafka: markers, and where the forged record went ----
records
check "(b, d) three markers (NULL value) in the readings topic, after their dead letters" \
  eval '[ "$(grep -c ",refused_id=" "$work/records.txt")" = 3 ] &&
        grep -q "^[0-9]* [0-9]* vd|mqtt_topic=turnstile/v1/S1/vd/readings,reason=EPOCH_MS -1.*,refused_id=vd:3,refused_from=3|$" "$work/records.txt"'
check "no reading the relay refused is in the readings topic (only the 2 produced around it)" \
  eval '[ "$(grep -c ",1000,0," "$work/records.txt")" = 2 ]'
pa=$(awk '$3 ~ /^va\|/ {print $1; exit}' "$work/records.txt")
pb=$(awk '$3 ~ /^vb\|/ {print $1; exit}' "$work/records.txt")
ob=$(awk '$3 ~ /^vb\|/ {print $2; exit}' "$work/records.txt")
check "(a) the forged record is in another partition than va's ($pb vs $pa)" \
  eval '[ -n "$pa" ] && [ -n "$pb" ] && [ "$pa" != "$pb" ]'
check "(a) vb's partition checkpoints past the forged record (offset $ob)" \
  wait_for 30 eval '[ "$(ckpt_next "$pb")" -gt "$ob" ]'

# ---- the lake: genuine readings only, each once ----
want=("va-00-00 5 0" "vc-00-00 50 0" "vd-00-00 4 0" "vf-00-00 2 0" "vg-00-00 7 0")
check "the lake's sums are the genuine readings, exactly" wait_for 60 sums_are "${want[@]}"
paste -d'|' "$work/want" "$work/sums" || true

# ---- a restart: the broker delivers the retained message again ----
bridge_kill v1 TERM
bridge_start v1 "$work/bridge.conf"
check "after a restart the retained reading is refused again" \
  wait_for 60 eval 'dead && [ "$(grep -c "^vc|reason=a retained message" "$work/dead.txt")" = 2 ]'
sleep 2
bridge_kill v1 TERM
check "nothing counted twice after the restart" sums_are "${want[@]}"
check "the aggregator counted its dead letters and markers" \
  grep -q 'aggregate: .* 2 dead-lettered, 3 passed' "$work/v1.err"

# ---- (f) no dead letter is lost: the aggregator alone, its dead-letter topic
# missing; a forged record is refused, and its partition does not checkpoint
# past it until Kafka has its dead letter ----
sed 's/^\[kafka\]$/[kafka]\ndeadletter_topic = turnstile.dl2/' "$work/bridge.conf" >"$work/agg.conf"
bridge_start v1agg "$work/agg.conf" --role aggregate
check "(f) the aggregator resumes" wait_for 30 grep -q 'partition 1: resuming at offset' "$work/v1agg.err"
produce_around vh vh "$(reading va 2 2 "$(now_ms)" 1000)"
records
oh=$(awk '$3 ~ /^vh\|/ {print $2; exit}' "$work/records.txt")
ph=$(awk '$3 ~ /^vh\|/ {print $1; exit}' "$work/records.txt")
check "(f) the checkpoint is put off while the dead letter is not confirmed" \
  wait_for 30 grep -q "partition $ph: checkpoint put off: 1 dead letter(s) not confirmed" "$work/v1agg.err"
check "(f) ... and does not pass the refused record (offset $oh)" \
  eval '[ "$(ckpt_next "$ph")" -le "$oh" ]'
kafka_create_topic turnstile.dl2 1
dl2() {
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.dl2 -o beginning -e -q -f '%k|%h\n' >"$work/dl2.txt" 2>>"$work/kcat.err"
  grep -q "^vh|reason=ID names agent 'va', the topic agent 'vh',.*source_partition=$ph,source_offset=$oh" "$work/dl2.txt"
}
check "(f) once the topic exists the dead letter arrives" wait_for 90 dl2
check "(f) ... and the checkpoint passes the record" wait_for 30 eval '[ "$(ckpt_next "$ph")" -gt "$oh" ]'
bridge_kill v1agg TERM
check "(f) nothing counted" sums_are "${want[@]}"
check "no sanitizer report" \
  eval '! grep -q "AddressSanitizer\|runtime error:\|LeakSanitizer" "$work/v1.err" "$work/v1agg.err"'

echo "test took $((SECONDS - t0)) s"
if [ "$fails" -gt 0 ]; then tail -40 "$work/v1.err"; fi
finish
