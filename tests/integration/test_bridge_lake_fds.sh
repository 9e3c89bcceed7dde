#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regression test (issue 11): 2,000 readings of one agent with timestamps spread over the years
# 1971..9990, into one partition, with the bridge started under `ulimit -n 1024`, plus readings
# of a second agent on the same partition. The lake writer held every pending file open (two fds
# each) until the next checkpoint: "Too many open files", every checkpoint of the partition
# failed and was retried every 5 s for ever, and the second agent's readings never reached the
# lake while its acks kept flowing. Now at most [lake] max_open_files (16) are open: the
# partition checkpoints up to its last offset, and per turnstile the lake's sums equal what was
# sent.
#
# The readings are produced straight into turnstile.readings with kcat, as the relay would: key =
# the agent id, header mqtt_topic = its readings topic, the ID's agent the same. The far agent's
# readings come in a scrambled order (some windows close before their readings come: late rows).
#
# The bridge refuses readings outside its event-time bounds ([bridge] max_event_age_s and
# max_event_ahead_s, docs/bridge.md): this test turns both off, so that what it tests is the lake
# writer's own bound, whatever the input's dates.
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-bridge-fds.XXXXXX)
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

FAR=2000 NEAR=100 NOFILE=1024
t0=$SECONDS
bridge_test_servers 1

