#!/usr/bin/env bash
# Interop: nvtcp's host (the `nvtcp` CLI over libnvtcp) against the Linux kernel's nvmet-tcp
# target in a qemu guest. Wraps ../shared/kernel-peer/kernel-target.sh (never edits it). Two
# runs, plain and with header + data digests; each does discover, identify (text and JSON),
# writes a pattern (in-capsule and R2T-sized) and reads it back for comparison, a verify perf
# run and a 10 s randrw perf run. Exits non-zero on any failure.
# Usage: tests/interop/kernel-target.sh [--build DIR] [--only none|both]
. "$(dirname "$0")/lib.sh"
self=$top/tests/interop/kernel-target.sh

# ---- inside the netns (run by kernel-target.sh as the host command) -------------------------
if [ "${1:-}" = "--steps" ]; then
	nvtcp=$2
	shift 2
	dig=("$@")
	addr=$KP_TARGET_ADDR port=$KP_TARGET_PORT nqn=$KP_TARGET_NQN
	t=(-a "$addr" -s "$port")
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	fail=0
	step() { # name, command...
		local name=$1 start=$SECONDS
		shift
		if "$@" >"$work/out" 2>"$work/err"; then
			echo "INTEROP: PASS $name ($((SECONDS - start)) s)"
		else
			echo "INTEROP: FAIL $name (exit $?)"
			sed 's/^/    /' "$work/err" | tail -20
			sed 's/^/    /' "$work/out" | tail -20
			fail=1
		fi
	}
	discover() {
		"$nvtcp" discover "${t[@]}" "${dig[@]}" >"$work/disc" &&
			cat "$work/disc" && grep -q "^subnqn: *$nqn\$" "$work/disc"
	}
	identify() {
		"$nvtcp" identify "${t[@]}" -n "$nqn" --nsid 1 "${dig[@]}" >"$work/id" &&
			cat "$work/id" && grep -q '^mn *: Linux' "$work/id" &&
			grep -q '(in use)' "$work/id" &&
			"$nvtcp" identify "${t[@]}" -n "$nqn" --nsid 1 --json "${dig[@]}" |
			python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["controller"]["mn"].startswith("Linux"); assert j["namespace"]["nsze"] > 0'
	}
	# rw SLBA BYTES: write random bytes, read them back, compare
	rw() {
		local slba=$1 bytes=$2 bs nlb
		bs=$((1 << $(sed -n 's/.*lbads:\([0-9]*\).*(in use).*/\1/p' "$work/id")))
		nlb=$((bytes / bs))
		head -c "$bytes" /dev/urandom >"$work/pat"
		"$nvtcp" write "${t[@]}" -n "$nqn" --start-block "$slba" --block-count "$nlb" \
			--data "$work/pat" "${dig[@]}" &&
			"$nvtcp" read "${t[@]}" -n "$nqn" --start-block "$slba" --block-count "$nlb" \
				"${dig[@]}" >"$work/back" &&
			cmp "$work/pat" "$work/back"
	}
	perf_verify() {
		"$nvtcp" perf "${t[@]}" -n "$nqn" "${dig[@]}" -q 8 -o 16k --queues 2 -t 4 --verify
	}
	perf_run() {
		"$nvtcp" perf "${t[@]}" -n "$nqn" "${dig[@]}" -q 16 -o 4k -w randrw -M 70 \
			--queues 2 -t 10 --json >"$work/perf.json" && cat "$work/perf.json" &&
			python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["ios"] > 0 and j["errors"] == 0' "$work/perf.json"
	}
	step discover discover
	step identify identify
	step "write+read 8 KiB (in-capsule)" rw 8 8192
	step "write+read 256 KiB (R2T)" rw 1024 262144
	step "write+read 2 MiB (split at MDTS)" rw 8192 2097152
	step "perf --verify" perf_verify
	step "perf 10 s randrw" perf_run
	grep -h '^ *[0-9]* *IOPS\|Total\|percentiles' "$work/out" 2>/dev/null | head -3
	exit $fail
fi

# ---- outside: boot the kernel target once per digest mode ------------------------------------
interop_args build "none|both" "$@"
nvtcp=$top/$build/tools/nvtcp
interop_need "$nvtcp" "not built"
interop_need "$kp/kernel-target.sh" missing

rc=0
for digest in none both; do
	[ -z "$only" ] || [ "$only" = "$digest" ] || continue
	flags=""
	[ "$digest" = both ] && flags="--hdr-digest --data-digest"
	echo "INTEROP: nvtcp host -> kernel nvmet-tcp, digest=$digest"
	"$kp/kernel-target.sh" --quiet --host-timeout 600 \
		--host-cmd "$self --steps $nvtcp $flags"
	r=$?
	echo "INTEROP: kernel target, digest=$digest: exit $r"
	[ $r -eq 0 ] || rc=1
done
[ $rc -eq 0 ] && echo "INTEROP RESULT: PASS" || echo "INTEROP RESULT: FAIL"
exit $rc
