#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_gpio_vm: the GPIO backend against a real kernel (docs/gpio.md).
#
# tests/gpio/build.sh provides Debian 12's x86_64 kernel, its configfs.ko, a
# gpio-sim module built for it and a static busybox (cached in .cache/gpio/).
# This script packs them with the built turnstile-agent (the ASan build is
# fine: ldd's libraries go along), libgpiod's tools and tests/gpio/guest.sh as
# /init into an initramfs (cpio), boots it in qemu-system-x86_64 under TCG
# with -icount (guest time counted in instructions: the shell's bounce bursts
# stay microseconds long in guest time whatever the host's load) and reads
# the guest's verdict from the serial console. No root, no network in the VM.
#
# TS_GPIO_VM_BREAK=debounce|active_low boots with a wrong agent config (same
# expectations): the test must fail. TS_GPIO_VM_KEEP=1 keeps the work dir.
set -euo pipefail
src=${TS_SRC_DIR:?}
bin=${TS_BIN_DIR:?}
work=$(mktemp -d /tmp/ts-gpio-vm.XXXXXX)
[ "${TS_GPIO_VM_KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT

for tool in qemu-system-x86_64 cpio gpiomon ldd; do
  command -v "$tool" >/dev/null || { echo "test_gpio_vm: $tool missing (./scripts/deps installs it)"; exit 1; }
done
t0=$SECONDS
eval "$("$src/tests/gpio/build.sh")"
echo "kernel $GPIO_VM_VERSION, gpio-sim module ready ($((SECONDS - t0)) s)"

# the initramfs: busybox, the modules, the programs and every library ldd names
root=$work/root
mkdir -p "$root"/{bin,usr/bin,proc,sys,dev,tmp,data,cfg}
cp "$GPIO_VM_BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$GPIO_VM_CONFIGFS" "$root/configfs.ko"
cp "$GPIO_VM_GPIOSIM" "$root/gpiosim.ko"
install -m 755 "$src/tests/gpio/guest.sh" "$root/init"
for prog in "$bin/turnstile-agent" "$(command -v gpiomon)"; do
  cp "$prog" "$root/usr/bin/"
  ldd "$prog" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd"

append="console=ttyS0 panic=-1 quiet"
[ -n "${TS_GPIO_VM_BREAK:-}" ] && append+=" gpio_break=$TS_GPIO_VM_BREAK"
t1=$SECONDS
set +e
timeout 600 qemu-system-x86_64 -accel tcg -icount shift=0,sleep=off -m 1024 -smp 1 \
  -nographic -no-reboot -nic none -kernel "$GPIO_VM_KERNEL" -initrd "$work/initrd" \
  -append "$append" </dev/null >"$work/console" 2>&1
rc=$?
set -e
echo "VM ran $((SECONDS - t1)) s (qemu exit $rc)"
tr -d '\r' <"$work/console" >"$work/console.txt"
grep '^GPIOVM ' "$work/console.txt" || true
if ! grep -q '^GPIOVM done: [0-9]* passed, 0 failed$' "$work/console.txt" ||
   grep -q '^GPIOVM FAIL' "$work/console.txt"; then
  echo "test_gpio_vm: FAILED; the console:"
  cat "$work/console.txt"
  exit 1
fi
echo "test_gpio_vm: passed ($((SECONDS - t0)) s)"
