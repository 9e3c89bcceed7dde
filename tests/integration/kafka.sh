# SPDX-License-Identifier: Apache-2.0
# kafka.sh - a real Apache Kafka (KRaft on loopback: one node, or a cluster of
# N) for bash tests and the demo. Source it:
#
#   kafka_start [--conf 'LINES']       # one node: format the storage, start, wait until ready
#   kafka_start --sasl-ssl [--scram-user NAME:PASSWORD]...   # also a SASL_SSL listener
#                                      # (below, "TLS and SASL")
#   kafka_tls_ca DIR NAME              # a new CA: DIR/NAME.pem (certificate), DIR/NAME.key
#   kafka_cluster_start N [--conf 'LINES']   # N nodes, each broker + controller (below)
#   kafka_create_topic NAME PARTITIONS [--config K=V ...]
#   kcat -b "$KAFKA_BOOTSTRAP" -P -t NAME ...
#   kafka_stop         # SIGTERM: a clean shutdown (every node)
#   kafka_kill         # SIGKILL: a crash (every node)
#   kafka_restart      # same ports, same log dirs (topics, data, offsets kept)
#   kafka_wait [SECONDS]   # until every running node answers metadata requests
#   kafka_tool CLASS ARGS...   # a Kafka command-line tool, e.g.
#       kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
#         --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group G
#   kafka_add_partitions NAME TOTAL    # grow a topic to TOTAL partitions
#
# One node at a time, in either mode (I is 1..N; for one node, 1):
#   kafka_node_stop I... / kafka_node_kill I...   # SIGTERM / SIGKILL those nodes
#   kafka_node_restart I...            # start them again (all at once), wait until ready
#   kafka_node_running I               # true if that node's JVM runs
#   kafka_leader TOPIC PARTITION       # prints the leader's node id (-1: none)
#   kafka_isr TOPIC PARTITION          # prints the in-sync replicas, e.g. "1,3,2"
#   kafka_wait_isr TOPIC [SECONDS]     # until every partition has a leader and all
#                                      # its replicas in sync (a rolling restart
#                                      # waits for it before the next node)
#
# The broker is Apache Kafka from Maven Central (version pinned in
# scripts/kafka/pom.xml, see docs/kafka.md); scripts/kafka-fetch is run first
# (instant when the jars are cached in .cache/kafka). Each node is one JVM,
# broker and controller, with its own config in a fresh directory: a
# PLAINTEXT listener on a free 127.0.0.1 port, the controller on another,
# topics created explicitly (no auto-create), 4 partitions by default, log4j
# at INFO to its log. If a node cannot bind the ports it picked, other ports
# are tried. One node: replication factors 1. A cluster (N >= 2): node ids
# 1..N, controller.quorum.voters naming all N, replication factor min(N, 3)
# for topics and the internal topics, min.insync.replicas 2 (1 if N = 1),
# unclean leader election off.
#
# Environment: KAFKA_HEAP_OPTS (default -Xms64m -Xmx512m; a cluster's nodes
# -Xms64m -Xmx320m each), KAFKA_JVM_OPTS (default -XX:+UseSerialGC
# -XX:TieredStopAtLevel=1: starts fastest on 2 cores), KAFKA_CDS=0 (no class
# data sharing archives, see below), KAFKA_START_TIMEOUT (seconds, default
# 60; a cluster 120), TS_KEEP_KAFKA_DIR (keep the directory after the
# clean-up).
#
# Variables set: KAFKA_BOOTSTRAP (every node, 127.0.0.1:PORT,...), KAFKA_DIR,
# KAFKA_NODES (how many), KAFKA_RF (the replication factor topics get),
# KAFKA_LIBS, KAFKA_CLUSTER_ID; per node I the arrays KAFKA_NODE_PID,
# KAFKA_NODE_PORT, KAFKA_NODE_CONTROLLER_PORT, KAFKA_NODE_CONF,
# KAFKA_NODE_LOG (log4j output), KAFKA_NODE_OUT (the JVM's stdout and
# stderr), KAFKA_NODE_DATA (log.dirs); and node 1's as KAFKA_PID (empty
# while it is down), KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_CONF,
# KAFKA_LOG, KAFKA_OUT, KAFKA_DATA. One node keeps them directly in
# KAFKA_DIR; a cluster's node I in KAFKA_DIR/nodeI.
#
# TLS and SASL: with --sasl-ssl every node also listens with SASL_SSL on a
# free 127.0.0.1 port (the PLAINTEXT listener stays, for the harness, the
# tools and kcat without credentials). kafka_start makes a CA and a broker
# certificate (IP 127.0.0.1 and DNS localhost; EC P-256, openssl) in
# KAFKA_DIR/tls, its key in a PKCS12 keystore. Mechanisms SCRAM-SHA-512,
# SCRAM-SHA-256 and PLAIN; each --scram-user (the name without ':', the
# password without ',', ']', '"', '=' or blanks) is created for both SCRAM mechanisms
# by the storage format (kafka-storage format --add-scram) and is a PLAIN user
# with the same password. No authorizer: an authenticated user may do
# anything. Set: KAFKA_SASL_BOOTSTRAP (127.0.0.1:PORT,...), KAFKA_CA (the
# CA's certificate, PEM), the array KAFKA_NODE_SASL_PORT and node 1's
# KAFKA_SASL_PORT.
#
# Clean-up: the nodes are stopped and KAFKA_DIR removed when the shell exits,
# by an EXIT trap that runs kafka_cleanup and then the EXIT trap that was set
# before kafka_start (set yours first, or call kafka_cleanup from it). With
# setpriv available, a node also dies with the shell that started it
# (pdeathsig: start and restart nodes from the main shell, not a subshell).
# Functions return non-zero with a message on stderr on failure.

