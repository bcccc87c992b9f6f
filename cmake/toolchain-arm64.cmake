# Cross-compiling porthole for Linux arm64 (aarch64-linux-gnu) on Debian 12 with its
# crossbuild-essential-arm64 and the :arm64 -dev packages (scripts/install-deps
# --cross arm64). Libraries come from the multiarch paths /usr/lib/aarch64-linux-gnu and
# /usr/include/aarch64-linux-gnu; programs built here (unit tests, gtest discovery) run
# under qemu-aarch64-static.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64-static)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-multiarch.cmake)
