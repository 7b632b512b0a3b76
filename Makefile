# The front door. CMake (with presets) and Ninja do the work; see README.md.
#   make run    install what is missing, build (Release), start the server on its defaults
#   make test   build and run every test, then again under ASan+UBSan, then the fuzzers briefly
#               (a test that fails runs once more and ctest prints both runs: on 2 shared
#               cores a timing flake should not hide the rest; a real failure fails twice)
#   make bench  build Release and run the micro-benchmarks
SHELL := /bin/bash
JOBS ?= $(shell nproc)
ARGS ?=
FUZZ_SECONDS ?= 20

.PHONY: all bootstrap build run test test-release test-asan fuzz bench clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

run: build
	@./build/release/bin/tcpms-server $(ARGS)

test: bootstrap test-release test-asan fuzz

test-release:
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@ctest --preset release -j 2 --repeat until-pass:2

test-asan:
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j 2 -LE release-only --repeat until-pass:2

fuzz:
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target fuzzers
	@scripts/run-fuzzers build/fuzz/bin $(FUZZ_SECONDS)

bench: build
	@for b in build/release/bin/*_bench; do [ -x "$$b" ] && "$$b"; done

clean:
	rm -rf build
