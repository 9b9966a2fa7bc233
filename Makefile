# Strata - the two set-up commands of the README, plus helpers.
#   make run    install build deps, Release build, start stratad with embedded defaults
#   make test   install test deps, Release + ASan builds, every unit and integration test
#   make bench  install bench deps (+ Apache Kafka jars, bench/peers/kafka.sh), Release build, the
#               benchmark suite (bench/run.sh, ~11 min):
#               bench/results/<date>.json, .md and PNGs. `make bench BUILD=build-bench`
#               builds into and runs from another build directory.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all run test build asan deps test-deps bench-deps bench format format-check clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Asan $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	exec $(BUILD)/tools/stratad $(ARGS)

test: test-deps
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DSTRATA_WERROR=ON"
	@$(MAKE) --no-print-directory asan CMAKE_FLAGS="-DSTRATA_WERROR=ON"
	@scripts/test.sh $(BUILD) $(ASAN_BUILD)

bench-deps:
	@scripts/deps.sh bench
	@bench/peers/kafka.sh install >/dev/null

bench: bench-deps build
	@bench/run.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
