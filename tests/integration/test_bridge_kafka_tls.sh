#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# turnstile-bridge against a Kafka that takes clients only over TLS with SASL
# (kafka.sh --sasl-ssl: a CA and broker certificate made here, SCRAM users
# made by kafka-storage format), the bridge configured through [kafka]
# rdkafka.* (docs/kafka.md, "Secured Kafka"), one Kafka start:
#   1. --check-config takes the secured config (librdkafka checks every
#      value and a trial client), and refuses a property the bridge owns and
#      one set twice, naming file, line and key; the bridge's brokers are
#      only the SASL_SSL listener, so nothing below goes over plain text;
#   2. relay and aggregator (role all) over SASL_SSL with SCRAM-SHA-512, the
#      password read from a 0600 file (rdkafka.sasl.password_file): 300
#      readings of 3 agents reach the readings topic and the lake, sums
#      exact; a record produced around the relay whose ID names another agent
#      is dead-lettered by the aggregator's own producer (also over SASL_SSL);
#   3. the same bridge logs librdkafka at debug (rdkafka.debug = conf,
#      security, broker, with -v): its log shows the SASL handshake and the
#      client configurations, and never the password nor a secret taken from
#      the environment that librdkafka itself does not mask
#      (rdkafka.sasl.kerberos.kinit.cmd_env);
#   4. a wrong password: the relay logs the broker's "invalid credentials"
#      error with the mechanism, and nothing it takes reaches Kafka;
#   5. a CA that did not sign the broker's certificate: the relay logs the
#      failed certificate verification;
#   6. PLAIN over TLS with the password from the environment
#      (rdkafka.sasl.password_env): the relay's readings reach Kafka.
# Waits poll with generous deadlines; nothing asserts on a duration.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-kafka-tls-test.XXXXXX)
trap bridge_test_cleanup EXIT
. "$src/tests/integration/bridge.sh"

pw=scram-pw-$RANDOM$RANDOM-x7
kinit_secret=kinit-secret-$RANDOM$RANDOM
t0=$SECONDS
broker_start
kafka_start --sasl-ssl --scram-user "bridge:$pw"
kafka_create_topic turnstile.readings 2
kafka_create_topic turnstile.deadletter 1
echo "broker and Kafka (SASL_SSL on $KAFKA_SASL_BOOTSTRAP) ready in $((SECONDS - t0)) s"
kafka_tls_ca "$work" other-ca
( umask 077; printf '%s\n' "$pw" >"$work/kafka.pw"; printf 'wrong-%s\n' "$pw" >"$work/wrong.pw" )

# CONF_FILE ID ROLE MECHANISM PASSWORD_LINE CA [LINES for [kafka]]
secure_conf() {
  {
    printf '[bridge]\nid = %s\nrole = %s\nstatus_interval_ms = 1000\n' "$2" "$3"
    printf '[mqtt]\nhost = 127.0.0.1\nport = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n' "$BROKER_PORT"
    printf 'ack_interval_ms = 100\n'
    printf '[kafka]\nbrokers = %s\nlinger_ms = 5\nsession_timeout_ms = 6000\n' "$KAFKA_SASL_BOOTSTRAP"
    printf 'rdkafka.security.protocol = SASL_SSL\nrdkafka.sasl.mechanism = %s\n' "$4"
    printf 'rdkafka.sasl.username = bridge\n%s\n' "$5"
    printf 'rdkafka.ssl.ca.location = %s\n' "$6"
    [ -z "${7:-}" ] || printf '%s\n' "$7"
    printf '[lake]\npath = %s/lake\nwindow_s = 2\nlateness_s = 1\nidle_s = 3\n' "$work"
    printf 'checkpoint_interval_ms = 500\n'
  } >"$1"
}
now_ms() { date +%s%3N; }
# one 18-field reading AGENT SEQ EPOCH_MS: SCP from the agent, 1 entry, merges only itself
reading() {
  local s=$(($3 / 1000))
  printf 'A002,R051,%s-00-00,59 ST,NQR456W,BMT,%s,%s,REGULAR,1,0,%s:%s,%s,%s,%s,0,,%s' \
    "$1" "$(date -u -d "@$s" +%m-%d-%y)" "$(date -u -d "@$s" +%H:%M:%S)" "$1" "$2" \
    "$(date -u -d "@$s" '+%Y-%m-%d %H:%M:%S')" "$3" "$2" "$2"
}
publish() { # AGENT FIRST LAST: one connection, QoS 1
  local s t
  t=$(now_ms)
  for ((s = $2; s <= $3; s++)); do reading "$1" "$s" "$t"; echo; done |
    mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -t "turnstile/v1/S1/$1/readings" -l
}
# the topics, read over the PLAINTEXT listener the harness keeps
count_readings() {
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.readings -o beginning -e -q -f '%s\n' 2>>"$work/kcat.err" |
    grep -c . || true
}
has_dead() { # PATTERN
  kcat -b "$KAFKA_BOOTSTRAP" -C -t turnstile.deadletter -o beginning -e -q -f '%k|%h\n' \
    2>>"$work/kcat.err" | grep -q -- "$1"
}
sums_are() {
  lake_sums >"$work/sums"
  printf '%s\n' "$@" | sort >"$work/want"
  cmp -s "$work/sums" "$work/want"
}

