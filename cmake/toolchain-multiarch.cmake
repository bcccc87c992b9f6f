# Shared by cmake/toolchain-arm64.cmake and cmake/toolchain-armhf.cmake: find
# the target's libraries, never the build machine's.

# pkg-config (brotli): only the target's .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/pkgconfig:/usr/share/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})

# libyaml-cpp-dev is not Multi-Arch: same, so it cannot be installed for the
# build machine and the target at once; scripts/install-deps --cross unpacks
# the target's package into build-cache/cross-<arch>/ instead.
get_filename_component(_porthole_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
list(APPEND CMAKE_PREFIX_PATH "${_porthole_root}/build-cache/cross-${CMAKE_LIBRARY_ARCHITECTURE}/usr")

# Search the target's multiarch directories for libraries and headers; the
# build machine's /usr/lib/x86_64-linux-gnu is not among them.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/include/x86_64-linux-gnu)
