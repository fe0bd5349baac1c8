#!/usr/bin/env bash
# Interop: the Linux kernel's NVMe/TCP host (nvme-cli + fio in a qemu guest) against nvtcpd.
# Wraps ../shared/kernel-peer/kernel-host.sh (never edits it). Two runs: plain, and with header
# and data digests; each does discover (8009 and 4420), connect, id-ctrl, id-ns, fio verify
# over 4K-128K random read/write, disconnect, and a clean guest kernel log.
# Usage: tests/interop/kernel-host.sh [--build DIR] [--only none|both]
set -u
cd "$(dirname "$0")/../.."
top=$PWD
build=${NVTCP_INTEROP_BUILD:-build-asan}
only=""
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--only none|both]" >&2; exit 2 ;;
	esac
done
kp=$top/../shared/kernel-peer
nvtcpd=$top/$build/tools/nvtcpd
nqn=nqn.2024-01.io.nvtcp:mem0
[ -x "$nvtcpd" ] || { echo "INTEROP: $nvtcpd not built" >&2; exit 2; }
[ -x "$kp/kernel-host.sh" ] || { echo "INTEROP: $kp/kernel-host.sh missing" >&2; exit 2; }

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
