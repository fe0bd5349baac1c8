#!/usr/bin/env bash
# Loopback benchmark (issue "Speed"): nvtcpd (CPU 0, memory namespace) driven by nvtcp perf
# (CPU 1) over 127.0.0.1, each figure printed as a ratio to bench/ceiling, a minimal program that
# moves the same bytes per I/O with the same pinning and mode and no NVMe logic. Medians of -r
# repeats, repeats interleaved (ceiling, plain, digests) so drift on a shared machine hits all
# three alike. Without nvtcpd and nvtcp in the build dir it measures the ceiling only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=10
reps=3
build=""
modes="irq poll"
filter=""
ceiling_only=0
do_rss=1
raw=""
nice_adj=0
precond=0
ns_size=""
cc=cubic
nqn=nqn.2024-01.io.nvtcp:mem0

usage() {
	cat <<EOF
usage: bench/loopback.sh [-t SECONDS] [-r REPEATS] [-b BUILD_DIR] [-m "irq poll"] [-w REGEX]
                         [-C] [-R] [-j RAW.jsonl] [-n NICE] [-s SUBNQN] [-P SECONDS] [-S SIZE]
                         [-c CONGESTION]
  -t SECONDS  length of each run, whole seconds (default 10)
  -r REPEATS  runs per figure, the median is reported (default 3)
  -b DIR      meson build dir holding bench/ceiling, tools/nvtcpd, tools/nvtcp (default: build)
  -m MODES    irq (sleeping in epoll/recv) and/or poll (busy polling) (default "irq poll")
  -w REGEX    only workloads whose name matches (names: 4k-randread-qd1 4k-randread-qd32
              4k-randwrite-qd32 128k-read-qd8 128k-write-qd8)
  -C          ceiling only, even if nvtcpd and nvtcp are built
  -R          skip the RSS measurement (nvtcpd idle and with 64 connections at QD127,
              every entry of their 128-entry queues in use)
  -j FILE     also keep every run's figures, one JSON object per line
  -P SECONDS  after each target start, write the namespace sequentially (512 KiB, QD4) for
              this long before measuring, so that runs see written memory (no first-touch
              page clearing on writes, no zero-page reads); prints how much got written
  -S SIZE     serve a memory namespace of this size (e.g. 8M) instead of the built-in 1 GiB:
              one that fits the caches shows the transport's own cost, without the DRAM
              misses of reading and writing a namespace much larger than the caches (the
              ceiling sends from one cache-hot buffer unless CEILING_OPTS="--span SIZE"
              gives it the memory traffic of a namespace of SIZE)
  -c NAME     TCP congestion control of every connection, nvtcp's and the ceiling's
              (default cubic; -c "" keeps the system's net.ipv4.tcp_congestion_control).
              Loopback has no congestion to control; BBR, the default on some machines,
              paces each connection with timers at its bandwidth estimate, which there
              costs timer work and makes 128K runs bimodal (docs/BENCHMARKS.md)
  -s SUBNQN   subsystem to drive (default $nqn,
              the memory namespace nvtcpd serves without a config)
  -n NICE     run the measured programs at this nice value (e.g. -10: less disturbed by other
              work on a shared machine, at that work's expense; needs root below 0)
Extra ceiling flags can be passed in CEILING_OPTS (e.g. CEILING_OPTS="--zerocopy"), extra nvtcpd
flags in NVTCPD_OPTS (e.g. NVTCPD_OPTS="--zero-copy-reads").
EOF
}

while getopts "t:r:b:m:w:CRj:n:s:P:S:c:h" opt; do
	case $opt in
	t) secs=$OPTARG ;;
	r) reps=$OPTARG ;;
	b) build=$OPTARG ;;
	m) modes=$OPTARG ;;
	w) filter=$OPTARG ;;
	C) ceiling_only=1 ;;
	R) do_rss=0 ;;
	j) raw=$OPTARG ;;
	n) nice_adj=$OPTARG ;;
	s) nqn=$OPTARG ;;
	P) precond=$OPTARG ;;
	S) ns_size=$OPTARG ;;
	c) cc=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "loopback.sh: -t wants whole seconds >= 1" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "loopback.sh: -r wants a count >= 1" >&2; exit 2; }
[[ $precond =~ ^[0-9]+$ ]] || { echo "loopback.sh: -P wants whole seconds" >&2; exit 2; }
[[ $nice_adj =~ ^-?[0-9]+$ ]] || { echo "loopback.sh: -n wants a nice value" >&2; exit 2; }
run=(nice -n "$nice_adj")
for m in $modes; do
	[[ $m == irq || $m == poll ]] || { echo "loopback.sh: unknown mode $m" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "loopback.sh: needs jq" >&2; exit 2; }
