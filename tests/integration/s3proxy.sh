# SPDX-License-Identifier: Apache-2.0
# s3proxy.sh - a real S3 API server (S3Proxy over its filesystem-nio2 blob
# store) on a free loopback port, for bash tests of the object lake. Source it:
#
#   s3proxy_start [BUCKET...]   # start, wait until it answers, create the buckets
#   s3proxy_stop                # SIGTERM, wait for the JVM to exit
#   s3proxy_kill                # SIGKILL (a crash)
#   s3proxy_restart             # same port, same directory (objects kept)
#   s3proxy_curl ARGS...        # curl signed with AWS SigV4 as the proxy's identity
#   s3proxy_fault_start [--conditional]
#                               # s3_fault_proxy.py in front of it: plan $work/plan, sets
#                               # S3FAULT_ENDPOINT and S3FAULT_PID (the test stops it);
#                               # --conditional: it refuses a conditional PUT of an existing
#                               # key (412), and sets S3PROXY_CONDITIONAL
#   s3proxy_fault_log N         # the last N requests the fault proxy logged, on stderr
#   s3proxy_lake URL [ENDPOINT] # the [lake] lines of a bridge on it: url, endpoint (default
#                               # S3PROXY_ENDPOINT, or a fault proxy's before it), region,
#                               # path_style, the key files; conditional_writes = no unless
#                               # S3PROXY_CONDITIONAL is set (S3Proxy 2.6.0 has none; a fault
#                               # proxy with --conditional has them)
#
# S3Proxy is fetched from Maven Central by scripts/s3proxy-fetch (version
# pinned in scripts/s3proxy/pom.xml; instant once cached in .cache/s3proxy).
# Authorization aws-v2-or-v4 with a fresh random identity and credential
# (written to files, the way a bridge is given them), objects as files under
# S3PROXY_DIR/data. It listens on 127.0.0.1:PORT and is addressed as
# http://localhost:PORT: path-style (localhost:PORT/BUCKET/KEY) or virtual-host
# (BUCKET.localhost:PORT/KEY; libcurl resolves *.localhost to loopback) - with
# s3proxy.virtual-host set, a Host of 127.0.0.1 would be taken for a bucket. If the port
# it picked is taken by the time the JVM binds it, another is tried.
#
# Variables set: S3PROXY_ENDPOINT (http://localhost:PORT), S3PROXY_PORT,
# S3PROXY_PID (empty while it is down), S3PROXY_DIR, S3PROXY_DATA,
# S3PROXY_LOG, S3PROXY_KEY_ID, S3PROXY_SECRET, S3PROXY_KEY_ID_FILE,
# S3PROXY_SECRET_FILE, S3PROXY_REGION (us-east-1).
# Environment: S3PROXY_START_TIMEOUT (seconds, default 60), TS_KEEP_S3PROXY_DIR.
#
# Clean-up: an EXIT trap stops the JVM and removes S3PROXY_DIR, then runs the
# EXIT trap that was set before s3proxy_start (as kafka.sh). With setpriv,
# the JVM also dies with the shell that started it.

S3PROXY_ENDPOINT= S3PROXY_PORT=0 S3PROXY_PID= S3PROXY_DIR= S3PROXY_DATA= S3PROXY_LOG=
S3PROXY_KEY_ID= S3PROXY_SECRET= S3PROXY_KEY_ID_FILE= S3PROXY_SECRET_FILE= S3PROXY_REGION=us-east-1
_s3proxy_trap=0 _s3proxy_cp=
_s3proxy_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

S3FAULT_ENDPOINT= S3FAULT_PID=
s3proxy_fault_start() { # [--conditional]
  local args=() i
  if [ "${1:-}" = --conditional ]; then
    args=(--conditional "$S3PROXY_KEY_ID_FILE" "$S3PROXY_SECRET_FILE")
    S3PROXY_CONDITIONAL=1
  fi
  rm -f "$work/fault.port"
  python3 "$_s3proxy_root/tests/integration/s3_fault_proxy.py" "$S3PROXY_PORT" "$work/plan" \
    "$work/fault.port" ${args[@]+"${args[@]}"} 2>"$work/fault.err" &
  S3FAULT_PID=$!
  for i in $(seq 100); do [ -s "$work/fault.port" ] && break; sleep 0.1; done
  if [ ! -s "$work/fault.port" ]; then
    cat "$work/fault.err" >&2
    echo "the fault proxy did not start" >&2
    return 1
  fi
  S3FAULT_ENDPOINT=http://localhost:$(cat "$work/fault.port")
}

s3proxy_fault_log() { # N
  echo "--- fault proxy log (last $1)" >&2
  tail -n "$1" "$work/plan.log" >&2 2>/dev/null || true
}

s3proxy_lake() { # URL [ENDPOINT]
  printf 'url = %s\nendpoint = %s\nregion = %s\npath_style = true\n' "$1" "${2:-$S3PROXY_ENDPOINT}" \
    "$S3PROXY_REGION"
  printf 'key_id_file = %s\nsecret_file = %s\n' "$S3PROXY_KEY_ID_FILE" "$S3PROXY_SECRET_FILE"
  [ -n "${S3PROXY_CONDITIONAL:-}" ] || printf 'conditional_writes = no\n'
}

