#!/usr/bin/env bash
# Interop: the Linux kernel's NVMe/TCP host (nvme-cli + fio in a qemu guest) against nvtcpd.
# Wraps ../shared/kernel-peer/kernel-host.sh (never edits it). Two runs: plain, and with header
# and data digests; each does discover (8009 and 4420), connect, id-ctrl, id-ns, fio verify
# over 4K-128K random read/write, disconnect, and a clean guest kernel log.
# Usage: tests/interop/kernel-host.sh [--build DIR] [--only none|both]
. "$(dirname "$0")/lib.sh"
interop_args build-asan "none|both" "$@"
nvtcpd=$top/$build/tools/nvtcpd
nqn=nqn.2024-01.io.nvtcp:mem0
interop_need "$nvtcpd" "not built"
interop_need "$kp/kernel-host.sh" missing

rc=0
for digest in none both; do
	[ -z "$only" ] || [ "$only" = "$digest" ] || continue
	extra=""
	[ "$digest" = none ] && extra="--discovery-port 8009"
	echo "INTEROP: kernel host -> nvtcpd, digest=$digest"
	# ASan: report leaks but do not fail the run on exit-time leak reports from SIGTERM paths.
	ASAN_OPTIONS=detect_leaks=0 KP_DIGEST=$digest "$kp/kernel-host.sh" --quiet $extra \
		--target-cmd "$nvtcpd --listen 10.213.0.1:4420 --listen 10.213.0.1:8009" \
		10.213.0.1 4420 "$nqn"
	st=$?
	echo "INTEROP: digest=$digest exit=$st"
	[ $st = 0 ] || rc=1
done
exit $rc
