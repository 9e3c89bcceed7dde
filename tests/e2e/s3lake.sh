# SPDX-License-Identifier: Apache-2.0
# The object lake in the end-to-end proof (run.sh --lake s3; docs/e2e.md, "The object lake").
# Sourced by run.sh after lib.sh; uses its work, src, bin, list, faults, cluster, lake_dir.
#
#   s3lake_faults   adjusts run.sh's fault list: with --lake s3 the default lists get
#                   s3_outage; s3_* faults need --lake s3
#   s3lake_setup    S3Proxy (tests/integration/s3proxy.sh, bucket "lake"), [lake] url =
#                   s3://lake/e2e in bridge.conf, and bridge2.conf: a second bridge, aggregator
#                   only, in the same consumer group, with its own id and spool; lake_dir
#                   becomes the bucket's objects (S3Proxy's filesystem store)
#   bridge2_up      starts the second bridge (b2)
#   fault_kafka_add_partitions
#                   with --lake s3, lib.sh's fault with b2 stopped (SIGTERM) for its length:
#                   the procedure needs the consumer group empty and stops and starts b1
#                   only; then b2's spool gets the new layout file from b1's (each bridge
#                   keeps its own, docs/bridge.md, "Adding partitions") and b2 starts again
#   fault_s3_outage S3Proxy SIGKILLed for E2E_S3_OUTAGE_S (60 s), started again on its port;
#                   then b2 SIGKILLed while its uploads are in the bucket under their hidden
#                   names (after the upload, before the copy to the final name), and restarted
#   s3lake_rows     the object store's rows of the accounting table
#   s3lake_checks   its checks: the outage failed checkpoints and paused, they work again, b1
#                   rode it out, the kill was mid-commit, the S3 API lists exactly the data
#                   files the accounting read, nothing hidden left in the bucket

. "$src/tests/integration/s3proxy.sh"

S3_FAULTS="s3_outage"
E2E_S3_OUTAGE_S=${E2E_S3_OUTAGE_S:-60}
E2E_S3_PAUSED=0 E2E_S3_RODE_OUT=0 E2E_S3_MIDCOMMIT=0 E2E_S3_KILLS=0 E2E_S3_RESTARTED=0
E2E_S3_B1_CKPTS=    # b1's checkpoints (its status line) when S3Proxy came back

s3lake_faults() {
  local f l=
  for f in $list; do
    case $f in
      s3_*) [ "$lake" = s3 ] || { echo "e2e: fault '$f' needs --lake s3" >&2; exit 2; } ;;
    esac
    l+=" $f"
  done
  if [ "$lake" = s3 ]; then
    case ",$faults," in *,cluster,*|*,all,*) l+=" $S3_FAULTS" ;; esac
  fi
  list=$l
}

