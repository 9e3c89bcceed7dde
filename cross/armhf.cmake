# SPDX-License-Identifier: Apache-2.0
# CMake toolchain file: armhf (arm-linux-gnueabihf, 32-bit Raspberry Pi OS / Debian armhf:
# ARMv7 with VFPv3-D16, so Pi 2 and later; the Pi 1 and Zero (ARMv6) need Raspbian's own
# armhf, built with its toolchain). Same scheme as arm64.cmake.
#   cmake -S . -B build-armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=cross/armhf.cmake \
#         -DTS_SYSROOT=$PWD/.cache/sysroot-armhf
set(TS_CROSS_ARCH armhf)
set(TS_CROSS_TRIPLET arm-linux-gnueabihf)
set(TS_CROSS_QEMU qemu-arm-static)
set(CMAKE_SYSTEM_PROCESSOR arm)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

# 64-bit file offsets and inode numbers on this 32-bit target (what dpkg-buildflags' abi=+lfs
# does): without it readdir() fails with EOVERFLOW on file systems with 64-bit directory
# cookies or inodes (ext4 with dir_index under qemu-user, XFS, NFS, btrfs), and the bridge's
# lake listing comes back empty (test_lake fails). time_t stays 32-bit (Debian 12 armhf ABI).
set(CMAKE_C_FLAGS_INIT "-D_FILE_OFFSET_BITS=64")
