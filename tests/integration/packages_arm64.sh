#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The arm64 turnstile-agent package in an arm64 controller system: part of test_packages.sh,
# which runs it with `scripts/qemu-root arm64 run` (a private binfmt_misc: the system's arm64
# programs, dpkg and the maintainer scripts included, run under qemu-user). No systemd runs
# (as in an image build or a chroot); the agent is started by hand as its user.
#   - dpkg -i of turnstile-agent and turnstile-sim: user, groups, conffile, modes, store directory
#   - an operator's agent.conf (modified conffile) polling the installed simulator, a broker that
#     never answers: the store fills with readings
#   - dpkg -i --force-confold of the next revision (whose agent.conf changed too), with a stdin
#     that never ends (a prompt would block; none may): agent.conf kept, the new one beside it
#     as agent.conf.dpkg-dist, the store the same file with every reading; the agent started
#     again numbers on
#   - dpkg -r keeps store and config; dpkg -P removes both
#   - last, as an image build does: agent.conf put in place first, dpkg -i: kept, unit enabled
# Environment (from test_packages.sh): src, work, root (a copy of the arm64 base root), v1, v2.
# Prints ok/FAIL lines and writes "PASSES FAILS" to $work/arm64.counts.
set -euo pipefail
: "${src:?}" "${work:?}" "${root:?}" "${v1:?}" "${v2:?}"
. "$src/tests/integration/lib.sh"
trap 'echo "$passes $fails" >"$work/arm64.counts"' EXIT

