#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to build and test nvtcp (needs root for apt).
# Cheap when everything is present: it only asks dpkg.
set -eu
pkgs=(gcc make meson ninja-build pkg-config clang libclang-rt-14-dev llvm
      libisal-dev liburing-dev libssl-dev libjson-c-dev zlib1g-dev python3 iproute2 clang-format jq)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "nvtcp: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "nvtcp: installing ${missing[*]}" >&2
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi
