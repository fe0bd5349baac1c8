#!/usr/bin/env python3
"""test_load.py - nvtcpd under load, churn, faults and its advertised limits; TAP output.

Usage: test_load.py NVTCPD          (or NVTCPD=path in the environment)
       test_load.py --mixed NVTCPD  (the multi-loop workload alone: tsan.sh)

Target side of issue 5, over loopback with the raw host in nvmetcp.py and the daemon helpers
of test_target.py:
  - 500 concurrent connections (50 controllers x 1 admin + 9 I/O queues), each writing and
    reading back its own blocks; the daemon's fds return to the baseline afterwards;
  - connect/disconnect churn (ICReq + admin Connect + close, every 8th cycle also an I/O queue
    Connect + Disconnect) in 4 worker processes: no fd leak (/proc/PID/fd), RSS within a bound,
    controller IDs still handed out afterwards;
  - limits: connections (--max-connections: accept-and-close with a log line), queue depth,
    MDTS, in-capsule size;
  - faults: injected backend errors (config "inject"), a read-only file namespace, a full
    filesystem (tmpfs of 2 MiB, root only), all with the connection alive; a host that goes
    silent without FIN is reaped after KATO and its controller freed.
Every case has a hard time limit. ASan's quarantine is kept small for the daemon so RSS means
live memory; leaks are still reported by LeakSanitizer at exit (checked at the end).
"""
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nvmetcp as N  # noqa: E402
import test_target as T  # noqa: E402

MEM0 = T.MEM0
FAULTS = "nqn.2024-01.io.nvtcp:faults"
BS = 512
CONNS = 500              # concurrent connections
CTRLS = 50               # ... as CTRLS controllers with CONNS / CTRLS - 1 I/O queues each
CHURN = int(os.environ.get("NVTCP_CHURN_CYCLES", "10000"))
CHURN_WORKERS = 4
RSS_BOUND_KIB = 24 * 1024    # RSS growth allowed over the churn (after a warm-up)
INJECT_WRITES, INJECT_READS = 3, 2

check = T.check
track = T.track


class Daemon(T.Daemon):
    """test_target's daemon with extra command-line arguments."""

    def __init__(self, exe, workdir, name, config, cores=2, extra=(), prefix=()):
        super().__init__(exe, workdir, name, config, cores)
        self.extra, self.prefix = list(extra), list(prefix)

    def start(self, timeout=15.0):
        real_popen = T.subprocess.Popen
        extra, prefix = self.extra, self.prefix

        def popen(args, **kw):
            return real_popen(prefix + list(args) + extra, **kw)
        T.subprocess.Popen = popen
        try:
            return super().start(timeout)
        finally:
            T.subprocess.Popen = real_popen

    def nfds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def settled_fds(d):
    """The daemon's fd count once it serves connections (the loops' backend channels are
    opened before the listener is watched; a connection answered proves they are)."""
    c = N.Conn("127.0.0.1", d.port, 10.0)
    c.icreq()
    c.close()
    time.sleep(0.2)
    return wait_fds(d, 1 << 30, 0)


def wait_fds(d, want, timeout=15.0):
    """Wait until the daemon holds at most `want` fds; returns the last count."""
    end = time.monotonic() + timeout
    n = d.nfds()
    while n > want and time.monotonic() < end:
        time.sleep(0.05)
        n = d.nfds()
    return n


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def host(d, hostnqn=None):
    return N.Host("127.0.0.1", d.port, hostnqn=hostnqn, timeout=10.0)


