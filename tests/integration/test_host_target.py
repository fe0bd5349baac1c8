#!/usr/bin/env python3
"""test_host_target.py - the nvtcp CLI (libnvtcp) against nvtcpd over loopback, TAP output.

Usage: test_host_target.py NVTCPD NVTCP

Starts nvtcpd (the build's own, so ASan/UBSan in a sanitizer build) on free 127.0.0.1 ports,
first with the built-in config, then with a config holding a file-backed namespace and a
4096-byte-block namespace, and runs every nvtcp command against it: discover (I/O port and a
second "discovery" port), identify (text and --json, fields checked), write a file then read
it back and compare at sizes around the in-capsule limit and MDTS (above MDTS the tool splits
the transfer: documented in 'nvtcp write --help'), stdin/stdout, digests, perf --verify and
perf --json, error paths (unknown NQN, nothing listening, LBA out of range), and reconnection:
kill -9 of the target under a perf --verify load with a restart within 2 s (must finish with
0 errors and 0 mismatches), and a target that never returns (perf fails after
--ctrl-loss-tmo with a clear message). Every command has a timeout; the whole file takes
well under 2 minutes. Sanitizer reports in any stderr fail the case that produced them.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from harness import SAN_RE, Failure, Nvtcpd, Tap, check, free_port, run_cli

MEM0 = "nqn.2024-01.io.nvtcp:mem0"
FILE0 = "nqn.2024-01.io.nvtcp:file0"

NVTCPD = NVTCP = None
TMP = None
TAP = Tap()
case = TAP.case


def Target(ports, config=None):
    """nvtcpd listening on ports (127.0.0.1), with config or the built-in one; not started."""
    return Nvtcpd(NVTCPD, TMP, ports[0], config, listen=ports)


def nvtcp(args, port, nqn=None, stdin=None, timeout=60, check_rc=True, extra=()):
    """Run the CLI; returns (rc, stdout bytes, stderr text)."""
    cmd = [NVTCP] + args + ["-a", "127.0.0.1", "-s", str(port)]
    if nqn:
        cmd += ["-n", nqn]
    cmd += list(extra)
    env = dict(os.environ, XDG_CONFIG_HOME=TMP)  # the generated host NQN lives there
    p, err, _ = run_cli(cmd, " ".join(args), stdin, timeout, env)
    if check_rc:
        check(p.returncode == 0, "%s exited %d: %s" % (" ".join(cmd[1:]), p.returncode,
                                                       err[-1500:]))
    return p.returncode, p.stdout, err


# ---- cases ----------------------------------------------------------------------------------

def t_discover(port, disc_port):
    _, out, _ = nvtcp(["discover"], port)
    text = out.decode()
    check("subnqn:  " + MEM0 in text, "mem0 not listed:\n" + text)
    check("current discovery subsystem" in text, "no discovery entry:\n" + text)
    _, out, _ = nvtcp(["discover", "--json"], disc_port)
    j = json.loads(out)
    nqns = [r["subnqn"] for r in j["records"]]
    check(MEM0 in nqns, "mem0 not in JSON records: %r" % nqns)
    check(all(r["trtype"] == "tcp" and r["traddr"] == "127.0.0.1" for r in j["records"]),
          "bad records %r" % j["records"])
    check(str(disc_port) in [r["trsvcid"] for r in j["records"]],
          "discovery port %d not among the records' ports" % disc_port)


def t_identify(port, geo):
    _, out, _ = nvtcp(["identify", "-N", "1"], port, MEM0)
    text = out.decode()
    for key in ("mdts", "subnqn", "ioccsz", "nsze", "lbaf  0"):
        check(re.search(r"^%s\s*:" % key, text, re.M), "no '%s' line in:\n%s" % (key, text[:800]))
    check(re.search(r"^subnqn\s*: %s$" % re.escape(MEM0), text, re.M), "subnqn line wrong")
    _, out, _ = nvtcp(["identify", "-N", "1", "--json"], port, MEM0)
    j = json.loads(out)
    c, n = j["controller"], j["namespace"]
    check(c["subnqn"] == MEM0, "subnqn %r" % c["subnqn"])
    check(1 <= c["mdts"] <= 15, "mdts %r" % c["mdts"])
    check(c["ioccsz"] >= 4, "ioccsz %r" % c["ioccsz"])
    check(n["nsze"] == (1 << 30) // 512, "nsze %r (1 GiB of 512-byte blocks expected)" % n["nsze"])
    check(n["lbafs"][int(n["flbas"], 16) & 0xf]["ds"] == 9, "lba size not 512")
    geo["mdts_bytes"] = 4096 << c["mdts"]  # CAP.MPSMIN is 0 (4 KiB pages) on nvtcpd
    geo["incapsule"] = c["ioccsz"] * 16 - 64
    # the discovery controller identifies too (no -n)
    _, out, _ = nvtcp(["identify", "--json"], port)
    check(json.loads(out)["controller"]["cntrltype"] == 2, "discovery cntrltype not 2")


def roundtrip(port, nqn, nsid, bs, nbytes, slba, extra=(), via_pipe=False):
    data = os.urandom(nbytes)
    nlb = nbytes // bs
    rw = ["-N", str(nsid), "-b", str(slba), "-c", str(nlb)]
    if via_pipe:
        nvtcp(["write"] + rw, port, nqn, stdin=data, extra=extra)
        _, out, _ = nvtcp(["read"] + rw, port, nqn, extra=extra)
    else:
        src = os.path.join(TMP, "src.bin")
        dst = os.path.join(TMP, "dst.bin")
        with open(src, "wb") as f:
            f.write(data)
        nvtcp(["write", "-d", src] + rw, port, nqn, extra=extra)
        nvtcp(["read", "-d", dst] + rw, port, nqn, extra=extra)
        with open(dst, "rb") as f:
            out = f.read()
    check(len(out) == nbytes, "read back %d bytes, wrote %d" % (len(out), nbytes))
    if out != data:
        first = next(i for i in range(nbytes) if out[i] != data[i])
        raise Failure("data differs at byte %d (%d-byte transfer at LBA %d)" %
                      (first, nbytes, slba))


def t_rw_sizes(port, geo):
    inc, mdts = geo["incapsule"], geo["mdts_bytes"]
    sizes = [512, inc, inc + 512, mdts, mdts + 8 * 512]  # the last one is split by the tool
    for i, n in enumerate(sizes):
        roundtrip(port, MEM0, 1, 512, n, 1000 + i * 4096)


def t_pipe(port):
    roundtrip(port, MEM0, 1, 512, 24 * 1024, 7, via_pipe=True)


def t_digests(port, geo):
    for extra in (["--hdr-digest"], ["--data-digest"], ["--hdr-digest", "--data-digest"]):
        for n in (4096, geo["incapsule"] + 4096, geo["mdts_bytes"]):
            roundtrip(port, MEM0, 1, 512, n, 50000, extra=extra)


def perf_json(port, nqn, args, timeout=60):
    _, out, err = nvtcp(["perf", "--json"] + args, port, nqn, timeout=timeout)
    j = json.loads(out)
    return j, err


IOPS = {}


def t_perf_verify(port, name, extra):
    j, _ = perf_json(port, MEM0, ["-t", "1", "--verify"] + extra)
    check(j["errors"] == 0, "errors %r" % j["errors"])
    check(j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
          "verify: %r matched, %r mismatched" % (j["verified_blocks"], j["mismatched_blocks"]))
    IOPS[name] = j["iops"]


def t_perf_verify_workload(port):
    """--verify runs -w after its write pass (4 MiB per queue: 1024 4K writes): randread
    writes nothing more, randrw keeps writing (the same pattern) while reads check it; a
    workload without reads is refused."""
    j, _ = perf_json(port, MEM0, ["-t", "1", "--verify", "-q", "8"])
    check(j["writes"] == 1024 and j["reads"] > 0 and j["mismatched_blocks"] == 0,
          "randread verify: %r writes (1024 expected), %r reads, %r mismatched"
          % (j["writes"], j["reads"], j["mismatched_blocks"]))
    j, _ = perf_json(port, MEM0, ["-t", "1", "--verify", "-q", "8", "-w", "randrw", "-M", "70"])
    check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
          "randrw verify: %r errors, %r mismatched" % (j["errors"], j["mismatched_blocks"]))
    mixed = j["writes"] - 1024
    check(mixed > 0 and 0.5 < j["reads"] / (j["reads"] + mixed) < 0.9,
          "randrw -M 70 verify: %r reads, %r writes after the pass" % (j["reads"], mixed))
    rc, _, err = nvtcp(["perf", "--verify", "-w", "randwrite"], port, MEM0, check_rc=False)
    check(rc == 1 and "--verify reads back what it wrote" in err, "rc %d %r" % (rc, err))


def t_perf_text(port):
    _, out, err = nvtcp(["perf", "-t", "1", "-w", "randrw", "-M", "70", "-q", "8"], port, MEM0)
    text = out.decode()
    check(re.search(r"^Total\s+\d+", text, re.M), "no Total line:\n" + text)
    check("p99.99" in text and "I/O errors: 0" in text, "summary incomplete:\n" + text)
    check(re.search(r"^\[\s*1 s\]\s+\d+ IOPS", err, re.M), "no progress line:\n" + err)


def t_perf_json(port):
    j, _ = perf_json(port, MEM0, ["-t", "1", "-w", "randread", "-q", "32", "-o", "4k"])
    for k in ("queues", "depth", "io_size", "ios", "iops", "mib_s", "errors", "latency"):
        check(k in j, "no %r in %r" % (k, j))
    lat = j["latency"]
    check(j["ios"] > 0 and j["iops"] > 0 and j["errors"] == 0, "bad totals %r" % j)
    check(0 < lat["min_us"] <= lat["p50_us"] <= lat["p99_us"] <= lat["p99.99_us"] <= lat["max_us"],
          "latency not ordered: %r" % lat)
    IOPS["randread 4k qd32 1q"] = j["iops"]


def t_err_nqn(port):
    rc, _, err = nvtcp(["identify"], port, "nqn.2024-01.io.nvtcp:no-such-thing", check_rc=False)
    check(rc != 0, "unknown NQN accepted")
    check("rejected" in err and "NQN" in err, "unclear message: %r" % err)


def t_err_refused():
    rc, _, err = nvtcp(["identify"], free_port(), MEM0, check_rc=False)
    check(rc != 0, "exit 0 with nothing listening")
    check("connection refused" in err and "is nvtcpd" in err, "no hint: %r" % err)


def t_err_lba(port):
    nsze = (1 << 30) // 512
    rc, _, err = nvtcp(["read", "-b", str(nsze - 2), "-c", "4"], port, MEM0, check_rc=False)
    check(rc != 0, "read past the end succeeded")
    check("LBA Out of Range" in err and "beyond namespace 1" in err, "unclear: %r" % err)
    rc, _, err = nvtcp(["write", "-b", str(nsze), "-c", "1"], port, MEM0, stdin=bytes(512),
                       check_rc=False)
    check(rc != 0 and "LBA Out of Range" in err, "write past the end: rc %d %r" % (rc, err))


def t_err_range(port):
    """Numbers that do not fit their 32-bit field, or a size overflowing 64 bits, are refused
    by name before connecting (nothing listens on port): no silent truncation."""
    for args, msg in [
            (["read", "-c", "5000000000"], "--block-count: 5000000000 is more than 4294967295"),
            (["write", "-N", "4294967297"], "--nsid: 4294967297 is more than 4294967295"),
            (["identify", "-N", "4294967296"], "--nsid: 4294967296 is more than 4294967295"),
            (["perf", "-o", "4G"], "--io-size: 4294967296 is more than 4294967295"),
            (["perf", "-o", "17179869184G"], "'17179869184G' is more than 18446744073709551615"),
            (["perf", "-q", "4294967297"], "--depth: 4294967297 is more than 4096"),
            (["perf", "--queues", "4294967297"], "--queues: 4294967297 is more than 256"),
            (["perf", "-t", "4294967297"], "--time: 4294967297 is more than 86400")]:
        rc, _, err = nvtcp(args, port, MEM0, stdin=b"", check_rc=False)
        check(rc == 1 and msg in err, "%s: rc %d, %r" % (" ".join(args), rc, err))
        check("connection refused" not in err, "%s: connected first: %r" % (args, err))


def t_err_opts(port):
    """Options a command parses but cannot honour are refused before connecting, not
    ignored: read has no FUA (nvtcp_read takes no flags), read and write print no JSON."""
    for args, msg in [
            (["read", "--fua"], "--fua is only supported by write"),
            (["read", "--json"], "--json is for discover, identify and perf; read moves"),
            (["write", "--json"], "--json is for discover, identify and perf; write moves")]:
        rc, _, err = nvtcp(args, port, MEM0, stdin=b"", check_rc=False)
        check(rc == 1 and msg in err, "%s: rc %d, %r" % (" ".join(args), rc, err))
        check("connection refused" not in err, "%s: connected first: %r" % (args, err))


def t_fua_reaches_file(cfg):
    """FUA from the wire reaches the file: nvtcpd's closing log counts the writes its file
    namespace stored with RWF_DSYNC, three FUA writes and not the two plain ones, and the data
    syncs: one per controller shutdown (CC.SHN flushes the volatile cache), five."""
    port = free_port()
    tgt = Target([port], cfg).start()
    try:
        for i in range(5):
            fua = ["--fua"] if i % 2 == 0 else []
            nvtcp(["write", "-b", str(1000 + i), "-c", "1"] + fua, port, FILE0,
                  stdin=bytes([i + 1]) * 512)
    finally:
        rc = tgt.stop()
    log = tgt.log_text()
    check(rc == 0, "nvtcpd exited %d" % rc)
    check("%s ns 1: 3 FUA writes stored durably, 5 data syncs" % FILE0 in log,
          "no or wrong durability count in the log: %r" % log[-800:])


def t_4k_ns(port):
    _, out, _ = nvtcp(["identify", "-N", "2", "--json"], port, FILE0)
    n = json.loads(out)["namespace"]
    check(n["lbafs"][int(n["flbas"], 16) & 0xf]["ds"] == 12, "nsid 2 is not 4096-byte blocks")
    check(n["nsze"] == (16 << 20) // 4096, "nsze %r" % n["nsze"])
    for nbytes in (4096, 16384, 20480, 512 * 1024, 512 * 1024 + 8192):
        roundtrip(port, FILE0, 2, 4096, nbytes, 100)
    rc, _, err = nvtcp(["write", "-N", "2", "-c", "1"], port, FILE0, stdin=bytes(512),
                       check_rc=False)
    check(rc != 0 and "4096" in err, "short input not explained: %r" % err)
    j, _ = perf_json(port, FILE0, ["-N", "2", "-t", "1", "--verify", "--queues", "2", "-o", "8k"])
    check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
          "4k verify: %r" % j)


def t_file_ns(port):
    roundtrip(port, FILE0, 1, 512, 64 * 1024, 0)
    roundtrip(port, FILE0, 1, 512, 512, 65535)
    j, _ = perf_json(port, FILE0, ["-t", "1", "--verify", "--queues", "2", "-q", "16"])
    check(j["errors"] == 0 and j["mismatched_blocks"] == 0, "file verify: %r" % j)
    IOPS["file verify 4k qd16 2q"] = j["iops"]


def t_ddgst_reads_race_writes(port):
    """A one-loop nvtcpd sends digest Reads straight from a memory namespace (no copy) and
    computes the data digest as the bytes leave: Writes from another connection to the same
    blocks, landing between a Read's completion and its send, must never produce a digest
    error. nsid 3 is 256 KiB, so the two workloads overlap all the time."""
    # perf writes a different byte pattern from each queue slot, so overlapping Writes
    # really change the blocks
    bg = run_perf_bg(port, ["-N", "3", "-t", "2", "-w", "randwrite", "-q", "32", "-o", "4k"])
    runs = []
    try:
        for size in ("4k", "64k"):
            j, _ = perf_json(port, FILE0, ["-N", "3", "-t", "1", "-w", "randread", "-q", "16",
                                           "-o", size, "--hdr-digest", "--data-digest"])
            runs.append(j)
    finally:
        out, err = bg.communicate(timeout=30)
    w = json.loads(out)
    check(bg.returncode == 0 and w["errors"] == 0 and w["ios"] > 0,
          "writer: rc %d %r %s" % (bg.returncode, w, err.decode()[-500:]))
    for j in runs:
        check(j["errors"] == 0 and j["ios"] > 0, "digest reads failed under writes: %r" % j)


def other_cc():
    """A congestion control other than the system's default (reno is in every kernel)."""
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        return "cubic" if f.read().strip() == "reno" else "reno"


