# porthole: `make demo` and `make test` are all a fresh Debian 12 machine needs.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
SANITIZE ?= OFF

.PHONY: all deps build test unit integration test-asan test-tsan demo bench soak fuzz format clean \
  package test-package test-selfhost cross test-cross dist test-dist

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DPORTHOLE_SANITIZE=$(SANITIZE) >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

# Every test, unit and integration, against a build with sanitizers: build-asan/
# (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer) and build-tsan/
# (ThreadSanitizer). Any report fails the test it happens in (docs/TESTING.md).
test-asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan SANITIZE=address

test-tsan:
	@$(MAKE) --no-print-directory test BUILD=build-tsan SANITIZE=thread

demo: build
	@scripts/demo $(BUILD)/bin

bench: build
	@scripts/install-deps --bench
	@bench/run $(BUILD)/bin

# The long runs, bounded in time (about 35 minutes here): the tests marked
# soak (a 60 s link outage, 100 MiB over a slow lossy link, 1 GiB read at
# 1 MiB/s, five minutes per transport of public connections ending at random
# points), then a million requests through a tunnel while clients come and
# go, open files and memory compared.
soak: build
	@scripts/install-deps --bench
	@cd tests/integration && PORTHOLE_BIN_DIR=$(abspath $(BUILD))/bin /usr/bin/python3 -m pytest \
	  -q -s -p no:cacheprovider -o faulthandler_timeout=0 -m soak
	@bench/soak $(BUILD)/bin

# libFuzzer targets (fuzz/README.md), built with clang in their own directory;
# each runs for FUZZ_SECONDS over a scratch corpus in $(FUZZ_BUILD).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/install-deps --fuzz
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DPORTHOLE_FUZZ=ON \
	  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" >/dev/null
	@ninja -C $(FUZZ_BUILD) -j $(JOBS) fuzz
	@FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

# Debian packages (CPack, cmake/Packaging.cmake): $(BUILD)/porthole_<version>_<arch>.deb
# and $(BUILD)/portholed_<version>_<arch>.deb.
package: build
	@scripts/install-deps --package
	@cd $(BUILD) && cpack -G DEB >/dev/null && ls -1 $(abspath $(BUILD))/*.deb

# The packages installed, used and removed in a fresh Debian 12 root
# (debootstrap; about a minute, the first time a few more).
test-package: package
	@tests/package/test-debs $(BUILD)

# docs/SELF-HOSTING.md followed step by step, in a fresh Debian 12 root; then
# docs/CLUSTER.md's three nodes, three-member etcd and haproxy, each machine an
# overlay of this one in namespaces of its own (under a minute).
test-selfhost: package
	@tests/selfhost/test-guide $(BUILD)
	@tests/selfhost/test-cluster-guide $(BUILD)

# Linux ARM (docs/CROSS.md): ARCH=arm64 or armhf, cross-compiled into
# build-$(ARCH)/ with cmake/toolchain-$(ARCH).cmake; programs run under qemu-user.
ARCH ?= arm64
cross:
	@scripts/install-deps --cross $(ARCH)
	@cmake -S . -B build-$(ARCH) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-$(ARCH).cmake >/dev/null
	@ninja -C build-$(ARCH) -j $(JOBS)

# Unit tests under qemu (ctest), every integration test with the ARM programs,
# then mixed runs: ARM client with the x86-64 server and the other way round.
MIXED_TESTS ?= test_http.py test_tcp.py test_https.py test_websocket.py test_proxy_pool.py test_transport.py
test-cross: cross build
	@scripts/test-cross $(ARCH) $(abspath build-$(ARCH))/bin $(abspath $(BUILD))/bin $(MIXED_TESTS)

# Release archives in build-dist/ for amd64, arm64 and armhf, with SHA256SUMS.
dist: build
	@$(MAKE) --no-print-directory cross ARCH=arm64
	@$(MAKE) --no-print-directory cross ARCH=armhf
	@scripts/dist build-dist amd64=$(BUILD)/bin arm64=build-arm64/bin armhf=build-armhf/bin

# Each archive unpacked into a fresh Debian 12 root of its architecture.
test-dist: dist
	@tests/dist/test-archives build-dist

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan build-arm64 build-armhf build-dist