[[ -n $build ]] || build=$root/build
[[ $build == /* ]] || build=$PWD/$build
ceiling=$build/bench/ceiling
nvtcpd=$build/tools/nvtcpd
nvtcp=$build/tools/nvtcp
[[ -x $ceiling ]] || { echo "loopback.sh: $ceiling not built (ninja -C $build)" >&2; exit 2; }
# the same congestion control for nvtcpd, nvtcp perf and the ceiling
tgt_cc=() host_cc=() ceil_cc=()
if [[ -n $cc ]]; then
	tgt_cc=(--tcp-congestion "$cc")
	host_cc=(--tcp-congestion "$cc")
	ceil_cc=(--cc "$cc")
fi

have_nvtcp=0
if ((!ceiling_only)); then
	if [[ -x $nvtcpd && -x $nvtcp ]] && "$nvtcp" perf --help >/dev/null 2>&1; then
		have_nvtcp=1
	else
		echo "# nvtcpd or 'nvtcp perf' not built in $build: measuring the ceiling only"
	fi
else
	echo "# -C: measuring the ceiling only"
fi

# name rw io_size qd
workloads=(
	"4k-randread-qd1 randread 4096 1"
	"4k-randread-qd32 randread 4096 32"
	"4k-randwrite-qd32 randwrite 4096 32"
	"128k-read-qd8 read 131072 8"
	"128k-write-qd8 write 131072 8"
)

tmp=$(mktemp -d /tmp/nvtcp-loopback.XXXXXX)
results=$tmp/runs.jsonl
failed=0
: >"$results"
tgt_pid=""

stop_target() {
	if [[ -n $tgt_pid ]]; then
		kill "$tgt_pid" 2>/dev/null || true
		wait "$tgt_pid" 2>/dev/null || true
		tgt_pid=""
	fi
}
cleanup() {
	stop_target
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 100); do
		if [[ -z $(ss -Hltn "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_target irq|poll: nvtcpd pinned to CPU 0 on 127.0.0.1:<free port>; sets tgt_pid, port.
start_target() {
	local extra=() i
	[[ $1 == poll ]] && extra=(--busy-poll)
	port=$(free_port)
	if [[ -n $ns_size ]]; then
		jq -n --arg nqn "$nqn" --arg size "$ns_size" --argjson port "$port" \
			'{ports: [{addr: "127.0.0.1", port: $port}],
			  subsystems: [{nqn: $nqn, allow_any_host: true,
			    namespaces: [{nsid: 1, backend: "memory", size: $size}]}]}' \
			>"$tmp/nvtcpd.json"
		extra+=(-c "$tmp/nvtcpd.json")
	else
		extra+=(--listen "127.0.0.1:$port")
	fi
	# shellcheck disable=SC2086
	"${run[@]}" taskset -c 0 "$nvtcpd" --cores 1 --cpu 0 "${tgt_cc[@]}" "${extra[@]}" \
		${NVTCPD_OPTS:-} >"$tmp/nvtcpd.log" 2>&1 &
	tgt_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -n $(ss -Hltn "sport = :$port") ]] && return 0
		kill -0 "$tgt_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "loopback.sh: nvtcpd did not start listening on 127.0.0.1:$port:" >&2
	tail -5 "$tmp/nvtcpd.log" >&2
	stop_target
	return 1
}

# -P: fill the namespace with a sequential write pass before measuring (not counted anywhere)
precondition() {
	local rss
	((precond > 0)) || return 0
	if ! timeout $((precond + 60)) "${run[@]}" taskset -c 1 "$nvtcp" perf -a 127.0.0.1 -s "$port" \
		-n "$nqn" "${host_cc[@]}" -w write -o 512k -q 4 -t "$precond" >/dev/null 2>"$tmp/perf.err"; then
		echo "loopback.sh: precondition write failed:" >&2
		tail -3 "$tmp/perf.err" >&2
		return 1
	fi
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$tgt_pid/status")
	echo "# preconditioned: nvtcpd RSS $((rss / 1024)) MiB after ${precond} s of writes" >&2
}

# utime + stime of the whole nvtcpd process, in clock ticks
target_ticks() {
	awk '{ sub(/^[^)]*\) /, ""); print $12 + $13 }' "/proc/$tgt_pid/stat"
}

# run_ceiling mode name rw io qd rep: one ceiling figure, appended to the results. A ceiling
# must get every trick, and which send path wins depends on the kernel and the machine: for
# 64 KiB and larger I/Os it runs twice, vmsplice+splice (the ceiling's default at 128 KiB) and
# plain copying sends (--no-splice), and keeps the faster (measured 2026-12-07: copying won
# 4.6 vs 2.5 GB/s at 128K read and 4.1 vs 3.4 at 128K write here; splice won on 2026-11-22).
run_ceiling() {
	local cm=block out best="" v variants=("")
	[[ $1 == poll ]] && cm=poll
	(($4 >= 65536)) && variants=("" "--no-splice")
	for v in "${variants[@]}"; do
		# shellcheck disable=SC2086
		if ! out=$(timeout $((secs + 60)) "${run[@]}" "$ceiling" --mode $cm -w "$3" -o "$4" \
			-q "$5" -t "$secs" --server-cpu 0 --client-cpu 1 --json "${ceil_cc[@]}" $v \
			${CEILING_OPTS:-}); then
			echo "loopback.sh: ceiling $1 $2 ${v:-(default)} failed" >&2
			return 1
		fi
		out=$(jq -c --arg v "${v:-default}" '. + {variant: $v}' <<<"$out")
		if [[ -z $best ]] || jq -e --argjson b "$best" '.iops > $b.iops' <<<"$out" >/dev/null; then
			best=$out
		fi
	done
	jq -c --arg mode "$1" --arg wl "$2" --argjson rep "$6" --argjson ord "$wl_ord" \
		'{kind: "ceiling", mode: $mode, wl: $wl, ord: $ord, rep: $rep, iops, mbps,
		  lat_us: .avg_lat_us, cpu_bound_iops, io_size, variant,
		  cpu_s_per_mio: .server_cpu_s_per_mio}' <<<"$best" >>"$results"
}

# run_perf mode variant name rw io qd rep: one nvtcp perf run against the running target
run_perf() {
	local extra=() out t0 t1 hz
	[[ $1 == poll ]] && extra+=(--busy-poll)
	[[ $2 == digest ]] && extra+=(--hdr-digest --data-digest)
	hz=$(getconf CLK_TCK)
	t0=$(target_ticks)
	if ! out=$(timeout $((secs + 60)) "${run[@]}" taskset -c 1 "$nvtcp" perf -a 127.0.0.1 -s "$port" \
		-n "$nqn" "${host_cc[@]}" -w "$4" -o "$5" -q "$6" -t "$secs" -c 1 --json "${extra[@]}" \
		2>"$tmp/perf.err"); then
		echo "loopback.sh: nvtcp perf $1 $2 $3 failed:" >&2
		tail -5 "$tmp/perf.err" >&2
		return 1
	fi
	t1=$(target_ticks)
	sed -n '/^{/,$p' <<<"$out" | jq -c --arg mode "$1" --arg kind "$2" --arg wl "$3" \
		--argjson rep "$7" --argjson cpu "$((t1 - t0))" --argjson hz "$hz" \
		--argjson ord "$wl_ord" \
		'{kind: $kind, mode: $mode, wl: $wl, ord: $ord, rep: $rep, iops,
		  mbps: (.mib_s * 1.048576),
		  lat_us: .latency.avg_us, errors,
		  cpu_s_per_mio: (if .ios > 0 then ($cpu / $hz) / (.ios / 1e6) else null end)}' \
		>>"$results"
}

echo "# loopback: ${secs} s per run, median of $reps, server/target on CPU 0, client on CPU 1," \
	"nice $nice_adj"
echo "# started $(date -u +%FT%TZ) on $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# namespace: ${ns_size:-built-in 1 GiB} memory namespace, subsystem $nqn${NVTCPD_OPTS:+; nvtcpd $NVTCPD_OPTS}"
if [[ -n $cc ]]; then
	echo "# TCP congestion control: $cc (-c)"
else
	echo "# TCP congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control) (the system default)"
fi
for mode in $modes; do
	for wl_ord in "${!workloads[@]}"; do
		read -r name rw io qd <<<"${workloads[$wl_ord]}"
		[[ -z $filter || $name =~ $filter ]] || continue
		for ((rep = 1; rep <= reps; rep++)); do
			echo "# $mode $name run $rep/$reps" >&2
			run_ceiling "$mode" "$name" "$rw" "$io" "$qd" "$rep" || exit 1
			((have_nvtcp)) || continue
			# a target runs only while measured: a busy-polling nvtcpd would take CPU 0
			# from the ceiling's server thread
			start_target "$mode" || exit 1
			precondition || exit 1
			for variant in plain digest; do
				# a failed nvtcp run costs its row, not the rest of the benchmark
				if ! kill -0 "$tgt_pid" 2>/dev/null; then
					echo "loopback.sh: nvtcpd died, restarting it:" >&2
					tail -3 "$tmp/nvtcpd.log" >&2
					tgt_pid=""
					start_target "$mode" || exit 1
				fi
				run_perf "$mode" "$variant" "$name" "$rw" "$io" "$qd" "$rep" ||
					failed=$((failed + 1))
			done
			stop_target
		done
	done
done

[[ -n $raw ]] && cp "$results" "$raw"
((failed == 0)) || echo "# $failed nvtcp perf runs failed (messages above); their rows are missing"

# Medians per (mode, workload, kind), then ratios to the ceiling of the same mode and workload.
jq -rs '
def median: sort | if length == 0 then null
	elif length % 2 == 1 then .[length / 2 | floor]
	else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def f(n): if . == null then "-" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
(group_by([.mode, .wl, .kind]) | map({key: "\(.[0].mode) \(.[0].wl) \(.[0].kind)",
	value: {iops: map(.iops) | median, mbps: map(.mbps) | median,
		lat_us: map(.lat_us) | median, cpu: map(.cpu_s_per_mio) | median}})
 | from_entries) as $m
| ["mode", "workload", "run", "IOPS", "MB/s", "avg_us", "xIOPS", "xlat", "cpu_s/MIO",
   "dig/plain"],
  (map([.mode != "irq", .ord, .mode, .wl]) | unique | .[] as [$_, $_, $mo, $wl]
   | ($m["\($mo) \($wl) ceiling"]) as $c
   | ($m["\($mo) \($wl) plain"]) as $p
   | ["ceiling", "plain", "digest"][] as $k
   | $m["\($mo) \($wl) \($k)"] as $r
   | select($r != null)
   | [$mo, $wl, $k, ($r.iops | f(0)), ($r.mbps | f(1)), ($r.lat_us | f(2)),
      (if $k == "ceiling" then "1" else ($r.iops / $c.iops | f(3)) end),
      (if $k == "ceiling" then "1" else ($r.lat_us / $c.lat_us | f(3)) end),
      ($r.cpu | f(3)),
      (if $k == "digest" and $p != null then ($r.iops / $p.iops | f(3)) else "-" end)])
| @tsv' "$results" | column -t -s $'\t'
echo "# xIOPS, xlat: nvtcp / ceiling of the same mode; cpu_s/MIO: CPU seconds per million I/Os"
echo "# of the target (nvtcpd utime+stime) or of the ceiling's server thread; dig/plain: IOPS"
echo "# with header+data digests / without"

# Blocking-mode ceiling threads only use CPU for work, so their CPU time says what the ceiling
# would reach with whole cores: the figure to read when other work shares the machine.
jq -rs '
def median: sort | if length == 0 then null
	elif length % 2 == 1 then .[length / 2 | floor]
	else (.[length / 2 - 1] + .[length / 2]) / 2 end;
map(select(.kind == "ceiling" and .mode == "irq")) | group_by(.ord)[]
| "# ceiling irq \(.[0].wl): CPU-bound estimate \(map(.cpu_bound_iops) | median | round) IOPS, " +
  "\(map(.cpu_bound_iops * .io_size / 1e6) | median | round) MB/s"' "$results"

# Which send path the ceiling kept per run (run_ceiling: the faster of splice and copying).
jq -rs 'map(select(.kind == "ceiling" and .io_size >= 65536)) | group_by([.mode, .ord])[]
| "# ceiling \(.[0].mode) \(.[0].wl): send path kept per run (faster of splice and copy): " +
  (map(if .variant == "default" then "splice" else "copy" end) | join(" "))' "$results"

if ((have_nvtcp && do_rss)); then
	rss_secs=$((secs < 4 ? 4 : secs))
	start_target irq || exit 1
	sleep 1
	idle=$(awk '/^VmRSS/ { print $2 }' "/proc/$tgt_pid/status")
	timeout $((rss_secs + 60)) "${run[@]}" taskset -c 1 "$nvtcp" perf -a 127.0.0.1 -s "$port" \
		-n "$nqn" "${host_cc[@]}" \
		--queues 64 -q 127 -w randread -o 4096 -t "$rss_secs" --json \
		>"$tmp/rss-perf.out" 2>"$tmp/rss-perf.err" &
	perf_pid=$!
	sleep $((rss_secs / 2 + 1))
	busy=$(awk '/^VmRSS/ { print $2 }' "/proc/$tgt_pid/status")
	if wait "$perf_pid"; then
		# VmHWM is updated lazily and can trail a VmRSS sample
		peak=$(awk -v busy="$busy" '/^VmHWM/ { print ($2 > busy ? $2 : busy) }' \
			"/proc/$tgt_pid/status")
		iops=$(sed -n '/^{/,$p' "$tmp/rss-perf.out" | jq '.iops | round')
		echo "# nvtcpd RSS: idle ${idle} KiB; 64 connections at QD127 (4K randread," \
			"$iops IOPS): ${busy} KiB mid-run, peak ${peak} KiB"
	else
		echo "# nvtcpd RSS: idle ${idle} KiB; 64 connections at QD127: perf failed:"
		tail -3 "$tmp/rss-perf.err" | sed 's/^/#   /'
	fi
	stop_target
fi