def conn_ccs(port):
    """{(local, peer): congestion control} of the established TCP connections on port."""
    out = subprocess.run(["ss", "-tinH", "state", "established", "( sport = :%d or dport = :%d )"
                          % (port, port)], capture_output=True, text=True, timeout=10).stdout
    ccs, key = {}, None
    for line in out.splitlines():
        f = line.split()
        if not line[:1].isspace() and len(f) >= 4:
            key = (f[-2], f[-1])  # local, peer (no state column with a state filter)
        elif key and f:
            ccs[key] = f[0]
            key = None
    return ccs


def t_tcp_congestion():
    cc = other_cc()
    port = free_port()
    tgt = Nvtcpd(NVTCPD, TMP, port, listen=[port], args=["--tcp-congestion", cc]).start()
    try:
        bg = subprocess.Popen([NVTCP, "perf", "-a", "127.0.0.1", "-s", str(port), "-n", MEM0,
                               "-t", "3", "--queues", "2", "--tcp-congestion", cc],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, XDG_CONFIG_HOME=TMP))
        ccs = {}
        deadline = time.time() + 2.5
        while time.time() < deadline and len(ccs) < 6:  # admin + 2 I/O queues, both ends
            time.sleep(0.2)
            ccs = conn_ccs(port)
        _, err = bg.communicate(timeout=30)
        check(bg.returncode == 0, "perf exited %d: %s" % (bg.returncode, err[-1000:]))
        check(len(ccs) >= 6, "expected 3 connections (both ends) on port %d, ss saw %r"
              % (port, ccs))
        check(all(v == cc for v in ccs.values()), "not all %s: %r" % (cc, ccs))
        rc, _, err = nvtcp(["identify", "--tcp-congestion", "nvtcp-nosuch"], port, MEM0,
                           check_rc=False)
        check(rc != 0 and '"nvtcp-nosuch" is not available' in err,
              "host: rc %d, message %r" % (rc, err))
    finally:
        check(tgt.stop() == 0, "nvtcpd did not exit cleanly")
    bad = subprocess.run([NVTCPD, "--listen", "127.0.0.1:%d" % free_port(), "--tcp-congestion",
                          "nvtcp-nosuch"], capture_output=True, text=True, timeout=20)
    check(bad.returncode != 0 and '"nvtcp-nosuch" is not available' in bad.stderr,
          "target: rc %d, message %r" % (bad.returncode, bad.stderr))


