#!/usr/bin/env bash
# tsan.sh - the multi-loop target under ThreadSanitizer; TAP output, for CI.
#
# Usage: tests/integration/tsan.sh [BUILD_DIR]     (default: build-tsan, from the repo root)
#
# Configures BUILD_DIR with -Db_sanitize=thread if it is not configured yet, builds nvtcpd
# there, and runs test_load.py --mixed against `nvtcpd --cores 2`: hosts whose admin and I/O
# queues land on different loops doing verified I/O, then tearing their controllers down
# across threads (admin close under I/O, Disconnect + shutdown, keep-alive expiry, CC.EN = 0),
# connect/disconnect churn, and SIGTERM with connections open on both loops. Fails on any
# ThreadSanitizer report in nvtcpd's stderr (the suite's last case checks it).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build-tsan}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" "$ROOT" -Db_sanitize=thread >"$BUILD.setup.log" 2>&1 || {
		echo "not ok 1 - configure a ThreadSanitizer build (see $BUILD.setup.log)"
		echo "1..1"
		exit 1
	}
fi
ninja -C "$BUILD" -j2 tools/nvtcpd >&2
# halt_on_error=0: report every race, the suite's sanitizer check fails the run
export TSAN_OPTIONS="${TSAN_OPTIONS:-} halt_on_error=0 second_deadlock_stack=1"
exec python3 "$ROOT/tests/integration/test_load.py" --mixed "$BUILD/tools/nvtcpd"