s3proxy_curl() {
  curl -sS --max-time 30 --aws-sigv4 "aws:amz:$S3PROXY_REGION:s3" \
    -u "$S3PROXY_KEY_ID:$S3PROXY_SECRET" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

s3proxy_cleanup() {
  s3proxy_kill 2>/dev/null || true
  if [ -n "$S3PROXY_DIR" ] && [ -z "${TS_KEEP_S3PROXY_DIR:-}" ]; then rm -rf "$S3PROXY_DIR"; fi
}

_s3proxy_install_trap() {
  [ "$_s3proxy_trap" = 1 ] && return 0
  local prev
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"
    prev=$3
  fi
  # shellcheck disable=SC2064
  trap "s3proxy_cleanup${prev:+; $prev}" EXIT
  _s3proxy_trap=1
}

# One JVM on S3PROXY_PORT; returns 0 once it answers, 2 if it could not bind.
_s3proxy_spawn() {
  local pd=() deadline
  printf '%s\n' "s3proxy.endpoint=http://127.0.0.1:$S3PROXY_PORT" "s3proxy.authorization=aws-v2-or-v4" \
    "s3proxy.identity=$S3PROXY_KEY_ID" "s3proxy.credential=$S3PROXY_SECRET" \
    "jclouds.provider=filesystem-nio2" "jclouds.identity=local" "jclouds.credential=local" \
    "jclouds.filesystem.basedir=$S3PROXY_DATA" "s3proxy.virtual-host=localhost" \
    >"$S3PROXY_DIR/s3proxy.conf"
  printf '%s\n' '<configuration><appender name="E" class="ch.qos.logback.core.ConsoleAppender">' \
    '<encoder><pattern>%d %level %logger{20} %msg%n</pattern></encoder></appender>' \
    '<root level="WARN"><appender-ref ref="E"/></root></configuration>' >"$S3PROXY_DIR/logback.xml"
  command -v setpriv >/dev/null 2>&1 && pd=(setpriv --pdeathsig KILL)
  "${pd[@]}" java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlogback.configurationFile="$S3PROXY_DIR/logback.xml" \
    -cp "$_s3proxy_cp" org.gaul.s3proxy.Main --properties "$S3PROXY_DIR/s3proxy.conf" \
    >>"$S3PROXY_LOG" 2>&1 &
  S3PROXY_PID=$!
  deadline=$((SECONDS + ${S3PROXY_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$S3PROXY_PID" 2>/dev/null; then
      wait "$S3PROXY_PID" 2>/dev/null; S3PROXY_PID=
      grep -q -i 'address already in use' "$S3PROXY_LOG" && return 2
      echo "s3proxy: exited at start, see $S3PROXY_LOG" >&2; return 1
    fi
    # any HTTP answer (403 without a signature) means it serves
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$S3PROXY_ENDPOINT/" 2>/dev/null)" != 000 ] &&
      return 0
    sleep 0.2
  done
  echo "s3proxy: no answer in ${S3PROXY_START_TIMEOUT:-60} s, see $S3PROXY_LOG" >&2
  return 1
}

s3proxy_start() {
  local libs jars b rc
  libs=$("$_s3proxy_root/scripts/s3proxy-fetch" --libs) || { echo "s3proxy: fetch failed" >&2; return 1; }
  jars=("$libs"/*.jar)
  _s3proxy_cp=$(IFS=:; echo "${jars[*]}")
  S3PROXY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ts-s3proxy.XXXXXX")
  _s3proxy_install_trap
  S3PROXY_DATA=$S3PROXY_DIR/data S3PROXY_LOG=$S3PROXY_DIR/s3proxy.log
  mkdir -p "$S3PROXY_DATA"
  S3PROXY_KEY_ID=TS$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  S3PROXY_SECRET=$(head -c 24 /dev/urandom | base64 | tr '+/' 'xy')
  S3PROXY_KEY_ID_FILE=$S3PROXY_DIR/key_id S3PROXY_SECRET_FILE=$S3PROXY_DIR/secret
  printf '%s\n' "$S3PROXY_KEY_ID" >"$S3PROXY_KEY_ID_FILE"
  (umask 077; printf '%s\n' "$S3PROXY_SECRET" >"$S3PROXY_SECRET_FILE")
  for _ in 1 2 3 4 5; do
    S3PROXY_PORT=$(free_port) || { echo "s3proxy: no free port" >&2; return 1; }
    S3PROXY_ENDPOINT=http://localhost:$S3PROXY_PORT
    _s3proxy_spawn && rc=0 || rc=$?
    [ "$rc" = 2 ] || break
  done
  [ "$rc" = 0 ] || return 1
  for b in "$@"; do
    [ "$(s3proxy_curl -o /dev/null -w '%{http_code}' -X PUT "$S3PROXY_ENDPOINT/$b")" = 200 ] ||
      { echo "s3proxy: creating bucket $b failed" >&2; return 1; }
  done
}

s3proxy_stop() {
  [ -n "$S3PROXY_PID" ] || return 0
  kill -TERM "$S3PROXY_PID" 2>/dev/null || true
  wait "$S3PROXY_PID" 2>/dev/null || true
  S3PROXY_PID=
}

s3proxy_kill() {
  [ -n "$S3PROXY_PID" ] || return 0
  kill -KILL "$S3PROXY_PID" 2>/dev/null || true
  wait "$S3PROXY_PID" 2>/dev/null || true
  S3PROXY_PID=
}

s3proxy_restart() {
  s3proxy_stop
  local rc
  for _ in $(seq 50); do   # the old socket may linger a moment
    _s3proxy_spawn && return 0 || rc=$?
    [ "$rc" = 2 ] || return 1
    sleep 0.2
  done
  return 1
}
