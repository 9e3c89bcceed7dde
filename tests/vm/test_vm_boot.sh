#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The controller image (scripts/image arm64) boots in qemu-system-aarch64 -M virt (TCG):
# Debian's arm64 kernel, the initramfs mounts the ext4 root from the virtio disk, systemd runs
# as PID 1 and starts turnstile-agent.service, which reaches READY (Type=notify), polls the
# turnstile-sim on the host and publishes to the mosquitto on the host, through qemu's
# user-mode network with restrict=on and guestfwd to those two loopback ports only. A probe
# run in the guest at boot (systemd.run= on the kernel command line: nothing of it is in the
# image) shows what systemd says of the unit and that the host's other ports are unreachable.
# Needs root (scripts/image) and qemu-system-arm (scripts/deps).
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"
[ "$(id -u)" -eq 0 ] || { echo "test_vm_boot: needs root (scripts/image)"; exit 1; }
command -v qemu-system-aarch64 >/dev/null || { echo "test_vm_boot: qemu-system-aarch64 missing (scripts/deps)"; exit 1; }
mta=${TS_MTA_FILE:-$src/../shared/data/mta/turnstile_230603.csv.gz}
work=$(mktemp -d /tmp/ts-vm-boot.XXXXXX)
sub_pid= acker_pid=
cleanup() {
  vm_cut
  for p in $sub_pid $acker_pid ${ST_SIM_PID[1]:-}; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  broker_cleanup 2>/dev/null || true
  if [ -n "${TS_KEEP:-}" ] || [ "${fails:-0}" -gt 0 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/broker.sh"
. "$src/tests/e2e/lib.sh"
. "$src/tests/vm/vm.sh"

broker_start
vm_station 600 '2023-05-31 20:00:00'
t=$SECONDS
vm_image
echo "image: $((SECONDS - t)) s ($(grep -q 'is current' "$work/image.log" && echo cached || echo built))"
vm_disk
topic=turnstile/v1/R051/vm-ctrl-01
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -c -i vm-capture -t "$topic/readings" \
  >"$work/received.csv" 2>"$work/sub.err" &
sub_pid=$!
vm_acker "$topic" & acker_pid=$!
sim_registers 1 >"$work/regs.start"   # the simulator runs once the agent read these

# the probe: once the agent is active, what systemd says of it; then a connection to the host's
# broker port through the gateway (10.0.2.2 is the host's 127.0.0.1 for qemu), not forwarded
# It runs as its own transient unit (kernel-command-line.service is a oneshot that boot waits
# for); base64 keeps the kernel command line free of quotes and of what systemd would expand.
probe='until systemctl is-active -q turnstile-agent; do sleep 1; done; sleep 3
echo "vm-probe-pid1:$(cat /proc/1/comm)"
systemctl show -p Type -p ActiveState -p SubState -p NRestarts -p User turnstile-agent | sed "s/^/vm-probe-unit:/"
echo "vm-probe-root:$(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
( exec 3<>/dev/tcp/10.0.2.2/'"$BROKER_PORT"' && echo "vm-probe: gateway reached" ) & sleep 10
echo "vm-probe: gateway done"'
b64=$(base64 -w0 <<<"$probe")
VM_APPEND="systemd.run=\"/bin/bash -c 'echo $b64 | base64 -d >/run/vm-probe; systemd-run --no-block --unit=vm-probe /bin/bash /run/vm-probe'\""
# systemd.run= makes kernel-command-line.target the default: the normal boot goes on, and
# pulls in the command's unit
VM_APPEND="$VM_APPEND systemd.run_success_action=none systemd.run_failure_action=none systemd.unit=multi-user.target systemd.wants=kernel-command-line.service"
vm_boot 1
ready=$(vm_wait_ready 1 300) || { check "the agent reached READY under systemd" false; finish; exit 1; }
echo "boot to READY: $ready s"
check "the kernel ran the initramfs's /init" grep -q 'Run /init as init process' "$work/boot-1.log"
check "the root is the virtio disk's ext4" grep -q 'EXT4-fs (vda): mounted filesystem' "$work/boot-1.log"
check "systemd 252 runs in system mode" grep -q 'systemd 252.* running in system mode' "$work/boot-1.log"
check "systemd started turnstile-agent.service (Type=notify: after READY=1)" \
  grep -q 'Started turnstile-agent.service' "$work/boot-1.log"
for _ in $(seq 150); do grep -q 'vm-probe: gateway done' "$work/boot-1.log" && break; sleep 0.2; done
grep -ao 'vm-probe-[a-z0-9]*:.*\|vm-probe: .*' "$work/boot-1.log" | sed 's/^/  /'
probed() { grep -q "vm-probe-$1:$2" "$work/boot-1.log"; }
check "PID 1 is systemd" probed pid1 systemd
check "systemd: the unit is Type=notify" probed unit Type=notify
check "systemd: the unit is active (running)" probed unit ActiveState=active
check "systemd: ... SubState=running" probed unit SubState=running
check "systemd: ... never restarted" probed unit NRestarts=0
check "systemd: ... runs as turnstile-agent" probed unit User=turnstile-agent
check "the root is the virtio disk's ext4, read-write (systemd-remount-fs)" probed root '/dev/vda  *ext4  *rw'
check "restrict=on: the guest reaches no other host port (the probe tried)" \
  bash -c "grep -q 'vm-probe: gateway done' '$work/boot-1.log' && ! grep -q 'vm-probe: gateway reached' '$work/boot-1.log'"

for _ in $(seq 300); do [ -s "$work/received.csv" ] && break; sleep 0.2; done
ssim 1 resume
status_json=$(mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic/status" -C 1 -W 30 || true)
echo "status: $status_json"
check "the agent's birth message reached the host's broker" grep -q '"state":"online"' <<<"$status_json"
for _ in $(seq 300); do
  [ "$(awk -F, 'NF == 18' "$work/received.csv" | cut -d, -f3 | sort -u | wc -l)" -ge 6 ] && break
  sleep 0.2
done
# people pass: the agent counts them (the replay runs at 600x)
for _ in $(seq 150); do
  awk -f "$src/tests/integration/account.awk" "$work/received.csv" >"$work/account"
  [ "$(awk '$1 == "turnstile" { n += $3 + $4 } END { print n + 0 }' "$work/account")" -gt 0 ] && break
  sleep 0.2
done
cat "$work/account"
check "people were counted" test "$(awk '$1 == "turnstile" { n += $3 + $4 } END { print n + 0 }' "$work/account")" -gt 0
check "readings of all 6 turnstiles arrived" test "$(grep -c '^turnstile ' "$work/account")" -eq 6
# the agent's first reading of a turnstile starts from the registers it read (paused) at start
while read -r ca unit scp e x; do
  read -r _ _ _ _ fe fx _ _ < <(grep "^turnstile $scp " "$work/account") || true
  check "$scp: the first reading's cumulative counts are the registers at start" test "${fe:-} ${fx:-}" = "$e $x"
done <"$work/regs.start"
check "no gap, no overlap, no malformed reading" \
  awk '$1 ~ /^(gaps|overlaps|malformed|differing_duplicates)$/ && $2 != 0 { bad = 1 } END { exit bad }' "$work/account"
check "the guest's journal has no agent error" bash -c "! grep -E 'turnstile-agent\[[0-9]+\]: (error|critical)' '$work/boot-1.log'"
vm_cut
finish