KAFKA_PORT=0 KAFKA_CONTROLLER_PORT=0 KAFKA_BOOTSTRAP= KAFKA_DIR= KAFKA_PID= KAFKA_CONF=
KAFKA_LOG= KAFKA_OUT= KAFKA_LIBS= KAFKA_DATA= KAFKA_CLUSTER_ID= KAFKA_NODES=0 KAFKA_RF=1
declare -a KAFKA_NODE_PID=() KAFKA_NODE_PORT=() KAFKA_NODE_CONTROLLER_PORT=() KAFKA_NODE_CONF=()
declare -a KAFKA_NODE_LOG=() KAFKA_NODE_OUT=() KAFKA_NODE_DATA=()
_kafka_extra= _kafka_trap=0 _kafka_cp= _kafka_home=
KAFKA_SASL_BOOTSTRAP= KAFKA_SASL_PORT=0 KAFKA_CA=
declare -a KAFKA_NODE_SASL_PORT=()
_kafka_sasl=0
declare -a _kafka_scram_users=()
_kafka_cds_opts=() _kafka_cds_new= _kafka_cds_file=
# per node: starts seen in its log before the last spawn, ready since, its
# class data sharing dump (file it writes, file to keep) and JVM options
declare -a _kafka_started=() _kafka_ready=() _kafka_broker_cds_new=() _kafka_broker_cds_file=()
declare -a _kafka_broker_opts=()
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

_kafka_legacy() { # node 1's values under the one-node names
  KAFKA_PID=${KAFKA_NODE_PID[1]:-} KAFKA_PORT=${KAFKA_NODE_PORT[1]:-0}
  KAFKA_CONTROLLER_PORT=${KAFKA_NODE_CONTROLLER_PORT[1]:-0} KAFKA_CONF=${KAFKA_NODE_CONF[1]:-}
  KAFKA_LOG=${KAFKA_NODE_LOG[1]:-} KAFKA_OUT=${KAFKA_NODE_OUT[1]:-} KAFKA_DATA=${KAFKA_NODE_DATA[1]:-}
  KAFKA_SASL_PORT=${KAFKA_NODE_SASL_PORT[1]:-0}
}

kafka_tls_ca() { # DIR NAME: a new certificate authority, DIR/NAME.pem and DIR/NAME.key
  mkdir -p "$1" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=turnstile-edge test $2" -keyout "$1/$2.key" -out "$1/$2.pem" 2>/dev/null ||
    { echo "kafka_tls_ca: openssl failed" >&2; return 1; }
}