def zc_bytes_since(tgt, mark, what):
    """Bytes nvtcpd sent by reference on the connections opened since mark, from its closing
    lines ("closing: ... (N of M bytes sent by reference)", conn.c); waits until every
    connection opened since mark has logged its close."""
    deadline = time.time() + 10
    while True:
        text = tgt.since(mark)
        opened, closed = text.count(": connection opened"), text.count(": closing: ")
        if opened and closed >= opened:
            break
        check(time.time() < deadline, "%s: %d connection(s) opened, %d closed in nvtcpd's log"
              % (what, opened, closed))
        time.sleep(0.05)
    return sum(int(n) for n in re.findall(r"\((\d+) of \d+ bytes sent by reference\)", text))


def t_zero_copy_reads():
    port = free_port()
    tgt = Nvtcpd(NVTCPD, TMP, port, listen=[port], args=["--zero-copy-reads"]).start()
    zc = []
    try:
        for extra in (["-o", "128k"], ["-o", "512k", "--busy-poll"],
                      ["-o", "256k", "--hdr-digest", "--data-digest"]):
            what = " ".join(extra)
            mark = tgt.mark()
            j, _ = perf_json(port, MEM0, ["-t", "1", "--verify", "-w", "randrw", "-q", "8"]
                             + extra)
            check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
                  "%s: %r errors, %r matched, %r mismatched" % (
                      what, j["errors"], j["verified_blocks"], j["mismatched_blocks"]))
            n = zc_bytes_since(tgt, mark, what)
            if "--data-digest" in extra:  # the digest is computed over a copy (conn.c)
                check(n == 0, "%s: %d bytes sent by reference with a data digest" % (what, n))
            else:
                check(n > 0, "%s: no Read data sent by reference (nvtcpd log:\n%s)"
                      % (what, tgt.since(mark)[-1500:]))
            zc.append("%s: %d MiB" % (what, n >> 20))
    finally:
        rc = tgt.stop()
    check(rc == 0 and not tgt.sanitizer_report(), "nvtcpd rc %d: %s" % (rc, tgt.log_text()[-1500:]))
    print("# by reference: " + "; ".join(zc))


