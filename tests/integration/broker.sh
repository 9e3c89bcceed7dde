# SPDX-License-Identifier: Apache-2.0
# broker.sh - a real mosquitto broker for bash tests. Source it:
#
#   . "$TS_SRC_DIR/tests/integration/broker.sh"
#   broker_start [--tls] [--require-cert] [--user NAME:PASSWORD] [--conf 'LINES']
#   mosquitto_sub -p "$BROKER_PORT" -t '#' ...
#   broker_stop        # SIGTERM: mosquitto saves its persistence file
#   broker_kill        # SIGKILL: a crash
#   broker_restart     # same ports, same directory (sessions kept after a stop)
#   broker_wait [SECONDS]  # until the listeners accept connections
#
# It runs /usr/sbin/mosquitto (never the system's service) with its own
# config in a fresh directory: a plain listener on a free 127.0.0.1 port;
# with --tls a TLS listener on a second port, with a CA, a server
# certificate for 127.0.0.1/localhost and a client certificate generated
# there by openssl (--require-cert: the listener demands a client
# certificate); with --user a password file (mosquitto_passwd) and anonymous
# access refused; persistence in the directory. --conf adds raw config
# lines. If mosquitto cannot bind the port it picked, other ports are tried.
#
# Variables set: BROKER_PORT, BROKER_TLS_PORT (0 without --tls), BROKER_DIR,
# BROKER_PID, BROKER_CONF, BROKER_LOG, BROKER_CA, BROKER_CLIENT_CERT,
# BROKER_CLIENT_KEY, BROKER_OTHER_CA (a CA the broker does not know).
#
# Clean-up: the broker is stopped and BROKER_DIR removed when the shell
# exits, by an EXIT trap that runs broker_cleanup and then the EXIT trap that
# was set before broker_start (set yours first, or call broker_cleanup from
# it). With setpriv available, the broker also dies with the shell (pdeathsig).
# Functions return non-zero with a message on stderr on failure.

BROKER_PORT=0 BROKER_TLS_PORT=0 BROKER_DIR= BROKER_PID= BROKER_CONF= BROKER_LOG=
BROKER_CA= BROKER_CLIENT_CERT= BROKER_CLIENT_KEY= BROKER_OTHER_CA=
_broker_tls=0 _broker_require_cert=0 _broker_user= _broker_extra= _broker_trap=0

. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

