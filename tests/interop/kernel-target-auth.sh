#!/usr/bin/env bash
# Interop: DH-HMAC-CHAP between nvtcp's host (the `nvtcp` CLI over libnvtcp) and the Linux 6.12
# kernel target (nvmet-tcp with hosts/NQN/dhchap_* in configfs) in a qemu guest. Wraps
# ../shared/kernel-peer/kernel-target.sh (never edits it). Three target boots:
#   uni    host key (00, untransformed), hmac(sha256), null group
#   bidi   host key 01 + controller key 02 (both transformed), hmac(sha512), ffdhe3072
#   badkey (bidi target) a wrong host secret and a wrong controller secret must each fail fast
#          with exit != 0 and the library's message; the right secrets then still work
# Positive runs check our host's "authenticated with hash H dhgroup G" (and "controller
# authenticated" for bidi), write + read-back compare, and perf --verify on 2 queues (every
# queue authenticates: nvmet asks on each). Secrets are generated per run (test keys only).
# Usage: tests/interop/kernel-target-auth.sh [--build DIR] [--only uni|bidi|badkey]
. "$(dirname "$0")/lib.sh"
self=$top/tests/interop/kernel-target-auth.sh

# gen_key HMAC LEN: a DHHC-1 secret (the same format as nvme gen-dhchap-key).
gen_key() {
	python3 -c 'import base64,os,sys,zlib
k=os.urandom(int(sys.argv[2]))
print("DHHC-1:%02d:%s:" % (int(sys.argv[1]), base64.b64encode(k+zlib.crc32(k).to_bytes(4,"little")).decode()))' "$1" "$2"
}

# ---- inside the netns (run by kernel-target.sh as the host command) -------------------------
if [ "${1:-}" = "--steps" ]; then
	mode=$2 hash=$3 group=$4 nvtcp=$5
	addr=$KP_TARGET_ADDR port=$KP_TARGET_PORT nqn=$KP_TARGET_NQN
	host=$KP_TARGET_HOSTNQN
	key=$KP_TARGET_DHCHAP_HOST_KEY ckey=${KP_TARGET_DHCHAP_CTRL_KEY:-}
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	fail=0
	# Short admin timeout: a refused key must not wait for a long timeout (nvmet may close
	# the connection instead of completing the Failure1 Receive).
	t=(-a "$addr" -s "$port" -n "$nqn" --hostnqn "$host" --connect-timeout 5)
	sec=(--dhchap-secret "$key")
	[ -n "$ckey" ] && sec+=(--dhchap-ctrl-secret "$ckey")
	step() { # name, command...
		local name=$1 start=$SECONDS
		shift
		if "$@" >"$work/out" 2>"$work/err"; then
			echo "INTEROP: PASS $name ($((SECONDS - start)) s)"
		else
			echo "INTEROP: FAIL $name (exit $?)"
			fail=1
		fi
		sed 's/^/    /' "$work/err" | tail -8
	}
	identify() {
		"$nvtcp" identify "${t[@]}" "${sec[@]}" >"$work/id" || return 1
		grep -q '^mn *: Linux' "$work/id" || return 1
		grep -q "q0: authenticated with hash $hash dhgroup $group" "$work/err" || {
			echo "no 'authenticated with hash $hash dhgroup $group'" >&2; return 1; }
		if [ -n "$ckey" ]; then
			grep -q "controller authenticated" "$work/err" || {
				echo "controller not authenticated" >&2; return 1; }
		fi
	}
	rw() { # write 256 KiB of random data, read it back, compare
		head -c 262144 /dev/urandom >"$work/pat"
		"$nvtcp" write "${t[@]}" "${sec[@]}" --start-block 2048 --block-count 512 \
			--data "$work/pat" &&
			"$nvtcp" read "${t[@]}" "${sec[@]}" --start-block 2048 --block-count 512 \
				>"$work/back" &&
			cmp "$work/pat" "$work/back"
	}
	perf_verify() {
		"$nvtcp" perf "${t[@]}" "${sec[@]}" -q 8 -o 16k --queues 2 -t 3 --verify --json \
			>"$work/perf.json" &&
			python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0, j' "$work/perf.json"
	}
	# must_fail MESSAGE ARGS...: exit != 0 within 30 s, MESSAGE on stderr
	must_fail() {
		local msg=$1 start=$SECONDS r
		shift
		"$nvtcp" identify "${t[@]}" "$@"
		r=$?
		[ $r -ne 0 ] || { echo "succeeded with a wrong secret" >&2; return 1; }
		[ $((SECONDS - start)) -le 30 ] || { echo "took $((SECONDS - start)) s" >&2; return 1; }
		grep -q "$msg" "$work/err" || { echo "no '$msg' in the error" >&2; return 1; }
	}
	case $mode in
	uni | bidi)
		step "identify, DH-HMAC-CHAP $hash/$group${ckey:+ bidirectional}" identify
		step "write+read 256 KiB" rw
		step "perf --verify, 2 queues" perf_verify
		;;
	badkey)
		step "wrong host secret refused" must_fail \
			"DH-HMAC-CHAP authentication failed" --dhchap-secret "$(gen_key 0 32)"
		step "wrong controller secret refused" must_fail \
			"controller failed to authenticate itself" \
			--dhchap-secret "$key" --dhchap-ctrl-secret "$(gen_key 2 48)"
		step "no secret refused" must_fail "requires DH-HMAC-CHAP authentication"
		step "right secrets still accepted" identify
		;;
	esac
	exit $fail