# 1. the config is checked by librdkafka, nothing started
export TS_TEST_KINIT="kinit --not-used-with-scram $kinit_secret"
secure_conf "$work/b1.conf" tls1 all SCRAM-SHA-512 "rdkafka.sasl.password_file = $work/kafka.pw" "$KAFKA_CA" \
  "rdkafka.debug = conf,security,broker
rdkafka.sasl.kerberos.kinit.cmd_env = TS_TEST_KINIT"
check "--check-config takes the secured config" "$bin/turnstile-bridge" -c "$work/b1.conf" --check-config
check "the bridge's brokers are the SASL_SSL listener only" \
  eval '[ "$(grep "^brokers = " "$work/b1.conf")" = "brokers = $KAFKA_SASL_BOOTSTRAP" ] && [ "$KAFKA_SASL_BOOTSTRAP" != "$KAFKA_BOOTSTRAP" ]'

# ... and a bad one is refused with file, line and key, a secret masked
secure_conf "$work/bad.conf" tlsbad all SCRAM-SHA-512 "rdkafka.sasl.password_file = $work/kafka.pw" \
  "$KAFKA_CA" "rdkafka.enable.idempotence = false
rdkafka.ssl.ca.location_env = TS_TEST_CA"
rc=0
TS_TEST_CA=$pw "$bin/turnstile-bridge" -c "$work/bad.conf" --check-config >"$work/bad.out" 2>&1 || rc=$?
check "a bad secured config: exit status 78" eval '[ "$rc" = 78 ]'
line_of() { grep -n "^$1 " "$work/bad.conf" | cut -d: -f1; }
check "an owned property is refused, naming file, line and key" grep -qF \
  "$work/bad.conf:$(line_of rdkafka.enable.idempotence): [kafka] rdkafka.enable.idempotence: the bridge sets enable.idempotence itself" "$work/bad.out"
check "a property set twice, the line of the first named" grep -qF \
  "$work/bad.conf:$(line_of rdkafka.ssl.ca.location_env): [kafka] rdkafka.ssl.ca.location_env: ssl.ca.location set twice (first on line $(line_of rdkafka.ssl.ca.location))" "$work/bad.out"
check "no secret in the errors" eval '! grep -qF -- "$pw" "$work/bad.out"'

# 2. relay, aggregator and dead letters over SASL_SSL with SCRAM-SHA-512
bridge_start b1 "$work/b1.conf" -v
check "the relay subscribes" wait_for 60 grep -q 'relay: mqtt: subscribed' "$work/b1.err"
for a in ka kb kc; do publish "$a" 1 100; done
check "300 readings in the readings topic" wait_for 60 eval '[ "$(count_readings)" = 300 ]'
check "the lake's sums are the 300 readings, exactly" \
  wait_for 60 sums_are "ka-00-00 100 0" "kb-00-00 100 0" "kc-00-00 100 0"
reading ka 1 "$(now_ms)" | kcat -P -b "$KAFKA_BOOTSTRAP" -t turnstile.readings -k kz \
  -H "mqtt_topic=turnstile/v1/S1/kz/readings" 2>>"$work/kcat.err"
