#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The central side in containers (docs/containers.md): scripts/images builds the images from
# this tree's .debs (the Debian 12 bases made once with debootstrap and kept in .cache/oci/),
# packaging/oci/site-init makes a site on free loopback ports (the production mosquitto config
# with TLS, client certificates and passwords; one Kafka node; the bridge), and `podman kube
# play` starts the pod (mosquitto, Kafka, turnstile-bridge). Checked:
#   - each container runs as its non-root user and cannot write its configuration (read-only);
#   - two agents' readings, published from the host over TLS with their own certificate and
#     password into the pod's mosquitto, are summed in the lake volume exactly; published a
#     second time (duplicates), the sums stay; each agent gets its end-to-end acknowledgement;
#   - a reading another agent forges into a1's topic is refused by the broker's ACL;
#   - the pod goes down and leaves no container, pod or volume (also when a check fails: trap).
# Figures printed: the image build (cold: the debootstraps) and the stack's start.
# Needs root, podman, runc, catatonit, debootstrap (scripts/deps).
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"
[ "$(id -u)" -eq 0 ] || { echo "test_compose: needs root (podman, debootstrap)"; exit 1; }
export CONTAINERS_CONF=$src/packaging/oci/containers.conf
work=$(mktemp -d /tmp/ts-compose.XXXXXX)
name=ts-compose-$$-$RANDOM   # pod and volume names: several runs at once do not meet
pids=()
down() {
  [ ! -f "$work/site/pod.yaml" ] || podman kube down "$work/site/pod.yaml" >/dev/null 2>&1 || true
  podman pod rm -f "$name" >/dev/null 2>&1 || true
  for v in mosquitto kafka lake; do podman volume rm -f "$name-$v" >/dev/null 2>&1 || true; done
}
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$fails" != 0 ] && podman pod exists "$name" 2>/dev/null; then
    for c in mosquitto kafka bridge; do echo "--- $c"; podman logs "$name-$c" 2>&1 | tail -n 40; done
  fi
  if [ -n "${TS_KEEP:-}" ]; then
    echo "TS_KEEP: the pod $name and $work are left; podman kube down $work/site/pod.yaml"
  else
    down
    rm -rf "$work"
  fi
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/ports.sh"
. "$src/tests/integration/bridge.sh"   # lake_sums
wait_for() { # SECONDS CMD...
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 1
  done
}

# --- the images ---------------------------------------------------------------------------
t0=$SECONDS
./scripts/images >"$work/images.out" 2>"$work/images.log" || { cat "$work/images.log"; exit 1; }
t_images=$((SECONDS - t0))
grep '^images: ' "$work/images.log"
echo "images built in $t_images s"
for i in bridge sim mosquitto kafka; do
  check "image turnstile-$i built" podman image exists "localhost/turnstile-$i:latest"
done
check "turnstile-sim runs in its image" \
  bash -c "podman run --rm --network none localhost/turnstile-sim:latest --version | grep -q '^turnstile-sim '"

# --- the site: free loopback ports, two agents ----------------------------------------------
for v in MQTT WSS PAGE KAFKA KAFKA_CONTROLLER HTTP; do
  p=$(free_port)
  export "TS_${v}_PORT=$p"
done
"$src/packaging/oci/site-init" "$work/site" --name "$name" --agent S1/a1 --agent S2/b1
# short windows, so that they close within the test (the site's bridge.conf says 300 s)
sed -i 's/^window_s = 300$/window_s = 2\nlateness_s = 1\nidle_s = 3\ncheckpoint_interval_ms = 500/' \
  "$work/site/turnstile/bridge.conf"
grep -q '^idle_s = 3$' "$work/site/turnstile/bridge.conf" || { echo "bridge.conf: no window_s = 300"; exit 1; }

# --- up ----------------------------------------------------------------------------------
t0=$SECONDS
podman kube play "$work/site/pod.yaml" >"$work/play.log" 2>&1 || { cat "$work/play.log"; exit 1; }
logs() { podman logs "$name-$1" 2>&1; }
up() {
  logs kafka | grep -q 'kafka-start: topics ready' && logs bridge | grep -q 'relay: mqtt: subscribed'
}
if ! wait_for 240 up; then
  for c in mosquitto kafka bridge; do echo "--- $c"; logs "$c" | tail -n 30; done
  podman ps -a --pod --format '{{.Names}} {{.Status}}'
  exit 1
fi
t_up=$((SECONDS - t0))
echo "stack up (Kafka's topics made, the bridge subscribed) in $t_up s"
check "the pod runs its three containers" bash -c \
  "[ \$(podman ps --filter pod=$name --filter status=running --format '{{.Names}}' | grep -c -v infra) = 3 ]"
for c in "mosquitto 1883" "kafka 9092" "bridge 10001"; do
  set -- $c
  check "$1 runs as uid $2 (not root)" bash -c "[ \"\$(podman exec $name-$1 id -u)\" = $2 ]"