fi

# ---- outside: boot the kernel target once per case -----------------------------------------
interop_args build-asan "uni|bidi|badkey" "$@"
nvtcp=$top/$build/tools/nvtcp
host=nqn.2014-08.org.nvmexpress:uuid:8e1a4c2b-7d3f-4b6a-9e5c-1f2a3b4c5d6e
export KP_KVER=${KP_KVER:-6.12}
export KP_NETNS=${KP_NETNS:-nvtcp-h13}
interop_need "$nvtcp" "not built"
interop_need "$kp/kernel-target.sh" missing
interop_need_kernel

k_uni=$(gen_key 0 32)
k_bidi=$(gen_key 1 32)
k_ctrl=$(gen_key 2 48)

# run NAME HASH GROUP kernel-target.sh-options...
rc=0
run() {
	local name=$1 hash=$2 group=$3 r
	shift 3
	[ -z "$only" ] || [ "$only" = "$name" ] || return 0
	echo "INTEROP: nvtcp host -> kernel nvmet-tcp, DH-HMAC-CHAP $name"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$kp/kernel-target.sh" --quiet \
		--host-timeout 600 --hostnqn "$host" "$@" \
		--host-cmd "$self --steps $name $hash $group $nvtcp"
	r=$?
	echo "INTEROP: DH-HMAC-CHAP $name: exit $r"
	[ $r -eq 0 ] || rc=1
}

run uni sha256 null --dhchap-host-key "$k_uni" --dhchap-hash 'hmac(sha256)' \
	--dhchap-dhgroup null
run bidi sha512 ffdhe3072 --dhchap-host-key "$k_bidi" --dhchap-ctrl-key "$k_ctrl" \
	--dhchap-hash 'hmac(sha512)' --dhchap-dhgroup ffdhe3072
# nvmet logs the refusals as errors: expected here.
run badkey sha384 ffdhe2048 --dhchap-host-key "$k_bidi" --dhchap-ctrl-key "$k_ctrl" \
	--dhchap-hash 'hmac(sha384)' --dhchap-dhgroup ffdhe2048 --allow-klog-errors
[ $rc -eq 0 ] && echo "INTEROP RESULT: PASS" || echo "INTEROP RESULT: FAIL"
exit $rc
