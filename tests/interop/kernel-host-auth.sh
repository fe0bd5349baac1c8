#!/usr/bin/env bash
# Interop: DH-HMAC-CHAP between the Linux 6.12 kernel host (nvme-cli --dhchap-secret in a qemu
# guest) and nvtcpd. Wraps ../shared/kernel-peer/kernel-host.sh (never edits it). Three runs:
#   uni    host key (00, untransformed), hash sha256, group null
#   bidi   host key 01 + controller key 02 (both transformed), hash sha384, group ffdhe2048
#   badkey the host presents a different secret: `nvme connect` must fail (Failure1)
# Each positive run requires the kernel's "qid 0: authenticated with hash H dhgroup G" (and
# "controller authenticated" for bidi) plus fio verify; nvtcpd's log must show the same hash
# and group for the admin and every I/O queue. Secrets are generated per run (test keys only).
# Usage: tests/interop/kernel-host-auth.sh [--build DIR] [--only uni|bidi|badkey]
. "$(dirname "$0")/lib.sh"
interop_args build-asan "uni|bidi|badkey" "$@"
nvtcpd=$top/$build/tools/nvtcpd
nqn=nqn.2024-01.io.nvtcp:auth0
host=nqn.2014-08.org.nvmexpress:uuid:6d1f7a52-0c8e-4b1e-9a55-0a1b2c3d4e5f
export KP_KVER=${KP_KVER:-6.12}
export KP_NETNS=${KP_NETNS:-nvtcp-h10}
interop_need "$nvtcpd" "not built"
interop_need "$kp/kernel-host.sh" missing
interop_need_kernel

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# gen_key HMAC LEN: a DHHC-1 secret (nvme-cli if present, else the same format by hand).
gen_key() {
	if command -v nvme >/dev/null 2>&1; then
		nvme gen-dhchap-key -n "$host" -m "$1" -l "$2"
	else
		python3 -c 'import base64,os,sys,zlib
k=os.urandom(int(sys.argv[2]))
print("DHHC-1:%02d:%s:" % (int(sys.argv[1]), base64.b64encode(k+zlib.crc32(k).to_bytes(4,"little")).decode()))' "$1" "$2"
	fi
}

# write_config FILE HASH GROUP KEY [CTRLKEY]
write_config() {
	local ctrl=""
	[ -n "${5:-}" ] && ctrl=", \"dhchap_ctrl_key\": \"$5\""
	cat >"$1" <<EOF
{
  "ports": [{"addr": "10.213.0.1", "port": 4420}],
  "subsystems": [{
    "nqn": "$nqn",
    "dhchap_hashes": ["$2"],
    "dhchap_dhgroups": ["$3"],
    "hosts": [{"nqn": "$host", "dhchap_key": "$4"$ctrl}],
    "namespaces": [{"nsid": 1, "backend": "memory", "size": "256M"}]
  }]
}
EOF
}

# run NAME CONFIG EXPECT_HASH EXPECT_GROUP kernel-host.sh-options...
run() {
	local name=$1 cfg=$2 hash=$3 group=$4 st rundir tlog
	shift 4
	[ -z "$only" ] || [ "$only" = "$name" ] || return 0
	echo "INTEROP: kernel host -> nvtcpd, DH-HMAC-CHAP $name"
	ASAN_OPTIONS=detect_leaks=0 "$kp/kernel-host.sh" --quiet --hostnqn "$host" "$@" \
		--target-cmd "$nvtcpd -c $cfg" 10.213.0.1 4420 "$nqn" 2>&1 | tee "$work/$name.out"
	st=${PIPESTATUS[0]}
	rundir=$(sed -n 's/.*run dir \(\/[^ ]*\).*/\1/p' "$work/$name.out" | tail -1)
	tlog=$rundir/target.log
	if [ $st = 0 ] && [ -f "$tlog" ]; then
		if [ "$hash" = fail ]; then
			# The target must have refused the response (Failure1), never authenticated.
			if ! grep -q 'authentication failed (reason 0x1)' "$tlog" ||
				grep -q 'authenticated host' "$tlog"; then
				echo "INTEROP: $name: nvtcpd did not log the refusal"; st=1
			fi
		else
			# Admin queue and every I/O queue, each with the configured hash and group.
			local n
			n=$(grep -c "authenticated host $host with hash $hash dhgroup $group" "$tlog")
			if [ "$n" -lt 2 ] || grep -q 'authentication failed' "$tlog"; then
				echo "INTEROP: $name: nvtcpd logged $n successful queue authentications"
				st=1
			fi
		fi
	elif [ $st = 0 ]; then
		echo "INTEROP: $name: no target log found"; st=1
	fi
	echo "INTEROP: $name exit=$st"
	[ $st = 0 ] || rc=1
}

rc=0
k_uni=$(gen_key 0 32)
k_bidi=$(gen_key 1 32)
k_ctrl=$(gen_key 2 48)
k_wrong=$(gen_key 0 32)
write_config "$work/uni.json" sha256 null "$k_uni"
write_config "$work/bidi.json" sha384 ffdhe2048 "$k_bidi" "$k_ctrl"

run uni "$work/uni.json" sha256 null --dhchap-secret "$k_uni"
run bidi "$work/bidi.json" sha384 ffdhe2048 --dhchap-secret "$k_bidi" --dhchap-ctrl-secret "$k_ctrl"
run badkey "$work/uni.json" fail fail --dhchap-secret "$k_wrong" --expect-connect-fail \
	--allow-klog-errors
exit $rc
