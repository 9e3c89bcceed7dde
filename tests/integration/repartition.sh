# SPDX-License-Identifier: Apache-2.0
# repartition.sh - the procedure that puts partitions added to turnstile.readings
# to use (docs/bridge.md, "Adding partitions"), for bash tests and the e2e
# harness. Source it; kcat must reach the config's [kafka] brokers.
#
#   repartition_ends CONF          "P LOW END" for every partition of the readings topic
#   repartition_lag CONF           "P LAG" for every partition whose latest lake
#                                  checkpoint is behind its end (nothing: drained)
#   repartition_wait_drained CONF SECONDS
#                                  until every partition is drained (1 on timeout)
#   repartition_run CONF [LOG]     turnstile-bridge -c CONF --repartition, its
#                                  output appended to LOG (default: stderr); its
#                                  exit status: 0 done or nothing to do, 75
#                                  refused (not safe now), 1 failed
#   repartition_procedure CONF STOP START [LOG]
#       the whole procedure, for bridges whose relay and aggregator run in one
#       process (--role all):
#         1. STOP, a command that stops every bridge with SIGTERM: no relay
#            takes readings any more (they wait in mosquitto and in the agents);
#         2. one aggregator alone (turnstile-bridge -c CONF --role aggregate)
#            until every partition is drained, then SIGTERM;
#         3. turnstile-bridge -c CONF --repartition (it waits for the stopped
#            bridges to leave the consumer group);
#         4. START, a command that starts the bridges in their usual roles.
#       Returns non-zero (with a message on stderr) if a step fails; START
#       runs in any case once STOP has, so the pipeline is not left stopped.
#       Bridges that run relays and aggregators apart do 1 to 4 themselves:
#       stop the relays, wait for repartition_wait_drained, stop the
#       aggregators, repartition_run, start the aggregators, then the relays.
#
# Uses TS_BIN_DIR (the built programs). The config is read for [kafka]
# brokers and readings_topic, and [lake] path and table; on the object lake
# ([lake] url = s3://BUCKET/PREFIX) also endpoint, region, path_style and
# key_id_file/secret_file (else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY):
# the checkpoints are read from the bucket with curl (AWS SigV4), the
# credentials passed to curl on its standard input, not its command line.

# _rp_conf CONF SECTION KEY DEFAULT: a key's value in the config (ini)
_rp_conf() {
  awk -v want="$2" -v key="$3" -v def="$4" '
    /^[ \t]*[#;]/ { next }
    /^[ \t]*\[/ { s = $0; gsub(/[][ \t]/, "", s); next }
    s == want {
      line = $0; sub(/[ \t]*=.*/, "", line); gsub(/^[ \t]+/, "", line)
      if (line == key) { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v); found = v }
    }
    END { print (found != "" ? found : def) }' "$1"
}

repartition_ends() { # CONF
  local brokers topic p n lo hi
  brokers=$(_rp_conf "$1" kafka brokers "")
  topic=$(_rp_conf "$1" kafka readings_topic turnstile.readings)
  n=$(kcat -b "$brokers" -L -t "$topic" -m 10 2>/dev/null | grep -c '^ *partition [0-9]*,') || true
  [ "${n:-0}" -gt 0 ] || { echo "repartition_ends: cannot list $topic's partitions" >&2; return 1; }
  for ((p = 0; p < n; p++)); do
    # -Q with timestamp -2 / -1: the first offset and the end (librdkafka's OFFSET_BEGINNING / END)
    lo=$(kcat -b "$brokers" -Q -t "$topic:$p:-2" -m 10 2>/dev/null | awk '{print $NF}')
    hi=$(kcat -b "$brokers" -Q -t "$topic:$p:-1" -m 10 2>/dev/null | awk '{print $NF}')
    [ -n "$lo" ] && [ -n "$hi" ] ||
      { echo "repartition_ends: no offsets for $topic [$p]" >&2; return 1; }
    echo "$p $lo $hi"
  done
}

# _rp_s3 CONF REQUEST: GET BUCKET-URL/REQUEST on the object lake ([lake] url),
# signed with AWS SigV4 by curl; the answer's body on stdout
_rp_s3() {
  local url ep region ps kf sf kid sec bucket base
  url=$(_rp_conf "$1" lake url "")
  ep=$(_rp_conf "$1" lake endpoint "")
  region=$(_rp_conf "$1" lake region us-east-1)
  ps=$(_rp_conf "$1" lake path_style false)
  kf=$(_rp_conf "$1" lake key_id_file "")
  sf=$(_rp_conf "$1" lake secret_file "")
  if [ -n "$kf" ]; then kid=$(head -n 1 "$kf") sec=$(head -n 1 "$sf")
  else kid=${AWS_ACCESS_KEY_ID:-} sec=${AWS_SECRET_ACCESS_KEY:-}; fi
  bucket=${url#s3://} bucket=${bucket%%/*}
  [ -n "$ep" ] || ep=https://s3.$region.amazonaws.com
  case $ps in true|yes|on|1) base=$ep/$bucket ;; *) base=${ep%%://*}://$bucket.${ep#*://} ;; esac
  printf 'user = "%s:%s"\n' "$kid" "$sec" |
    curl -sS -f --max-time 30 -K - --aws-sigv4 "aws:amz:$region:s3" \
      -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$base/$2"
}

# _rp_latest_ckpt CONF P: the latest checkpoint of partition P, its text (nothing: none)
_rp_latest_ckpt() {
  local lake table topic url prefix dir list key
  lake=$(_rp_conf "$1" lake path "")
  table=$(_rp_conf "$1" lake table turnstile)
  topic=$(_rp_conf "$1" kafka readings_topic turnstile.readings)
  url=$(_rp_conf "$1" lake url "")
  if [ -z "$url" ]; then
    dir=$lake/$table/_manifest/$topic-$2
    key=$(ls "$dir"/*.ckpt 2>/dev/null | sort | tail -1) || true
    [ -z "$key" ] || cat "$key"
    return 0
  fi
  prefix=${url#s3://} prefix=${prefix#*/}
  [ "$prefix" != "${url#s3://}" ] || prefix=   # s3://BUCKET: no prefix
  dir=${prefix:+$prefix/}$table/_manifest/$topic-$2/
  # ListObjectsV2 (keys in order: the last checkpoint is the latest); '/' and '=' escaped
  list=$(_rp_s3 "$1" "?list-type=2&prefix=$(printf '%s' "$dir" | sed 's|/|%2F|g; s|=|%3D|g')") ||
    { echo "repartition_lag: cannot list $url's $dir" >&2; return 1; }
  key=$(grep -o '<Key>[^<]*/[0-9]\{12\}\.ckpt</Key>' <<<"$list" | tail -n 1 | sed 's|<Key>||; s|</Key>||') || true
  [ -z "$key" ] || _rp_s3 "$1" "$key" || { echo "repartition_lag: cannot read $key" >&2; return 1; }
}

repartition_lag() { # CONF
  local p lo hi ckpt off ends
  ends=$(repartition_ends "$1") || return 1
  while read -r p lo hi; do
    ckpt=$(_rp_latest_ckpt "$1" "$p") || return 1
    off=-1
    [ -z "$ckpt" ] || off=$(awk '$1 == "offset_next" {print $2; exit}' <<<"$ckpt")
    [ "$off" -ge "$lo" ] 2>/dev/null || off=$lo   # none, or deleted by retention: from the first
    [ "$off" -ge "$hi" ] || echo "$p $((hi - off))"
  done <<<"$ends"
}

repartition_wait_drained() { # CONF SECONDS
  local deadline=$((SECONDS + ${2:-60})) lag
  while :; do
    lag=$(repartition_lag "$1") && [ -z "$lag" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "repartition_wait_drained: not drained after ${2:-60} s (partition lag: $(echo $lag))" >&2
      return 1
    fi
    sleep 0.5
  done
}

repartition_run() { # CONF [LOG]
  local rc=0
  if [ -n "${2:-}" ]; then
    "${TS_BIN_DIR:?}/turnstile-bridge" -c "$1" --repartition >>"$2" 2>&1 || rc=$?
  else
    "${TS_BIN_DIR:?}/turnstile-bridge" -c "$1" --repartition >&2 || rc=$?
  fi
  return "$rc"
}

repartition_procedure() { # CONF STOP START [LOG]
  local conf=$1 stop=$2 start=$3 log=${4:-/dev/stderr} pid rc=0
  eval "$stop" || { echo "repartition_procedure: '$stop' failed" >&2; return 1; }
  "${TS_BIN_DIR:?}/turnstile-bridge" -c "$conf" --role aggregate >>"$log" 2>&1 &
  pid=$!
  repartition_wait_drained "$conf" 120 || rc=1
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=1
  if [ "$rc" = 0 ]; then
    repartition_run "$conf" "$log" || rc=$?
    [ "$rc" = 0 ] || echo "repartition_procedure: --repartition exited $rc, see $log" >&2
  fi
  eval "$start" || { echo "repartition_procedure: '$start' failed" >&2; rc=1; }
  return "$rc"
}