check "the aggregator's dead-letter producer delivers over SASL_SSL" \
  wait_for 60 has_dead "^kz|reason=ID names agent 'ka', the topic agent 'kz'"
bridge_kill b1 TERM
for who in "relay: kafka: librdkafka:" "aggregate: librdkafka" "aggregate: dead letters: librdkafka"; do
  check "$who authenticated over SASL_SSL with SCRAM-SHA-512" \
    grep -qE "$who SCRAMAUTH: .*sasl_ssl://.*Authenticated as bridge using SCRAM-SHA-512" "$work/b1.err"
done
check "no librdkafka error in the log" eval '! grep -E " error: .*librdkafka" "$work/b1.err"'

# 3. the secrets stay out of the log
check "the log shows the clients' configurations (debug conf)" grep -q 'sasl.kerberos.kinit.cmd = ' "$work/b1.err"
check "the password is never in the log" eval '! grep -qF -- "$pw" "$work/b1.err" "$work/b1.out"'
check "a secret from the environment is never in the log" \
  eval '! grep -qF -- "$kinit_secret" "$work/b1.err" "$work/b1.out"'
check "it is masked instead" grep -q 'sasl.kerberos.kinit.cmd = (secret)' "$work/b1.err"

# 4. a wrong password
secure_conf "$work/b2.conf" tls2 relay SCRAM-SHA-512 "rdkafka.sasl.password_file = $work/wrong.pw" "$KAFKA_CA"
before=$(count_readings)
bridge_start b2 "$work/b2.conf"
check "wrong password: the relay subscribes" wait_for 60 grep -q 'relay: mqtt: subscribed' "$work/b2.err"
publish kd 1 10
check "wrong password: the broker's refusal is logged" wait_for 60 grep -q \
  'SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512' "$work/b2.err"
check "wrong password: nothing reaches Kafka" eval '[ "$(count_readings)" = "$before" ]'
bridge_kill b2
check "wrong password: not in the log" eval '! grep -qF -- "wrong-$pw" "$work/b2.err"'

# 5. a CA that did not sign the broker's certificate
secure_conf "$work/b3.conf" tls3 relay SCRAM-SHA-512 "rdkafka.sasl.password_file = $work/kafka.pw" "$work/other-ca.pem"
bridge_start b3 "$work/b3.conf"
check "wrong CA: the failed verification is logged" \
  wait_for 60 grep -q 'SSL handshake failed: .*certificate verify failed' "$work/b3.err"
bridge_kill b3

# 6. PLAIN over TLS, the password from the environment
secure_conf "$work/b4.conf" tls4 relay PLAIN "rdkafka.sasl.password_env = TS_TEST_KAFKA_PW" "$KAFKA_CA" \
  "rdkafka.debug = security"
before=$(count_readings)
TS_TEST_KAFKA_PW=$pw bridge_start b4 "$work/b4.conf" -v
check "PLAIN: the relay subscribes" wait_for 60 grep -q 'relay: mqtt: subscribed' "$work/b4.err"
publish ke 1 10
check "PLAIN, password from the environment: 10 more readings in Kafka" \
  wait_for 60 eval '[ "$(count_readings)" = "$((before + 10))" ]'
bridge_kill b4 TERM
check "PLAIN: the relay used SASL PLAIN over SASL_SSL (the listener takes nothing else)" \
  grep -qE "relay: kafka: librdkafka: SASLPLAIN: .*sasl_ssl://.*Sending SASL PLAIN" "$work/b4.err"
check "PLAIN: the password is never in the log" eval '! grep -qF -- "$pw" "$work/b4.err"'
for n in b1 b2 b3 b4; do
  check "$n: no sanitizer report" eval '! grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$work/$n.err"'
done
[ "$fails" = 0 ] || { echo "--- b1.err (last 30 lines)"; tail -30 "$work/b1.err"; echo "--- b2.err"; tail -10 "$work/b2.err"; echo "--- b3.err"; tail -10 "$work/b3.err"; }
echo "total $((SECONDS - t0)) s"
finish