# the CA and the brokers' certificate and keystore in KAFKA_DIR/tls
_kafka_tls_make() {
  local d=$KAFKA_DIR/tls
  kafka_tls_ca "$d" ca || return 1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
      -keyout "$d/broker.key" -out "$d/broker.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/broker.ext" &&
    openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/broker.ext" -out "$d/broker.pem" 2>/dev/null &&
    openssl pkcs12 -export -in "$d/broker.pem" -inkey "$d/broker.key" -certfile "$d/ca.pem" \
      -name broker -passout pass:keystore-pw -out "$d/broker.p12" 2>/dev/null ||
    { echo "kafka: making the broker's certificate failed" >&2; return 1; }
  KAFKA_CA=$d/ca.pem
}

_kafka_all() { seq 1 "$KAFKA_NODES"; }   # every node's number

_kafka_write_conf() { # I
  local i=$1 n voters= misr=1 dir=${KAFKA_NODE_CONF[$1]%/*}
  for n in $(_kafka_all); do voters+="${voters:+,}$n@127.0.0.1:${KAFKA_NODE_CONTROLLER_PORT[$n]}"; done
  [ "$KAFKA_RF" -lt 2 ] || misr=2
  {
    echo "# written by tests/integration/kafka.sh"
    echo "process.roles=broker,controller"
    echo "node.id=$i"
    echo "controller.quorum.voters=$voters"
    if [ "$_kafka_sasl" = 1 ]; then
      local u plain=
      echo "listeners=PLAINTEXT://127.0.0.1:${KAFKA_NODE_PORT[$i]},SASL_SSL://127.0.0.1:${KAFKA_NODE_SASL_PORT[$i]},CONTROLLER://127.0.0.1:${KAFKA_NODE_CONTROLLER_PORT[$i]}"
      echo "advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_NODE_PORT[$i]},SASL_SSL://127.0.0.1:${KAFKA_NODE_SASL_PORT[$i]}"
      echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
      echo "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
      echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      echo "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      for u in "${_kafka_scram_users[@]}"; do plain+=" user_${u%%:*}=\"${u#*:}\""; done
      echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain;"
      echo "ssl.keystore.type=PKCS12"
      echo "ssl.keystore.location=$KAFKA_DIR/tls/broker.p12"
      echo "ssl.keystore.password=keystore-pw"
      echo "ssl.key.password=keystore-pw"
    else
      echo "listeners=PLAINTEXT://127.0.0.1:${KAFKA_NODE_PORT[$i]},CONTROLLER://127.0.0.1:${KAFKA_NODE_CONTROLLER_PORT[$i]}"
      echo "advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_NODE_PORT[$i]}"
      echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    fi
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "log.dirs=${KAFKA_NODE_DATA[$i]}"
    echo "num.partitions=4"
    echo "auto.create.topics.enable=false"
    echo "offsets.topic.replication.factor=$KAFKA_RF"
    echo "offsets.topic.num.partitions=4"
    echo "transaction.state.log.replication.factor=$KAFKA_RF"
    echo "transaction.state.log.min.isr=$misr"
    echo "transaction.state.log.num.partitions=4"
    if [ "$KAFKA_NODES" -gt 1 ]; then
      # a cluster: every topic replicated, acks=all needs 2 in sync, and a
      # replica that was out of sync never becomes leader (no data lost)
      echo "default.replication.factor=$KAFKA_RF"
      echo "min.insync.replicas=$misr"
      echo "unclean.leader.election.enable=false"
    fi
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=$([ "$KAFKA_NODES" -gt 1 ] && echo 2 || echo 4)"
    echo "num.recovery.threads.per.data.dir=1"
    # after a SIGKILL the restarted controller holds the broker's old
    # registration until its session times out (default 9 s; the broker retries
    # at 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s: 3 s makes it about 3.5 s instead of 13).
    # In a cluster the same timeout fences a dead broker: its partitions get
    # new leaders about 3 s after a SIGKILL.
    echo "broker.heartbeat.interval.ms=1000"
    echo "broker.session.timeout.ms=3000"
    [ -z "$_kafka_extra" ] || printf '%s\n' "$_kafka_extra"
  } >"${KAFKA_NODE_CONF[$i]}"
  {
    echo "log4j.rootLogger=INFO, file"
    echo "log4j.appender.file=org.apache.log4j.FileAppender"
    echo "log4j.appender.file.File=${KAFKA_NODE_LOG[$i]}"
    echo "log4j.appender.file.layout=org.apache.log4j.PatternLayout"
    echo "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n"
    echo "log4j.logger.state.change.logger=WARN"
    echo "log4j.logger.kafka.request.logger=WARN"
  } >"$dir/log4j.properties"
}

_kafka_starts() { # I: how many times node I's log says the broker finished starting
  local n
  n=$(grep -c 'Kafka Server started' "${KAFKA_NODE_LOG[$1]}" 2>/dev/null) || true
  echo "${n:-0}"
}

_kafka_spawn() { # I
  local i=$1 pd=() name=broker heap=${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m} opts
  # a cluster's nodes: smaller heaps, and their own archive (other options)
  [ "$KAFKA_NODES" -le 1 ] || { name=cluster-broker; heap=${KAFKA_HEAP_OPTS:--Xms64m -Xmx320m}; }
  opts="$heap ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
  # a restart appends to the log: readiness is one more "Kafka Server started"
  _kafka_started[$i]=$(_kafka_starts "$i")
  _kafka_cds "$name" "$opts"
  _kafka_broker_cds_new[$i]=$_kafka_cds_new _kafka_broker_cds_file[$i]=$_kafka_cds_file
  _kafka_broker_opts[$i]=$opts _kafka_ready[$i]=0
  command -v setpriv >/dev/null 2>&1 && pd=(setpriv --pdeathsig KILL)
  # shellcheck disable=SC2086  # option lists
  "${pd[@]}" java $opts "${_kafka_cds_opts[@]}" -Djava.awt.headless=true \
    -Dlog4j.configuration="file:${KAFKA_NODE_CONF[$i]%/*}/log4j.properties" \
    -cp "$_kafka_cp" kafka.Kafka "${KAFKA_NODE_CONF[$i]}" >>"${KAFKA_NODE_OUT[$i]}" 2>&1 </dev/null &
  KAFKA_NODE_PID[$i]=$!
  disown "$!"   # no "Killed" job reports; bash still reaps it
  _kafka_legacy
}

# 0 ready, 1 timeout, 2 the node exited
_kafka_wait() { # I SECONDS
  local i=$1 deadline=$((SECONDS + ${2:-60})) pid=${KAFKA_NODE_PID[$1]:-} port=${KAFKA_NODE_PORT[$1]}
  [ -n "$pid" ] || return 2
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      KAFKA_NODE_PID[$i]=
      _kafka_legacy
      rm -f "${_kafka_broker_cds_new[$i]:-}"   # a node that failed to start: no archive
      _kafka_broker_cds_new[$i]=
      return 2
    fi
    # ready: the listener accepts, the broker has registered with the
    # controller (it lists itself in metadata) and finished starting
    if port_accepts "$port" &&
       kcat -b "127.0.0.1:$port" -L -m 2 2>/dev/null | grep -q "broker $i at 127.0.0.1:$port" &&
       [ "$(_kafka_starts "$i")" -gt "${_kafka_started[$i]}" ]; then
      _kafka_ready[$i]=1
      return 0
    fi
    sleep 0.1
  done
  return 1
}

_kafka_timeout() { # default start timeout: a cluster starts its JVMs at once
  if [ "$KAFKA_NODES" -gt 1 ]; then echo "${KAFKA_START_TIMEOUT:-120}"; else echo "${KAFKA_START_TIMEOUT:-60}"; fi
}

kafka_node_running() { # I
  [ -n "${KAFKA_NODE_PID[$1]:-}" ] && kill -0 "${KAFKA_NODE_PID[$1]}" 2>/dev/null
}

_kafka_any_running() {
  local i
  for i in $(_kafka_all); do kafka_node_running "$i" && return 0; done
  return 1
}

kafka_wait() { # [SECONDS]: every node that runs
  local i up=0
  for i in $(_kafka_all); do
    [ -n "${KAFKA_NODE_PID[$i]:-}" ] || continue
    up=1
    _kafka_wait "$i" "${1:-$(_kafka_timeout)}" ||
      { echo "kafka: node $i not ready, see ${KAFKA_NODE_LOG[$i]}" >&2; return 1; }
  done
  [ "$up" = 1 ] || { echo "kafka: not running" >&2; return 1; }
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

# Makes KAFKA_DIR, picks ports, formats and starts NODES nodes, waits until
# each is ready (and, in a cluster, until every node sees all of them).
_kafka_launch() { # NODES
  local nodes=$1 i n d rc bad ports p fmt
  command -v java >/dev/null || { echo "kafka: java not found (scripts/deps)" >&2; return 1; }
  command -v kcat >/dev/null || { echo "kafka: kcat not found (scripts/deps)" >&2; return 1; }
  _kafka_libs || return 1
  [ -z "$KAFKA_DIR" ] || kafka_cleanup
  _kafka_install_trap
  KAFKA_DIR=$(mktemp -d /tmp/ts-kafka.XXXXXX) || return 1
  KAFKA_NODES=$nodes KAFKA_RF=$((nodes < 3 ? nodes : 3))
  KAFKA_NODE_PID=() KAFKA_NODE_PORT=() KAFKA_NODE_CONTROLLER_PORT=() KAFKA_NODE_SASL_PORT=()
  KAFKA_SASL_BOOTSTRAP= KAFKA_CA=
  KAFKA_CLUSTER_ID=$(_kafka_uuid)
  local port_names=(KAFKA_NODE_PORT KAFKA_NODE_CONTROLLER_PORT) scram=() u
  if [ "$_kafka_sasl" = 1 ]; then
    command -v openssl >/dev/null || { echo "kafka: openssl not found (scripts/deps)" >&2; return 1; }
    _kafka_tls_make || { kafka_cleanup; return 1; }
    port_names+=(KAFKA_NODE_SASL_PORT)
    for u in "${_kafka_scram_users[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=${u%%:*},password=${u#*:}]"
              --add-scram "SCRAM-SHA-256=[name=${u%%:*},password=${u#*:}]")
    done
  fi
  for i in $(_kafka_all); do
    d=$KAFKA_DIR
    [ "$nodes" = 1 ] || { d=$KAFKA_DIR/node$i; mkdir -p "$d"; }
    KAFKA_NODE_CONF[$i]=$d/server.properties KAFKA_NODE_LOG[$i]=$d/server.log
    KAFKA_NODE_OUT[$i]=$d/kafka.out KAFKA_NODE_DATA[$i]=$d/data
  done
  for _ in 1 2 3 4 5; do
    ports=" "
    for i in $(_kafka_all); do
      for n in "${port_names[@]}"; do
        p=$(free_port) || return 1
        while [[ $ports == *" $p "* ]]; do p=$(free_port) || return 1; done
        ports+="$p "
        eval "$n[$i]=$p"
      done
    done
    KAFKA_BOOTSTRAP=
    for i in $(_kafka_all); do KAFKA_BOOTSTRAP+="${KAFKA_BOOTSTRAP:+,}127.0.0.1:${KAFKA_NODE_PORT[$i]}"; done
    KAFKA_SASL_BOOTSTRAP=
    [ "$_kafka_sasl" = 0 ] || for i in $(_kafka_all); do
      KAFKA_SASL_BOOTSTRAP+="${KAFKA_SASL_BOOTSTRAP:+,}127.0.0.1:${KAFKA_NODE_SASL_PORT[$i]}"
    done
    for i in $(_kafka_all); do
      rm -rf "${KAFKA_NODE_DATA[$i]}" "${KAFKA_NODE_LOG[$i]}"
      _kafka_write_conf "$i"
    done
    # format every node's storage (in parallel: one small JVM each)
    fmt=()
    for i in $(_kafka_all); do
      kafka_tool kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "${KAFKA_NODE_CONF[$i]}" \
        "${scram[@]}" >>"$KAFKA_DIR/commands.log" 2>&1 &
      fmt+=($!)
    done
    bad=0
    for p in "${fmt[@]}"; do wait "$p" || bad=1; done
    [ "$bad" = 0 ] ||
      { echo "kafka: formatting the storage failed, see $KAFKA_DIR/commands.log" >&2; kafka_cleanup; return 1; }
    for i in $(_kafka_all); do _kafka_spawn "$i"; done
    rc=0
    for i in $(_kafka_all); do _kafka_wait "$i" "$(_kafka_timeout)" || { rc=$?; break; }; done
    if [ "$rc" = 0 ]; then
      [ "$nodes" = 1 ] || _kafka_wait_brokers "$nodes" "$(_kafka_timeout)" || { rc=1; i=all; }
      [ "$rc" != 0 ] || return 0
    fi
    [ "$rc" = 2 ] && grep -qs "Address already in use" "${KAFKA_NODE_OUT[$i]}" "${KAFKA_NODE_LOG[$i]}" || break
    echo "kafka: port taken, trying other ports" >&2
    _kafka_signal KILL $(_kafka_all)
  done
  echo "kafka: the broker did not start (node $i):" >&2
  for n in $(_kafka_all); do
    tail -n 20 "${KAFKA_NODE_OUT[$n]}" >&2 2>/dev/null || true
    grep -E ' (ERROR|FATAL) ' "${KAFKA_NODE_LOG[$n]}" 2>/dev/null | tail -n 10 >&2 || true
  done
  kafka_cleanup
  return 1
}

# until the metadata of every running node lists COUNT brokers
_kafka_wait_brokers() { # COUNT SECONDS
  local deadline=$((SECONDS + $2)) i ok
  while [ "$SECONDS" -lt "$deadline" ]; do
    ok=1
    for i in $(_kafka_all); do
      kafka_node_running "$i" || continue
      [ "$(kcat -b "127.0.0.1:${KAFKA_NODE_PORT[$i]}" -L -m 2 2>/dev/null | grep -c '^  broker [0-9]* at ')" -ge "$1" ] ||
        { ok=0; break; }
    done
    [ "$ok" = 0 ] || return 0
    sleep 0.2
  done
  echo "kafka: the nodes do not all see $1 brokers" >&2
  return 1
}

kafka_start() { # [--conf LINES] [--sasl-ssl [--scram-user NAME:PASSWORD]...]
  _kafka_extra= _kafka_sasl=0 _kafka_scram_users=()
  while [ $# -gt 0 ]; do
    case $1 in
      --conf) _kafka_extra=$2; shift ;;
      --sasl-ssl) _kafka_sasl=1 ;;
      --scram-user)
        case $2 in
          *:*) ;;
          *) echo "kafka_start: --scram-user NAME:PASSWORD" >&2; return 2 ;;
        esac
        case ${2%%:*}${2#*:} in
          *[],\"=[:space:]]*) echo "kafka_start: --scram-user: no ',', ']', '\"', '=' or blank" >&2; return 2 ;;
        esac
        _kafka_scram_users+=("$2"); shift ;;
      *) echo "kafka_start: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  [ "$_kafka_sasl" = 1 ] || [ "${#_kafka_scram_users[@]}" = 0 ] ||
    { echo "kafka_start: --scram-user needs --sasl-ssl" >&2; return 2; }
  _kafka_launch 1
}

kafka_cluster_start() { # N [--conf LINES]
  local n=${1:-}
  _kafka_sasl=0 _kafka_scram_users=()
  case $n in ''|*[!0-9]*) echo "kafka_cluster_start: N nodes, a number" >&2; return 2 ;; esac
  [ "$n" -ge 1 ] && [ "$n" -le 9 ] || { echo "kafka_cluster_start: 1 to 9 nodes" >&2; return 2; }
  shift
  _kafka_extra=
  while [ $# -gt 0 ]; do
    case $1 in
      --conf) _kafka_extra=$2; shift ;;
      *) echo "kafka_cluster_start: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  _kafka_launch "$n"
}

# "PARTITION LEADER REPLICAS ISRS" per partition of TOPIC (kcat -L; leader -1:
# none), as one node sees it (default: any node of KAFKA_BOOTSTRAP)
_kafka_partitions() { # TOPIC [NODE]
  local b=$KAFKA_BOOTSTRAP
  [ -z "${2:-}" ] || b=127.0.0.1:${KAFKA_NODE_PORT[$2]}
  kcat -b "$b" -L -m 3 -t "$1" 2>/dev/null |
    sed -n 's/^ *partition \([0-9]*\), leader \(-\{0,1\}[0-9]*\), replicas: \([0-9,]*\), isrs: \([0-9,]*\).*/\1 \2 \3 \4/p'
}

# every running node sees PARTITIONS partitions of TOPIC, each with a leader
# (and, with --isr, all its replicas in sync): brokers learn metadata at
# their own pace, and a client may ask any of them
_kafka_topic_ready() { # TOPIC PARTITIONS [--isr]
  local i
  for i in $(_kafka_all); do
    kafka_node_running "$i" || continue
    _kafka_partitions "$1" "$i" | awk -v want="$2" -v isr="${3:-}" '
      { n++; if ($2 < 0) bad = 1
        if (isr != "") { split($3, r, ","); split($4, s, ","); if (length(r) != length(s)) bad = 1 } }
      END { exit !(n == want && !bad) }' || return 1
  done
}

kafka_create_topic() { # NAME PARTITIONS [TopicCommand options, e.g. --config K=V]
  local name=$1 parts=$2 i
  shift 2
  _kafka_any_running || { echo "kafka_create_topic: no broker running" >&2; return 1; }
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --create --topic "$name" --partitions "$parts" --replication-factor "$KAFKA_RF" "$@" \
    >>"$KAFKA_DIR/commands.log" 2>&1 ||
    { echo "kafka_create_topic $name: failed, see $KAFKA_DIR/commands.log" >&2; return 1; }
  # wait until the brokers serve every partition (a leader for each; in a
  # cluster, every replica in sync)
  for ((i = 0; i < 200; i++)); do
    _kafka_topic_ready "$name" "$parts" "$([ "$KAFKA_NODES" -gt 1 ] && echo --isr)" && return 0
    sleep 0.1
  done
  echo "kafka_create_topic $name: partitions have no leader" >&2
  return 1
}

kafka_add_partitions() { # NAME TOTAL: the topic grows to TOTAL partitions
  local name=$1 parts=$2 i
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --alter --topic "$name" --partitions "$parts" >>"$KAFKA_DIR/commands.log" 2>&1 ||
    { echo "kafka_add_partitions $name $parts: failed, see $KAFKA_DIR/commands.log" >&2; return 1; }
  for ((i = 0; i < 200; i++)); do
    _kafka_topic_ready "$name" "$parts" && return 0
    sleep 0.1
  done
  echo "kafka_add_partitions $name: the new partitions have no leader" >&2
  return 1
}

kafka_leader() { # TOPIC PARTITION: the leader's node id, -1 if none (or unknown)
  local l
  l=$(_kafka_partitions "$1" | awk -v p="$2" '$1 == p {print $2}')
  echo "${l:--1}"
}

kafka_isr() { # TOPIC PARTITION: the in-sync replicas ("" if unknown)
  _kafka_partitions "$1" | awk -v p="$2" '$1 == p {print $4}'
}

kafka_wait_isr() { # TOPIC [SECONDS]: every partition led, every replica in sync
  local deadline=$((SECONDS + ${2:-60})) n
  while [ "$SECONDS" -lt "$deadline" ]; do
    n=$(_kafka_partitions "$1" | wc -l)
    [ "$n" -gt 0 ] && _kafka_topic_ready "$1" "$n" --isr && return 0
    sleep 0.2
  done
  echo "kafka_wait_isr $1: not every replica in sync after ${2:-60} s" >&2
  _kafka_partitions "$1" >&2
  return 1
}

_kafka_signal() { # SIGNAL I...: the nodes at once
  local sig=$1 i t pid left
  shift
  local -A by_itself=()
  if [ "$sig" != KILL ]; then
    for i; do [ -z "${KAFKA_NODE_PID[$i]:-}" ] || kill "-$sig" "${KAFKA_NODE_PID[$i]}" 2>/dev/null || true; done
    for ((t = 0; t < 300; t++)); do   # a clean shutdown takes under a second
      left=0
      for i; do
        pid=${KAFKA_NODE_PID[$i]:-}
        [ -n "$pid" ] && [ -z "${by_itself[$i]:-}" ] || continue
        if kill -0 "$pid" 2>/dev/null; then left=1; else by_itself[$i]=1; fi
      done
      [ "$left" = 1 ] || break
      sleep 0.1
    done
  fi
  for i; do
    pid=${KAFKA_NODE_PID[$i]:-}
    [ -n "$pid" ] || continue
    kill -KILL "$pid" 2>/dev/null || true
  done
  for i; do
    pid=${KAFKA_NODE_PID[$i]:-}
    [ -n "$pid" ] || continue
    wait "$pid" 2>/dev/null || true
    for ((t = 0; t < 100; t++)); do   # SIGKILL: gone in a moment
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    KAFKA_NODE_PID[$i]=
    if [ -n "${_kafka_broker_cds_new[$i]:-}" ]; then
      # a node that started and shut down by itself wrote its archive whole
      if [ -n "${by_itself[$i]:-}" ] && [ "${_kafka_ready[$i]:-0}" = 1 ]; then
        _kafka_cds_keep "${_kafka_broker_cds_new[$i]}" "${_kafka_broker_cds_file[$i]}" "${_kafka_broker_opts[$i]}"
      else
        rm -f "${_kafka_broker_cds_new[$i]}"
      fi
      _kafka_broker_cds_new[$i]=
    fi
  done
  _kafka_legacy
  return 0
}

_kafka_check_nodes() { # I...
  local i
  [ -n "$KAFKA_DIR" ] || { echo "kafka: nothing was started" >&2; return 1; }
  [ $# -gt 0 ] || { echo "kafka: which node?" >&2; return 1; }
  for i; do
    case $i in ''|*[!0-9]*) echo "kafka: no node '$i'" >&2; return 1 ;; esac
    [ "$i" -ge 1 ] && [ "$i" -le "$KAFKA_NODES" ] || { echo "kafka: no node $i (1..$KAFKA_NODES)" >&2; return 1; }
  done
}

# SIGTERM, one node after the other. A node's clean shutdown needs the
# controller quorum (the controller grants it): in a cluster, a node whose
# stop leaves fewer than a majority of nodes running would wait for it in
# vain (Kafka 3.9 waits minutes), so that one is SIGKILLed instead.
_kafka_stop_nodes() { # I...
  local i n running
  for i; do
    [ -n "${KAFKA_NODE_PID[$i]:-}" ] || continue
    running=0
    for n in $(_kafka_all); do kafka_node_running "$n" && running=$((running + 1)); done
    if [ "$KAFKA_NODES" -gt 1 ] && [ "$running" -le $((KAFKA_NODES / 2)) ]; then
      _kafka_signal KILL "$i"
    else
      _kafka_signal TERM "$i"
    fi
  done
}

kafka_node_stop() { _kafka_check_nodes "$@" && _kafka_stop_nodes "$@"; }
kafka_node_kill() { _kafka_check_nodes "$@" && _kafka_signal KILL "$@"; }

kafka_node_restart() { # I...: stopped first if running; started at once, then waited for
  _kafka_check_nodes "$@" || return 1
  local i
  _kafka_stop_nodes "$@"
  for i; do _kafka_spawn "$i"; done
  for i; do
    _kafka_wait "$i" "$(_kafka_timeout)" ||
      { echo "kafka: restart of node $i on port ${KAFKA_NODE_PORT[$i]} failed, see ${KAFKA_NODE_LOG[$i]}" >&2; return 1; }
  done
}

# shellcheck disable=SC2046  # node numbers
kafka_stop() { [ -z "$KAFKA_DIR" ] || _kafka_stop_nodes $(_kafka_all | sort -rn); }
# shellcheck disable=SC2046
kafka_kill() { [ -z "$KAFKA_DIR" ] || _kafka_signal KILL $(_kafka_all); }

kafka_restart() {
  [ -n "$KAFKA_DIR" ] || { echo "kafka_restart: no broker was started" >&2; return 1; }
  # shellcheck disable=SC2046  # node numbers
  kafka_node_restart $(_kafka_all)
}

kafka_cleanup() {
  local i cds=0
  # a cluster: a clean stop only to let a node write its class data sharing
  # archive (else SIGKILL: nothing is kept anyway)
  for i in $(_kafka_all); do [ -z "${_kafka_broker_cds_new[$i]:-}" ] || cds=1; done
  if [ "$KAFKA_NODES" -gt 1 ] && [ "$cds" = 0 ]; then kafka_kill; else kafka_stop; fi
  case $KAFKA_DIR in
    /tmp/ts-kafka.*) [ -n "${TS_KEEP_KAFKA_DIR:-}" ] || rm -rf "$KAFKA_DIR" ;;
  esac
  KAFKA_DIR=
}
