#!/usr/bin/env bash
# test_durability.sh - kill -9 durability of a file-backed namespace; TAP output.
#
# Usage: test_durability.sh NVTCPD [ROUNDS]     (or NVTCPD=path in the environment)
#
# Each round: nvtcpd serves a 64 MiB file namespace; a writer (the raw host in nvmetcp.py)
# writes numbered 4 KiB blocks, alternating FUA writes (4 in flight) and batches of 8 plain
# writes followed by a Flush, and logs every block once its FUA write or the batch's Flush is
# acknowledged. At a random moment nvtcpd gets SIGKILL; it is restarted on the same file and
# every logged block must read back exactly (its content names the round and the block, so
# data of an earlier round cannot pass). The last daemon must exit 0 on SIGTERM.
set -u

NVTCPD=${1:-${NVTCPD:-}}
ROUNDS=${2:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "$NVTCPD" ] || [ ! -x "$NVTCPD" ]; then
	echo "1..0 # SKIP no nvtcpd binary given"
	exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nvtcp-dur-XXXXXX")
NQN=nqn.2024-01.io.nvtcp:durable
PID=
n=0
failed=0

cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
	if [ "$failed" -eq 0 ]; then rm -rf "$WORK"; else echo "# logs kept in $WORK"; fi
}
trap cleanup EXIT

tap() { # tap OK NAME [DIAG]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
	[ -n "${3:-}" ] && printf '%s\n' "$3" | sed '/^$/d; s/^/# /'
	return 0
}

cat >"$WORK/nvtcpd.json" <<EOF
{"subsystems": [{"nqn": "$NQN", "allow_any_host": true,
  "namespaces": [{"nsid": 1, "backend": "file", "path": "$WORK/ns.img", "size": "64M"}]}]}
EOF

# The writer and the verifier: python with nvmetcp.py. Blocks: LBA 8*i, 4 KiB each.
cat >"$WORK/host.py" <<'EOF'
import hashlib, os, struct, sys, time
sys.path.insert(0, sys.argv[1])
import nvmetcp as N
mode, port, nqn, rnd, log = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
NBLK = 64 * 1024 * 1024 // 4096

def block(i):
    head = struct.pack("<8sII", b"nvtcpdur", rnd, i)
    return head + hashlib.sha256(head).digest() * 127 + bytes(4096 - 16 - 32 * 127)

h = N.Host("127.0.0.1", port, timeout=10.0)
a = h.admin(nqn)
if a.set_num_queues(1).status:
    sys.exit("Set Features Number of Queues failed")
q = h.ioq(nqn, a.cntlid, 1, ioccsz=N.idctrl_fields(a.idctrl)["ioccsz"])
if mode == "write":
    out = open(log, "a", buffering=1)
    i = 0
    try:
        while i < NBLK:
            if (i // 32) % 2 == 0:
                # FUA writes, 4 in flight: each is durable when acknowledged
                cmds = [(j, q.submit_write(1, 8 * j, block(j), fua=True)) for j in range(i, i + 4)]
                for j, c in cmds:
                    q.wait(c)
                    if c.status:
                        sys.exit(f"FUA write {j}: {N.status_str(c.status)}")
                    out.write(f"fua {j}\n")
                i += 4
            else:
                # 8 plain writes, then a Flush: durable once the Flush is acknowledged
                cmds = [q.submit_write(1, 8 * j, block(j)) for j in range(i, i + 8)]
                for c in cmds:
                    q.wait(c)
                    if c.status:
                        sys.exit(f"write: {N.status_str(c.status)}")
                f = q.flush(1)
                if f.status:
                    sys.exit(f"flush: {N.status_str(f.status)}")
                out.write("".join(f"flush {j}\n" for j in range(i, i + 8)))
                i += 8
        out.write("done\n")
    except (OSError, N.ProtocolError):
        pass   # the target was killed
else:
    acked = [int(ln.split()[1]) for ln in open(log) if ln.startswith(("fua", "flush"))]
    bad = []
    for j in acked:
        c = q.read(1, 8 * j, 8)
        if c.status or c.data != block(j):
            bad.append(j)
    print(f"{len(acked)} {len(bad)} {' '.join(map(str, bad[:10]))}")
EOF

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_daemon() { # start_daemon PORT LOG
	"$NVTCPD" -c "$WORK/nvtcpd.json" --listen "127.0.0.1:$1" >>"$2" 2>&1 &
	PID=$!
	for _ in $(seq 1 200); do
		if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" \
			2>/dev/null; then
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

for r in $(seq 1 "$ROUNDS"); do
	port=$(free_port)
	log="$WORK/acks.$r"
	: >"$log"
	if ! start_daemon "$port" "$WORK/nvtcpd.$r.log"; then
		tap 1 "round $r: nvtcpd starts" "$(tail -5 "$WORK/nvtcpd.$r.log")"
		continue
	fi
	python3 "$WORK/host.py" "$HERE" write "$port" "$NQN" "$r" "$log" \
		2>"$WORK/writer.$r.err" &
	wpid=$!
	# kill at a random moment once some blocks are acknowledged (0.1 .. 0.9 s of writing)
	for _ in $(seq 1 200); do
		[ -s "$log" ] && break
		sleep 0.02
	done
	sleep "0.$((RANDOM % 9 + 1))"
	kill -9 "$PID"
	wait "$PID" 2>/dev/null
	PID=
	wait "$wpid"
	wrc=$?
	if grep -q "^done" "$log"; then
		note="writer finished before the kill"
	else
		note="killed mid-stream"
	fi
	start_daemon "$port" "$WORK/nvtcpd.$r.log" || {
		tap 1 "round $r: nvtcpd restarts" "$(tail -5 "$WORK/nvtcpd.$r.log")"
		continue
	}
	res=$(python3 "$WORK/host.py" "$HERE" verify "$port" "$NQN" "$r" "$log" 2>&1)
	set -- $res
	nacked=${1:-0}
	nbad=${2:-x}
	ok=1
	if [ "$wrc" -eq 0 ] && [ "$nbad" = 0 ] && [ "$nacked" -gt 0 ]; then ok=0; fi
	tap $ok "round $r: $nacked acknowledged blocks (FUA or flushed) intact after kill -9" \
		"$note; fua $(grep -c '^fua' "$log"), flushed $(grep -c '^flush' "$log"); verifier: $res
$(cat "$WORK/writer.$r.err")"
	if [ "$r" -lt "$ROUNDS" ]; then
		kill -9 "$PID"
		wait "$PID" 2>/dev/null
		PID=
	fi
done

if [ -n "$PID" ]; then
	kill -TERM "$PID"
	wait "$PID"
	rc=$?
	PID=
	tap $rc "nvtcpd exits 0 on SIGTERM after the last round" "exit code $rc"
fi
san=$(grep -h -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|WARNING: ThreadSanitizer" \
	"$WORK"/nvtcpd.*.log | head -5)
if [ -z "$san" ]; then tap 0 "no sanitizer report"; else tap 1 "no sanitizer report" "$san"; fi
echo "1..$n"
[ "$failed" -eq 0 ]