_broker_certs() {
  local d=$BROKER_DIR
  cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[v3_client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  {
    openssl req -x509 -new "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
      -subj "/CN=turnstile test CA" -config "$d/openssl.cnf" -extensions v3_ca &&
    openssl req -x509 -new "${ec[@]}" -keyout "$d/other-ca.key" -out "$d/other-ca.crt" -days 2 \
      -subj "/CN=untrusted test CA" -config "$d/openssl.cnf" -extensions v3_ca &&
    openssl req -new "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" \
      -subj "/CN=127.0.0.1" -config "$d/openssl.cnf" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial 2 \
      -out "$d/server.crt" -days 2 -extfile "$d/openssl.cnf" -extensions v3_server &&
    openssl req -new "${ec[@]}" -keyout "$d/client.key" -out "$d/client.csr" \
      -subj "/CN=turnstile-test-client" -config "$d/openssl.cnf" &&
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial 3 \
      -out "$d/client.crt" -days 2 -extfile "$d/openssl.cnf" -extensions v3_client
  } >>"$d/commands.log" 2>&1 || { echo "broker: openssl failed, see $d/commands.log" >&2; return 1; }
}

_broker_write_conf() {
  {
    echo "# written by tests/integration/broker.sh"
    echo "user root"
    echo "per_listener_settings false"
    echo "persistence true"
    echo "persistence_location $BROKER_DIR/"
    echo "persistence_file mosquitto.db"
    echo "log_dest file $BROKER_LOG"
    printf 'log_type %s\n' error warning notice information
    echo "connection_messages true"
    echo "log_timestamp_format %H:%M:%S"
    echo "max_queued_messages 100000"
    if [ -n "$_broker_user" ]; then
      echo "allow_anonymous false"
      echo "password_file $BROKER_DIR/passwd"
    else
      echo "allow_anonymous true"
    fi
    [ -z "$_broker_extra" ] || printf '%s\n' "$_broker_extra"
    echo "listener $BROKER_PORT 127.0.0.1"
    if [ "$_broker_tls" = 1 ]; then
      echo "listener $BROKER_TLS_PORT 127.0.0.1"
      echo "cafile $BROKER_CA"
      echo "certfile $BROKER_DIR/server.crt"
      echo "keyfile $BROKER_DIR/server.key"
      echo "require_certificate $([ "$_broker_require_cert" = 1 ] && echo true || echo false)"
    fi
  } >"$BROKER_CONF"
}

_broker_spawn() {
  local pd=()
  command -v setpriv >/dev/null 2>&1 && pd=(setpriv --pdeathsig KILL)
  "${pd[@]}" /usr/sbin/mosquitto -c "$BROKER_CONF" >>"$BROKER_DIR/mosquitto.out" 2>&1 </dev/null &
  BROKER_PID=$!
  disown "$BROKER_PID"   # no "Killed" job reports; bash still reaps it
}

# 0 ready, 1 timeout, 2 the broker exited
_broker_wait() { # SECONDS
  local i
  for ((i = 0; i < ${1:-10} * 100; i++)); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      wait "$BROKER_PID" 2>/dev/null || true
      BROKER_PID=
      return 2
    fi
    if port_accepts "$BROKER_PORT" &&
       { [ "$_broker_tls" = 0 ] || port_accepts "$BROKER_TLS_PORT"; }; then
      return 0
    fi
    sleep 0.01
  done
  return 1
}

broker_wait() { # [SECONDS]
  [ -n "$BROKER_PID" ] || { echo "broker: not running" >&2; return 1; }
  _broker_wait "${1:-10}" || { echo "broker: not accepting connections, see $BROKER_LOG" >&2; return 1; }
}

_broker_install_trap() {
  [ "$_broker_trap" = 1 ] && return 0
  local prev
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"   # trap -- 'COMMAND' EXIT
    prev=$3
  fi
  # shellcheck disable=SC2064  # expand prev now
  trap "broker_cleanup${prev:+; $prev}" EXIT
  _broker_trap=1
}

broker_start() { # [--tls] [--require-cert] [--user NAME:PASSWORD] [--conf LINES]
  _broker_tls=0 _broker_require_cert=0 _broker_user= _broker_extra=
  while [ $# -gt 0 ]; do
    case $1 in
      --tls) _broker_tls=1 ;;
      --require-cert) _broker_tls=1 _broker_require_cert=1 ;;
      --user) _broker_user=$2; shift ;;
      --conf) _broker_extra=$2; shift ;;
      *) echo "broker_start: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  [ -z "$BROKER_DIR" ] || broker_cleanup
  _broker_install_trap
  BROKER_DIR=$(mktemp -d /tmp/ts-broker.XXXXXX) || return 1
  BROKER_CONF=$BROKER_DIR/mosquitto.conf BROKER_LOG=$BROKER_DIR/mosquitto.log
  BROKER_CA=$BROKER_DIR/ca.crt BROKER_OTHER_CA=$BROKER_DIR/other-ca.crt
  BROKER_CLIENT_CERT=$BROKER_DIR/client.crt BROKER_CLIENT_KEY=$BROKER_DIR/client.key
  if [ "$_broker_tls" = 1 ]; then _broker_certs || return 1; fi
  if [ -n "$_broker_user" ]; then
    : >"$BROKER_DIR/passwd"
    mosquitto_passwd -b "$BROKER_DIR/passwd" "${_broker_user%%:*}" "${_broker_user#*:}" \
      >>"$BROKER_DIR/commands.log" 2>&1 || { echo "broker: mosquitto_passwd failed" >&2; return 1; }
  fi
  local attempt rc
  for attempt in 1 2 3 4 5; do
    BROKER_PORT=$(free_port) || return 1
    BROKER_TLS_PORT=0
    if [ "$_broker_tls" = 1 ]; then
      BROKER_TLS_PORT=$(free_port) || return 1
      [ "$BROKER_TLS_PORT" != "$BROKER_PORT" ] || continue
    fi
    _broker_write_conf
    _broker_spawn
    _broker_wait 10 && rc=0 || rc=$?
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 2 ] && grep -qs "Address already in use" "$BROKER_DIR/mosquitto.out" "$BROKER_LOG" ||
      break
    echo "broker: port taken, trying other ports" >&2
  done
  echo "broker: mosquitto did not start:" >&2
  tail -n 20 "$BROKER_DIR/mosquitto.out" "$BROKER_LOG" >&2 2>/dev/null || true
  broker_cleanup
  return 1
}

_broker_signal() { # SIGNAL
  [ -n "$BROKER_PID" ] || return 0
  kill "-$1" "$BROKER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 500; i++)); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.01
  done
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=
  return 0
}

broker_stop() { _broker_signal TERM; }
broker_kill() { _broker_signal KILL; }

broker_restart() {
  [ -n "$BROKER_DIR" ] || { echo "broker_restart: no broker was started" >&2; return 1; }
  [ -z "$BROKER_PID" ] || broker_stop
  _broker_spawn
  _broker_wait 10 || { echo "broker: restart on port $BROKER_PORT failed, see $BROKER_LOG" >&2; return 1; }
}

broker_cleanup() {
  _broker_signal TERM
  case $BROKER_DIR in
    /tmp/ts-broker.*) [ -n "${TS_KEEP_BROKER_DIR:-}" ] || rm -rf "$BROKER_DIR" ;;
  esac
  BROKER_DIR=
}