mount -t proc proc "$root/proc"
in_root() { chroot "$root" "$@"; }
dpkg_in() { DEBIAN_FRONTEND=noninteractive chroot "$root" dpkg "$@"; }
wait_for() { # SECONDS CMD...: until CMD succeeds
  local n=$(($1 * 10)); shift
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
db=$root/var/lib/turnstile/agent.db
rows() { sqlite3 -cmd '.timeout 5000' "$db" "$1" 2>/dev/null; }

# --- install ------------------------------------------------------------------------------------
t0=$SECONDS
rc=0
dpkg_in -i "/root/v1/turnstile-agent_${v1}_arm64.deb" "/root/v1/turnstile-sim_${v1}_arm64.deb" \
  </dev/null >"$work/arm64-install.log" 2>&1 || rc=$?
sed 's/^/  /' "$work/arm64-install.log"
echo "arm64: install in $((SECONDS - t0)) s"
check "arm64: dpkg -i of turnstile-agent and turnstile-sim succeeds" test "$rc" = 0
for p in turnstile-agent turnstile-sim; do
  check "arm64: $p $v1 installed" test "$(in_root dpkg-query -W -f='${Status} ${Version} ${Architecture}' "$p")" = "install ok installed $v1 arm64"
done
check "arm64: /usr/bin/turnstile-agent is an aarch64 program" bash -c "file -b '$root/usr/bin/turnstile-agent' | grep -q aarch64"
check "arm64: the installed agent runs (--version, under qemu)" bash -c "chroot '$root' turnstile-agent --version 2>&1 | grep -q '${v1%-*}'"
check "arm64: user turnstile-agent in dialout and gpio" bash -c \
  "g=\" \$(chroot '$root' id -nG turnstile-agent) \"; [[ \$g == *' dialout '* && \$g == *' gpio '* ]]"
check "arm64: conffile /etc/turnstile/agent.conf, root:turnstile-agent 0640" bash -c \
  "chroot '$root' dpkg-query -W -f='\${Conffiles}' turnstile-agent | grep -q '^ /etc/turnstile/agent.conf ' &&
   [ \"\$(chroot '$root' stat -c '%U:%G %a' /etc/turnstile/agent.conf)\" = 'root:turnstile-agent 640' ]"
check "arm64: /var/lib/turnstile: turnstile-agent 0750" \
  test "$(in_root stat -c '%U:%G %a' /var/lib/turnstile)" = "turnstile-agent:turnstile-agent 750"
check "arm64: the installed agent accepts the installed agent.conf" in_root turnstile-agent --check-config -c /etc/turnstile/agent.conf

# --- run: the installed simulator and the operator's agent.conf -----------------------------
uid=$(in_root id -u turnstile-agent) gid=$(in_root id -g turnstile-agent)
mkdir -p "$root/srv/sim"
mkfifo "$root/srv/sim/in"
chroot "$root" /usr/bin/turnstile-sim --tcp 127.0.0.1:0 --agent-config /srv/sim/devices.conf \
  --generate --turnstiles 4 --speed 60 <"$root/srv/sim/in" >"$work/arm64-sim.out" 2>"$work/arm64-sim.err" &
exec 7>"$root/srv/sim/in"
wait_for 30 grep -q '^listening' "$work/arm64-sim.out" || { echo "turnstile-sim did not start"; cat "$work/arm64-sim.err"; exit 1; }
wait_for 10 test -s "$root/srv/sim/devices.conf"
{
  printf '# the operator'"'"'s configuration\n[agent]\nid = pkg-arm64-1\nstation_id = S1\n'
  printf 'poll_interval_ms = 500\nclock = trust\n'
  printf '[store]\npath = /var/lib/turnstile/agent.db\n'
  # a broker that never answers: nothing is acknowledged, every reading stays in the store
  printf '[mqtt]\nhost = 127.0.0.1\nport = 1\nreconnect_max_ms = 2000\n'
  cat "$root/srv/sim/devices.conf"
} >"$root/etc/turnstile/agent.conf"   # rewritten in place: owner and mode stay
cp "$root/etc/turnstile/agent.conf" "$work/arm64-agent.conf.mine"
agent_pid=
agent_start() { # LOG: the installed agent as its user, in the background
  chroot --userspec="$uid:$gid" "$root" /usr/bin/turnstile-agent -c /etc/turnstile/agent.conf \
    >>"$1" 2>&1 &
  agent_pid=$!
}
agent_stop() { # SIGTERM, as systemctl stop does: its exit status
  local rc=0
  kill -TERM "$agent_pid"
  wait "$agent_pid" || rc=$?
  agent_pid=
  return "$rc"
}
# (-s: the sqlite3 shell would create a missing store, as root, that the agent cannot write)
enough() { [ -s "$db" ] && [ "$(rows "SELECT count(*) FROM readings WHERE seq > $1" || echo 0)" -ge "$2" ]; }
agent_start "$work/arm64-agent.log"
wait_for 60 enough 0 40 || true
rc=0; agent_stop || rc=$?
check "arm64: the agent, as turnstile-agent, stops cleanly on SIGTERM" test "$rc" = 0
[ "$rc" = 0 ] || tail -20 "$work/arm64-agent.log"
check "arm64: its store is owned by turnstile-agent" test "$(in_root stat -c %U /var/lib/turnstile/agent.db)" = turnstile-agent
read -r n1 min1 max1 < <(rows 'SELECT count(*), min(seq), max(seq) FROM readings' | tr '|' ' ') || true
created1=$(rows 'SELECT created_ms FROM meta')
ino1=$(stat -c %i "$db")
echo "arm64: before the upgrade: $n1 readings in the store (seq $min1..$max1)"
check "arm64: the store holds readings (at least 40)" test "${n1:-0}" -ge 40

# --- upgrade ----------------------------------------------------------------------------------
# stdin: a pipe that never reaches its end, as an unattended terminal: a conffile prompt would
# wait on it for ever (the timeout only turns that into a failure)
mkfifo "$work/arm64-tty"
exec 8<>"$work/arm64-tty"
t0=$SECONDS
rc=0
timeout 600 env DEBIAN_FRONTEND=noninteractive chroot "$root" dpkg -i --force-confold \
  "/root/v2/turnstile-agent_${v2}_arm64.deb" "/root/v2/turnstile-sim_${v2}_arm64.deb" \
  <&8 >"$work/arm64-upgrade.log" 2>&1 || rc=$?
sed 's/^/  /' "$work/arm64-upgrade.log"
echo "arm64: upgrade in $((SECONDS - t0)) s"
check "arm64: dpkg -i --force-confold of $v2 succeeds without a prompt" test "$rc" = 0
for p in turnstile-agent turnstile-sim; do
  check "arm64: $p $v2 installed" test "$(in_root dpkg-query -W -f='${Status} ${Version}' "$p")" = "install ok installed $v2"
done
check "arm64: the operator's agent.conf is kept" cmp -s "$root/etc/turnstile/agent.conf" "$work/arm64-agent.conf.mine"
check "arm64: the package's new agent.conf is beside it (agent.conf.dpkg-dist)" \
  grep -q "revision $v2" "$root/etc/turnstile/agent.conf.dpkg-dist"
check "arm64: agent.conf still root:turnstile-agent 0640" \
  test "$(in_root stat -c '%U:%G %a' /etc/turnstile/agent.conf)" = "root:turnstile-agent 640"
check "arm64: the store is the same file (inode, created_ms)" \
  test "$(stat -c %i "$db")/$(rows 'SELECT created_ms FROM meta')" = "$ino1/$created1"
check "arm64: every reading from before the upgrade is still there ($n1)" \
  test "$(rows "SELECT count(*) FROM readings WHERE seq BETWEEN $min1 AND $max1")" = "$n1"
agent_start "$work/arm64-agent.log"
wait_for 60 enough "$max1" 20 || true
rc=0; agent_stop || rc=$?
read -r n2 min2 max2 < <(rows 'SELECT count(*), min(seq), max(seq) FROM readings' | tr '|' ' ') || true
echo "arm64: after the upgrade: $n2 readings (seq $min2..$max2)"
check "arm64: the upgraded agent stops cleanly" test "$rc" = 0
[ "$rc" = 0 ] || tail -20 "$work/arm64-agent.log"
check "arm64: it numbers on (no gap at the start, no reuse, new readings)" \
  test "$min2/$(rows "SELECT count(*) FROM readings WHERE seq > $max1")/$((max2 > max1))" = "$min1/$((max2 - max1))/1"
check "arm64: the agent's log: the store opened twice, created once" bash -c \
  "[ \$(grep -c 'store /var/lib/turnstile/agent.db: opened' '$work/arm64-agent.log') -ge 2 ] && [ \$(grep -c 'store /var/lib/turnstile/agent.db: created' '$work/arm64-agent.log') -eq 1 ]"

# --- remove, purge --------------------------------------------------------------------------
dpkg_in -r turnstile-agent </dev/null >"$work/arm64-remove.log" 2>&1 || cat "$work/arm64-remove.log"
check "arm64: remove: binary gone, store and agent.conf kept" bash -c \
  "[ ! -e '$root/usr/bin/turnstile-agent' ] && [ -s '$db' ] && cmp -s '$root/etc/turnstile/agent.conf' '$work/arm64-agent.conf.mine'"
check "arm64: remove: state config-files" test "$(in_root dpkg-query -W -f='${Status}' turnstile-agent)" = "deinstall ok config-files"
dpkg_in -P turnstile-agent turnstile-sim </dev/null >>"$work/arm64-remove.log" 2>&1 || cat "$work/arm64-remove.log"
check "arm64: purge: /var/lib/turnstile and agent.conf(.dpkg-dist) gone" bash -c \
  "[ ! -e '$root/var/lib/turnstile' ] && [ ! -e '$root/etc/turnstile/agent.conf' ] && [ ! -e '$root/etc/turnstile/agent.conf.dpkg-dist' ]"
check "arm64: purge: nothing of the packages left" bash -c \
  "! chroot '$root' dpkg-query -W -f='\${Status}\n' turnstile-agent turnstile-sim 2>/dev/null | grep -q installed"

# --- as in an image build (scripts/rootfs --agent-conf): agent.conf provisioned beforehand ------
mkdir -p "$root/etc/turnstile"
cp "$work/arm64-agent.conf.mine" "$root/etc/turnstile/agent.conf"
rc=0
dpkg_in -i --force-confold "/root/v2/turnstile-agent_${v2}_arm64.deb" </dev/null >"$work/arm64-image.log" 2>&1 || rc=$?
sed 's/^/  /' "$work/arm64-image.log"
check "arm64, image build: dpkg -i with a provisioned agent.conf succeeds" test "$rc" = 0
check "arm64, image build: the provisioned agent.conf is kept" cmp -s "$root/etc/turnstile/agent.conf" "$work/arm64-agent.conf.mine"
check "arm64, image build: the unit is enabled for the first boot (deb-systemd-helper under qemu)" \
  test -L "$root/etc/systemd/system/multi-user.target.wants/turnstile-agent.service"
umount "$root/proc" 2>/dev/null || true
