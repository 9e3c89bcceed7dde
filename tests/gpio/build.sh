#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/gpio/build.sh - the kernel side of the GPIO VM test (docs/gpio.md):
# Debian 12's x86_64 kernel, its configfs.ko, a gpio-sim module built out of
# tree for it, and a static busybox. Debian builds its kernel without gpio-sim
# (and without gpio-mockup), so the module is built here from linux-source-6.1
# against the matching linux-headers: drivers/gpio/gpio-sim.c, gpiolib.h and
# kernel/irq/irq_sim.c (also not in Debian's kernel) become one gpiosim.ko;
# irq_sim.c calls generic_handle_irq() instead of the unexported irq_to_desc().
#
# Nothing is installed on the host: the .debs come from apt's mirror with
# `apt-get download` and are unpacked with `dpkg -x` into the git-ignored
# .cache/gpio/ (the headers' one absolute include is pointed there). The
# results are kept there; a second run prints their paths and does nothing
# else. Cold: about 225 MB downloaded, most of it linux-source (the deb is
# deleted once the three files are out) and a minute or two of CPU.
#
# Usage: tests/gpio/build.sh [--force]   prints shell assignments:
#   GPIO_VM_KERNEL=... GPIO_VM_CONFIGFS=... GPIO_VM_GPIOSIM=... GPIO_VM_BUSYBOX=...
# TS_GPIO_KERNEL=6.1.0-NN-amd64 picks the kernel ABI; default: the one that
# apt's linux-image-amd64 depends on. Needs make, gcc-12 (build-essential),
# dpkg, apt-get, xz; no root.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
cache=$src/.cache/gpio
force=0
[ "${1:-}" = "--force" ] && force=1

die() { echo "tests/gpio/build.sh: $*" >&2; exit 1; }
log() { echo "tests/gpio/build.sh: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one build at a time (ctest -j, two clones' tests)

abi=${TS_GPIO_KERNEL:-}
if [ -z "$abi" ]; then
  abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\(6\.1\.[0-9]*-[0-9]*-amd64\)$/\1/p' | head -1)
  [ -n "$abi" ] || die "cannot tell the kernel ABI from apt's linux-image-amd64 (apt-get update?); set TS_GPIO_KERNEL"
fi
case $abi in 6.1.*-amd64) ;; *) die "kernel $abi: only Debian 12's 6.1 amd64 kernels are known here" ;; esac
dir=$cache/$abi
ko=$dir/gpiosim.ko vmlinuz=$dir/vmlinuz configfs=$dir/configfs.ko busybox=$cache/busybox

fetch() { # PACKAGE... into $dir/debs
  mkdir -p "$dir/debs"
  (cd "$dir/debs" && apt-get download "$@" >/dev/null 2>"$dir/debs/apt.err") ||
    die "apt-get download $* failed: $(tail -3 "$dir/debs/apt.err")"
}

if [ "$force" = 1 ] || [ ! -s "$busybox" ]; then
  log "busybox-static"
  tmp=$(mktemp -d "$cache/bb.XXXXXX")
  (cd "$tmp" && apt-get download busybox-static >/dev/null 2>apt.err) ||
    die "apt-get download busybox-static failed: $(tail -3 "$tmp/apt.err")"
  dpkg -x "$tmp"/busybox-static_*.deb "$tmp/root"
  install -m 755 "$tmp/root/bin/busybox" "$busybox.new" && mv "$busybox.new" "$busybox"
  rm -rf "$tmp"
fi

if [ "$force" = 1 ] || [ ! -s "$vmlinuz" ] || [ ! -s "$configfs" ]; then
  log "linux-image-$abi (kernel and configfs.ko)"
  fetch "linux-image-$abi"
  rm -rf "$dir/image" && dpkg -x "$dir"/debs/linux-image-"$abi"_*.deb "$dir/image"
  cp "$dir/image/boot/vmlinuz-$abi" "$vmlinuz.new" && mv "$vmlinuz.new" "$vmlinuz"
  cp "$dir/image/lib/modules/$abi/kernel/fs/configfs/configfs.ko" "$configfs.new" &&
    mv "$configfs.new" "$configfs"
  # the image's version is the one linux-source and the headers must match
  dpkg-deb -f "$dir"/debs/linux-image-"$abi"_*.deb Version >"$dir/version"
  rm -rf "$dir/image" "$dir"/debs/linux-image-*.deb