# ---- 500 concurrent connections -------------------------------------------------------------
def t_concurrent(d):
    base = settled_fds(d)
    t0 = time.monotonic()
    nioq = CONNS // CTRLS - 1
    ctrls = []
    for i in range(CTRLS):
        h = host(d)
        a = track(h.admin(MEM0))
        T.expect_ok(a.set_num_queues(nioq), "Set Features Number of Queues")
        ioccsz = N.idctrl_fields(a.idctrl)["ioccsz"]
        qs = [track(h.ioq(MEM0, a.cntlid, q + 1, ioccsz=ioccsz)) for q in range(nioq)]
        ctrls.append((a, qs))
    t_open = time.monotonic() - t0
    peak = d.nfds()
    check(peak >= base + CONNS, f"daemon holds {peak} fds with {CONNS} connections open "
                                f"(baseline {base})")
    # every queue writes its own 4 KiB (8 blocks) then all read back, pipelined per queue
    data = {}
    for i, (a, qs) in enumerate(ctrls):
        for j, q in enumerate(qs):
            lba = 2048 + (i * nioq + j) * 8
            data[(i, j)] = (lba, os.urandom(4096))
    for i, (a, qs) in enumerate(ctrls):
        for j, q in enumerate(qs):
            lba, buf = data[(i, j)]
            q.wdone = q.submit_write(1, lba, buf)
    for i, (a, qs) in enumerate(ctrls):
        for j, q in enumerate(qs):
            T.expect_ok(q.wait(q.wdone), f"write on ctrl {i} queue {j + 1}")
    bad = 0
    for i, (a, qs) in enumerate(ctrls):
        for j, q in enumerate(qs):
            lba, buf = data[(i, j)]
            rd = q.read(1, lba, 8)
            T.expect_ok(rd, f"read on ctrl {i} queue {j + 1}")
            bad += rd.data != buf
        T.expect_ok(a.keep_alive(), f"keep alive on ctrl {i}")
    check(bad == 0, f"{bad} of {len(data)} queues read back other data")
    rss = d.rss_kib()
    t_io = time.monotonic() - t0 - t_open
    while T.OPEN:
        T.OPEN.pop().close()
    after = wait_fds(d, base)
    check(after <= base, f"daemon fds {after} after closing everything, baseline {base}")
    return (f"{CONNS} connections ({CTRLS} controllers) open in {t_open:.1f} s, "
            f"{len(data)} queues verified in {t_io:.1f} s; daemon fds {base} -> {peak} -> "
            f"{after}; RSS {rss // 1024} MiB at peak")


# ---- churn ----------------------------------------------------------------------------------
def churn_worker(args):
    port, cycles, seed = args
    hostid = seed.to_bytes(16, "little")
    hostnqn = f"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-{seed:012x}"
    ids, errors = [], []
    for i in range(cycles):
        try:
            c = N.Conn("127.0.0.1", port, 10.0)
            try:
                c.icreq()
                cmd = c.connect(MEM0, hostnqn, hostid, qid=0)
                if cmd.status:
                    errors.append(f"admin Connect: {N.status_str(cmd.status)}")
                    continue
                ids.append(c.cntlid)
                if i % 8 == 7:
                    # an I/O queue too, left with Disconnect (needs an enabled controller)
                    c.enable()
                    q = N.Conn("127.0.0.1", port, 10.0)
                    try:
                        q.icreq()
                        cmd = q.connect(MEM0, hostnqn, hostid, qid=1, cntlid=c.cntlid)
                        if cmd.status:
                            errors.append(f"I/O Connect: {N.status_str(cmd.status)}")
                        elif q.disconnect().status:
                            errors.append("Disconnect failed")
                    finally:
                        q.close()
            finally:
                c.close()
        except (OSError, N.ProtocolError) as e:
            errors.append(f"{type(e).__name__}: {e}")
        if len(errors) > 20:
            break
    return ids, errors


