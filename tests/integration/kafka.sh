# kafka.sh - a real Apache Kafka broker (KRaft, one node on loopback) for
# bash tests and the demo. Source it:
#
#   . "$TS_SRC_DIR/tests/integration/kafka.sh"
#   kafka_start [--conf 'LINES']       # format the storage, start, wait until ready
#   kafka_create_topic NAME PARTITIONS [--config K=V ...]
#   kcat -b "$KAFKA_BOOTSTRAP" -P -t NAME ...
#   kafka_stop         # SIGTERM: a clean shutdown
#   kafka_kill         # SIGKILL: a crash
#   kafka_restart      # same ports, same log dir (topics, data, offsets kept)
#   kafka_wait [SECONDS]   # until the broker answers metadata requests
#   kafka_tool CLASS ARGS...   # a Kafka command-line tool, e.g.
#       kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
#         --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group G
#
# The broker is Apache Kafka from Maven Central (version pinned in
# scripts/kafka/pom.xml, see docs/kafka.md); scripts/kafka-fetch is run first
# (instant when the jars are cached in .cache/kafka). It runs as one JVM,
# broker and controller, with its own config in a fresh directory: a
# PLAINTEXT listener on a free 127.0.0.1 port, the controller on another,
# replication factors 1, topics created explicitly (no auto-create), 4
# partitions by default, log4j at INFO to KAFKA_LOG. If the broker cannot
# bind the ports it picked, other ports are tried.
#
# Environment: KAFKA_HEAP_OPTS (default -Xms64m -Xmx512m), KAFKA_JVM_OPTS
# (default -XX:+UseSerialGC -XX:TieredStopAtLevel=1: starts fastest on 2
# cores), KAFKA_CDS=0 (no class data sharing archives, see below),
# KAFKA_START_TIMEOUT (seconds, default 60), TS_KEEP_KAFKA_DIR (keep the
# directory after the clean-up).
#
# Variables set: KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_BOOTSTRAP
# (127.0.0.1:PORT), KAFKA_DIR, KAFKA_PID, KAFKA_CONF, KAFKA_LOG (log4j
# output), KAFKA_OUT (the JVM's stdout and stderr), KAFKA_LIBS, KAFKA_DATA
# (log.dirs), KAFKA_CLUSTER_ID.
#
# Clean-up: the broker is stopped and KAFKA_DIR removed when the shell exits,
# by an EXIT trap that runs kafka_cleanup and then the EXIT trap that was set
# before kafka_start (set yours first, or call kafka_cleanup from it). With
# setpriv available, the broker also dies with the shell (pdeathsig).
# Functions return non-zero with a message on stderr on failure.

KAFKA_PORT=0 KAFKA_CONTROLLER_PORT=0 KAFKA_BOOTSTRAP= KAFKA_DIR= KAFKA_PID= KAFKA_CONF=
KAFKA_LOG= KAFKA_OUT= KAFKA_LIBS= KAFKA_DATA= KAFKA_CLUSTER_ID=
_kafka_extra= _kafka_trap=0 _kafka_started=0 _kafka_ready=0 _kafka_cp= _kafka_home=
_kafka_cds_opts=() _kafka_cds_new= _kafka_cds_file= _kafka_broker_cds_new= _kafka_broker_cds_file=
_kafka_broker_opts=
_kafka_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

_kafka_uuid() { # a cluster id as Kafka's Uuid.randomUuid makes: 16 random bytes, base64url
  local u
  while :; do
    u=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    case $u in -*) ;; *) echo "$u"; return 0 ;; esac   # Kafka avoids a leading '-'
  done
}