# FILE: the lake on the bucket; path stays, as the bridge's local spool
s3lake_conf() {
  S3LAKE_LINES=$(s3proxy_lake s3://lake/e2e) \
    awk '{ print } $0 == "[lake]" { print ENVIRON["S3LAKE_LINES"] }' "$1" >"$1.new"
  mv "$1.new" "$1"
}

s3lake_setup() {
  export TS_KEEP_S3PROXY_DIR=1   # it lives in $work: kept (--keep, a failure) or removed with it
  TMPDIR=$work s3proxy_start lake
  lake_dir=$S3PROXY_DATA/lake/e2e
  s3lake_conf "$work/bridge.conf"
  # b2: the same group (turnstile-bridge), its own static member id and spool, no relay
  bridge_conf "$work/bridge2.conf" b2 "keep_checkpoints = 100000"
  [ "$cluster" = 0 ] ||
    sed -i 's/^\[kafka\]$/[kafka]\nqueue_max_messages = 1500/; s/^checkpoint_interval_ms = .*/checkpoint_interval_ms = 5000/' "$work/bridge2.conf"
  sed -i "s|^path = .*|path = $work/spool2|" "$work/bridge2.conf"
  s3lake_conf "$work/bridge2.conf"
  E2E_BRIDGES="b1 b2"
}

bridge2_up() { bridge_start b2 "$work/bridge2.conf" --role aggregate; }

# lib.sh's fault_kafka_add_partitions, with b2 out of the way on the object lake
eval "_s3lake_lib_$(declare -f fault_kafka_add_partitions)"
fault_kafka_add_partitions() {
  [ "$lake" = s3 ] || { _s3lake_lib_fault_kafka_add_partitions; return; }
  local bridges=$E2E_BRIDGES from to
  bridge_kill b2 TERM   # its last checkpoint; the group must be empty for --repartition
  E2E_BRIDGES=b1        # not an exit of b2 for kafka_fault_bridge_check
  _s3lake_lib_fault_kafka_add_partitions
  E2E_BRIDGES=$bridges
  from=$(_rp_conf "$work/bridge.conf" lake path "")/$(_rp_conf "$work/bridge.conf" lake table turnstile)/_manifest/turnstile.readings.layout
  to=$(_rp_conf "$work/bridge2.conf" lake path "")/$(_rp_conf "$work/bridge2.conf" lake table turnstile)/_manifest/turnstile.readings.layout
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to.tmp" && mv "$to.tmp" "$to"
  bridge2_up
  FAULT_NOTE="$FAULT_NOTE; b2 stopped meanwhile, then started with b1's new layout ($(sed -n 's/^partitions //p' "$to") partitions)"
}

s3lake_count() { # PATTERN [BRIDGE...]: lines of the bridges' logs
  local b n=0
  for b in ${2:-b1 b2}; do n=$((n + $(grep -c -- "$1" "$work/$b.err" 2>/dev/null || true))); done
  echo "$n"
}

fault_s3_outage() {
  local f0 f1 r0 r1 p1=${BRIDGE_PID[b1]:-} since caught=0 hidden pauses
  f0=$(s3lake_count 'checkpoint failed') r0=$(s3lake_count 'object store is out of reach')
  s3proxy_kill
  sleep "$E2E_S3_OUTAGE_S"
  f1=$(s3lake_count 'checkpoint failed') r1=$(s3lake_count 'object store is out of reach')
  # the pauses the partitions took (the back-off: 5 s, doubling while failures repeat)
  pauses=$(cat "$work"/b?.err | grep 'checkpoint failed' | sed -n 's/.*last checkpoint in \([0-9]*\) s$/\1/p' |
    tail -n "$((f1 - f0))" | sort -n | uniq | tr '\n' ' ' || true)
  [ "$f1" -gt "$f0" ] && E2E_S3_PAUSED=$((E2E_S3_PAUSED + f1 - f0))
  s3proxy_restart && E2E_S3_RESTARTED=$((E2E_S3_RESTARTED + 1))
  E2E_S3_B1_CKPTS=$(s3lake_checkpoints b1)
  [ -n "$p1" ] && [ "$p1" = "${BRIDGE_PID[b1]:-}" ] && kill -0 "$p1" 2>/dev/null &&
    E2E_S3_RODE_OUT=$((E2E_S3_RODE_OUT + 1))
  # b2 SIGKILLed mid-commit: as soon as one of its uploads is in the bucket under its
  # hidden name (.<final name>.<writer>.tmp), not yet copied to its final name
  since=$SECONDS
  while [ $((SECONDS - since)) -lt 60 ]; do
    if find "$lake_dir" -name '.*.b2-*.tmp' -path '*/event_date=*' -print -quit 2>/dev/null | grep -q .; then
      caught=1; break
    fi
    sleep 0.05
  done
  hidden=$(find "$lake_dir" -name '.*.tmp' 2>/dev/null | wc -l)
  bridge_kill b2
  E2E_S3_KILLS=$((E2E_S3_KILLS + 1)) E2E_S3_MIDCOMMIT=$((E2E_S3_MIDCOMMIT + caught))
  bridge2_up
  FAULT_NOTE="S3Proxy SIGKILLed for ${E2E_S3_OUTAGE_S} s: $((f1 - f0)) checkpoint(s) failed, partitions paused (${pauses% } s) and read again ($((r1 - r0)) reload(s) found the store out of reach); started again on its port; b1 the same process: $([ "$E2E_S3_RODE_OUT" -gt 0 ] && echo yes || echo no); then b2 SIGKILLed $((SECONDS - since)) s later with $hidden hidden object(s) in the bucket (mid-commit: $caught) and started again"
  kafka_fault_bridge_check s3_outage   # neither bridge may have exited (lib.sh)
}

s3lake_checkpoints() { # BRIDGE: the checkpoints its last status line counts (0: none yet)
  local n
  n=$(grep -o ' [0-9]* checkpoints,' "$work/$1.err" 2>/dev/null | tail -n 1 | tr -dc 0-9)
  echo "${n:-0}"
}

# b1 checkpoints again after the outage: it says so ("checkpoints work again", from a partition
# that failed), or, when a rebalance took that partition's failures away (b2's restart), its
# checkpoints went on after S3Proxy came back (the same process)
s3lake_b1_again() {
  [ "$(s3lake_count 'checkpoints work again' b1)" -gt 0 ] ||
    [ "$(s3lake_checkpoints b1)" -gt "${E2E_S3_B1_CKPTS:-0}" ]
}

s3lake_enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# every key under PREFIX, through the S3 API (ListObjectsV2, every page)
s3lake_list() {
  local token= out
  while :; do
    # the query by hand, its parameters in the order SigV4 signs them (curl -G's was refused)
    out=$(s3proxy_curl "$S3PROXY_ENDPOINT/lake?${token:+continuation-token=$(s3lake_enc "$token")&}list-type=2&prefix=$(s3lake_enc "$1")") ||
      return 1
    grep -o '<Key>[^<]*</Key>' <<<"$out" | sed 's|<Key>\(.*\)</Key>|\1|'
    token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$out" | sed 's/.*>//' || true)
    [ -n "$token" ] || break
  done
}

s3lake_rows() {
  s3lake_list e2e/ >"$work/s3.keys" || echo "s3lake: listing the bucket failed" >&2
  sed -n 's|^e2e/||p' "$work/s3.keys" | grep '^turnstile/event_date=.*\.csv\.gz$' | grep -v '/\.[^/]*$' |
    sort >"$work/s3.visible" || true
  grep -c '/\.[^/]*$' "$work/s3.keys" >"$work/s3.hidden" || true
  row "object store: objects listed (S3 API)" "$(wc -l <"$work/s3.keys")"
  row "  visible data objects (S3 API / read)" "$(wc -l <"$work/s3.visible") / $(wc -l <"$work/visible")"
  row "  hidden objects left" "$(cat "$work/s3.hidden")"
  row "S3 outage: checkpoints failed (paused)" "$E2E_S3_PAUSED"
  row "  checkpoints working again (b1 / b2)" "$(s3lake_count 'checkpoints work again' b1) / $(s3lake_count 'checkpoints work again' b2)"
  row "bridge SIGKILLed mid-commit (of kills)" "$E2E_S3_MIDCOMMIT ($E2E_S3_KILLS)"
}

s3lake_checks() {
  check "the bucket's listing (S3 API) names exactly the data files the accounting read" \
    cmp -s "$work/s3.visible" "$work/visible"
  check "nothing hidden left in the bucket (no temporary of a crashed or failed commit)" \
    test "$(cat "$work/s3.hidden")" = 0
  if grep -qw s3_outage "$work/faults.done" 2>/dev/null; then
    check "S3 outage: checkpoints failed and their partitions paused ($E2E_S3_PAUSED)" test "$E2E_S3_PAUSED" -gt 0
    check "S3 outage: S3Proxy started again on its port" test "$E2E_S3_RESTARTED" -gt 0
    check "S3 outage: b1 rode it out (the same process, no restart)" test "$E2E_S3_RODE_OUT" -gt 0
    check "S3 outage: b1's checkpoints work again after it ($(s3lake_count 'checkpoints work again' b1) said so; checkpoints ${E2E_S3_B1_CKPTS:-?} then, $(s3lake_checkpoints b1) at the end)" s3lake_b1_again
    check "a bridge (b2) was SIGKILLed with its uploads in the bucket not yet committed" test "$E2E_S3_MIDCOMMIT" -gt 0
  fi
  log "aggregator b2: $(s3lake_count 'aggregate: consumer failed for good' b2) consumer failure(s) (fenced), $(s3lake_count 'aggregate: new Kafka consumer' b2) new consumer(s); S3 commit failures b1 $(s3lake_count 'checkpoint failed' b1), b2 $(s3lake_count 'checkpoint failed' b2)"
}
