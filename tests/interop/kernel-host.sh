#!/usr/bin/env bash
# Interop: the Linux kernel's NVMe/TCP host (nvme-cli + fio in a qemu guest) against nvtcpd.
# Wraps ../shared/kernel-peer/kernel-host.sh (never edits it). Three runs: plain, with header
# and data digests, and plain against nvtcpd --zero-copy-reads (Reads of 64 KiB and more sent
# by reference); each does discover (8009 and 4420), connect, id-ctrl, id-ns, fio verify over
# 4K-512K random read/write at QD16 (Writes above 128 KiB go by R2T, several at once),
# disconnect, and a clean guest kernel log.
# Usage: tests/interop/kernel-host.sh [--build DIR] [--only none|both|zc]
. "$(dirname "$0")/lib.sh"
interop_args build-asan "none|both|zc" "$@"
nvtcpd=$top/$build/tools/nvtcpd
nqn=nqn.2024-01.io.nvtcp:mem0
interop_need "$nvtcpd" "not built"
interop_need "$kp/kernel-host.sh" missing

rc=0
for run in none both zc; do
	[ -z "$only" ] || [ "$only" = "$run" ] || continue
	extra="" digest=$run tgt_extra=""
	[ "$run" = none ] && extra="--discovery-port 8009"
	[ "$run" = zc ] && digest=none tgt_extra=" --zero-copy-reads"
	echo "INTEROP: kernel host -> nvtcpd, digest=$digest$tgt_extra"
	out=$(mktemp)
	# ASan: detect_leaks=0 turns LeakSanitizer off, so leaks (e.g. exit-time ones on SIGTERM
	# paths) are neither reported nor fail the run; other ASan errors are still reported.
	ASAN_OPTIONS=detect_leaks=0 KP_DIGEST=$digest "$kp/kernel-host.sh" --quiet $extra \
		--fio-extra "--bsrange=4k-512k" \
		--target-cmd "$nvtcpd --listen 10.213.0.1:4420 --listen 10.213.0.1:8009$tgt_extra" \
		10.213.0.1 4420 "$nqn" 2>&1 | tee "$out"
	st=${PIPESTATUS[0]}
	if [ "$run" = zc ] && [ $st = 0 ]; then
		# fio's 64K-128K reads must really have gone by reference (nvtcpd logs it at close)
		rundir=$(sed -n 's/.*; run dir \([^ ]*\)$/\1/p' "$out" | tail -1)
		if ! grep -q "sent by reference" "$rundir/target.log" 2>/dev/null; then
			echo "INTEROP: zc: no connection sent Reads by reference ($rundir/target.log)"
			st=1
		fi
	fi
	rm -f "$out"
	echo "INTEROP: $run exit=$st"
	[ $st = 0 ] || rc=1
done
exit $rc