done
check "the bridge cannot write its config (read-only)" \
  bash -c "! podman exec $name-bridge sh -c ': >>/etc/turnstile/bridge.conf' 2>/dev/null"
check "mosquitto cannot write its config (read-only)" \
  bash -c "! podman exec $name-mosquitto sh -c ': >/etc/mosquitto/x' 2>/dev/null"
check "the production listener: TLS only, a client certificate required" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $TS_MQTT_PORT -t x -m y 2>/dev/null"

# --- readings from the host, over TLS, as the agents ------------------------------------------
a=$work/site/agents
tls() { # AGENT: mosquitto_pub/sub options of that agent
  echo -h 127.0.0.1 -p "$TS_MQTT_PORT" --cafile "$a/ca.crt" --cert "$a/$1.crt" --key "$a/$1.key" \
    -u "$1" -P "$(cat "$a/$1.pass")"
}
reading() { # AGENT SEQ EPOCH_S ENTRIES EXITS: one 18-field reading
  printf 'A002,R051,%s-00-00,59 ST,NQR456W,BMT,%s,%s,REGULAR,%s,%s,%s:%s,%s,%s000,%s,%s,,%s\n' \
    "$1" "$(date -u -d "@$3" +%m-%d-%y)" "$(date -u -d "@$3" +%H:%M:%S)" "$4" "$5" "$1" "$2" \
    "$(date -u -d "@$3" '+%Y-%m-%d %H:%M:%S')" "$3" $(($2 * $4)) $(($2 * $5)) "$2"
}
now=$(date +%s)
for s in $(seq 1 60); do reading a1 "$s" "$now" 3 1; done >"$work/a1.txt"
for s in $(seq 1 40); do reading b1 "$s" "$now" 2 5; done >"$work/b1.txt"
publish() { # AGENT STATION FILE
  # shellcheck disable=SC2046  # the options
  mosquitto_pub $(tls "$1") -q 1 -i "pub-$1" -t "turnstile/v1/$2/$1/readings" -l <"$3"
}
publish a1 S1 "$work/a1.txt"
publish b1 S2 "$work/b1.txt"
# b1 forges a reading into a1's topic: the ACL drops it (it would add 1000 entries)
reading a1 61 "$now" 1000 0 >"$work/forged.txt"
publish b1 S1 "$work/forged.txt" 2>/dev/null || true

lake=$(podman volume inspect --format '{{.Mountpoint}}' "$name-lake")
printf '%s\n' "a1-00-00 180 60" "b1-00-00 80 200" >"$work/expected"
sums_ok() { lake_sums "$lake" >"$work/sums"; cmp -s "$work/sums" "$work/expected"; }
check "the lake volume holds the readings' sums, exactly" wait_for 90 sums_ok
echo "expected (SCP ENTRIES EXITS) | lake:"; paste -d'|' "$work/expected" "$work/sums"
check "the lake's files belong to the bridge's user (10001)" bash -c \
  "[ -n \"\$(find '$lake' -name '*.csv.gz')\" ] && [ -z \"\$(find '$lake' -name '*.csv.gz' ! -uid 10001)\" ]"
ack() { # AGENT STATION: the retained acknowledgement
  # shellcheck disable=SC2046
  mosquitto_sub $(tls "$1") -t "turnstile/v1/$2/$1/ack" -C 1 -W 5 2>/dev/null || true
}
check "a1's end-to-end ack is 60" wait_for 60 eval '[ "$(ack a1 S1)" = 60 ]'
check "b1's end-to-end ack is 40" wait_for 60 eval '[ "$(ack b1 S2)" = 40 ]'

# duplicates: everything again; the sums do not move
publish a1 S1 "$work/a1.txt"
publish b1 S2 "$work/b1.txt"
reading a1 61 "$now" 1 1 >"$work/a1-61.txt"   # one more, so that the duplicates' way is known passed
publish a1 S1 "$work/a1-61.txt"
printf '%s\n' "a1-00-00 181 61" "b1-00-00 80 200" >"$work/expected"
check "duplicates are not counted twice (one new reading is)" wait_for 90 sums_ok
echo "expected (SCP ENTRIES EXITS) | lake:"; paste -d'|' "$work/expected" "$work/sums"

# --- down ----------------------------------------------------------------------------------
podman kube down "$work/site/pod.yaml" >"$work/down.log" 2>&1 || cat "$work/down.log"
for v in mosquitto kafka lake; do podman volume rm "$name-$v" >/dev/null 2>&1 || true; done
check "no container of the pod is left" \
  bash -c "[ -z \"\$(podman ps -a --format '{{.Names}} {{.PodName}}' | grep -F '$name')\" ]"
check "no pod is left" bash -c "! podman pod exists '$name'"
check "no volume is left" bash -c "[ -z \"\$(podman volume ls --format '{{.Name}}' | grep -F '$name')\" ]"
echo "figures: images $t_images s, stack up $t_up s, whole test $SECONDS s"
finish