# readings AGENT STATION SCP FIRST COUNT MODE: 18-field lines, seq FIRST..FIRST+COUNT-1
# (MODE far: one a date, years 1971..9990, in a scrambled order; near: one a minute from
# 2023-06-03 10:00 UTC); the sums sent go to $work/sent as "SCP ENTRIES EXITS"
readings() {
  awk -v agent="$1" -v station="$2" -v scp="$3" -v first="$4" -v count="$5" -v mode="$6" \
      -v far="$FAR" -v sent="$work/sent" '
    function days(y, m, d,   era, yoe, doy, doe) { # days since 1970-01-01 (y >= 0)
      y -= m <= 2; era = int(y / 400); yoe = y - era * 400
      doy = int((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
      doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
      return era * 146097 + doe - 719468
    }
    BEGIN {
      for (k = 0; k < count; k++) {
        if (mode == "far") {
          j = (k * 7919) % far            # a permutation of 0..far-1
          y = 1971 + int(j * (9990 - 1971) / (far - 1)); m = 1 + j % 12; d = 1 + j % 28
          hh = 12; mm = 0
        } else {
          j = first + k - 1; y = 2023; m = 6; d = 3; hh = 10 + int(j / 60); mm = j % 60
        }
        seq = first + k; e = 1 + seq % 50; x = seq % 7; ce += e; cx += x
        ms = (days(y, m, d) * 86400 + hh * 3600 + mm * 60) * 1000
        printf "A002,R051,%s,59 ST,NQR456W,BMT,%02d-%02d-%02d,%02d:%02d:00,REGULAR,%d,%d,%s:%d,%04d-%02d-%02d %02d:%02d:00,%.0f,%d,%d,,%d\n",
          scp, m, d, y % 100, hh, mm, e, x, agent, seq, y, m, d, hh, mm, ms, ce, cx, seq
        te += e; tx += x
      }
      printf "%s %d %d\n", scp, te, tx >> sent
    }'
}
produce() { # AGENT STATION < lines
  kcat -b "$KAFKA_BOOTSTRAP" -P -t turnstile.readings -p 0 -k "$1" \
    -H "mqtt_topic=turnstile/v1/$2/$1/readings" 2>>"$work/kcat.err"
}
: >"$work/sent"
readings a-near S2 02-00-00 1 50 near >"$work/near1.csv"
readings a-far S1 01-00-00 1 "$FAR" far >"$work/far.csv"
readings a-near S2 02-00-00 51 $((NEAR - 50)) near >"$work/near2.csv"
# expected per SCP (the near agent's two batches summed)
awk '{ e[$1] += $2; x[$1] += $3 } END { for (s in e) print s, e[s], x[s] }' "$work/sent" |
  sort >"$work/expected"
check "the far agent's readings fall on $FAR dates from 1971 to 9990" \
  test "$(cut -d, -f13 "$work/far.csv" | cut -c1-10 | sort -u | wc -l)" -eq "$FAR" -a \
  "$(cut -d, -f13 "$work/far.csv" | sort | sed -n '1s/-.*//p;$s/-.*//p' | tr '\n' ' ')" = "1971 9990 "

BRIDGE_EXTRA=$'max_event_age_s = 0\nmax_event_ahead_s = 0' \
  bridge_conf "$work/bridge.conf" b1   # [lake] max_open_files: the default, 16
old_nofile=$(ulimit -Sn)
ulimit -Sn "$NOFILE"
bridge_start b1 "$work/bridge.conf" --role aggregate
ulimit -Sn "$old_nofile"
pid=${BRIDGE_PID[b1]}
check "the bridge runs with $NOFILE open files at most" \
  grep -q "^Max open files *$NOFILE " "/proc/$pid/limits"
for _ in $(seq 300); do grep -q 'partition 0: resuming' "$work/b1.err" && break; sleep 0.1; done

max_fds=0
sample_fds() {
  local n
  n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l) || return 0
  [ "$n" -le "$max_fds" ] || max_fds=$n
}
sample_fds
echo "bridge started with $max_fds fds open"
produce a-near S2 <"$work/near1.csv"
produce a-far S1 <"$work/far.csv"
produce a-near S2 <"$work/near2.csv"
total=$((FAR + NEAR))

latest_ckpt() {
  find "$work/lake/turnstile/_manifest/turnstile.readings-0" -name '*.ckpt' 2>/dev/null | sort | tail -1
}
ckpt_offset() {
  local f
  f=$(latest_ckpt)
  [ -n "$f" ] && awk '$1 == "offset_next" {print $2}' "$f" || echo -1
}
# what the checkpoints say is in the lake (cheap: lake_sums gunzips 2,000 files one by one)
committed_entries() {
  cat "$work"/lake/turnstile/_manifest/turnstile.readings-0/*.ckpt 2>/dev/null |
    awk '$1 == "file" { e += $6 } END { print e + 0 }'
}
sent_entries=$(awk '{ e += $2 } END { print e }' "$work/expected")
for ((i = 0; i < 600; i++)); do   # at most about 60 s; stops as soon as all is committed
  sample_fds
  [ "$(ckpt_offset)" = "$total" ] && [ "$(committed_entries)" = "$sent_entries" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
lake_sums >"$work/sums"
echo "after $((SECONDS - t0)) s: expected (SCP ENTRIES EXITS) | lake:"
paste -d'|' "$work/expected" "$work/sums"
dates=$(find "$work/lake/turnstile" -maxdepth 1 -name 'event_date=*' | wc -l)
files=$(_lake_files | wc -l)
seqfiles=$(_lake_files | grep -c -- '-[0-9]\{12\}-[0-9]*\.csv\.gz$' || true)
ckpts=$(find "$work/lake/turnstile/_manifest/turnstile.readings-0" -name '*.ckpt' | wc -l)
most=$(for f in "$work"/lake/turnstile/_manifest/turnstile.readings-0/*.ckpt; do
         grep -c '^file ' "$f" 2>/dev/null || true; done | sort -n | tail -1)
hwm=$(awk '/^VmHWM/ {print $2, $3}' "/proc/$pid/status" 2>/dev/null || true)
echo "lake: $files files in $dates date directories ($seqfiles with a -<seq> name), $ckpts" \
     "checkpoints (at most ${most:-0} files in one); the bridge had at most $max_fds fds open," \
     "peak RSS ${hwm:-?} (ASan build)"

check "no 'Too many open files'" bash -c "! grep -q 'Too many open files' '$work/b1.err'"
check "no failed checkpoint" bash -c "! grep -q 'checkpoint failed' '$work/b1.err'"
check "the partition checkpointed up to its last offset ($total)" test "$(ckpt_offset)" = "$total"
check "per turnstile, the lake's sums equal what was sent (the second agent's too)" \
  cmp -s "$work/sums" "$work/expected"
check "a date directory for each of the $FAR dates (and the near agent's)" test "$dates" -ge "$FAR"
check "the bridge never came near its fd limit ($max_fds < $((NOFILE / 4)))" \
  test "$max_fds" -lt $((NOFILE / 4))
check "acks: the far agent's is $FAR" \
  test "$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t turnstile/v1/S1/a-far/ack -C 1 -W 10)" = "$FAR"
check "acks: the near agent's is $NEAR" \
  test "$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t turnstile/v1/S2/a-near/ack -C 1 -W 10)" = "$NEAR"
bridge_kill b1 TERM
check "no sanitizer report from the bridge" bash -c "! grep -q 'Sanitizer' '$work/b1.err'"
if [ "$fails" -gt 0 ]; then grep -E 'error|warning' "$work/b1.err" | head -20; fi
finish