def run_perf_bg(port, args):
    cmd = [NVTCP, "perf", "--json", "-a", "127.0.0.1", "-s", str(port), "-n", FILE0] + args
    env = dict(os.environ, XDG_CONFIG_HOME=TMP)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def t_reconnect(port, cfg):
    tgt = Target([port], cfg).start()
    try:
        p = run_perf_bg(port, ["-t", "6", "--verify", "--queues", "2", "-q", "16",
                               "--reconnect-delay", "0.2", "--ctrl-loss-tmo", "15"])
        time.sleep(2.0)
        check(p.poll() is None, "perf ended early")
        tgt.kill9()
        time.sleep(0.7)
        tgt.start()  # same port, within 2 s
        out, err = p.communicate(timeout=60)
        err = err.decode(errors="replace")
        check(not SAN_RE.search(err), "sanitizer report from perf:\n" + err[-3000:])
        check(p.returncode == 0, "perf exited %d: %s" % (p.returncode, err[-1500:]))
        j = json.loads(out)
        check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
              "after restart: %r" % j)
        check("reconnected" in err, "no reconnect logged: " + err[-800:])
        IOPS["file verify across a restart (6 s)"] = j["iops"]
    finally:
        rc = tgt.stop()
    check(rc == 0, "restarted nvtcpd exit %d" % rc)
    check(not SAN_RE.search(tgt.log_text()), "sanitizer report from nvtcpd")


