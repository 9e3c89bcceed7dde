# SPDX-License-Identifier: Apache-2.0
# tests/vm/vm.sh - the controller image (scripts/image) booted in qemu-system-aarch64 (TCG),
# its agent polling a turnstile-sim and publishing to a mosquitto on the host. Sourced by
# test_vm_boot.sh and test_vm_power_cut.sh after tests/integration/{lib,broker}.sh, with
# `work` and `src` set.
#
#   vm_station SPEED START      turnstile-sim replaying the MTA station "59 ST" (2 slaves x 3
#                               turnstiles), paused, on a free 127.0.0.1 port (the e2e
#                               harness's station 1: $work/st1/, ssim 1 ..., sim_registers 1)
#   vm_image                    the agent.conf for the guest (broker 10.0.2.100:1883, Modbus
#                               10.0.2.101:502, default store settings) and scripts/image with
#                               it (cached while nothing changed); VM_IMAGE = its directory,
#                               build-image/vm-HASH (HASH: of the agent.conf)
#   vm_disk                     a fresh copy of the image's root.ext4: $work/disk.ext4
#   vm_boot N                   qemu on that disk, serial console in $work/boot-N.log; VM_PID
#   vm_wait_ready N [SECONDS]   until systemd says the agent started (Type=notify: READY=1);
#                               prints the seconds since vm_boot
#   VM_APPEND                   more kernel command line for vm_boot
#   vm_acker TOPIC              the bridge's part (run it in the background): acknowledges on
#                               TOPIC/ack the contiguous prefix of $work/received.csv
#   vm_cut                      SIGKILL of qemu: a power cut (nothing is flushed or shut down)
#
# The guest's network is qemu's user-mode network with restrict=on (no packet leaves it) and
# two guestfwd rules: a connection from the guest to 10.0.2.100:1883 runs `socat - TCP:
# 127.0.0.1:BROKER_PORT` on the host, to 10.0.2.101:502 one to the simulator's port.
# TS_VM_RESTRICT=off (to see test_vm_boot's restriction check fail) lets the guest out.

VM_IMAGE= VM_PID= VM_T0=
VM_MQTT_IP=10.0.2.100 VM_SIM_IP=10.0.2.101
# what the e2e harness's helpers (ssim, sim_registers, sim_time, lpoll) expect of station 1
declare -a ST_NAME=("" "59 ST") ST_TURN=("" 3) ST_POLL=("" 500) ST_FD=() ST_SIM_PID=()

vm_station() { # SPEED START
  local d=$work/st1 fd
  speed=$1 start_time=$2
  mkdir -p "$d"
  mkfifo "$d/sim.in"
  "${TS_BIN_DIR:?}/turnstile-sim" --tcp 127.0.0.1:0 --mta "$mta" --station "${ST_NAME[1]}" \
    --slaves 1,2 --turnstiles "${ST_TURN[1]}" --speed "$speed" --start "$start_time" \
    --fault pause --agent-config "$d/devices.conf" --log-level warning \
    <"$d/sim.in" >"$d/sim.out" 2>"$d/sim.err" &
  ST_SIM_PID[1]=$!
  exec {fd}>"$d/sim.in"
  ST_FD[1]=$fd
  for _ in $(seq 300); do grep -q '^listening' "$d/sim.out" && break; sleep 0.05; done
  grep -q '^listening' "$d/sim.out" || { echo "turnstile-sim did not start"; cat "$d/sim.err"; return 1; }
  SIM_PORT=$(awk '/^listening tcp/ {print $3}' "$d/sim.out")
}

