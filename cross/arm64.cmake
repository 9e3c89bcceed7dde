# SPDX-License-Identifier: Apache-2.0
# CMake toolchain file: arm64 (aarch64-linux-gnu, 64-bit Raspberry Pi OS / Debian arm64).
# Debian's cross compiler (gcc-aarch64-linux-gnu) against a debootstrapped Debian 12 sysroot
# that holds the -dev packages (multiarch :arm64 -dev packages do not co-install with the
# amd64 ones on this host). scripts/cross-build arm64 makes the sysroot and uses this file.
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cross/arm64.cmake \
#         -DTS_SYSROOT=$PWD/.cache/sysroot-arm64
set(TS_CROSS_ARCH arm64)
set(TS_CROSS_TRIPLET aarch64-linux-gnu)
set(TS_CROSS_QEMU qemu-aarch64-static)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
