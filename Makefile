# Thin wrapper over meson for the two README commands and a few conveniences.
#   make run     build nvtcpd and run it on the built-in default (memory namespace, 127.0.0.1:4420)
#   make test    build (plain and ASan+UBSan) and run every test, kernel interop included
#   make check   every suite of make test except the kernel interop tests (no qemu needed)
#   make bench   build optimised and run the benchmarks in bench/: the protocol micro-benchmark,
#                then bench/loopback.sh as docs/BENCHMARKS.md quotes it (about 25 minutes;
#                BENCH_ARGS="-t 3 -r 1" for a short run, any loopback.sh option goes there)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all run test check bench deps format clean

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=false

run: all
	./$(BUILD)/tools/nvtcpd $(ARGS)

test: deps
	bash tests/run.sh

check: deps
	NVTCP_SKIP_INTEROP=1 bash tests/run.sh

BENCH_ARGS ?=
bench: all
	./$(BUILD)/bench/bench_proto 1
	bash bench/loopback.sh -b $(BUILD) -t 10 -r 3 -P 4 $(BENCH_ARGS)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
