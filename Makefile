# The commands a new user types. Everything builds into build/ with CMake + Ninja.
#   make         install missing Debian packages, build (CLI at build/bin/tensair)
#   make test    the above, then every test with ctest (unit, multi-rank 1/2/3, end to end)
#   make demo    the above, then the demo job, in one process
#   make bench   the above, then the benchmarks; table on stdout, JSON in build/bench/results.json
#   make bench-peers  TensAIR vs PyTorch/DDP and gensim side by side: build/bench/peers.json, .png
#   make fuzz    libFuzzer targets (clang, ASan + UBSan) in build-fuzz/, FUZZ_SECONDS each
#   make test-sanitize  the tests that need no LibTorch, built with ASan + UBSan in build-asan/
#                (CI runs it after make test; docs/testing.md says which tests and why)
BUILD  ?= build
JOBS   ?= 2
TYPE   ?= Release
CMAKE_ARGS ?=
TORCH_DIR ?=
CTEST_ARGS ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
SAN_BUILD ?= build-asan
# Debug at -O0 with line tables only (-g1): half the compile time of -O1 and a third of -O2 -g,
# which is what keeps this step inside CI's time; the reports still name file and line.
# LeakSanitizer on, with the suppressions of Open MPI's own allocations; UBSan stops at the
# first finding, so that a report fails its test. (The test binaries keep Open MPI's
# components loaded, so that the suppressions can name them: tests/testing/main.cpp.)
SAN_ASAN = detect_leaks=1:abort_on_error=1:strict_string_checks=1
SAN_ENV = ASAN_OPTIONS=$(SAN_ASAN) \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: demo-kafka all build deps configure test test-sanitize demo bench bench-peers fuzz clean \
	FORCE

all: build

deps:
	@bash scripts/bootstrap.sh

# LibTorch: Debian's CPU build, or the one TORCH_DIR names (a CUDA LibTorch:
# `TORCH_DIR=/opt/libtorch make`, docs/model.md#devices). A changed TORCH_DIR reconfigures.
$(BUILD)/torch_dir.txt: FORCE
	@mkdir -p $(BUILD) && echo '$(TORCH_DIR)' | cmp -s - $@ || echo '$(TORCH_DIR)' > $@

$(BUILD)/build.ninja: CMakeLists.txt $(BUILD)/torch_dir.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) "-DTORCH_DIR=$(TORCH_DIR)" $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-sanitize: deps
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  "-DCMAKE_CXX_FLAGS_DEBUG=-O0 -g1" "-DCMAKE_C_FLAGS_DEBUG=-O0 -g1" \
	  -DTENSAIR_SANITIZE_ADDRESS=ON -DTENSAIR_SANITIZE_UNDEFINED=ON -DTENSAIR_WITH_MODEL=OFF \
	  -DTENSAIR_BUILD_BENCH=OFF
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build
	bash scripts/demo.sh

# The sentiment use case through Kafka on a local mock broker (docs/use-cases.md).
demo-kafka: build
	bash scripts/demo_kafka.sh $(BUILD)/bin/tensair out/sentiment

bench: build
	bash bench/run.sh $(BUILD)

# TensAIR against PyTorch (DDP) and gensim on the same work, interleaved (docs/performance.md);
# ~25 minutes. PEERS_ARGS: e.g. --only cifar2,straggler --rounds 5.
PEERS_ARGS ?=
bench-peers: build
	@bash scripts/bootstrap.sh python3-torch python3-gensim
	$(BUILD)/bench/bench_peers --json $(BUILD)/bench/peers.json --plot $(BUILD)/bench/peers.png $(PEERS_ARGS)

fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD)