def t_loss_timeout(port, cfg):
    tgt = Target([port], cfg).start()
    p = run_perf_bg(port, ["-t", "20", "--verify", "-q", "8", "--reconnect-delay", "0.2",
                           "--ctrl-loss-tmo", "2"])
    time.sleep(1.5)
    tgt.kill9()
    t0 = time.time()
    out, err = p.communicate(timeout=30)
    took = time.time() - t0
    err = err.decode(errors="replace")
    check(p.returncode != 0, "perf succeeded without a target")
    check(1.8 <= took <= 8, "perf gave up after %.1f s (loss timeout 2 s)" % took)
    check("controller-loss timeout" in err and "is nvtcpd still running" in err,
          "unclear message: " + err[-1500:])
    check(not SAN_RE.search(err), "sanitizer report from perf:\n" + err[-3000:])


def recv_full(sock, n):
    """n bytes from sock; EOFError if it closes first."""
    b = b""
    while len(b) < n:
        chunk = sock.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b


class KaSwallowProxy:
    """A TCP proxy to nvtcpd (no digests) that forwards every PDU but the CapsuleResp of each
    Keep Alive: nvtcpd's keep-alive timer stays satisfied, the host hears no answer, as from a
    controller that stopped processing commands while its connections stand. With
    io_once, it forwards Keep Alive answers and swallows instead the answer to the first I/O
    command of the first I/O queue: one command that never completes."""

    def __init__(self, target_port, io_once=False):
        import socket
        import threading
        self.target_port, self.swallowed, self.io_once = target_port, 0, io_once
        self.io_conns = 0
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.socks = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            t = socket.create_connection(("127.0.0.1", self.target_port))
            self.socks += [c, t]
            ka_cids = set()
            if self.io_once:
                ka_cids = {"io": None, "seen": 0}
            threading.Thread(target=self.pump, args=(c, t, ka_cids, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(t, c, ka_cids, False), daemon=True).start()

    def pump(self, src, dst, ka_cids, to_target):
        import struct

        def read_full(n):
            return recv_full(src, n)
        try:
            while True:
                hdr = read_full(8)
                pdu = hdr + read_full(struct.unpack_from("<I", hdr, 4)[0] - 8)
                if isinstance(ka_cids, dict):  # io_once
                    if to_target and pdu[0] == 0x04 and pdu[8] == 0x7F and pdu[12] == 0x01:
                        # Connect: the first I/O queue's connection is the one to starve
                        qid = struct.unpack_from("<H", pdu, 8 + 42)[0]
                        if qid != 0 and self.io_conns == 0:
                            self.io_conns = 1
                            ka_cids["io"] = "armed"
                    elif to_target and pdu[0] == 0x04 and ka_cids["io"] == "armed" and \
                            pdu[8] in (0x01, 0x02):  # the first Write or Read after it
                        ka_cids["io"] = struct.unpack_from("<H", pdu, 10)[0]
                    elif not to_target and pdu[0] in (0x05, 0x07) and \
                            isinstance(ka_cids["io"], int):
                        cid = struct.unpack_from("<H", pdu, 8 + 12 if pdu[0] == 0x05 else 8)[0]
                        if cid == ka_cids["io"]:
                            if pdu[0] == 0x05 or pdu[1] & 0x08:  # response, or SUCCESS
                                ka_cids["io"] = "done"
                                self.swallowed += 1
                            continue
                    dst.sendall(pdu)
                    continue
                if to_target and pdu[0] == 0x04 and pdu[8] == 0x18:  # Keep Alive
                    ka_cids.add(struct.unpack_from("<H", pdu, 10)[0])
                elif not to_target and pdu[0] == 0x05:  # CapsuleResp
                    cid = struct.unpack_from("<H", pdu, 8 + 12)[0]
                    if cid in ka_cids:
                        ka_cids.discard(cid)
                        self.swallowed += 1
                        continue
                dst.sendall(pdu)
        except (EOFError, OSError):
            pass
        for sk in (src, dst):
            try:
                sk.shutdown(2)
            except OSError:
                pass

    def close(self):
        self.ls.close()
        for sk in self.socks:
            try:
                sk.close()
            except OSError:
                pass


def t_keep_alive_unanswered(cfg):
    """Keep Alives that go unanswered for a KATO mean a lost controller although its
    connections stand: perf reconnects and finishes its verify run without errors; with
    reconnects off it fails with a clear message instead of waiting forever."""
    port = free_port()
    tgt = Target([port], cfg).start()
    proxy = KaSwallowProxy(port)
    try:
        rc, out, err = nvtcp(["perf", "--json", "-t", "4", "--verify", "-q", "8", "--kato", "1",
                              "--reconnect-delay", "0.2"], proxy.port, FILE0, check_rc=False,
                             timeout=60)
        check(rc == 0, "perf exited %d: %s" % (rc, err[-1500:]))
        j = json.loads(out)
        check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
              "verify across the reconnects: %r" % j)
        check("Keep Alive unanswered" in err and "reconnected" in err,
              "no keep-alive loss or reconnect in the log: " + err[-1500:])
        t0 = time.time()
        rc, out, err = nvtcp(["perf", "-t", "30", "-q", "8", "--kato", "1", "--ctrl-loss-tmo",
                              "0"], proxy.port, FILE0, check_rc=False, timeout=60)
        took = time.time() - t0
        check(rc != 0 and "Keep Alive unanswered" in err,
              "without reconnects: rc %d: %s" % (rc, err[-1500:]))
        check(took < 10, "perf took %.1f s to give up (KATO 1 s)" % took)
        check(proxy.swallowed >= 2, "only %d Keep Alive answers swallowed" % proxy.swallowed)
    finally:
        proxy.close()
        tgt.stop()


