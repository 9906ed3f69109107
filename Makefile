# The two commands of the README: `make demo` and `make test`.
# Each installs what it needs (Debian packages, the build) by itself.
BUILD ?= build
SAN_BUILD ?= build-san
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
# How long `make test` runs each fuzz target (two at a time).
FUZZ_TEST_SECONDS ?= 20
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all bootstrap build build-san build-tsan build-fuzz demo fuzz test test-tsan test-fast clean

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

# ThreadSanitizer (it cannot be combined with AddressSanitizer).
build-tsan: bootstrap
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPRISM_WERROR=ON -DPRISM_TSAN=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(TSAN_BUILD) -j$(JOBS)

# The unit tests and the tasks and actors tests (the threads of libprism, the
# worker and the GCS's actor manager) under ThreadSanitizer; a race fails them.
test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --output-on-failure -j$(JOBS) --timeout 600 \
	  -R '^unit\.|^integration\.test_(tasks|actors|actors_api)$$'

# The libFuzzer targets of fuzz/ (clang, ASan and UBSan; fuzz/README.md).
build-fuzz: bootstrap
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DPRISM_WERROR=ON -DPRISM_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

# Each target for FUZZ_SECONDS (default 600), two at a time; what they find
# accumulates in $(FUZZ_BUILD)/fuzz-corpus, crashes in $(FUZZ_BUILD)/fuzz-artifacts.
fuzz: build-fuzz
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  ctest --output-on-failure -j$(JOBS) -L fuzz --timeout $$(($(FUZZ_SECONDS) + 300))

# The whole suite under the sanitizers, as CI runs it, then each fuzz target
# for FUZZ_TEST_SECONDS on its seeds and regression inputs, then test-tsan.
test: build-san build-fuzz build-tsan
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 600
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) \
	  ctest --output-on-failure -j$(JOBS) -L fuzz --timeout $$(($(FUZZ_TEST_SECONDS) + 300))
	$(MAKE) --no-print-directory test-tsan

# The suite on the plain build: quicker while developing.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# A local cluster and a real workload on it.
demo: build
	./scripts/demo.sh $(BUILD)/bin

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
