# The commands a new user types. Everything builds into build/ with CMake + Ninja.
#   make         install missing Debian packages, build (CLI at build/bin/tensair)
#   make test    the above, then every test with ctest (unit, multi-rank 1/2/3, end to end)
#   make demo    the above, then the demo job, in one process
#   make bench   the above, then the benchmarks; table on stdout, JSON in build/bench/results.json
#   make fuzz    libFuzzer targets (clang, ASan + UBSan) in build-fuzz/, FUZZ_SECONDS each
BUILD  ?= build
JOBS   ?= 2
TYPE   ?= Release
CMAKE_ARGS ?=
CTEST_ARGS ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: all build deps configure test demo bench fuzz clean

all: build

deps:
	@bash scripts/bootstrap.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build
	bash scripts/demo.sh

bench: build
	bash bench/run.sh $(BUILD)

fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD)