def t_io_timeout(cfg):
    """An I/O command whose completion never comes (its connection stands, Keep Alives are
    answered) fails with a timeout after --io-timeout, its queue reconnects and the other
    commands complete: perf finishes with exactly that one error instead of hanging."""
    port = free_port()
    tgt = Target([port], cfg).start()
    proxy = KaSwallowProxy(port, io_once=True)
    try:
        t0 = time.time()
        rc, out, err = nvtcp(["perf", "--json", "-t", "3", "-q", "8", "-w", "randrw",
                              "--io-timeout", "1", "--reconnect-delay", "0.2"], proxy.port,
                             FILE0, check_rc=False, timeout=60)
        took = time.time() - t0
        check(proxy.swallowed == 1, "%d completions swallowed" % proxy.swallowed)
        check(rc == 1, "perf exited %d (1 expected: one failed I/O): %s" % (rc, err[-1500:]))
        j = json.loads(out)
        check(j["errors"] == 1 and j["ios"] > 100, "errors %r, ios %r" % (j["errors"], j["ios"]))
        check("not completed after" in err and "Connection timed out" in err,
              "no timeout in the log: " + err[-1500:])
        check(took < 15, "perf took %.1f s" % took)
    finally:
        proxy.close()
        tgt.stop()


def fake_disc_ctrl(sock, cap, mdts, seen):
    """A scripted discovery controller on one accepted connection: ICResp, Connect, Property
    Get/Set, Identify (mdts), an empty discovery log, anything else answered with success.
    seen collects (opcode, log page length) of the commands."""
    import struct
    from nvmetcp import (build_c2h_data, build_capsule_resp, build_cqe, build_icresp)

    def read_full(n):
        return recv_full(sock, n)

    cc = 0
    try:
        read_full(128)
        sock.sendall(build_icresp())
        while True:
            hdr = read_full(8)
            plen = struct.unpack_from("<I", hdr, 4)[0]
            pdu = hdr + read_full(plen - 8)
            sqe = pdu[8:72]
            opc, cid, fctype = sqe[0], struct.unpack_from("<H", sqe, 2)[0], sqe[4]
            dw0, data, status = 0, None, 0
            if opc == 0x7f and fctype == 0x01:  # Connect
                dw0 = 1
            elif opc == 0x7f and fctype == 0x04:  # Property Get
                ofst = struct.unpack_from("<I", sqe, 44)[0]
                val = {0: cap, 8: 0x10400,
                       0x1c: 1 | ((2 << 2) if (cc >> 14) & 3 else 0)}.get(ofst, 0)
                cqe = build_cqe(cid, 0, val & 0xffffffff, val >> 32)
                sock.sendall(build_capsule_resp(cqe))
                continue
            elif opc == 0x7f and fctype == 0x00:  # Property Set
                if struct.unpack_from("<I", sqe, 44)[0] == 0x14:
                    cc = struct.unpack_from("<I", sqe, 48)[0]
            elif opc == 0x06:  # Identify
                d = bytearray(4096)
                d[77] = mdts
                d[111] = 2  # discovery controller
                data = bytes(d)
            elif opc == 0x02:  # Get Log Page
                cdw10, cdw11, lpo = struct.unpack_from("<III", sqe, 40)
                n = ((cdw10 >> 16) | (cdw11 & 0xffff) << 16) + 1
                seen.append((opc, 4 * n))
                if 4 * n > 1024 or lpo:
                    status = (0x02 << 1) | 0x8000  # Invalid Field, DNR
                else:
                    log = struct.pack("<QQH", 1, 0, 0).ljust(1024, b"\0")
                    data = log[:4 * n]
            if data is not None and not status:
                sock.sendall(build_c2h_data(cid, 0, data))
            sock.sendall(build_capsule_resp(build_cqe(cid, status, dw0)))
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


