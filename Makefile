# The two commands of the README: `make demo` and `make test`.
# Each installs what it needs (Debian packages, the build) by itself.
BUILD ?= build
SAN_BUILD ?= build-san
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all bootstrap build build-san demo test test-fast clean

all: build

bootstrap:
	@./scripts/bootstrap.sh

build: bootstrap
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# CI's build: warnings are errors, AddressSanitizer and UndefinedBehaviorSanitizer on.
build-san: bootstrap
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPRISM_WERROR=ON -DPRISM_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(SAN_BUILD) -j$(JOBS)

# The whole suite under the sanitizers, as CI runs it.
test: build-san
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600

# The suite on the plain build: quicker while developing.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# A local cluster and a real workload on it.
demo: build
	./scripts/demo.sh $(BUILD)/bin

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
