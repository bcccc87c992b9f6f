# Cross-compiling porthole for Linux armhf (arm-linux-gnueabihf) on Debian 12 with its
# crossbuild-essential-armhf and the :armhf -dev packages (scripts/install-deps
# --cross armhf). Libraries come from the multiarch paths /usr/lib/arm-linux-gnueabihf and
# /usr/include/arm-linux-gnueabihf; programs built here (unit tests, gtest discovery) run
# under qemu-arm-static.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-arm-static)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-multiarch.cmake)