def churn(d, cycles, workers=CHURN_WORKERS):
    per = max(1, cycles // workers)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        res = pool.map(churn_worker, [(d.port, per, 0xc000 + w) for w in range(workers)])
    ids = [i for r in res for i in r[0]]
    errors = [e for r in res for e in r[1]]
    return ids, errors


def t_churn(d):
    warm = 400
    ids, errors = churn(d, warm)
    check(not errors, f"warm-up: {errors[:5]}")
    base_fds = wait_fds(d, 1 << 30, 0)
    time.sleep(0.3)
    base_fds = wait_fds(d, base_fds)
    rss0 = d.rss_kib()
    t0 = time.monotonic()
    ids, errors = churn(d, CHURN)
    dt = time.monotonic() - t0
    check(not errors, f"{len(errors)} failed cycles, first: {errors[:5]}")
    check(len(ids) >= CHURN - CHURN_WORKERS, f"only {len(ids)} of {CHURN} cycles connected")
    check(len(set(ids)) > 1 and 0 not in ids and max(ids) <= 0xFFEF,
          f"controller IDs out of range: min {min(ids)} max {max(ids)}")
    fds = wait_fds(d, base_fds)
    check(fds <= base_fds, f"fd leak: {fds} fds after the churn, {base_fds} before")
    rss1 = d.rss_kib()
    check(rss1 - rss0 < RSS_BOUND_KIB, f"RSS grew by {(rss1 - rss0) // 1024} MiB over "
                                       f"{len(ids)} cycles ({rss0} -> {rss1} KiB)")
    # controller IDs are not exhausted: a fresh controller still gets one, and works
    a = track(host(d).admin(MEM0))
    check(a.cntlid is not None and 1 <= a.cntlid <= 0xFFEF, f"new controller ID {a.cntlid}")
    T.expect_ok(a.keep_alive(), "keep alive on a controller created after the churn")
    return (f"{len(ids)} cycles in {dt:.1f} s ({len(ids) / dt:.0f}/s, {CHURN_WORKERS} "
            f"workers); fds {base_fds} -> {fds}; RSS {rss0} -> {rss1} KiB "
            f"({(rss1 - rss0) * 1024 / max(1, len(ids)):.0f} B/cycle); IDs {min(ids)}.."
            f"{max(ids)}, next {a.cntlid}")


# ---- limits ---------------------------------------------------------------------------------
def t_max_connections(exe, workdir):
    limit = 16
    d = Daemon(exe, workdir, "maxconn", {"subsystems": [T_MEM0_SUBSYS]}, 2,
               ["--max-connections", str(limit)]).start()
    try:
        # churn first: the count must come back down exactly
        ids, errors = churn(d, 200, 2)
        check(not errors, f"churn before the limit: {errors[:3]}")
        time.sleep(0.3)
        held = [N.Conn("127.0.0.1", d.port, 5.0) for _ in range(limit)]
        for c in held:
            c.icreq()
        extra = N.Conn("127.0.0.1", d.port, 5.0)
        try:
            extra.send_raw(N.build_icreq())
        except OSError:
            pass
        waited = extra.expect_closed(timeout=5.0)
        extra.close()
        for c in held:   # the ones within the limit still work
            T.expect_ok(c.connect(MEM0, "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-"
                                  "0000-00000000aaaa", bytes(16)), "Connect within the limit")
        held.pop().close()
        end = time.monotonic() + 5
        ok = False
        while not ok and time.monotonic() < end:
            c = N.Conn("127.0.0.1", d.port, 5.0)
            try:
                c.icreq()
                ok = True
                held.append(c)
            except (OSError, N.ProtocolError):
                c.close()
                time.sleep(0.05)
        check(ok, "no new connection accepted after one of the limit closed")
        for c in held:
            c.close()
        log = d.stderr_text()
        check("connection(s) refused" in log, "no log line for the refused connection")
        rc = d.stop()
        check(rc == 0, f"exit code {rc}")
        san = T.sanitizer_errors(d.stderr_text())
        check(not san, "sanitizer report:\n" + "\n".join(san[:5]))
        return (f"limit {limit}: the {limit + 1}th connection closed after {waited * 1000:.0f} "
                f"ms; a slot freed is reused")
    finally:
        if d.alive():
            d.proc.kill()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def t_out_of_fds(exe, workdir):
    """Hard RLIMIT_NOFILE of 64: connections beyond it wait in the backlog while the
    listener rests (no accept spin), and are served once fds free up."""
    if not shutil.which("prlimit"):
        raise T.Skip("prlimit not installed")
    d = Daemon(exe, workdir, "nofile", {"subsystems": [T_MEM0_SUBSYS]}, 1,
               prefix=["prlimit", "--nofile=64:64"]).start()
    conns = []
    try:
        for _ in range(80):
            c = N.Conn("127.0.0.1", d.port, 5.0)
            c.send_raw(N.build_icreq())
            conns.append(c)
        time.sleep(0.5)
        served = [c for c in conns if not waiting(c)]
        check(10 < len(served) < len(conns), f"{len(served)} of {len(conns)} served with 64 fds")
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), cpu_ticks(d.proc.pid)
        time.sleep(1.0)
        cpu = (cpu_ticks(d.proc.pid) - c0) / hz / (time.monotonic() - t0)
        check(cpu < 0.5, f"nvtcpd uses {cpu * 100:.0f}% CPU while out of fds (accept spin)")
        rest = [c for c in conns if c not in served]
        for c in served:
            c.close()
        end = time.monotonic() + 10
        left = list(rest)
        while left and time.monotonic() < end:
            left = [c for c in left if waiting(c, 0.2)]
        check(not left, f"{len(left)} waiting connections not served after fds were freed")
        log = d.stderr_text()
        check("pausing" in log, "no log line about running out of fds")
        rc = d.stop()
        check(rc == 0, f"exit code {rc}")
        return (f"{len(served)} of {len(conns)} served at once; {cpu * 100:.0f}% CPU while "
                f"out of fds; the other {len(rest)} served after fds were freed")
    finally:
        for c in conns:
            c.close()
        if d.alive():
            d.proc.kill()


