#!/usr/bin/env bash
# run_short.sh - a short, time-boxed libFuzzer run of every fuzz target, for CI; TAP output.
#
# Usage: tests/fuzz/run_short.sh [SECONDS] [BUILD_DIR]
#        (defaults: 30 s per target, build-fuzz-short in the repo root)
#
# Configures BUILD_DIR with clang, -Dfuzz=true and ASan/UBSan if it is not configured yet,
# builds the libFuzzer binaries, then runs each target found in tests/fuzz/ (fuzz_NAME.c ->
# binary fuzz_NAME, corpus tests/fuzz/corpus/NAME) for SECONDS over a scratch copy of its
# corpus, so the committed corpus is never changed. A crash, leak, timeout or sanitizer
# report fails the target's case; the reproducer is kept and its path printed.
# Without clang it fails (clang is a dependency: scripts/deps.sh installs it).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-30}
BUILD=${2:-build-fuzz-short}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

if ! command -v clang >/dev/null 2>&1; then
	echo "not ok 1 - clang not installed: no libFuzzer (scripts/deps.sh installs it)"
	echo "1..1"
	exit 1
fi
if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false >"$BUILD.setup.log" 2>&1 || {
		echo "not ok 1 - configure the libFuzzer build (see $BUILD.setup.log)"
		echo "1..1"
		exit 1
	}
fi

targets=()
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
	targets+=("$(basename "$src" .c)")
done
built=()
for t in "${targets[@]}"; do
	if ninja -C "$BUILD" -j2 "tests/fuzz/$t" >"$BUILD/$t.build.log" 2>&1; then
		built+=("$t")
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nvtcp-fuzz-short-XXXXXX")
n=0
failed=0
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-} halt_on_error=1 print_stacktrace=1"
for t in "${targets[@]}"; do
	n=$((n + 1))
	name=${t#fuzz_}
	if [[ " ${built[*]} " != *" $t "* ]]; then
		echo "not ok $n - $t: build failed"
		tail -5 "$BUILD/$t.build.log" | sed 's/^/# /'
		failed=$((failed + 1))
		continue
	fi
	corpus="$WORK/$name"
	mkdir -p "$corpus" "$WORK/$name.art"
	if [ -d "$ROOT/tests/fuzz/corpus/$name" ]; then
		cp -r "$ROOT/tests/fuzz/corpus/$name/." "$corpus/"
	fi
	seeds=$(find "$corpus" -type f | wc -l)
	log="$WORK/$name.log"
	(cd "$WORK" && "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=25 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$WORK/$name.art/" "$corpus" >"$log" 2>&1)
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $t: ${SECS} s, ${execs:-?} executions from $seeds seeds"
	else
		echo "not ok $n - $t: exit $rc after ${execs:-?} executions"
		grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -8 | sed 's/^/# /'
		echo "# reproducer(s) in $WORK/$name.art, full log $log"
		failed=$((failed + 1))
	fi
done
echo "1..$n"
if [ "$failed" -eq 0 ]; then
	rm -rf "$WORK"
	exit 0
fi
exit 1
