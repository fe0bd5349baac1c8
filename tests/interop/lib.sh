# Shared by the tests/interop/kernel-*.sh wrappers (sourced, not run): moves to the source root
# and sets top (the root) and kp (../shared/kernel-peer), parses --build/--only, and checks the
# binaries, peer scripts and guest kernel a run needs. Every failed check exits 2 with a line
# starting "INTEROP:", as each script did on its own.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
top=$PWD
kp=$top/../shared/kernel-peer

# interop_args DEFAULT_BUILD MODES "$@": sets build (NVTCP_INTEROP_BUILD or DEFAULT_BUILD unless
# --build DIR) and only (--only MODE, else empty); MODES is the usage text, e.g. "none|both".
interop_args() {
	local modes=$2
	build=${NVTCP_INTEROP_BUILD:-$1}
	only=""
	shift 2
	while [ $# -gt 0 ]; do
		case "$1" in
		--build) build=$2; shift 2 ;;
		--only) only=$2; shift 2 ;;
		*) echo "usage: $0 [--build DIR] [--only $modes]" >&2; exit 2 ;;
		esac
	done
}

# interop_need PATH WHAT: exit 2 unless PATH is executable ("INTEROP: PATH WHAT").
interop_need() {
	[ -x "$1" ] || { echo "INTEROP: $1 $2" >&2; exit 2; }
}

# interop_need_kernel: exit 2 unless /boot holds the guest kernel KP_KVER.
interop_need_kernel() {
	ls /boot/vmlinuz-"$KP_KVER"* >/dev/null 2>&1 || {
		echo "INTEROP: no $KP_KVER kernel" >&2
		exit 2
	}
}