fi
version=$(cat "$dir/version")

if [ "$force" = 1 ] || [ ! -s "$ko" ]; then
  if [ ! -s "$dir/src/irq_sim.c" ]; then
    log "linux-source-6.1 $version: gpio-sim.c, gpiolib.h, irq_sim.c"
    fetch "linux-source-6.1=$version"
    rm -rf "$dir/src.tmp" && mkdir -p "$dir/src.tmp"
    dpkg-deb --fsys-tarfile "$dir"/debs/linux-source-6.1_*.deb |
      tar -xO ./usr/src/linux-source-6.1.tar.xz |
      tar -xJ -C "$dir/src.tmp" --strip-components=3 linux-source-6.1/drivers/gpio/gpio-sim.c \
        linux-source-6.1/drivers/gpio/gpiolib.h linux-source-6.1/kernel/irq/irq_sim.c
    rm -f "$dir"/debs/linux-source-6.1_*.deb
    rm -rf "$dir/src" && mv "$dir/src.tmp" "$dir/src"
    [ -s "$dir/src/gpio-sim.c" ] && [ -s "$dir/src/gpiolib.h" ] && [ -s "$dir/src/irq_sim.c" ] ||
      die "linux-source-6.1 $version lacks gpio-sim.c, gpiolib.h or irq_sim.c"
  fi
  headers=$dir/headers/usr/src/linux-headers-$abi
  if [ ! -f "$headers/Module.symvers" ]; then
    log "linux-headers-$abi $version"
    common=${abi%-amd64}-common
    fetch "linux-headers-$abi=$version" "linux-headers-$common=$version" "linux-kbuild-6.1=$version"
    rm -rf "$dir/headers"
    for deb in "$dir"/debs/linux-headers-*.deb "$dir"/debs/linux-kbuild-*.deb; do
      dpkg -x "$deb" "$dir/headers"
    done
    rm -f "$dir"/debs/linux-headers-*.deb "$dir"/debs/linux-kbuild-*.deb
    # its Makefile includes /usr/src/linux-headers-...-common/Makefile: point it into the cache
    sed -i "s|^include /usr/src/|include $dir/headers/usr/src/|" "$headers/Makefile"
  fi
  log "building gpiosim.ko for $abi"
  rm -rf "$dir/mod" && mkdir -p "$dir/mod"
  cp "$dir"/src/gpio-sim.c "$dir"/src/gpiolib.h "$dir"/src/irq_sim.c "$dir/mod/"
  # irq_to_desc() is not exported to modules; generic_handle_irq() does the same here
  sed -i 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' "$dir/mod/irq_sim.c"
  grep -q 'generic_handle_irq(irqnum)' "$dir/mod/irq_sim.c" || die "irq_sim.c: the irq_to_desc call was not found"
  printf 'obj-m += gpiosim.o\ngpiosim-objs := gpio-sim.o irq_sim.o\n' >"$dir/mod/Makefile"
  make -C "$headers" M="$dir/mod" modules >"$dir/mod/build.log" 2>&1 ||
    die "module build failed: $(tail -20 "$dir/mod/build.log")"
  cp "$dir/mod/gpiosim.ko" "$ko.new" && mv "$ko.new" "$ko"
  rm -rf "$dir/mod"
fi

printf 'GPIO_VM_KERNEL=%q\nGPIO_VM_CONFIGFS=%q\nGPIO_VM_GPIOSIM=%q\nGPIO_VM_BUSYBOX=%q\nGPIO_VM_VERSION=%q\n' \
  "$vmlinuz" "$configfs" "$ko" "$busybox" "$abi $version"
