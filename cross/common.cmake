# SPDX-License-Identifier: Apache-2.0
# Shared part of the toolchain files (arm64.cmake, armhf.cmake set TS_CROSS_ARCH, TS_CROSS_TRIPLET,
# TS_CROSS_QEMU and CMAKE_SYSTEM_PROCESSOR, then include this).
#
# TS_SYSROOT: the target's root filesystem with the -dev packages unpacked
# (scripts/cross-build makes one in .cache/sysroot-ARCH); defaults to that folder.
# Executables built for the target run on this host through qemu-user
# (CMAKE_CROSSCOMPILING_EMULATOR: ctest uses it for the unit tests).
set(CMAKE_SYSTEM_NAME Linux)

if(NOT TS_SYSROOT)
  if(DEFINED ENV{TS_SYSROOT})
    set(TS_SYSROOT "$ENV{TS_SYSROOT}")
  else()
    set(TS_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../.cache/sysroot-${TS_CROSS_ARCH}")
  endif()
endif()
get_filename_component(TS_SYSROOT "${TS_SYSROOT}" ABSOLUTE)
if(NOT EXISTS "${TS_SYSROOT}/usr/include/${TS_CROSS_TRIPLET}")
  message(FATAL_ERROR "TS_SYSROOT=${TS_SYSROOT} is not a ${TS_CROSS_TRIPLET} sysroot "
                      "(scripts/cross-build makes one)")
endif()
# try_compile projects re-read this file: hand them the sysroot
set(CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TS_SYSROOT)
set(ENV{TS_SYSROOT} "${TS_SYSROOT}")

set(CMAKE_C_COMPILER ${TS_CROSS_TRIPLET}-gcc)
set(CMAKE_SYSROOT "${TS_SYSROOT}")
# the shared libraries' own dependencies (libssl for libmosquitto, ...) live in the sysroot
set(_ts_libdirs "${TS_SYSROOT}/usr/lib/${TS_CROSS_TRIPLET}:${TS_SYSROOT}/lib/${TS_CROSS_TRIPLET}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_ts_libdirs}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_ts_libdirs}")

# pkg-config: only the sysroot's .pc files, their paths prefixed with the sysroot
set(ENV{PKG_CONFIG_DIR} "")
set(ENV{PKG_CONFIG_LIBDIR}
    "${TS_SYSROOT}/usr/lib/${TS_CROSS_TRIPLET}/pkgconfig:${TS_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${TS_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_FIND_ROOT_PATH "${TS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR ${TS_CROSS_QEMU} -L ${TS_SYSROOT})
