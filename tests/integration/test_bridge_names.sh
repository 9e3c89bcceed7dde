#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Station names with apostrophes through the whole real chain (issue 12):
# turnstile-sim replays the stations of the shared week whose names hold an
# apostrophe (B'WAY-LAFAYETTE, E 143/ST MARY'S) as the file has them, the
# agents poll it with the configs it wrote (not edited), mosquitto, Kafka,
# turnstile-bridge, the lake. Then:
#   - per turnstile (C/A, UNIT, SCP), the lake's sums equal what the
#     simulator's registers moved by, exactly, though the bridge was killed
#     (SIGKILL) mid-window and took the names back from its checkpoint;
#   - every lake row carries the name exactly as the file, unquoted, and
#     splits on commas into the reference schema's 12 columns;
#   - the agents' retained state and the bridge's window summary are JSON
#     that jq reads, with the names intact;
#   - nothing went to the dead-letter topic.
set -euo pipefail
src=${TS_SRC_DIR:?}
mta=${TS_MTA_FILE:?}
work=$(mktemp -d /tmp/ts-bridge-names.XXXXXX)
declare -A agent_pid=()
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

# the stations of the week whose names hold an apostrophe (index column first)
mapfile -t stations < <(zcat -f "$mta" | awk -F, 'NR > 1 && $5 ~ /'"'"'/ {print $5}' | sort -u)
check "the week has stations whose names hold an apostrophe (${#stations[@]})" test "${#stations[@]}" -gt 0
station_args=()
for s in "${stations[@]}"; do station_args+=(--station "$s"); done

broker_start --conf 'max_queued_messages 1000000'
kafka_start
kafka_create_topic turnstile.readings 2
kafka_create_topic turnstile.deadletter 1
# an hour of the week a second, from its first reading; paused until the agents poll
sim_start --mta "$mta" "${station_args[@]}" --slaves 1,2 --turnstiles all --speed 3600 --fault pause
split_devices

# "CA/UNIT/SCP<TAB>STATION" per turnstile, slave by slave, in register order
for s in 1 2; do
  awk '/^ca = / {ca = substr($0, 6)} /^unit = / {u = substr($0, 8)} /^scp = / {scp = substr($0, 7)}
       /^station = / {print ca "/" u "/" scp "\t" substr($0, 11)}' "$work/slave-$s.conf" >"$work/ids-$s"
done
read_registers() { # FILE: "CA/UNIT/SCP ENTRIES EXITS" as served now
  local s k id st e x
  : >"$1"
  for s in 1 2; do
    k=0
    while IFS=$'\t' read -r id st; do
      read -r e x < <(sim_get "$s" "$k")
      echo "$id $e $x" >>"$1"
      k=$((k + 1))
    done <"$work/ids-$s"
  done
}
read_registers "$work/registers.first"
n=$(wc -l <"$work/registers.first")
check "$n turnstiles on 2 slaves" test "$n" -gt 0
cat "$work"/ids-? | sort >"$work/ids"
check "the configs the simulator wrote name the stations as the file does" \
  bash -c "cut -f2 '$work/ids' | sort -u | diff -q - <(printf '%s\n' \"\$@\" | sort -u) >/dev/null" _ "${stations[@]}"

agent_conf "$work/a1.conf" a1 "$work/slave-1.conf"
agent_conf "$work/a2.conf" a2 "$work/slave-2.conf"
bridge_conf "$work/bridge.conf" b1
bridge_start b1 "$work/bridge.conf"
for a in a1 a2; do
  "${TS_BIN_DIR:?}/turnstile-agent" -c "$work/$a.conf" --quiet >>"$work/$a.out" 2>>"$work/$a.err" &
  agent_pid[$a]=$!
done
sleep 2
check "both agents run with the configs as written" \
  bash -c "kill -0 ${agent_pid[a1]} && kill -0 ${agent_pid[a2]}"
