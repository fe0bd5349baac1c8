#!/usr/bin/env bash
# Build nvtcp twice (release with -Werror, and debug with ASan+UBSan) and run every test:
# unit, golden vectors, integration, fuzz-corpus replay (all under ASan+UBSan), a format check,
# then the Linux kernel interop tests (unless NVTCP_SKIP_INTEROP=1).
# Ends with one line "N passed, N skipped, N failed" counting TAP cases (a "# SKIP" case counts as
# skipped, never as passed; each is listed above it) and interop runs; exit 1 on failure.
set -u
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/deps.sh || exit 1

passed=0
skipped=0
failed=0
failures=()
skips=()
record() { # name status
	if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

log() { printf '== %s\n' "$*"; }

# 1. Release build: warnings are errors, optimisation enables more warnings.
log "build: release"
[ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=false >/dev/null
ninja -C build -j2 >build-release.log 2>&1
st=$?
[ $st = 0 ] || tail -40 build-release.log
record build-release $st

# 2. ASan + UBSan build and the meson suites.
log "build: asan+ubsan"
[ -f build-asan/build.ninja ] ||
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan -j2 >build-asan.log 2>&1
st=$?
[ $st = 0 ] || tail -40 build-asan.log
record build-asan $st

if [ $st = 0 ]; then
	log "meson test (asan+ubsan)"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	meson test -C build-asan --num-processes 2 --print-errorlogs -t 2 >meson-test.log 2>&1
	tail -15 meson-test.log
	counts=$(python3 tests/tap_count.py build-asan/meson-logs/testlog.json)
	read -r p s f <<<"$(head -1 <<<"$counts")"
	passed=$((passed + p))
	skipped=$((skipped + s))
	failed=$((failed + f))
	while IFS= read -r line; do
		[ -z "$line" ] || skips+=("$line")
	done < <(tail -n +2 <<<"$counts")
	[ "$f" = 0 ] || failures+=("meson suites: $f case(s), see build-asan/meson-logs/testlog.txt")
fi

# 3. Scripts with TAP output: ThreadSanitizer on the multi-loop target, a short libFuzzer run of
#    every fuzz target (NVTCP_FUZZ_SECONDS each, default 30).
run_tap() { # name command...
	local name=$1 out st ok skip bad line
	shift
	log "$name"
	out=$("$@" 2>"$name.log")
	st=$?
	printf '%s\n' "$out" | grep -E '^(not )?ok ' | tail -30
	# a case with a TAP "# SKIP" directive is skipped, not passed
	ok=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -cviE '#[[:space:]]*skip')
	skip=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -ciE '#[[:space:]]*skip')
	bad=$(printf '%s\n' "$out" | grep -cE '^not ok ')
	if [ "$st" != 0 ] && [ "$bad" = 0 ]; then
		bad=1
		tail -20 "$name.log"
	fi
	passed=$((passed + ok))
	skipped=$((skipped + skip))
	failed=$((failed + bad))
	while IFS= read -r line; do
		skips+=("$name: $line")
	done < <(printf '%s\n' "$out" | grep -E '^ok ' | grep -iE '#[[:space:]]*skip')
	[ "$bad" = 0 ] || failures+=("$name: $bad case(s), see $name.log")
}
run_tap tsan bash tests/integration/tsan.sh build-tsan
run_tap fuzz-short bash tests/fuzz/run_short.sh "${NVTCP_FUZZ_SECONDS:-30}" build-fuzz-short

# 4. Format: the tree matches .clang-format.
log "format check"
if command -v clang-format >/dev/null; then
	bad=$(git ls-files '*.c' '*.h' | while read -r f; do
		[ -f "$f" ] && ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1 && echo "$f"
	done)
	[ -z "$bad" ] || echo "not formatted: $bad"
	record clang-format "$([ -z "$bad" ] && echo 0 || echo 1)"
else
	echo "clang-format not installed (scripts/deps.sh installs it): format not checked"
	record "clang-format (not installed)" 1
fi

# 5. Kernel interop (qemu guests in a private network namespace).
if [ "${NVTCP_SKIP_INTEROP:-0}" != 1 ]; then
	# What the harness needs (qemu, the 6.1 and 6.12 kernels, nvme-cli, fio): its own setup
	# installs only what is missing, so a fresh machine needs nothing else.
	kp=../shared/kernel-peer/setup.sh
	if [ -f "$kp" ]; then
		log "interop: kernel-peer setup"
		KP_EXTRA_KERNELS="linux-image-6.12-amd64" bash "$kp" >kernel-peer-setup.log 2>&1
		st=$?
		tail -2 kernel-peer-setup.log
		record "kernel-peer setup" $st
	else
		record "interop: ../shared/kernel-peer missing beside the repository" 1
	fi
	for t in tests/interop/kernel-host.sh tests/interop/kernel-target.sh \
		tests/interop/kernel-host-auth.sh tests/interop/kernel-target-auth.sh; do
		[ -f "$t" ] || { record "$t (missing)" 1; continue; }
		log "interop: $t"
		bash "$t" >"$(basename "$t" .sh).log" 2>&1
		st=$?
		grep -E '^(KP: (PASS|FAIL)|INTEROP)' "$(basename "$t" .sh).log" | tail -40
		record "$t" $st
	done
fi

for s in "${skips[@]}"; do echo "SKIPPED: $s"; done
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $skipped skipped, $failed failed"
[ "$failed" = 0 ]