def waiting(c, timeout=0.01):
    """True while the connection has no ICResp yet (reads and keeps it when it comes)."""
    if c.icresp is not None:
        return False
    try:
        pdu = c.recv_pdu(timeout=timeout, strict=False)
    except socket.timeout:
        return True
    c.icresp = pdu
    return False


# ---- faults ---------------------------------------------------------------------------------
def faults_ctrl(d):
    h = host(d)
    a = track(h.admin(FAULTS))
    T.expect_ok(a.set_num_queues(1), "Set Features Number of Queues")
    q = track(h.ioq(FAULTS, a.cntlid, 1, ioccsz=N.idctrl_fields(a.idctrl)["ioccsz"]))
    return a, q


def t_inject(d):
    a, q = faults_ctrl(d)
    buf = os.urandom(4096)
    got = []
    for i in range(INJECT_WRITES):
        w = q.write(1, 64, buf)
        T.expect_status(w, 2, 0x80, f"injected write error {i + 1}")   # Write Fault
        got.append(N.status_str(w.status))
    T.expect_ok(q.write(1, 64, buf), "write after the injected errors")
    for i in range(INJECT_READS):
        r = q.read(2, 0, 8)
        T.expect_status(r, 2, 0x81, f"injected read error {i + 1}")    # Unrecovered Read
        check(r.c2h_pdus == 0, "data sent for a failed read")
    r = q.read(1, 64, 8)
    T.expect_ok(r, "read after the injected errors")
    check(r.data == buf, "read back differs")
    T.expect_ok(a.keep_alive(), "admin queue alive")
    smart = a.get_log_page(N.LOG_SMART, 512, nsid=N.NSID_ALL)
    T.expect_ok(smart, "SMART log")
    media = int.from_bytes(smart.data[160:176], "little")
    check(media >= INJECT_WRITES + INJECT_READS, f"SMART media errors {media}")
    return f"write: {got[0]}, read: Unrecovered Read Error; SMART media errors {media}"


def t_readonly(d):
    a, q = faults_ctrl(d)
    r = q.read(3, 0, 8)
    T.expect_ok(r, "read from the read-only file")
    check(r.data == RO_CONTENT[:4096], "read-only file content")
    w = q.write(3, 0, os.urandom(4096))
    T.expect_status(w, 1, 0x82, "write to the read-only namespace")
    T.expect_ok(q.read(3, 0, 8), "read after the refused write")
    return f"write: {N.status_str(w.status)}; connection alive"