sim resume
sleep 4
# the bridge is killed mid-window: the restarted one takes the open windows
# (names and all) from its checkpoint's state
bridge_kill b1
bridge_start b1 "$work/bridge.conf"
sleep 5
sim pause
read_registers "$work/registers.last"
join <(sort "$work/registers.first") <(sort "$work/registers.last") |
  awk '{ print $1, $4 - $2, $5 - $3 }' >"$work/expected"

# the lake, per C/A/UNIT/SCP (header ,CA,UNIT,SCP,STATION,...,ENTRIES,EXITS)
lake_key_sums() {
  lake_rows | awk -F, '{ k = $2 "/" $3 "/" $4; e[k] += $11; x[k] += $12 }
    END { for (k in e) print k, e[k], x[k] }' | sort
}
for _ in $(seq 90); do
  lake_key_sums >"$work/sums"
  cmp -s "$work/sums" "$work/expected" && break
  sleep 1
done
echo "expected (CA/UNIT/SCP ENTRIES EXITS) | lake:"
paste -d'|' "$work/expected" "$work/sums"
check "per turnstile, the lake's sums equal the registers' movement" cmp -s "$work/sums" "$work/expected"
check "the counts are not trivial" test "$(awk '{s += $2 + $3} END {print s + 0}' "$work/expected")" -gt 100

lake_rows >"$work/rows"
check "every lake row has the reference schema's 12 columns, nothing quoted" \
  bash -c "test -s '$work/rows' && awk -F, 'NF != 12' '$work/rows' | wc -l | grep -qx 0 && ! grep -q '\"' '$work/rows'"
lake_rows | awk -F, '{ print $2 "/" $3 "/" $4 "\t" $5 }' | sort -u >"$work/lake.ids"
check "every lake row carries its station's name exactly as the file" \
  bash -c "test -s '$work/lake.ids' && comm -23 '$work/lake.ids' '$work/ids' | wc -l | grep -qx 0"
for s in "${stations[@]}"; do
  check "lake rows at $s" grep -qF ",$s," "$work/rows"
done

# JSON: the agent's retained state and the bridge's window summary
for a in a1 a2; do
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-$a/$a/state" -C 1 -W 5 \
    >"$work/$a.state" 2>/dev/null || true
  jq -r '.turnstiles[] | .ca + "/" + .unit + "/" + .scp + "\t" + .station' "$work/$a.state" 2>/dev/null |
    sort >"$work/$a.state.ids" || true
  check "$a: its retained state is JSON with every name as the file" \
    cmp -s "$work/$a.state.ids" <(sort "$work/ids-${a#a}")
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "turnstile/v1/ST-$a/window" -C 1 -W 5 \
    >"$work/$a.window" 2>/dev/null || true
  jq -r '.turnstiles[] | .ca + "/" + .unit + "/" + .scp + "\t" + .station' "$work/$a.window" \
    2>/dev/null | sort -u >"$work/$a.window.ids" || true
  check "$a: its station's window summary is JSON with the names as the file" \
    bash -c "test -s '$work/$a.window.ids' && comm -23 '$work/$a.window.ids' '$work/ids' | wc -l | grep -qx 0"
done

# the agents stop (they publish zero deltas while the simulator is paused), so
# that the topics have an end to read to
for a in a1 a2; do kill -TERM "${agent_pid[$a]}" 2>/dev/null || true; done
for a in a1 a2; do wait "${agent_pid[$a]}" 2>/dev/null || true; done
agent_pid=()
dead=$(timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q 2>/dev/null | wc -l || true)
check "nothing in the dead-letter topic (got $dead)" test "$dead" -eq 0
in_kafka=$(timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q 2>/dev/null |
  grep -cF ",${stations[0]}," || true)
check "readings in Kafka carry ${stations[0]} unquoted ($in_kafka)" test "$in_kafka" -gt 0

bridge_kill b1 TERM
check "no sanitizer report from the bridge, agents or simulator" \
  bash -c "! cat '$work'/b1.err '$work'/a?.err '$work/sim.err' | grep -q Sanitizer"
if [ "$fails" -gt 0 ]; then tail -20 "$work/b1.err" "$work/a1.err"; fi
finish