vm_image() {
  # the same file every run (device names without the port), so the image stays cached
  {
    printf '[agent]\nid = vm-ctrl-01\nstation_id = R051\ntimezone = America/New_York\n'
    printf 'poll_interval_ms = %s\nclock = trust\n' "${ST_POLL[1]}"
    printf 'max_rate_per_min = %s\nstate_interval_ms = 2000\n' "$((240 * speed))"
    printf '[store]\npath = /var/lib/turnstile/agent.db\n'   # durability: the defaults
    printf '[mqtt]\nhost = %s\nport = 1883\nkeepalive_s = 5\n' "$VM_MQTT_IP"
    printf 'reconnect_min_ms = 100\nreconnect_max_ms = 1000\nmax_inflight = 100\n'
    printf 'ack_timeout_ms = 10000\nack = end-to-end\n'
    sed -e 's/sim-[0-9]*-slave/sim-slave/' -e "s/^host = .*/host = $VM_SIM_IP/" \
        -e 's/^port = .*/port = 502/' -e '/^# written by/d' "$work/st1/devices.conf"
  } >"$work/agent.conf"
  # one image per agent.conf (the long power-cut run's replay speed differs)
  VM_IMAGE=$src/build-image/vm-$(sha256sum <"$work/agent.conf" | cut -c1-10)
  "$src/scripts/image" arm64 --agent-conf "$work/agent.conf" --out "$VM_IMAGE" >"$work/image.log" 2>&1 ||
    { tail -30 "$work/image.log"; return 1; }
}

vm_disk() {
  cp --sparse=always "$VM_IMAGE/root.ext4" "$work/disk.ext4"
}

vm_boot() { # N
  local fwd="restrict=${TS_VM_RESTRICT:-on},guestfwd=tcp:$VM_MQTT_IP:1883-cmd:socat - TCP:127.0.0.1:$BROKER_PORT"
  fwd="$fwd,guestfwd=tcp:$VM_SIM_IP:502-cmd:socat - TCP:127.0.0.1:$SIM_PORT"
  VM_T0=$(date +%s.%N)
  # the journal goes to the console too, so the serial log shows systemd's and the agent's lines
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -no-reboot \
    -kernel "$VM_IMAGE/vmlinuz" -initrd "$VM_IMAGE/initrd.img" \
    -append "$(cat "$VM_IMAGE/cmdline") systemd.journald.forward_to_console=1 systemd.show_status=1 ${VM_APPEND:-}" \
    -drive "file=$work/disk.ext4,format=raw,if=none,id=hd,cache=writeback" \
    -device virtio-blk-device,drive=hd \
    -netdev "user,id=n0,$fwd" -device virtio-net-device,netdev=n0 \
    -serial "file:$work/boot-$1.log" -monitor none -display none \
    </dev/null >"$work/qemu-$1.out" 2>&1 &
  VM_PID=$!
}

vm_wait_ready() { # N [SECONDS]
  local log=$work/boot-$1.log limit=${2:-300} t
  for _ in $(seq $((limit * 5))); do
    grep -q 'Started turnstile-agent.service' "$log" 2>/dev/null && break
    kill -0 "$VM_PID" 2>/dev/null || { echo "qemu exited"; cat "$work/qemu-$1.out"; return 1; }
    sleep 0.2
  done
  grep -q 'Started turnstile-agent.service' "$log" || { echo "no READY in ${limit} s"; tail -30 "$log"; return 1; }
  t=$(date +%s.%N)
  awk -v a="$VM_T0" -v b="$t" 'BEGIN { printf "%.1f\n", b - a }'
}

vm_cut() {
  [ -n "$VM_PID" ] || return 0
  kill -9 "$VM_PID" 2>/dev/null || true
  wait "$VM_PID" 2>/dev/null || true
  VM_PID=
}

vm_acker() { # TOPIC
  local n
  while :; do
    n=$(awk -F, 'NF == 18 { split($12, id, ":"); for (k = $18; k <= id[2]; k++) have[k] = 1 }
                 END { n = 0; while ((n + 1) in have) n++; print n }' "$work/received.csv")
    [ "$n" -gt 0 ] && mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -r -t "$1/ack" -m "$n" 2>/dev/null || true
    sleep 0.5
  done
}