def t_full_fs(exe, workdir):
    if os.geteuid() != 0:
        raise T.Skip("not root, cannot mount a small tmpfs")
    mnt = os.path.join(workdir, "full")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise T.Skip(f"mount refused: {r.stderr.strip()}")
    d = None
    try:
        img = os.path.join(mnt, "ns.img")
        cfg = {"subsystems": [{"nqn": FAULTS, "allow_any_host": True, "namespaces": [
            {"nsid": 1, "backend": "file", "path": img, "size": "8M"}]}]}
        d = Daemon(exe, workdir, "fullfs", cfg, 1).start()
        a, q = faults_ctrl(d)
        chunk = 64 * 1024
        written, fail = [], None
        for i in range(8 * 1024 * 1024 // chunk):
            buf = os.urandom(chunk)
            w = q.write(1, i * chunk // BS, buf, incapsule=False)
            if w.status:
                fail = w
                break
            written.append(buf)
        check(fail is not None, "8 MiB written to a 2 MiB filesystem without an error")
        check(N.st_key(fail.status) in (N.status(0, 0x81), N.status(2, 0x80)),
              f"write on a full filesystem: {N.status_str(fail.status)}, expected Capacity "
              f"Exceeded or Write Fault")
        T.expect_ok(a.keep_alive(), "admin queue alive on a full filesystem")
        for i in (0, len(written) - 1):
            rd = q.read(1, i * chunk // BS, chunk // BS)
            T.expect_ok(rd, f"read back chunk {i}")
            check(rd.data == written[i], f"chunk {i} differs")
        fl = q.flush(1)
        rc = d.stop()
        check(rc == 0, f"exit code {rc}")
        san = T.sanitizer_errors(d.stderr_text())
        check(not san, "sanitizer report:\n" + "\n".join(san[:5]))
        return (f"{len(written) * chunk // 1024} KiB written, then "
                f"{N.status_str(fail.status)}; flush: {N.status_str(fl.status)}; "
                f"connection alive")
    finally:
        while T.OPEN:
            T.OPEN.pop().close()
        if d and d.alive():
            d.proc.kill()
            d.proc.wait()
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def t_silent_host(d):
    base = settled_fds(d)
    h = host(d)
    a = h.admin(MEM0, kato=1500)
    T.expect_ok(a.set_num_queues(2), "Set Features Number of Queues")
    f = N.idctrl_fields(a.idctrl)
    q = h.ioq(MEM0, a.cntlid, 1, ioccsz=f["ioccsz"])
    T.expect_ok(q.write(1, 4096, os.urandom(4096)), "write before going silent")
    held = d.nfds()
    # go silent: no FIN, no reads, no writes (the sockets stay open on our side)
    t0 = time.monotonic()
    end = t0 + 10
    n = held
    while n > base and time.monotonic() < end:
        time.sleep(0.05)
        n = d.nfds()
    reaped = time.monotonic() - t0
    check(n <= base, f"daemon still holds {n} fds {reaped:.1f} s after the host went "
                     f"silent (baseline {base}, {held} with the host)")
    check(reaped >= 1.0, f"reaped after {reaped:.2f} s, before KATO (1.5 s)")
    # the controller is gone: its ID no longer accepts I/O queues
    q2 = track(h.conn())
    cmd = q2.connect(MEM0, h.hostnqn, h.hostid, qid=2, cntlid=a.cntlid)
    check(cmd.status != 0, f"I/O queue Connect to the reaped controller {a.cntlid} succeeded")
    a.close()
    q.close()
    return (f"silent host's 2 connections reaped {reaped:.2f} s after it went quiet "
            f"(KATO 1.5 s); fds {held} -> {n}; Connect to ctrl {a.cntlid}: "
            f"{N.status_str(cmd.status)}")


# ---- mixed workload across loops (tests/integration/tsan.sh runs it under ThreadSanitizer) --
def mixed_host(d, idx, errors):
    """One host: admin + 3 I/O queues (spread over both loops by the round-robin accept),
    verified I/O, then one of four teardowns that cross threads."""
    kind = idx % 4
    h = host(d)
    conns = []
    try:
        a = h.admin(MEM0, kato=1000 if kind == 2 else 5000)
        conns.append(a)
        T.expect_ok(a.set_num_queues(3), "Set Features Number of Queues")
        ioccsz = N.idctrl_fields(a.idctrl)["ioccsz"]
        qs = [h.ioq(MEM0, a.cntlid, q + 1, ioccsz=ioccsz) for q in range(3)]
        conns += qs
        base = 4096 + idx * 512    # 3 queues x 128 blocks each
        for it in range(6):
            for k, q in enumerate(qs):
                buf = os.urandom(8192 if it % 2 else 65536)
                lba = base + k * 128
                T.expect_ok(q.write(1, lba, buf, incapsule=None), "write")
                rd = q.read(1, lba, len(buf) // BS)
                T.expect_ok(rd, "read")
                check(rd.data == buf, "read back differs")
            T.expect_ok(a.keep_alive(), "keep alive")
        if kind == 0:      # admin queue closed while the I/O queues are busy elsewhere
            pend = [q.submit_write(1, base + k * 128, os.urandom(4096)) for k, q in
                    enumerate(qs)]
            a.close()
            for q in qs:
                q.expect_closed(timeout=10.0)
            del pend
        elif kind == 1:    # orderly: Disconnect the I/O queues, shut down, close
            for q in qs:
                T.expect_ok(q.disconnect(), "Disconnect")
            a.shutdown()
        elif kind == 2:    # silent host: keep-alive expiry on the admin loop ends all queues
            for q in qs:
                q.expect_closed(timeout=10.0)
            a.expect_closed(timeout=5.0)
        else:              # controller reset (CC.EN = 0): the I/O queues go, admin stays
            T.expect_ok(a.prop_set(N.REG_CC, N.CC_DEFAULT), "CC.EN = 0")
            for q in qs:
                q.expect_closed(timeout=10.0)
            cmd, csts = a.prop_get(N.REG_CSTS)
            T.expect_ok(cmd, "Property Get CSTS after the reset")
            check(not csts & N.CSTS_RDY, f"CSTS {csts:#x} after CC.EN = 0")
    except Exception as e:  # noqa: BLE001 - reported by the case
        errors.append(f"host {idx} (teardown {kind}): {type(e).__name__}: {e}")
    finally:
        for c in conns:
            c.close()


def t_mixed(d, rounds=3, hosts=8):
    import threading
    errors = []
    t0 = time.monotonic()
    for r in range(rounds):
        ths = [threading.Thread(target=mixed_host, args=(d, r * hosts + i, errors))
               for i in range(hosts)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        check(not any(th.is_alive() for th in ths), f"round {r}: a host hung")
    check(not errors, "\n".join(errors[:8]))
    ids, errs = churn(d, 400, 2)
    check(not errs, f"churn: {errs[:3]}")
    return (f"{rounds} x {hosts} hosts (admin + 3 I/O queues, 4 teardown kinds) and 400 "
            f"cycles in {time.monotonic() - t0:.1f} s")


def main_mixed(exe):
    """--mixed: the multi-loop workload alone (for ThreadSanitizer), then SIGTERM with
    connections open on both loops."""
    workdir = tempfile.mkdtemp(prefix="nvtcp-mixed-")
    raise_nofile()
    tap = T.Tap()
    d = Daemon(exe, workdir, "mixed", {"subsystems": [T_MEM0_SUBSYS]}, 2)
    T.Ctx.d = d
    if not tap.case("nvtcpd --cores 2 starts", lambda: d.start(timeout=60) and None):
        print(f"1..{tap.n}")
        return 1
    tap.case("mixed workload, controller teardown across loops", lambda: t_mixed(d),
             timeout=240)

    def t_final():
        held = [host(d).admin(MEM0) for _ in range(3)]
        for a in held:
            track(a)
            T.expect_ok(a.set_num_queues(1), "Set Features Number of Queues")
            track(N.Host("127.0.0.1", d.port).conn())
        rc = d.stop(timeout=60)
        check(rc == 0, f"exit code {rc} on SIGTERM:\n{d.stderr_tail()}")
        san = T.sanitizer_errors(d.stderr_text())
        check(not san, "sanitizer report in nvtcpd's stderr:\n" + "\n".join(san[:10]))
    tap.case("SIGTERM with connections on both loops: exit 0, no sanitizer report", t_final,
             timeout=90)
    if d.alive():
        d.proc.kill()
    print(f"1..{tap.n}")
    if tap.skipped:
        print(f"# {len(tap.skipped)} skipped: " + "; ".join(tap.skipped))
    if tap.failed:
        print(f"# {len(tap.failed)} failed; nvtcpd stderr in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if tap.failed else 0


# ---- main -----------------------------------------------------------------------------------
T_MEM0_SUBSYS = {"nqn": MEM0, "allow_any_host": True,
                 "namespaces": [{"nsid": 1, "backend": "memory", "size": T.MEM0_SIZE}]}
RO_CONTENT = bytes(range(256)) * 64 * 4   # 64 KiB


def main(argv):
    if len(argv) > 2 and argv[1] == "--mixed":
        return main_mixed(os.path.abspath(argv[2]))
    exe = argv[1] if len(argv) > 1 else os.environ.get("NVTCPD")
    if not exe or not os.access(exe, os.X_OK):
        print("1..0 # SKIP no nvtcpd binary given")
        return 0
    exe = os.path.abspath(exe)
    workdir = tempfile.mkdtemp(prefix="nvtcp-load-")
    # small quarantine: RSS measures live memory; LSan still reports leaks at exit
    os.environ["ASAN_OPTIONS"] = ":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4"]))
    nofile = raise_nofile()
    tap = T.Tap()
    t_start = time.monotonic()

    ro = os.path.join(workdir, "ro.img")
    with open(ro, "wb") as f:
        f.write(RO_CONTENT)
    os.chmod(ro, 0o444)
    cfg = {"subsystems": [T_MEM0_SUBSYS, {
        "nqn": FAULTS, "allow_any_host": True, "namespaces": [
            {"nsid": 1, "backend": "memory", "size": "8M",
             "inject": {"op": "write", "errno": "EIO", "count": INJECT_WRITES}},
            {"nsid": 2, "backend": "memory", "size": "8M",
             "inject": {"op": "read", "errno": "EIO", "count": INJECT_READS}},
            {"nsid": 3, "backend": "file", "path": ro, "readonly": True}]}]}
    d = Daemon(exe, workdir, "load", cfg, 2)
    T.Ctx.d = d
    if not tap.case("nvtcpd starts (2 loops)", lambda: d.start() and None):
        print(f"1..{tap.n}")
        return 1
    tap.case(f"RLIMIT_NOFILE raised (test {nofile}, nvtcpd soft limit = hard)",
             lambda: t_nofile(d))
    tap.case(f"{CONNS} concurrent connections with verified I/O, no fd leak",
             lambda: t_concurrent(d), timeout=90)
    tap.case(f"{CHURN} connect/disconnect cycles: no fd, memory or controller-ID leak",
             lambda: t_churn(d), timeout=150)
    tap.case("limit: connections (--max-connections: accept and close, logged)",
             lambda: t_max_connections(exe, workdir), timeout=40)
    tap.case("limit: out of file descriptors: no accept spin, served when fds free up",
             lambda: t_out_of_fds(exe, workdir), timeout=40)
    tap.case("limit: queue depth (SQSIZE + 1 outstanding commands)", T.t_sq_overflow)
    tap.case("limit: MDTS (larger transfers fail, no data moved)", T.t_mdts)
    tap.case("limit: in-capsule data size (I/O and admin queues)", T.t_incapsule_too_big)
    tap.case("fault: injected backend errors become media errors, connection lives",
             lambda: t_inject(d))
    tap.case("fault: read-only file namespace refuses writes, connection lives",
             lambda: t_readonly(d))
    tap.case("fault: full filesystem (tmpfs 2 MiB) fails writes, connection lives",
             lambda: t_full_fs(exe, workdir), timeout=60)
    tap.case("keep-alive: a host gone silent without FIN is reaped after KATO, freed",
             lambda: t_silent_host(d), timeout=30)

    def t_final():
        check(d.alive(), "nvtcpd died:\n" + d.stderr_tail())
        rc = d.stop()
        check(rc == 0, f"exit code {rc} on SIGTERM:\n{d.stderr_tail()}")
        san = T.sanitizer_errors(d.stderr_text())
        check(not san, "sanitizer report in nvtcpd's stderr:\n" + "\n".join(san[:10]))
        return f"suite body took {time.monotonic() - t_start:.1f} s"
    tap.case("nvtcpd exits 0 on SIGTERM, no sanitizer report", t_final, timeout=40)
    if d.alive():
        d.proc.kill()
    print(f"1..{tap.n}")
    if tap.skipped:
        print(f"# {len(tap.skipped)} skipped: " + "; ".join(tap.skipped))
    if tap.failed:
        print(f"# {len(tap.failed)} failed; nvtcpd stderr in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if tap.failed else 0


def t_nofile(d):
    with open(f"/proc/{d.proc.pid}/limits") as f:
        line = next(ln for ln in f if ln.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    check(soft == hard, f"nvtcpd open file limit: soft {soft}, hard {hard}")
    check(soft == "unlimited" or int(soft) >= CONNS + 64, f"nvtcpd soft limit {soft}")
    return f"nvtcpd: {soft}/{hard}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