def t_disc_large_mps_mdts():
    """CAP.MPSMIN 1 MiB and MDTS 12: MPS << MDTS is 4 GiB, beyond 32 bits. The transfer limit
    must stay usable (was computed as 0, and every Get Log Page had length 0)."""
    import socket
    import threading

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(20)
    port = ls.getsockname()[1]
    cap = 127 | (1 << 24) | (1 << 37) | (8 << 48)  # MQES 127, TO 500 ms, NVM CSS, MPSMIN 8
    seen = []

    def serve():
        try:
            s, _ = ls.accept()
        except OSError:
            return
        fake_disc_ctrl(s, cap, 12, seen)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        rc, out, err = nvtcp(["discover"], port, check_rc=False, timeout=30)
    finally:
        ls.close()
        th.join(5)
    check(rc == 0, "discover exited %d: %s" % (rc, err[-1500:]))
    check("Number of Records 0" in out.decode(), "unexpected output:\n" + out.decode())
    check(seen and all(n == 1024 for _, n in seen), "Get Log Page lengths %r" % seen)


def main():
    global NVTCPD, NVTCP, TMP
    if len(sys.argv) < 3:
        print("usage: test_host_target.py NVTCPD NVTCP", file=sys.stderr)
        return 2
    NVTCPD, NVTCP = sys.argv[1], sys.argv[2]
    TMP = tempfile.mkdtemp(prefix="nvtcp-host-")
    signal.alarm(150)  # the whole suite, hard bound
    port, disc_port = free_port(), free_port()
    geo = {}
    tgt = Target([port, disc_port]).start()
    try:
        case("discover on the I/O port and the discovery port (text, --json)", t_discover, port,
             disc_port)
        case("identify controller and namespace (text, --json fields)", t_identify, port, geo)
        if "incapsule" not in geo:
            geo.update(incapsule=16384, mdts_bytes=512 * 1024)
        case("write/read files: 1 block, in-capsule, above, MDTS, above MDTS (split)", t_rw_sizes,
             port, geo)
        case("write from stdin, read to stdout", t_pipe, port)
        case("write/read with --hdr-digest, --data-digest and both", t_digests, port, geo)
        case("perf --verify, 1 queue", t_perf_verify, port, "verify 4k qd32 1q", [])
        case("perf --verify, 3 queues, both digests", t_perf_verify, port,
             "verify 4k qd32 3q digests", ["--queues", "3", "--hdr-digest", "--data-digest"])
        case("perf --verify --disable-sqflow (reads end with C2HData SUCCESS, no CapsuleResp)",
             t_perf_verify, port, "verify 4k qd32 1q no sqflow", ["--disable-sqflow"])
        case("perf --verify --disable-sqflow, 2 queues, both digests", t_perf_verify, port,
             "verify 4k qd32 2q no sqflow digests",
             ["--disable-sqflow", "--queues", "2", "--hdr-digest", "--data-digest"])
        case("perf --verify runs -w after the write pass (randrw keeps writing); randwrite "
             "refused", t_perf_verify_workload, port)
        case("perf text output: progress lines and summary", t_perf_text, port)
        case("perf --json parsed", t_perf_json, port)
        case("unknown subsystem NQN: readable error, exit 1", t_err_nqn, port)
        case("nothing listening: 'is nvtcpd running' hint", t_err_refused)
        case("LBA out of range: readable NVMe status", t_err_lba, port)
        case("out-of-range numbers refused by option name, before connecting", t_err_range,
             free_port())
        case("read --fua, read/write --json refused, not ignored", t_err_opts, free_port())
    finally:
        rc = tgt.stop()
    case("nvtcpd (default config) exits 0 on SIGTERM, no sanitizer report",
         lambda: check(rc == 0 and not SAN_RE.search(tgt.log_text()),
                       "rc %d, log tail: %s" % (rc, tgt.log_text()[-1500:])))

    cfg = os.path.join(TMP, "nvtcpd.json")
    with open(cfg, "w") as f:
        json.dump({"ports": [{"addr": "127.0.0.1", "port": 4420}],
                   "subsystems": [{"nqn": FILE0, "allow_any_host": True, "namespaces": [
                       {"nsid": 1, "backend": "file", "path": os.path.join(TMP, "ns1.img"),
                        "size": "32M"},
                       {"nsid": 2, "backend": "memory", "size": "16M", "block_size": 4096},
                       {"nsid": 3, "backend": "memory", "size": "256K"}]}]},
                  f)
    port2 = free_port()
    tgt2 = Target([port2], cfg).start()
    try:
        case("file namespace: write/read, perf --verify", t_file_ns, port2)
        case("4096-byte-block namespace: write/read, perf --verify", t_4k_ns, port2)
        case("digest reads sent from the namespace while writes overwrite it: no digest error",
             t_ddgst_reads_race_writes, port2)
    finally:
        tgt2.stop()
    # reconnect: file-backed only (the memory namespace loses its data with the process)
    with open(cfg, "w") as f:
        json.dump({"subsystems": [{"nqn": FILE0, "allow_any_host": True, "namespaces": [
            {"nsid": 1, "backend": "file", "path": os.path.join(TMP, "ns1.img"),
             "size": "32M"}]}]}, f)
    case("write --fua reaches the file namespace as RWF_DSYNC writes (3 of 5); shutdown syncs",
         t_fua_reaches_file, cfg)
    case("kill -9 nvtcpd under perf --verify, restart within 2 s: 0 errors, 0 mismatches",
         t_reconnect, free_port(), cfg)
    case("target never returns: perf fails after --ctrl-loss-tmo with a clear message",
         t_loss_timeout, free_port(), cfg)
    case("Keep Alives unanswered for a KATO: reconnect (verify clean), or fail without reconnects",
         t_keep_alive_unanswered, cfg)
    case("an I/O whose completion never comes fails after --io-timeout; the rest complete",
         t_io_timeout, cfg)

    case("controller with CAP.MPSMIN 1 MiB and MDTS 12: transfer limit does not wrap to 0",
         t_disc_large_mps_mdts)
    case("--tcp-congestion on nvtcpd and nvtcp: every connection uses it; unknown name refused",
         t_tcp_congestion)
    case("--zero-copy-reads: 128K-512K reads by reference, perf --verify (plain, busy-poll, "
         "digests)", t_zero_copy_reads)

    for k, v in IOPS.items():
        print("# IOPS %-36s %10.0f" % (k, v))
    print("1..%d" % len(TAP.results))  # the plan last: no count to keep in step by hand
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