# The jars (fetched on first use), an explicit classpath in a fixed order (a
# class data sharing archive is tied to it), the tools' logging config.
_kafka_libs() {
  [ -z "$_kafka_cp" ] || return 0
  KAFKA_LIBS=$("$_kafka_root/scripts/kafka-fetch" --libs) || { echo "kafka: fetch failed" >&2; return 1; }
  local jars=("$KAFKA_LIBS"/*.jar)
  _kafka_cp=$(IFS=:; echo "${jars[*]}")
  _kafka_home=${KAFKA_LIBS%/libs}
  if [ ! -f "$_kafka_home/tools-log4j.properties" ]; then
    printf '%s\n' "log4j.rootLogger=WARN, stderr" \
      "log4j.appender.stderr=org.apache.log4j.ConsoleAppender" \
      "log4j.appender.stderr.Target=System.err" \
      "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout" \
      "log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n" \
      >"$_kafka_home/tools-log4j.properties.$$" &&
      mv -f "$_kafka_home/tools-log4j.properties.$$" "$_kafka_home/tools-log4j.properties"
  fi
}

# Class data sharing (AppCDS): a JVM's first run with a given name, JVM, jars
# and options writes an archive of the classes it loaded when it exits; later
# runs map it and start faster (broker 1.3 to 1.5x, tools 1.5x: docs/kafka.md).
# Archives live next to the jars, in .cache/kafka/VERSION/cds. KAFKA_CDS=0
# turns this off.
# _kafka_cds NAME OPTIONS: sets _kafka_cds_opts (to add to the java command),
# _kafka_cds_new (the file this run dumps to, or empty) and _kafka_cds_file.
_kafka_cds() {
  _kafka_cds_opts=() _kafka_cds_new= _kafka_cds_file=
  [ "${KAFKA_CDS:-1}" = 1 ] || return 0
  local java key dir=$_kafka_home/cds
  java=$(readlink -f "$(command -v java)") || return 0
  # an archive holds for one JVM build, one set of jars (paths and times), one set of options
  key=$(printf '%s\n' "$java" "$(stat -c %s.%Y "${java%/bin/java}/lib/server/libjvm.so" 2>/dev/null)" \
          "$_kafka_cp" "$(stat -c %Y "$KAFKA_LIBS")" "$2" | sha256sum | cut -c1-16)
  mkdir -p "$dir" 2>/dev/null || return 0
  find "$dir" -name '*.new.*' -mmin +60 -delete 2>/dev/null || true   # left by a killed shell
  _kafka_cds_file=$dir/$1-$key.jsa
  if [ -s "$_kafka_cds_file" ]; then
    _kafka_cds_opts=(-XX:SharedArchiveFile="$_kafka_cds_file")
  else
    _kafka_cds_new=$_kafka_cds_file.new.$$.$RANDOM
    _kafka_cds_opts=(-XX:ArchiveClassesAtExit="$_kafka_cds_new")
  fi
  # the dump warns about every class it skips; nothing else to say
  _kafka_cds_opts+=(-Xlog:cds=off -Xlog:cds+dynamic=off)
}

# _kafka_cds_keep NEW FILE OPTIONS: a JVM that ended by itself wrote NEW
# whole; keep it as FILE if a JVM maps it (-Xshare:on fails on a bad one)
_kafka_cds_keep() {
  [ -n "$1" ] || return 0
  [ -s "$1" ] || { rm -f "$1"; return 0; }
  # shellcheck disable=SC2086  # option lists
  if java $3 -Xshare:on -XX:SharedArchiveFile="$1" -XX:ErrorFile=/dev/null -Xlog:cds=off \
       -Xlog:cds+dynamic=off -cp "$_kafka_cp" -version >/dev/null 2>&1; then
    mv -f "$1" "$2"
    local old
    for old in "${2%-*}"-*.jsa; do   # the same JVM's archives for other jars or options
      [ "$old" = "$2" ] || rm -f "$old"
    done
  else
    rm -f "$1"
  fi
}

# A Kafka command-line tool in a small JVM that starts fast; warnings only,
# on stderr. Works without a broker started (the jars are fetched if needed).
_kafka_tool_opts="-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
kafka_tool() { # CLASS ARGS...
  _kafka_libs || return 1
  _kafka_cds "tool-$1" "$_kafka_tool_opts"
  local new=$_kafka_cds_new file=$_kafka_cds_file rc=0
  # shellcheck disable=SC2086  # option lists
  java $_kafka_tool_opts "${_kafka_cds_opts[@]}" \
    -Dlog4j.configuration="file:$_kafka_home/tools-log4j.properties" \
    -cp "$_kafka_cp" "$@" || rc=$?
  if [ -n "$new" ]; then
    if [ "$rc" = 0 ]; then _kafka_cds_keep "$new" "$file" "$_kafka_tool_opts"; else rm -f "$new"; fi
  fi
  return "$rc"
}

_kafka_write_conf() {
  {
    echo "# written by tests/integration/kafka.sh"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT"
    echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "log.dirs=$KAFKA_DATA"
    echo "num.partitions=4"
    echo "auto.create.topics.enable=false"
    echo "offsets.topic.replication.factor=1"
    echo "offsets.topic.num.partitions=4"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "transaction.state.log.num.partitions=4"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=4"
    echo "num.recovery.threads.per.data.dir=1"
    # after a SIGKILL the restarted controller holds the broker's old
    # registration until its session times out (default 9 s; the broker retries
    # at 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s: 3 s makes it about 3.5 s instead of 13)
    echo "broker.heartbeat.interval.ms=1000"
    echo "broker.session.timeout.ms=3000"
    [ -z "$_kafka_extra" ] || printf '%s\n' "$_kafka_extra"
  } >"$KAFKA_CONF"
  {
    echo "log4j.rootLogger=INFO, file"
    echo "log4j.appender.file=org.apache.log4j.FileAppender"
    echo "log4j.appender.file.File=$KAFKA_LOG"
    echo "log4j.appender.file.layout=org.apache.log4j.PatternLayout"
    echo "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n"
    echo "log4j.logger.state.change.logger=WARN"
    echo "log4j.logger.kafka.request.logger=WARN"
  } >"$KAFKA_DIR/log4j.properties"
}

_kafka_starts() { # how many times the log says the broker finished starting
  local n
  n=$(grep -c 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null) || true
  echo "${n:-0}"
}

_kafka_spawn() {
  local pd=() opts="${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m} ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
  # a restart appends to the log: readiness is one more "Kafka Server started"
  _kafka_started=$(_kafka_starts)
  _kafka_cds broker "$opts"
  _kafka_broker_cds_new=$_kafka_cds_new _kafka_broker_cds_file=$_kafka_cds_file
  _kafka_broker_opts=$opts _kafka_ready=0
  command -v setpriv >/dev/null 2>&1 && pd=(setpriv --pdeathsig KILL)
  # shellcheck disable=SC2086  # option lists
  "${pd[@]}" java $opts "${_kafka_cds_opts[@]}" -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
    -cp "$_kafka_cp" kafka.Kafka "$KAFKA_CONF" >>"$KAFKA_OUT" 2>&1 </dev/null &
  KAFKA_PID=$!
  disown "$KAFKA_PID"   # no "Killed" job reports; bash still reaps it
}

# 0 ready, 1 timeout, 2 the broker exited
_kafka_wait() { # SECONDS
  local deadline=$((SECONDS + ${1:-60}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
      wait "$KAFKA_PID" 2>/dev/null || true
      KAFKA_PID=
      rm -f "$_kafka_broker_cds_new"   # a broker that failed to start: no archive
      _kafka_broker_cds_new=
      return 2
    fi
    # ready: the listener accepts, the broker has registered with the
    # controller (it lists itself in metadata) and finished starting
    if port_accepts "$KAFKA_PORT" &&
       kcat -b "$KAFKA_BOOTSTRAP" -L -m 2 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$KAFKA_PORT" &&
       [ "$(_kafka_starts)" -gt "$_kafka_started" ]; then
      _kafka_ready=1
      return 0
    fi
    sleep 0.1
  done
  return 1
}

kafka_wait() { # [SECONDS]
  [ -n "$KAFKA_PID" ] || { echo "kafka: not running" >&2; return 1; }
  _kafka_wait "${1:-${KAFKA_START_TIMEOUT:-60}}" ||
    { echo "kafka: not ready, see $KAFKA_LOG" >&2; return 1; }
}

_kafka_install_trap() {
  [ "$_kafka_trap" = 1 ] && return 0
  local prev
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"   # trap -- 'COMMAND' EXIT
    prev=$3
  fi
  # shellcheck disable=SC2064  # expand prev now
  trap "kafka_cleanup${prev:+; $prev}" EXIT
  _kafka_trap=1
}

kafka_start() { # [--conf LINES]
  _kafka_extra=
  while [ $# -gt 0 ]; do
    case $1 in
      --conf) _kafka_extra=$2; shift ;;
      *) echo "kafka_start: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  command -v java >/dev/null || { echo "kafka: java not found (scripts/deps)" >&2; return 1; }
  command -v kcat >/dev/null || { echo "kafka: kcat not found (scripts/deps)" >&2; return 1; }
  _kafka_libs || return 1
  [ -z "$KAFKA_DIR" ] || kafka_cleanup
  _kafka_install_trap
  KAFKA_DIR=$(mktemp -d /tmp/ts-kafka.XXXXXX) || return 1
  KAFKA_CONF=$KAFKA_DIR/server.properties KAFKA_LOG=$KAFKA_DIR/server.log
  KAFKA_OUT=$KAFKA_DIR/kafka.out KAFKA_DATA=$KAFKA_DIR/data
  KAFKA_CLUSTER_ID=$(_kafka_uuid)
  local rc
  for _ in 1 2 3 4 5; do
    KAFKA_PORT=$(free_port) || return 1
    KAFKA_CONTROLLER_PORT=$(free_port) || return 1
    [ "$KAFKA_CONTROLLER_PORT" != "$KAFKA_PORT" ] || continue
    KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
    rm -rf "$KAFKA_DATA" "$KAFKA_LOG"
    _kafka_write_conf
    kafka_tool kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_CONF" \
      >>"$KAFKA_DIR/commands.log" 2>&1 ||
      { echo "kafka: formatting the storage failed, see $KAFKA_DIR/commands.log" >&2; return 1; }
    _kafka_spawn
    _kafka_wait "${KAFKA_START_TIMEOUT:-60}" && rc=0 || rc=$?
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 2 ] && grep -qs "Address already in use" "$KAFKA_OUT" "$KAFKA_LOG" || break
    echo "kafka: port taken, trying other ports" >&2
  done
  echo "kafka: the broker did not start:" >&2
  tail -n 20 "$KAFKA_OUT" >&2 2>/dev/null || true
  grep -E ' (ERROR|FATAL) ' "$KAFKA_LOG" 2>/dev/null | tail -n 10 >&2 || true
  kafka_cleanup
  return 1
}

kafka_create_topic() { # NAME PARTITIONS [TopicCommand options, e.g. --config K=V]
  local name=$1 parts=$2
  shift 2
  [ -n "$KAFKA_PID" ] || { echo "kafka_create_topic: no broker running" >&2; return 1; }
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --create --topic "$name" --partitions "$parts" --replication-factor 1 "$@" \
    >>"$KAFKA_DIR/commands.log" 2>&1 ||
    { echo "kafka_create_topic $name: failed, see $KAFKA_DIR/commands.log" >&2; return 1; }
  # wait until the broker serves every partition (a leader for each)
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 2 -t "$name" 2>/dev/null | grep -c 'partition [0-9]*, leader 1,')" = "$parts" ] &&
      return 0
    sleep 0.1
  done
  echo "kafka_create_topic $name: partitions have no leader" >&2
  return 1
}

_kafka_signal() { # SIGNAL
  [ -n "$KAFKA_PID" ] || return 0
  local i by_itself=0
  [ "$1" = KILL ] || kill "-$1" "$KAFKA_PID" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do   # a clean shutdown takes under a second
    [ "$1" != KILL ] || break
    kill -0 "$KAFKA_PID" 2>/dev/null || { by_itself=1; break; }
    sleep 0.1
  done
  kill -KILL "$KAFKA_PID" 2>/dev/null || true
  wait "$KAFKA_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do   # SIGKILL: gone in a moment
    kill -0 "$KAFKA_PID" 2>/dev/null || break
    sleep 0.05
  done
  KAFKA_PID=
  if [ -n "$_kafka_broker_cds_new" ]; then
    # a broker that started and shut down by itself wrote its archive whole
    if [ "$by_itself" = 1 ] && [ "$_kafka_ready" = 1 ]; then
      _kafka_cds_keep "$_kafka_broker_cds_new" "$_kafka_broker_cds_file" "$_kafka_broker_opts"
    else
      rm -f "$_kafka_broker_cds_new"
    fi
    _kafka_broker_cds_new=
  fi
  return 0
}

kafka_stop() { _kafka_signal TERM; }
kafka_kill() { _kafka_signal KILL; }

kafka_restart() {
  [ -n "$KAFKA_DIR" ] || { echo "kafka_restart: no broker was started" >&2; return 1; }
  [ -z "$KAFKA_PID" ] || kafka_stop
  _kafka_spawn
  _kafka_wait "${KAFKA_START_TIMEOUT:-60}" || { echo "kafka: restart on port $KAFKA_PORT failed, see $KAFKA_LOG" >&2; return 1; }
}

kafka_cleanup() {
  _kafka_signal TERM
  case $KAFKA_DIR in
    /tmp/ts-kafka.*) [ -n "${TS_KEEP_KAFKA_DIR:-}" ] || rm -rf "$KAFKA_DIR" ;;
  esac
  KAFKA_DIR=
}
