#!/usr/bin/env python3
"""test_target.py - nvtcpd integration and adversarial suite over loopback, TAP output.

Usage: test_target.py [NVTCPD]     (or NVTCPD=path in the environment)

Starts its own nvtcpd on a free 127.0.0.1 port with a config written to a temp dir, drives it
with the raw-socket host in nvmetcp.py (functional cases, access control, and peers that break
the protocol on purpose), then checks that the daemon survived, exits 0 on SIGTERM and that its
stderr holds no sanitizer report. Every case has a hard time limit (SIGALRM) so nothing hangs.
Expected target limits are read from src/target/tgt.h and conn.h when the tree is there.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nvmetcp as N  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEM0 = "nqn.2024-01.io.nvtcp:mem0"
RESTRICTED = "nqn.2024-01.io.nvtcp:restricted"
UNKNOWN = "nqn.2024-01.io.nvtcp:no-such-subsystem"
ALLOWED_HOST = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
MEM0_SIZE = 64 << 20
BS = 512


# nvtcpd --io-timeout for every daemon of this suite: half-received PDUs and peers that stop
# reading are closed after this many seconds (30 by default; shorter keeps the suite quick).
IO_TIMEOUT_S = 8


def read_limits():
    """The target's advertised limits, from its headers (defaults if the tree is absent)."""
    lim = {"TGT_MDTS": 7, "TGT_MAX_QUEUES": 128, "TGT_MAX_QUEUE_DEPTH": 128,
           "TGT_ADMIN_QUEUE_DEPTH": 32, "TGT_INCAPSULE_IO": 16384, "TGT_INCAPSULE_ADMIN": 8192,
           "TGT_MAXH2CDATA": 128 * 1024, "TGT_AERL": 3}
    for f in ("src/target/tgt.h",):
        try:
            txt = open(os.path.join(ROOT, f)).read()
        except OSError:
            continue
        for k in lim:
            m = re.search(r"#define\s+%s\s+\(?\s*(\d+)\s*(\*\s*(\d+))?" % k, txt)
            if m:
                lim[k] = int(m.group(1)) * (int(m.group(3)) if m.group(3) else 1)
    lim["MAX_XFER"] = 4096 << lim["TGT_MDTS"]
    return lim


LIM = read_limits()

# ---- TAP ------------------------------------------------------------------------------------


class Failure(Exception):
    pass


class CaseTimeout(Exception):
    pass


class Skip(Exception):
    """Raised by a case that cannot run here: reported as "ok N - name # SKIP reason"."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def expect_status(cmd, sct, sc, what):
    check(cmd.done, f"{what}: not completed")
    check(N.st_key(cmd.status) == N.status(sct, sc),
          f"{what}: expected sct={sct:#x} sc={sc:#04x}, got {N.status_str(cmd.status)}")


def expect_ok(cmd, what):
    check(cmd.done and cmd.status == 0, f"{what}: {N.status_str(cmd.status)}")


OPEN = []   # connections opened by the current case, closed after it


def track(c):
    OPEN.append(c)
    return c


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = []
        self.skipped = []

    def result(self, ok, name, reason="", skip=None):
        self.n += 1
        directive = f" # SKIP {skip}" if skip is not None else ""
        print(f"{'ok' if ok else 'not ok'} {self.n} - {name}{directive}", flush=True)
        for line in str(reason).splitlines():
            print(f"# {line}", flush=True)
        if not ok:
            self.failed.append(name)

    def case(self, name, fn, timeout=30):
        def on_alarm(signum, frame):
            raise CaseTimeout(f"case exceeded its {timeout} s limit")
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(timeout)
        ok, reason, skip = True, "", None
        try:
            r = fn()
            if isinstance(r, str):
                reason = r
        except Skip as e:
            skip = " ".join(str(e).split()) or "cannot run here"   # one line
            self.skipped.append(name)
        except (Failure, CaseTimeout, N.ProtocolError) as e:
            ok, reason = False, f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - a crash in a case is a failure of that case
            ok, reason = False, f"{type(e).__name__}: {e}\n" + traceback.format_exc(limit=4)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
            while OPEN:
                OPEN.pop().close()
        self.result(ok, name, reason, skip)
        return ok


# ---- the daemon -----------------------------------------------------------------------------
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, exe, workdir, name, config=None, cores=2):
        self.exe, self.workdir, self.name = exe, workdir, name
        self.config, self.cores = config, cores
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")

    def start(self, timeout=15.0):
        self.port = free_port()
        args = [self.exe]
        if self.config is not None:
            cfg = dict(self.config)
            cfg["ports"] = [{"addr": "127.0.0.1", "port": self.port}]
            path = os.path.join(self.workdir, f"{self.name}.json")
            with open(path, "w") as f:
                json.dump(cfg, f, indent=1)
            args += ["-c", path]
        args += ["--listen", f"127.0.0.1:{self.port}", "--cores", str(self.cores),
                 "--io-timeout", str(IO_TIMEOUT_S)]
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=self.workdir)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Failure(f"{self.name}: nvtcpd exited with {self.proc.returncode} at start:\n"
                              + self.stderr_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise Failure(f"{self.name}: nvtcpd not listening on {self.port} after {timeout} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.err.close()
                return None
        self.err.close()
        return self.proc.returncode

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr_text().splitlines()[-n:])


def sanitizer_errors(text):
    pats = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
            "WARNING: ThreadSanitizer", "AddressSanitizer:DEADLYSIGNAL")
    return [ln for ln in text.splitlines() if any(p in ln for p in pats)]


# ---- helpers --------------------------------------------------------------------------------
class Ctx:
    d = None          # main daemon
    lba_next = 2048   # LBA allocator for mem0 (64 MiB = 131072 blocks)


def lbas(n):
    s = Ctx.lba_next
    Ctx.lba_next += n
    if Ctx.lba_next > MEM0_SIZE // BS:
        Ctx.lba_next = 2048 + n
        s = 2048
    return s


def host(hostnqn=None):
    return N.Host("127.0.0.1", Ctx.d.port, hostnqn=hostnqn, timeout=10.0)


def conn(hdgst=False, ddgst=False, icreq=True):
    c = track(N.Conn("127.0.0.1", Ctx.d.port, 10.0))
    if icreq:
        c.icreq(hdgst, ddgst)
    return c


def admin(h=None, subnqn=MEM0, **kw):
    h = h or host()
    return track(h.admin(subnqn, **kw))


def ctrl_io(hdgst=False, ddgst=False, sqsize=31, cattr=0, nq=4, h=None):
    """A controller on mem0 with one I/O queue: (host, admin conn, io conn)."""
    h = h or host()
    a = admin(h)
    expect_ok(a.set_num_queues(nq), "Set Features Number of Queues")
    f = N.idctrl_fields(a.idctrl)
    q = track(h.ioq(MEM0, a.cntlid, 1, hdgst, ddgst, sqsize=sqsize, cattr=cattr,
                    ioccsz=f["ioccsz"]))
    return h, a, q


def assert_alive(what="after the bad peer"):
    check(Ctx.d.alive(), f"nvtcpd died {what}:\n{Ctx.d.stderr_tail()}")
    h = host()
    c = h.admin(MEM0)
    try:
        check(N.idctrl_fields(c.idctrl)["subnqn"] == MEM0, "identify on a fresh connection")
    finally:
        c.close()


def expect_fatal(c, fes, fei=None, what="", timeout=5.0):
    """The target must answer with a C2HTermReq (FES, FEI) and close; the daemon must live."""
    pdu = c.expect_term(timeout)
    check(pdu is not None, f"{what}: connection closed without a C2HTermReq (expected FES "
                           f"{fes:#x})")
    check(pdu.hlen == 24 and 24 <= pdu.plen <= 152,
          f"{what}: malformed C2HTermReq hlen={pdu.hlen} plen={pdu.plen}")
    check(pdu.fes == fes, f"{what}: FES {pdu.fes:#x}, expected {fes:#x} (FEI {pdu.fei:#x})")
    if fei is not None:
        check(pdu.fei == fei, f"{what}: FEI {pdu.fei:#x}, expected {fei:#x}")
    c.expect_closed(timeout)
    assert_alive(what)
    return pdu


def rnd(n):
    return os.urandom(n)


# ---- functional cases -----------------------------------------------------------------------
def t_discovery():
    h = host(ALLOWED_HOST)
    c = admin(h, N.DISC_NQN)
    f = N.idctrl_fields(c.idctrl)
    check(f["cntrltype"] == 2, f"discovery controller CNTRLTYPE {f['cntrltype']}, expected 2")
    check(f["subnqn"] == N.DISC_NQN, f"discovery SUBNQN {f['subnqn']!r}")
    log = N.read_disc_log(c)
    genctr, numrec, recfmt, ents = N.parse_disc_log(log)
    check(recfmt == 0, f"RECFMT {recfmt}")
    nqns = {e["subnqn"]: e for e in ents}
    for nqn in (MEM0, RESTRICTED):
        check(nqn in nqns, f"{nqn} missing from the discovery log: {sorted(nqns)}")
        check(nqns[nqn]["subtype"] == 2, f"{nqn}: SUBTYPE {nqns[nqn]['subtype']}, expected 2")
    check(N.DISC_NQN in nqns and nqns[N.DISC_NQN]["subtype"] == 3,
          "no record for the current discovery subsystem (SUBTYPE 3)")
    for e in ents:
        check(e["trtype"] == 3 and e["adrfam"] == 1, f"record {e['subnqn']}: trtype/adrfam")
        check(e["traddr"] == "127.0.0.1" and e["trsvcid"] == str(Ctx.d.port),
              f"record {e['subnqn']}: address {e['traddr']}:{e['trsvcid']}")
    cmd = c.get_log_page(N.LOG_DISCOVERY, 1024)
    check(struct.unpack_from("<Q", cmd.data, 0)[0] == genctr, "GENCTR changed between reads")
    part = c.get_log_page(N.LOG_DISCOVERY, 1024, offset=1024)
    expect_ok(part, "partial log read at offset 1024")
    check(part.data == log[1024:2048], "partial log read (offset 1024) differs from the full log")
    part = c.get_log_page(N.LOG_DISCOVERY, 512, offset=16)
    expect_ok(part, "partial log read at offset 16")
    check(part.data == log[16:528], "partial log read (offset 16) differs from the full log")
    # A host not on a subsystem's host list does not see it (discovery.c skips subsystems
    # tgt_subsys_host_allowed() refuses); everything else is the same as for the allowed host.
    c2 = admin(host(), N.DISC_NQN)
    _, numrec2, _, e2 = N.parse_disc_log(N.read_disc_log(c2))
    nqns2 = [e["subnqn"] for e in e2]
    check(RESTRICTED not in nqns2,
          f"{RESTRICTED} listed in the discovery log of a host it does not allow: {nqns2}")
    check(numrec2 == len(e2), f"other host: NUMREC {numrec2}, {len(e2)} records")
    check(nqns2 == [e["subnqn"] for e in ents if e["subnqn"] != RESTRICTED],
          f"other host's records {nqns2}, expected the allowed host's without {RESTRICTED}")
    return f"genctr={genctr} numrec={numrec}; {numrec2} records for another host"


def t_connect():
    h, a, q = ctrl_io()
    check(a.cntlid not in (None, 0xFFFF), f"CNTLID {a.cntlid}")
    expect_ok(q.flush(1), "Flush on the I/O queue")
    cmd = q.disconnect()
    expect_ok(cmd, "Disconnect on the I/O queue")
    return f"cntlid={a.cntlid}"


def t_properties():
    h = host()
    c = track(h.conn())
    cmd = c.connect(MEM0, h.hostnqn, h.hostid)
    expect_ok(cmd, "Connect")
    cmd, cap = c.prop_get(N.REG_CAP, True)
    expect_ok(cmd, "Property Get CAP")
    mqes = (cap & 0xFFFF) + 1
    check(mqes == LIM["TGT_MAX_QUEUE_DEPTH"], f"CAP.MQES+1 = {mqes}, tgt.h says "
                                              f"{LIM['TGT_MAX_QUEUE_DEPTH']}")
    check(cap & (1 << 16), "CAP.CQR must be 1 on fabrics")
    check(cap & (1 << 37), "CAP.CSS NVM not set")
    check((cap >> 24) & 0xFF, "CAP.TO is 0")
    cmd, vs = c.prop_get(N.REG_VS)
    expect_ok(cmd, "Property Get VS")
    check(vs >= 0x10300, f"VS {vs:#x} < 1.3")
    cmd, cc = c.prop_get(N.REG_CC)
    expect_ok(cmd, "Property Get CC")
    check(cc & 1 == 0, f"CC {cc:#x} enabled before CC.EN was written")
    cmd, csts = c.prop_get(N.REG_CSTS)
    expect_ok(cmd, "Property Get CSTS")
    check(csts & 1 == 0, f"CSTS {csts:#x} ready before enable")
    return f"CAP={cap:#x} VS={vs:#x}"


def t_enable_shutdown():
    c = admin(enable=False)
    csts = c.enable()
    check(csts & N.CSTS_RDY, f"CSTS.RDY not set after CC.EN=1 (CSTS {csts:#x})")
    check(not csts & N.CSTS_CFS, "CSTS.CFS set")
    cmd, cc = c.prop_get(N.REG_CC)
    check(cc & 1 and (cc >> 16) & 0xF == 6 and (cc >> 20) & 0xF == 4, f"CC reads back {cc:#x}")
    csts = c.shutdown()
    check(csts & N.CSTS_SHST_MASK == N.CSTS_SHST_CMPLT,
          f"CSTS.SHST not 'complete' after CC.SHN=normal (CSTS {csts:#x})")
    expect_ok(c.prop_set(N.REG_CC, 0), "CC.EN=0 after shutdown")
    end = time.monotonic() + 5
    while True:
        cmd, csts = c.prop_get(N.REG_CSTS)
        if not csts & N.CSTS_RDY or time.monotonic() > end:
            break
        time.sleep(0.02)
    check(not csts & N.CSTS_RDY, f"CSTS.RDY still set after CC.EN=0 (CSTS {csts:#x})")
    # re-enable works after a reset
    csts = c.enable()
    check(csts & N.CSTS_RDY, f"re-enable: CSTS {csts:#x}")


def t_identify_ctrl():
    c = admin()
    f = N.idctrl_fields(c.idctrl)
    check(f["mdts"] == LIM["TGT_MDTS"], f"MDTS {f['mdts']}, tgt.h {LIM['TGT_MDTS']}")
    want_ioccsz = (64 + LIM["TGT_INCAPSULE_IO"]) // 16
    check(f["ioccsz"] == want_ioccsz, f"IOCCSZ {f['ioccsz']}, expected {want_ioccsz}")
    check(f["iorcsz"] == 1, f"IORCSZ {f['iorcsz']}")
    check(f["subnqn"] == MEM0, f"SUBNQN {f['subnqn']!r}")
    check(f["cntlid"] == c.cntlid, f"CNTLID {f['cntlid']} != Connect's {c.cntlid}")
    check(f["cntrltype"] == 1, f"CNTRLTYPE {f['cntrltype']}")
    check(f["sqes"] == 0x66 and f["cqes"] == 0x44, f"SQES {f['sqes']:#x} CQES {f['cqes']:#x}")
    check(f["nn"] >= 1, "NN 0")
    check(f["kas"] > 0, "KAS 0 (keep alive is mandatory on TCP)")
    check(f["sgls"] & 0x3 and f["sgls"] & (1 << 20), f"SGLS {f['sgls']:#x}")
    check(f["msdbd"] == 1, f"MSDBD {f['msdbd']}")
    check(f["aerl"] == LIM["TGT_AERL"], f"AERL {f['aerl']}")
    check(f["ver"] >= 0x10300, f"VER {f['ver']:#x}")
    check(f["sn"] and f["mn"], "empty serial or model number")
    return (f"mdts={f['mdts']} ioccsz={f['ioccsz']} cntlid={f['cntlid']} mn={f['mn']!r} "
            f"oncs={f['oncs']:#x} vwc={f['vwc']:#x} kas={f['kas']}")


def t_identify_ns():
    c = admin()
    cmd = c.identify(N.CNS_NS, nsid=1)
    expect_ok(cmd, "Identify Namespace")
    ns = N.idns_fields(cmd.data)
    check(ns["lbads"] == 9 and ns["ms"] == 0, f"LBA format lbads={ns['lbads']} ms={ns['ms']}")
    check(ns["nsze"] == MEM0_SIZE // BS, f"NSZE {ns['nsze']}, expected {MEM0_SIZE // BS}")
    check(ns["ncap"] == ns["nsze"], f"NCAP {ns['ncap']}")
    check(ns["nguid"] != bytes(16), "NGUID is zero")
    cmd = c.identify(N.CNS_NS, nsid=77)
    check(cmd.status != 0 or cmd.data == bytes(4096),
          "Identify of an inactive NSID must fail or return zeroes")
    return f"nsze={ns['nsze']} nlbaf={ns['nlbaf']} dlfeat={ns['dlfeat']:#x}"


def t_active_ns():
    c = admin()
    cmd = c.identify(N.CNS_NS_ACTIVE, nsid=0)
    expect_ok(cmd, "Identify Active NS list")
    ids = struct.unpack_from("<1024I", cmd.data)
    check(ids[0] == 1 and ids[1] == 0, f"active list {ids[:4]}")
    cmd = c.identify(N.CNS_NS_ACTIVE, nsid=1)
    expect_ok(cmd, "Identify Active NS list above 1")
    check(struct.unpack_from("<I", cmd.data)[0] == 0, "list above NSID 1 not empty")


def t_ns_desc():
    seen = []
    for _ in range(2):
        c = admin()
        cmd = c.identify(N.CNS_NS_DESC, nsid=1)
        expect_ok(cmd, "Identify NS descriptors")
        d = N.parse_ns_desc(cmd.data)
        check(2 in d and len(d[2]) == 16, f"no NGUID descriptor: {d}")
        check(3 in d and len(d[3]) == 16, f"no UUID descriptor: {d}")
        idns = N.idns_fields(c.identify(N.CNS_NS, nsid=1).data)
        check(idns["nguid"] == d[2], "NGUID in Identify NS differs from the descriptor")
        seen.append(d)
        c.close()
    check(seen[0][2] == seen[1][2] and seen[0][3] == seen[1][3],
          "NGUID/UUID differ between two connects")
    return f"nguid={seen[0][2].hex()} uuid={seen[0][3].hex()}"


def smart_counters(c):
    cmd = c.get_log_page(N.LOG_SMART, 512)
    expect_ok(cmd, "Get Log Page SMART")
    d = cmd.data
    u = [int.from_bytes(d[o:o + 16], "little") for o in (32, 48, 64, 80)]
    return {"dur": u[0], "duw": u[1], "reads": u[2], "writes": u[3]}


def t_log_pages():
    h, a, q = ctrl_io()
    # error log: an error on the I/O queue must be recorded
    cmd = a.get_log_page(N.LOG_ERROR, 64 * 4)
    expect_ok(cmd, "Get Log Page error")
    cnt0 = struct.unpack_from("<Q", cmd.data, 0)[0]
    bad = q.read(1, MEM0_SIZE // BS, 1)
    check(bad.status != 0, "out-of-range read succeeded")
    cmd = a.get_log_page(N.LOG_ERROR, 64 * 4)
    cnt1, sqid, cid = struct.unpack_from("<QHH", cmd.data, 0)
    check(cnt1 > cnt0, f"error log ERROR COUNT did not increase ({cnt0} -> {cnt1})")
    check(sqid == 1 and cid == bad.cid,
          f"error log entry sqid={sqid} cid={cid}, expected 1/{bad.cid}")
    # SMART counters grow with I/O
    s0 = smart_counters(a)
    slba = lbas(128)
    expect_ok(q.write(1, slba, rnd(65536)), "write")
    expect_ok(q.read(1, slba, 128), "read")
    s1 = smart_counters(a)
    check(s1["reads"] > s0["reads"] and s1["writes"] > s0["writes"],
          f"SMART host reads/writes did not increase: {s0} -> {s1}")
    check(s1["dur"] >= s0["dur"] and s1["duw"] >= s0["duw"] and s1["duw"] > 0,
          f"SMART data units: {s0} -> {s1}")
    # Changed Namespace List: 1024 NSIDs (4096 bytes), all zero: no namespace ever changed
    cmd = a.get_log_page(N.LOG_CHANGED_NS, 4096)
    expect_ok(cmd, "Get Log Page changed namespaces")
    check(len(cmd.data) == 4096, f"changed namespace list: {len(cmd.data)} bytes")
    nz = [i for i in range(1024) if struct.unpack_from("<I", cmd.data, 4 * i)[0]]
    check(not nz, f"changed namespace list not empty: entries {nz[:8]} = "
                  f"{[struct.unpack_from('<I', cmd.data, 4 * i)[0] for i in nz[:8]]}")
    # its length: an offset at its end is valid, one dword past it is not
    expect_ok(a.get_log_page(N.LOG_CHANGED_NS, 4, offset=4096),
              "changed namespace list read at offset 4096 (its end)")
    expect_status(a.get_log_page(N.LOG_CHANGED_NS, 4, offset=4100), 0, 0x02,
                  "changed namespace list read at offset 4100 (past its 4096 bytes)")
    cmd = a.get_log_page(0xC7, 512)
    check(N.st_key(cmd.status) in (N.status(1, 0x09), N.status(0, 0x02)),
          f"unknown log page: {N.status_str(cmd.status)}")
    return f"smart {s0} -> {s1}"


def t_nuse():
    """Thin provisioning on a memory namespace: NUSE counts the blocks its data occupies (up
    to a 2 MiB huge page per written spot), grows with a write to deallocated space and
    shrinks when that space is deallocated again."""
    h, a, q = ctrl_io()

    def nuse():
        cmd = a.identify(N.CNS_NS, nsid=1)
        expect_ok(cmd, "Identify Namespace")
        ns = N.idns_fields(cmd.data)
        check(ns["nsfeat"] & 1, f"NSFEAT {ns['nsfeat']:#x}: thin provisioning not claimed")
        check(ns["nuse"] <= ns["nsze"], f"NUSE {ns['nuse']} > NSZE {ns['nsze']}")
        return ns["nuse"]

    span = 4 << 20  # the namespace's last 4 MiB, 2 MiB aligned
    slba, nlb = (MEM0_SIZE - span) // BS, span // BS
    expect_ok(q.dsm(1, [(slba, nlb)]), "deallocate the last 4 MiB")
    before = nuse()
    expect_ok(q.write(1, slba + 8, rnd(4096)), "4 KiB write into deallocated space")
    grown = nuse()
    check(8 <= grown - before <= (2 << 20) // BS,
          f"NUSE {before} -> {grown} after a 4 KiB write (8 to 4096 blocks more expected)")
    expect_ok(q.dsm(1, [(slba, nlb)]), "deallocate it again")
    check(nuse() == before, f"NUSE {grown} -> {nuse()} after the deallocate, was {before}")
    check(N.idctrl_fields(a.idctrl)["frmw"] == 0x3,
          "FRMW %#x: one read-only slot expected (as the firmware slot log says)"
          % N.idctrl_fields(a.idctrl)["frmw"])


def t_fw_slot_log():
    # Firmware Slot Information is a mandatory log page (NVMe base spec, log page table).
    c = admin()
    cmd = c.get_log_page(N.LOG_FW_SLOT, 512)
    expect_ok(cmd, "Get Log Page firmware slot (03h)")
    f = N.idctrl_fields(c.idctrl)
    check(N.cstr(cmd.data[8:16]) == f["fr"], f"slot 1 revision {cmd.data[8:16]!r} != FR "
                                             f"{f['fr']!r}")


def t_features():
    c = admin()
    f = N.idctrl_fields(c.idctrl)
    cmd = c.set_num_queues(8, 6)
    expect_ok(cmd, "Set Features Number of Queues")
    nsq, ncq = (cmd.dw0 & 0xFFFF) + 1, (cmd.dw0 >> 16) + 1
    check(1 <= nsq <= LIM["TGT_MAX_QUEUES"] and 1 <= ncq <= LIM["TGT_MAX_QUEUES"],
          f"granted {nsq}/{ncq}")
    cmd = c.get_features(N.FEAT_NUM_QUEUES)
    expect_ok(cmd, "Get Features Number of Queues")
    check(cmd.dw0 == ((ncq - 1) << 16) | (nsq - 1), f"Get NQ {cmd.dw0:#x} != granted")
    expect_ok(c.set_features(N.FEAT_KATO, 30000), "Set Features KATO")
    cmd = c.get_features(N.FEAT_KATO)
    expect_ok(cmd, "Get Features KATO")
    check(cmd.dw0 == 30000, f"KATO reads back {cmd.dw0}")
    cmd = c.get_features(N.FEAT_VWC)
    if f["vwc"] & 1:
        expect_ok(cmd, "Get Features VWC")
        expect_ok(c.set_features(N.FEAT_VWC, 0), "Set VWC off")
        check(c.get_features(N.FEAT_VWC).dw0 & 1 == 0, "VWC still on")
        expect_ok(c.set_features(N.FEAT_VWC, 1), "Set VWC on")
        check(c.get_features(N.FEAT_VWC).dw0 & 1 == 1, "VWC still off")
    else:
        check(cmd.status != 0 or cmd.dw0 & 1 == 0, "VWC enabled but not present")
    # Async Event Configuration: a controller starts with every event of OAES enabled. Turn
    # them all off (a value that differs from the default, so a Get Features that ignored Set
    # Features would fail), read it back, then restore and read back again.
    oaes = f["oaes"]
    check(oaes != 0, "OAES 0: no asynchronous event to configure")
    cmd = c.get_features(N.FEAT_ASYNC_EVENT)
    expect_ok(cmd, "Get Async Event Config")
    check(cmd.dw0 == oaes, f"Async Event Config starts at {cmd.dw0:#x}, expected OAES {oaes:#x}")
    expect_ok(c.set_features(N.FEAT_ASYNC_EVENT, 0), "Set Async Event Config 0")
    cmd = c.get_features(N.FEAT_ASYNC_EVENT)
    expect_ok(cmd, "Get Async Event Config after setting 0")
    check(cmd.dw0 == 0, f"Async Event Config reads {cmd.dw0:#x}, set 0")
    cmd = c.get_features(N.FEAT_ASYNC_EVENT, sel=1)
    expect_ok(cmd, "Get Async Event Config (default)")
    check(cmd.dw0 == oaes, f"Async Event Config default {cmd.dw0:#x}, expected {oaes:#x}")
    # an event the controller does not report in OAES (bits 9-11: firmware activation,
    # telemetry, ANA change) is refused
    extra = next(b for b in (1 << 9, 1 << 10, 1 << 11) if not oaes & b)
    cmd = c.set_features(N.FEAT_ASYNC_EVENT, oaes | extra)
    expect_status(cmd, 0, 0x02, "Set Async Event Config with an unsupported event")
    check(c.get_features(N.FEAT_ASYNC_EVENT).dw0 == 0, "refused Set Features changed AEC")
    # the SMART / Health critical warning bits 7:0 are accepted (the SPDK host sets 0-4)
    expect_ok(c.set_features(N.FEAT_ASYNC_EVENT, oaes | 0x1F), "Set AEC with critical warnings")
    check(c.get_features(N.FEAT_ASYNC_EVENT).dw0 == oaes | 0x1F, "critical warning bits lost")
    expect_ok(c.set_features(N.FEAT_ASYNC_EVENT, oaes), "Set Async Event Config back to OAES")
    cmd = c.get_features(N.FEAT_ASYNC_EVENT)
    expect_ok(cmd, "Get Async Event Config after restoring")
    check(cmd.dw0 == oaes, f"Async Event Config reads {cmd.dw0:#x} after restoring {oaes:#x}")
    cmd = c.get_features(0x7D)
    check(cmd.status != 0, "Get Features of an unknown FID succeeded")
    return f"queues {nsq}/{ncq} oaes={f['oaes']:#x}"


def t_keep_alive():
    c = admin(kato=3000)
    expect_ok(c.keep_alive(), "Keep Alive")
    # keeps the controller alive past KATO while the host sends keep-alives
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        expect_ok(c.keep_alive(), "Keep Alive")
        time.sleep(0.5)
    expect_ok(c.identify(N.CNS_CTRL), "Identify after 4 s of keep-alives (KATO 3 s)")


def t_kato_expiry():
    h = host()
    a = admin(h, kato=1500)
    expect_ok(a.set_num_queues(2), "Set Features Number of Queues")
    f = N.idctrl_fields(a.idctrl)
    q = track(h.ioq(MEM0, a.cntlid, 1, ioccsz=f["ioccsz"]))
    t0 = time.monotonic()
    waited = a.expect_closed(timeout=8.0)
    check(waited >= 1.0, f"admin queue closed after only {waited:.2f} s (KATO 1.5 s)")
    q.expect_closed(timeout=3.0)
    total = time.monotonic() - t0
    assert_alive("after a keep-alive timeout")
    return f"silent controller torn down after {waited:.2f} s (I/O queue by {total:.2f} s)"


def t_aer():
    c = admin()
    a = c.aer()
    try:
        c.wait(a, timeout=1.0)
        raise Failure(f"AER completed without an event: {N.status_str(a.status)}")
    except socket.timeout:
        pass
    expect_ok(c.keep_alive(), "Keep Alive while an AER is held")
    check(not a.done, "AER completed")
    # AERL+1 AERs may be outstanding; one more fails with Asynchronous Event Request Limit
    extra = [c.aer() for _ in range(LIM["TGT_AERL"])]
    over = c.aer()
    c.wait(over, timeout=3.0)
    expect_status(over, 1, 0x05, "AER beyond AERL")
    check(not any(x.done for x in [a] + extra), "held AERs completed")


SIZES = [512, 4096, 16384, 65536, 131072, LIM["MAX_XFER"]]


def rw_roundtrips(hd, dd):
    h, a, q = ctrl_io(hd, dd)
    done = []
    for size in SIZES:
        for inc in (True, False):
            if inc and size > q.max_incapsule:
                continue
            slba = lbas(size // BS)
            data = rnd(size)
            cmd = q.write(1, slba, data, incapsule=inc)
            mode = "in-capsule" if inc else "R2T"
            expect_ok(cmd, f"write {size} B {mode}")
            check(inc or cmd.r2ts, f"write {size} B via R2T: no R2T seen")
            rd = q.read(1, slba, size // BS)
            expect_ok(rd, f"read {size} B")
            check(rd.data == data, f"read {size} B ({mode} write): data mismatch")
            check(not rd.success_flag, "C2HData SUCCESS with SQ flow control on")
            done.append(f"{size // 1024 or '0.5'}K{'i' if inc else 'r'}")
    return " ".join(done)


def t_sqfc_disabled():
    h, a, q = ctrl_io(cattr=0x04)
    slba = lbas(8)
    data = rnd(4096)
    expect_ok(q.write(1, slba, data), "write")
    rd = q.read(1, slba, 8)
    check(rd.success_flag, "read completed by a CapsuleResp, expected C2HData with SUCCESS")
    check(rd.data == data, "data mismatch")
    # if a CapsuleResp followed the SUCCESS, the next PDU would be it (unknown cid: error)
    expect_ok(q.flush(1), "Flush after the SUCCESS read")
    big = q.read(1, slba, 8)
    check(big.status == 0, "second read")


def t_fua_flush():
    h, a, q = ctrl_io()
    slba = lbas(16)
    data = rnd(8192)
    expect_ok(q.write(1, slba, data, fua=True), "FUA write (in-capsule)")
    expect_ok(q.write(1, slba, data, incapsule=False, fua=True),
              "FUA write (R2T)")
    expect_ok(q.flush(1), "Flush")
    expect_ok(q.flush(N.NSID_ALL), "Flush NSID FFFFFFFFh")
    check(q.read(1, slba, 16).data == data, "data after FUA write")


def t_write_zeroes():
    h, a, q = ctrl_io()
    slba = lbas(64)
    expect_ok(q.write(1, slba, rnd(32768), incapsule=False), "write")
    expect_ok(q.write_zeroes(1, slba + 8, 40), "Write Zeroes")
    rd = q.read(1, slba, 64)
    check(rd.data[4096:4096 + 40 * BS] == bytes(40 * BS), "Write Zeroes range not zero")
    check(rd.data[:4096] != bytes(4096) and rd.data[48 * BS:] != bytes(16 * BS),
          "Write Zeroes spilled outside its range")


def t_dsm():
    h, a, q = ctrl_io()
    slba = lbas(64)
    expect_ok(q.write(1, slba, rnd(32768), incapsule=False), "write")
    expect_ok(q.dsm(1, [(slba, 16), (slba + 32, 8)]), "DSM deallocate")
    rd = q.read(1, slba, 64)
    check(rd.data[:16 * BS] == bytes(16 * BS), "first deallocated range does not read zeroes")
    check(rd.data[32 * BS:40 * BS] == bytes(8 * BS), "second deallocated range not zeroes")
    check(rd.data[16 * BS:32 * BS] != bytes(16 * BS), "data between the ranges lost")


def t_lba_range():
    h, a, q = ctrl_io()
    nsze = MEM0_SIZE // BS
    expect_status(q.read(1, nsze, 1), 0, 0x80, "read at NSZE")
    expect_status(q.read(1, nsze - 4, 8), 0, 0x80, "read crossing NSZE")
    expect_status(q.write(1, nsze - 1, rnd(1024)), 0, 0x80, "in-capsule write crossing NSZE")
    expect_status(q.write(1, nsze - 1, rnd(65536), incapsule=False), 0, 0x80,
                  "R2T write crossing NSZE")
    expect_status(q.write_zeroes(1, nsze, 1), 0, 0x80, "Write Zeroes at NSZE")
    expect_status(q.read(1, (1 << 64) - 1, 1), 0, 0x80, "read at SLBA 2^64-1")
    expect_ok(q.read(1, nsze - 1, 1), "last block still readable: connection alive")


def t_zero_sgl_no_data():
    # Commands that move no data: Linux nvmet ignores a zero-length SGL whatever its type and
    # SPDK never parses the SGL when there is no data, so an all-zero DPTR must be accepted.
    h, a, q = ctrl_io()
    expect_ok(a.run(N.build_sqe(N.ADM_KEEP_ALIVE, 0, sgl_type=0)), "Keep Alive, zeroed SGL")
    expect_ok(a.run(N.build_sqe(N.FABRICS, 0, fctype=N.FCT_PROP_GET, sgl_type=0,
                                specific=struct.pack("<B3xI", 0, N.REG_CSTS))),
              "Property Get, zeroed SGL")
    expect_ok(q.run(N.build_sqe(N.IO_FLUSH, 0, nsid=1, sgl_type=0)), "Flush, zeroed SGL")


def t_invalid_opcode():
    h, a, q = ctrl_io()
    expect_status(q.run(N.build_sqe(0x7E, 0, nsid=1)), 0, 0x01, "I/O opcode 7Eh")
    expect_status(a.run(N.build_sqe(0xC5, 0)), 0, 0x01, "admin opcode C5h")
    expect_status(a.run(N.build_sqe(0x01, 0)), 0, 0x01, "Create I/O SQ on fabrics")
    expect_ok(q.flush(1), "connection alive")


def t_invalid_ns():
    h, a, q = ctrl_io()
    expect_status(q.read(99, 0, 1), 0, 0x0B, "read NSID 99")
    expect_status(q.write(0, 0, rnd(512)), 0, 0x0B, "write NSID 0")
    expect_status(q.write(99, 0, rnd(65536), incapsule=False), 0, 0x0B, "R2T write NSID 99")
    expect_ok(q.flush(1), "connection alive")


def t_mdts():
    h, a, q = ctrl_io()
    big = LIM["MAX_XFER"] + 4096
    rd = q.read(1, lbas(big // BS), big // BS)
    check(rd.status != 0 and N.st_dnr(rd.status), f"read of {big} B > MDTS: "
                                                  f"{N.status_str(rd.status)}")
    check(rd.c2h_pdus == 0, "data sent for a read beyond MDTS")
    wr = q.write(1, lbas(big // BS), rnd(big), incapsule=False)
    check(wr.status != 0, f"write of {big} B > MDTS succeeded")
    check(not wr.r2ts, "R2T sent for a write beyond MDTS")
    expect_ok(q.read(1, 0, 8), "connection alive")
    return f"read: {N.status_str(rd.status)}; write: {N.status_str(wr.status)}"


def t_file_backend(exe, workdir):
    path = os.path.join(workdir, "ns-file.img")
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    cfg = {"subsystems": [{"nqn": MEM0, "allow_any_host": True, "namespaces": [
        {"nsid": 1, "backend": "file", "path": path, "size": "16M", "block_size": 512}]}]}
    d = Daemon(exe, workdir, "file-backend", cfg, cores=1).start()
    data = rnd(65536)
    try:
        h = N.Host("127.0.0.1", d.port)
        a = track(h.admin(MEM0))
        ns = N.idns_fields(a.identify(N.CNS_NS, nsid=1).data)
        check(ns["nsze"] == (16 << 20) // BS, f"file namespace NSZE {ns['nsze']}")
        expect_ok(a.set_num_queues(1), "Set Features Number of Queues")
        q = track(h.ioq(MEM0, a.cntlid, 1, ioccsz=N.idctrl_fields(a.idctrl)["ioccsz"]))
        expect_ok(q.write(1, 100, data, incapsule=False), "write to the file namespace")
        expect_ok(q.write(1, 300, data[:8192]), "in-capsule write to the file namespace")
        expect_ok(q.flush(1), "flush")
        expect_ok(q.disconnect(), "Disconnect")
        a.shutdown()
        a.close()
        q.close()
        rc = d.stop()
        check(rc == 0, f"nvtcpd (file backend) exit code {rc} on SIGTERM")
        with open(path, "rb") as f:
            f.seek(100 * 512)
            check(f.read(65536) == data, "file content differs from what was written")
        d2 = Daemon(exe, workdir, "file-backend-2", cfg, cores=1).start()
        try:
            h = N.Host("127.0.0.1", d2.port)
            a = track(h.admin(MEM0))
            expect_ok(a.set_num_queues(1), "Set Features Number of Queues")
            q = track(h.ioq(MEM0, a.cntlid, 1, ioccsz=N.idctrl_fields(a.idctrl)["ioccsz"]))
            rd = q.read(1, 100, 128)
            expect_ok(rd, "read after restart")
            check(rd.data == data, "data read after restart differs")
            check(q.read(1, 300, 16).data == data[:8192], "in-capsule data after restart")
            a.close()
            q.close()
        finally:
            rc2 = d2.stop()
            san = sanitizer_errors(d2.stderr_text())
        check(rc2 == 0, f"restarted nvtcpd exit code {rc2}")
        check(not san, "sanitizer report:\n" + "\n".join(san[:5]))
    finally:
        d.stop()
    san = sanitizer_errors(d.stderr_text())
    check(not san, "sanitizer report:\n" + "\n".join(san[:5]))


def t_default_config(exe, workdir):
    d = Daemon(exe, workdir, "default", None, cores=1).start()
    try:
        h = N.Host("127.0.0.1", d.port)
        a = track(h.admin(MEM0))
        ns = N.idns_fields(a.identify(N.CNS_NS, nsid=1).data)
        check(ns["nsze"] == (1 << 30) // 512 and ns["lbads"] == 9,
              f"default namespace nsze={ns['nsze']} lbads={ns['lbads']}")
        a.close()
    finally:
        rc = d.stop()
    check(rc == 0, f"exit code {rc} on SIGTERM")
    san = sanitizer_errors(d.stderr_text())
    check(not san, "sanitizer report:\n" + "\n".join(san[:5]))


# ---- access control -------------------------------------------------------------------------
def connect_raw(h, subnqn, qid=0, cntlid=0xFFFF, sqsize=31, kato=0):
    c = track(h.conn())
    return c, c.connect(subnqn, h.hostnqn, h.hostid, qid=qid, cntlid=cntlid, sqsize=sqsize,
                        kato=kato)


def expect_invalid_param(cmd, ipo, in_data, what):
    expect_status(cmd, 1, 0x82, what)
    want = (1 << 16 if in_data else 0) | ipo  # IPO bits 15:0, IATTR bit 16 (Linux decodes so)
    check(cmd.dw0 == want, f"{what}: IATTR/IPO dw0 {cmd.dw0:#x}, expected {want:#x}")


def t_unknown_nqn():
    c, cmd = connect_raw(host(), UNKNOWN)
    expect_invalid_param(cmd, 256, True, "Connect to an unknown NQN")
    # the connection is still usable for another Connect
    expect_ok(c.connect(MEM0, ALLOWED_HOST, os.urandom(16)), "Connect to mem0 after the failure")


def t_host_not_allowed():
    c, cmd = connect_raw(host(), RESTRICTED)
    expect_status(cmd, 1, 0x84, "Connect from a host not allowed")
    c, cmd = connect_raw(host(ALLOWED_HOST), RESTRICTED)
    expect_ok(cmd, "Connect from the allowed host")


def t_bad_cntlid():
    h, a, q = ctrl_io()
    other = host()
    c, cmd = connect_raw(other, MEM0, qid=2, cntlid=a.cntlid)
    expect_invalid_param(cmd, 16, True, "I/O Connect by another host to this CNTLID")
    c, cmd = connect_raw(h, MEM0, qid=2, cntlid=(a.cntlid + 1000) & 0xFFEF)
    expect_invalid_param(cmd, 16, True, "I/O Connect to a CNTLID that does not exist")
    c, cmd = connect_raw(h, MEM0, qid=1, cntlid=a.cntlid)
    check(cmd.status != 0, "a second queue with qid 1 was accepted")
    return f"duplicate qid: {N.status_str(cmd.status)}"


def t_io_before_admin():
    c, cmd = connect_raw(host(), MEM0, qid=1, cntlid=0xFFFF)
    expect_invalid_param(cmd, 16, True, "I/O Connect with no admin queue (dynamic CNTLID)")
    c, cmd = connect_raw(host(), MEM0, qid=1, cntlid=1)
    check(N.st_key(cmd.status) == N.status(1, 0x82), f"I/O Connect with no admin queue: "
                                                     f"{N.status_str(cmd.status)}")


def t_sqsize():
    c, cmd = connect_raw(host(), MEM0, qid=0, sqsize=0)
    expect_invalid_param(cmd, 44, False, "admin Connect SQSIZE 0")
    c, cmd = connect_raw(host(), MEM0, qid=0, sqsize=LIM["TGT_ADMIN_QUEUE_DEPTH"])
    expect_invalid_param(cmd, 44, False, "admin Connect SQSIZE > admin queue depth")
    h = host()
    a = admin(h)
    expect_ok(a.set_num_queues(2), "Set Features Number of Queues")
    c, cmd = connect_raw(h, MEM0, qid=1, cntlid=a.cntlid, sqsize=0)
    expect_invalid_param(cmd, 44, False, "I/O Connect SQSIZE 0")
    c, cmd = connect_raw(h, MEM0, qid=1, cntlid=a.cntlid, sqsize=LIM["TGT_MAX_QUEUE_DEPTH"])
    expect_invalid_param(cmd, 44, False, "I/O Connect SQSIZE > MQES")
    c, cmd = connect_raw(h, MEM0, qid=1, cntlid=a.cntlid, sqsize=LIM["TGT_MAX_QUEUE_DEPTH"] - 1)
    expect_ok(cmd, "I/O Connect SQSIZE = MQES")


# ---- adversarial ----------------------------------------------------------------------------
def capsule_sqe(cid=1):
    return N.build_sqe(N.ADM_KEEP_ALIVE, cid)


def t_cmd_before_icreq():
    c = conn(icreq=False)
    c.send_raw(N.build_capsule_cmd(capsule_sqe()))
    expect_fatal(c, N.FES_SEQUENCE, what="CapsuleCmd before ICReq")


def t_icreq_twice():
    c = conn()
    c.send_raw(N.build_icreq())
    expect_fatal(c, N.FES_SEQUENCE, what="second ICReq")


def t_icreq_pfv():
    c = conn(icreq=False)
    c.send_raw(N.build_icreq(pfv=1))
    expect_fatal(c, N.FES_UNSUPPORTED, 8, "ICReq PFV 1")
    c = conn(icreq=False)
    c.send_raw(N.build_icreq(hpda=32))
    expect_fatal(c, N.FES_INVALID_HEADER, 10, "ICReq HPDA 32")


def t_bad_pdu_type():
    for t in (0x08, 0x0A, 0x0F, 0xFF):
        c = conn()
        c.send_raw(N.ch(t, 0, 24, 0, 24) + bytes(16))
        expect_fatal(c, N.FES_INVALID_HEADER, 0, f"PDU type {t:#x}")
    # controller-to-host PDUs sent by a host: sequence errors
    for t, pdu in ((N.ICRESP, N.build_icresp()),
                   (N.RSP, N.build_capsule_resp(N.build_cqe(1))),
                   (N.C2H_DATA, N.build_c2h_data(1, 0, bytes(512))),
                   (N.R2T, N.build_r2t(1, 1, 0, 512)),
                   (N.C2H_TERM, N.build_term_req(1, 0, c2h=True))):
        c = conn()
        c.send_raw(pdu)
        expect_fatal(c, N.FES_SEQUENCE, what=f"host sent {N.PDU_NAMES[t]}")


def t_bad_hlen():
    c = conn(icreq=False)
    c.send_raw(N.build_icreq(hlen=120))
    expect_fatal(c, N.FES_INVALID_HEADER, 2, "ICReq HLEN 120")
    c = conn()
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), hlen=64))
    expect_fatal(c, N.FES_INVALID_HEADER, 2, "CapsuleCmd HLEN 64")
    c = conn()
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), hlen=80))
    expect_fatal(c, N.FES_INVALID_HEADER, 2, "CapsuleCmd HLEN 80")
    c = conn()
    c.send_raw(N.build_h2c_data(1, 1, 0, bytes(512), hlen=28))
    expect_fatal(c, N.FES_INVALID_HEADER, 2, "H2CData HLEN 28")
    # H2CTermReq with a bad HLEN: a TermReq (FES 01h/FEI 2) or a plain close are both fine,
    # since the host is going away anyway.
    c = conn()
    c.send_raw(N.ch(N.H2C_TERM, 0, 16, 0, 24) + bytes(16))
    pdu = c.expect_term(5.0)
    if pdu is not None:
        check(pdu.fes == 1 and pdu.fei == 2, f"H2CTermReq HLEN 16: FES {pdu.fes} FEI {pdu.fei}")
        c.expect_closed(5.0)
    assert_alive("H2CTermReq with HLEN 16")
    # a well-formed H2CTermReq: the target closes without answering with a TermReq
    c = conn()
    c.send_raw(N.build_term_req(N.FES_SEQUENCE))
    pdu = c.expect_term(5.0)
    check(pdu is None, "target answered an H2CTermReq with a C2HTermReq")
    assert_alive("H2CTermReq")


def t_bad_pdo():
    sqe = N.build_sqe(N.IO_WRITE, 1, nsid=1, sgl_type=N.SGL_INCAPSULE, sgl_len=512)
    for pdo, what in ((68, "PDO inside the header"), (74, "PDO not aligned"),
                      (132, "PDO > 128")):
        c = conn()
        c.send_raw(N.build_capsule_cmd(sqe, bytes(512), pdo=pdo))
        expect_fatal(c, N.FES_INVALID_HEADER, 3, what)
    c = conn()
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), pdo=72))
    expect_fatal(c, N.FES_INVALID_HEADER, 3, "PDO without data")


def t_bad_plen():
    c = conn(icreq=False)
    c.send_raw(N.build_icreq(plen=256) + bytes(128))
    expect_fatal(c, N.FES_INVALID_HEADER, 4, "ICReq PLEN 256")
    c = conn()
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), plen=40))
    expect_fatal(c, N.FES_INVALID_HEADER, 4, "CapsuleCmd PLEN 40 < HLEN")
    c = conn()
    c.send_raw(N.ch(N.RSP, 0, 24, 0, 8))
    pdu = c.expect_term(5.0)
    check(pdu is not None and pdu.fes in (N.FES_SEQUENCE, N.FES_INVALID_HEADER),
          f"CapsuleResp with PLEN 8: {pdu and (pdu.fes, pdu.fei)}")
    c.expect_closed()
    c = conn()
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), pdo=72, plen=0x7FFFFFF0))
    expect_fatal(c, N.FES_INVALID_HEADER, 4, "CapsuleCmd PLEN 2 GiB")
    c = conn()
    c.send_raw(N.build_term_req(1, 0, bad=bytes(128))[:4] + struct.pack("<I", 24 + 200))
    pdu = c.expect_term(5.0)
    if pdu is not None:
        check(pdu.fes == 1 and pdu.fei == 4, f"H2CTermReq PLEN 224: FES {pdu.fes} FEI {pdu.fei}")
    assert_alive("H2CTermReq PLEN 224")


def t_incapsule_too_big():
    h, a, q = ctrl_io()
    big = LIM["TGT_INCAPSULE_IO"] + 512
    q.send_raw(q.capsule(q.rw_sqe(N.IO_WRITE, 1, lbas(big // BS), big // BS, big,
                                  N.SGL_INCAPSULE), rnd(big)))
    expect_fatal(q, N.FES_INVALID_HEADER, 4, f"{big} B in-capsule on an I/O queue")
    # Admin queue: more than 8 KiB but within the connection's 16 KiB header limit fails the
    # command with SGL Data Block Length Invalid (the connection lives, conn.c); beyond the
    # 16 KiB limit it is fatal.
    a2 = admin()
    big = LIM["TGT_INCAPSULE_ADMIN"] + 512
    cmd = a2.run(N.build_sqe(N.ADM_SET_FEATURES, 0, cdw10=N.FEAT_KATO, cdw11=60000,
                             sgl_type=N.SGL_INCAPSULE, sgl_len=big), bytes(big))
    expect_status(cmd, 0, 0x0F, f"{big} B in-capsule on the admin queue")
    expect_ok(a2.keep_alive(), "admin queue alive after the oversized capsule")
    big = max(LIM["TGT_INCAPSULE_IO"], LIM["TGT_INCAPSULE_ADMIN"]) + 512
    a2.send_raw(a2.capsule(N.build_sqe(N.ADM_SET_FEATURES, 5, cdw10=N.FEAT_KATO,
                                       sgl_type=N.SGL_INCAPSULE, sgl_len=big), bytes(big)))
    expect_fatal(a2, N.FES_INVALID_HEADER, 4, f"{big} B in-capsule on the admin queue")


def t_incapsule_offset():
    """In-capsule data at an offset (SGL Offset subtype with a non-zero address, SGLS bit 20):
    the bytes before it are ignored, the rest is the data; an offset the capsule does not
    carry is SGL Offset Invalid, a length that does not end the capsule SGL Data Block Length
    Invalid, and the queue lives on."""
    for ddgst in (False, True):
        h, a, q = ctrl_io(ddgst=ddgst)
        # 4 KiB lands in the memory namespace itself, 8 KiB through a pool buffer
        for off, size in ((16, 4096), (512, 8192), (4096, 512)):
            slba, data = lbas(size // BS), rnd(size)
            sqe = N.build_sqe(N.IO_WRITE, 0, nsid=1, sgl_type=N.SGL_INCAPSULE, sgl_len=size,
                              sgl_addr=off, cdw10=slba, cdw12=size // BS - 1)
            expect_ok(q.wait(q.submit(sqe, bytes([0xEE]) * off + data)),
                      f"{size}-byte write at in-capsule offset {off} (ddgst {ddgst})")
            check(q.read(1, slba, size // BS).data == data,
                  f"{size} bytes written at in-capsule offset {off} read back different")
        slba, good = lbas(8), rnd(4096)
        expect_ok(q.write(1, slba, good), "write before the bad offsets")
        for off, carried, sc, what in ((4096, 4096, 0x16, "offset past the capsule's data"),
                                       (16, 4096 + 32, 0x0F, "data not ending the capsule"),
                                       (16, 4096, 0x0F, "capsule shorter than offset+length")):
            sqe = N.build_sqe(N.IO_WRITE, 0, nsid=1, sgl_type=N.SGL_INCAPSULE, sgl_len=4096,
                              sgl_addr=off, cdw10=slba, cdw12=7)
            expect_status(q.wait(q.submit(sqe, rnd(carried))), 0, sc, what)
        check(q.read(1, slba, 8).data == good, "a refused offset write changed the data")


def t_hdgst_error():
    c = conn(hdgst=True)
    c.send_raw(c.capsule(capsule_sqe(), bad_hdgst=True))
    expect_fatal(c, N.FES_HDGST, what="CapsuleCmd header digest error")
    h, a, q = ctrl_io(hdgst=True)
    cmd = q.submit_write(1, lbas(128), rnd(65536), incapsule=False, auto_r2t=False)
    r2t = q.poll()
    check(r2t.type == N.R2T, f"expected R2T, got {r2t!r}")
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 0, cmd.out_data[:r2t.r2tl], bad_hdgst=True))
    expect_fatal(q, N.FES_HDGST, what="H2CData header digest error")
    c = conn(hdgst=False)
    c.send_raw(N.build_capsule_cmd(capsule_sqe(), hdgst=True))
    expect_fatal(c, N.FES_INVALID_HEADER, 1, "HDGSTF set without header digests negotiated")


def t_ddgst_error():
    h, a, q = ctrl_io(ddgst=True)
    slba = lbas(128)
    good = rnd(8192)
    expect_ok(q.write(1, slba, good), "good write")
    sqe = q.rw_sqe(N.IO_WRITE, 1, slba, 16, 8192, N.SGL_INCAPSULE)
    cmd = q.submit(sqe, rnd(8192), bad_ddgst=True)
    q.wait(cmd)
    expect_status(cmd, 0, 0x22, "in-capsule write with a data digest error")
    check(q.read(1, slba, 16).data == good, "data changed by a write that failed its digest")
    # 4 KiB and 512 bytes: whole in the receive ring, checked before they could land in the
    # memory namespace (which good ones of that size do, with non-temporal stores)
    for nlb in (8, 1):
        cmd = q.submit(q.rw_sqe(N.IO_WRITE, 1, slba, nlb, nlb * 512, N.SGL_INCAPSULE),
                       rnd(nlb * 512), bad_ddgst=True)
        q.wait(cmd)
        expect_status(cmd, 0, 0x22, "%d-byte in-capsule write with a data digest error"
                      % (nlb * 512))
        check(q.read(1, slba, 16).data == good, "data changed by a %d-byte write that failed "
              "its digest" % (nlb * 512))
    # via R2T/H2CData
    cmd = q.submit_write(1, slba, rnd(65536), incapsule=False, auto_r2t=False)
    while not cmd.done:
        pdu = q.poll()
        if pdu.type == N.R2T:
            q.send_raw(q.h2c(cmd.cid, pdu.ttag, pdu.r2to,
                             cmd.out_data[pdu.r2to:pdu.r2to + pdu.r2tl], bad_ddgst=True))
    expect_status(cmd, 0, 0x22, "H2CData with a data digest error")
    expect_ok(q.write(1, slba, good), "write after digest errors: connection alive")
    check(q.read(1, slba, 16).data == good, "read after digest errors")


def t_unsolicited_h2c():
    h, a, q = ctrl_io()
    q.send_raw(q.h2c(7, 3, 0, bytes(512)))
    expect_h2c_fatal(q, "unsolicited H2CData (no command)")
    h, a, q = ctrl_io()
    cmd = q.submit_write(1, lbas(8), rnd(4096), incapsule=True)
    q.wait(cmd)
    q.send_raw(q.h2c(cmd.cid, 0, 0, bytes(512)))
    expect_h2c_fatal(q, "H2CData after an in-capsule write completed")


def expect_h2c_fatal(q, what):
    """H2CData that matches no R2T: FES 01h with FEI at TTAG (conn.c, as SPDK)."""
    expect_fatal(q, N.FES_INVALID_HEADER, 10, what)


def r2t_write(q, size=65536):
    cmd = q.submit_write(1, lbas(size // BS), rnd(size), incapsule=False, auto_r2t=False)
    pdu = q.poll()
    check(pdu.type == N.R2T and pdu.cccid == cmd.cid, f"expected an R2T, got {pdu!r}")
    check(pdu.r2to == 0 and 0 < pdu.r2tl <= size, f"R2T {pdu.r2to}+{pdu.r2tl}")
    return cmd, pdu


def t_h2c_wrong_ttag_cccid():
    h, a, q = ctrl_io()
    cmd, r2t = r2t_write(q)
    q.send_raw(q.h2c(cmd.cid, r2t.ttag ^ 0x5A5A, 0, cmd.out_data[:4096], last=False))
    expect_fatal(q, N.FES_INVALID_HEADER, 10, "H2CData with a wrong TTAG")
    h, a, q = ctrl_io()
    cmd, r2t = r2t_write(q)
    q.send_raw(q.h2c(cmd.cid ^ 0x100, r2t.ttag, 0, cmd.out_data[:4096], last=False))
    expect_fatal(q, N.FES_INVALID_HEADER, 8, "H2CData with a wrong CCCID")


def t_datao():
    h, a, q = ctrl_io()
    cmd, r2t = r2t_write(q)
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 4096, cmd.out_data[4096:8192], last=False))
    expect_fatal(q, N.FES_OUT_OF_RANGE, what="DATAO gap")
    h, a, q = ctrl_io()
    cmd, r2t = r2t_write(q)
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 0, cmd.out_data[:8192], last=False))
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 4096, cmd.out_data[4096:8192], last=False))
    expect_fatal(q, N.FES_OUT_OF_RANGE, what="DATAO overlap")


def t_datal_beyond_r2tl():
    h, a, q = ctrl_io()
    cmd = q.submit_write(1, lbas(16), rnd(8192), incapsule=False, auto_r2t=False)
    r2t = q.poll()
    check(r2t.type == N.R2T, f"expected R2T, got {r2t!r}")
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 0, rnd(r2t.r2tl + 4096)))
    expect_fatal(q, N.FES_OUT_OF_RANGE, what="DATAL beyond R2TL")
    h, a, q = ctrl_io()
    cmd, r2t = r2t_write(q, 8192)
    q.send_raw(q.h2c(cmd.cid, r2t.ttag, 0, rnd(8192), datal=4096))
    expect_fatal(q, N.FES_INVALID_HEADER, 16, "DATAL != PDU payload")
    h, a, q = ctrl_io()
    big = LIM["TGT_MAXH2CDATA"] * 2
    cmd, r2t = r2t_write(q, big)
    if r2t.r2tl > LIM["TGT_MAXH2CDATA"]:
        q.send_raw(q.h2c(cmd.cid, r2t.ttag, 0, cmd.out_data[:LIM["TGT_MAXH2CDATA"] + 4096]))
        expect_fatal(q, N.FES_R2T_LIMIT, 0, "DATAL > MAXH2CDATA (data transfer limit exceeded)")
        return "R2T covers more than MAXH2CDATA"
    return f"R2TL {r2t.r2tl}: DATAL > MAXH2CDATA not reachable"


def t_sq_overflow():
    h, a, q = ctrl_io(sqsize=3)
    # SQSIZE 3 (0's based) = 4 entries. Writes waiting for their data stay outstanding.
    cmds = []
    for i in range(4):
        cmds.append(q.submit_write(1, lbas(128), rnd(65536), incapsule=False, auto_r2t=False))
    extra = q.submit_write(1, lbas(128), rnd(65536), incapsule=False, auto_r2t=False)
    pdus = []
    term = None
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            pdu = q.recv_pdu(timeout=end - time.monotonic(), strict=False)
        except N.ConnClosed:
            break
        except socket.timeout:
            break
        if pdu.type == N.C2H_TERM:
            term = pdu
            break
        pdus.append(pdu)
        if pdu.type == N.RSP and pdu.cid == extra.cid:
            break
    got = [(N.PDU_NAMES.get(p.type), getattr(p, "cccid", getattr(p, "cid", None))) for p in pdus]
    if term is not None:
        check(term.fes == N.FES_SEQUENCE, f"SQ overflow: FES {term.fes:#x} FEI {term.fei}")
        q.expect_closed()
        assert_alive("SQ overflow")
        return f"TermReq FES 2 after {got}"
    rsp = [p for p in pdus if p.type == N.RSP and p.cid == extra.cid]
    check(rsp and rsp[0].status & 0xFFFE, f"5th command on a 4-entry SQ: no TermReq and no "
                                          f"error completion; got {got}")
    return f"5th command failed with {N.status_str(rsp[0].status)}"


# ---- background: a peer that stops in the middle of a header --------------------------------
class HalfHeader:
    """Opened at the start of the run; checked near the end."""

    def __init__(self, after_icreq):
        self.after_icreq = after_icreq
        self.closed_at = None
        self.err = None
        self.t0 = time.monotonic()
        self.c = N.Conn("127.0.0.1", Ctx.d.port, 120.0)
        if after_icreq:
            self.c.icreq()
            self.c.send_raw(N.build_capsule_cmd(capsule_sqe())[:5])
        else:
            self.c.send_raw(N.build_icreq()[:4])
        self.t0 = time.monotonic()
        self.th = threading.Thread(target=self.watch, daemon=True)
        self.th.start()

    def watch(self):
        try:
            self.c.expect_closed(timeout=100.0)
            self.closed_at = time.monotonic() - self.t0
        except Exception as e:  # noqa: BLE001
            self.err = e


def t_half_header(hh, limit):
    left = hh.t0 + limit - time.monotonic()
    hh.th.join(max(0.0, left))
    check(hh.closed_at is not None, f"still open {time.monotonic() - hh.t0:.1f} s after the "
                                    f"partial header ({hh.err or 'no close'}), limit {limit} s")
    assert_alive("partial header")
    hh.c.close()
    return f"closed {hh.closed_at:.1f} s after the partial header"


# ---- resource bounds and concurrency -------------------------------------------------------
def t_never_reads():
    h = host()
    a = admin(h)
    expect_ok(a.set_num_queues(2), "Set Features Number of Queues")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", Ctx.d.port))
    q = track(N.Conn("127.0.0.1", Ctx.d.port, 10.0, sock=s))
    q.icreq()
    sqsize = LIM["TGT_MAX_QUEUE_DEPTH"] - 1
    expect_ok(q.connect(MEM0, h.hostnqn, h.hostid, qid=1, cntlid=a.cntlid, sqsize=sqsize),
              "I/O Connect")
    rss0 = Ctx.d.rss_kib()
    xfer = 131072
    s.setblocking(False)
    sent_cmds = 0
    stalled_for = 0.0
    t0 = time.monotonic()
    pend = b""
    why = "our sends stalled for 2 s (target stopped reading)"
    # flood reads without ever reading a response, until our sends stall for 2 s
    while time.monotonic() - t0 < 20 and stalled_for < 2.0:
        if not pend:
            cid = sent_cmds & 0xFFFF
            sqe = N.build_sqe(N.IO_READ, cid, nsid=1, sgl_type=N.SGL_TRANSPORT, sgl_len=xfer,
                              cdw10=(sent_cmds * 256) % (MEM0_SIZE // BS - 256), cdw12=255)
            pend = N.build_capsule_cmd(sqe)
            sent_cmds += 1
        try:
            n = s.send(pend)
            pend = pend[n:]
            stalled_for = 0.0
        except BlockingIOError:
            time.sleep(0.05)
            stalled_for += 0.05
        except (ConnectionResetError, BrokenPipeError):
            why = "connection reset by the target"
            break
        if sent_cmds > 100000:
            break
    rss1 = Ctx.d.rss_kib()
    # the daemon must keep serving others while this peer is stuck
    assert_alive("while a peer does not read")
    time.sleep(1.0)
    rss2 = Ctx.d.rss_kib()
    s.setblocking(True)
    bound = (sqsize + 1) * xfer // 1024 + 64 * 1024
    check(rss1 - rss0 < bound, f"RSS grew {rss1 - rss0} KiB during the flood (bound {bound})")
    check(rss2 - rss1 < 4096, f"RSS still growing after the flood: {rss1} -> {rss2} KiB")
    # ... and once its responses have made no progress for --io-timeout, it is closed (we must
    # not read before that: reading is progress)
    end = time.monotonic() + IO_TIMEOUT_S + 5
    while time.monotonic() < end and "peer stopped reading" not in Ctx.d.stderr_text():
        time.sleep(0.25)
    check("peer stopped reading" in Ctx.d.stderr_text(),
          f"the non-reading peer was not closed within {IO_TIMEOUT_S + 5} s")
    s.settimeout(10)
    try:
        while s.recv(1 << 20):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return (f"{sent_cmds} read commands sent, then {why}; RSS "
            f"{rss0} -> {rss1} -> {rss2} KiB; closed after the I/O timeout")


def t_concurrent():
    h = host()
    a = admin(h)
    nq = 20
    cmd = a.set_num_queues(nq)
    expect_ok(cmd, "Set Features Number of Queues")
    check((cmd.dw0 & 0xFFFF) + 1 >= nq, f"only {(cmd.dw0 & 0xFFFF) + 1} queues granted")
    f = N.idctrl_fields(a.idctrl)
    errors = []
    counts = [0] * nq
    stop = time.monotonic() + 4.0
    region = lbas(nq * 256)

    def worker(i):
        try:
            q = h.ioq(MEM0, a.cntlid, i + 1, ioccsz=f["ioccsz"])
            try:
                k = 0
                while time.monotonic() < stop:
                    size = (512, 4096, 16384, 65536)[k % 4]
                    slba = region + i * 256
                    data = os.urandom(size)
                    c = q.write(1, slba, data, incapsule=(k % 3 == 0) and size <= 16384)
                    if c.status:
                        raise Failure(f"q{i + 1} write: {N.status_str(c.status)}")
                    r = q.read(1, slba, size // BS)
                    if r.status or r.data != data:
                        raise Failure(f"q{i + 1} read: {N.status_str(r.status)} / mismatch")
                    k += 1
                    counts[i] = k
            finally:
                q.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"q{i + 1}: {type(e).__name__}: {e}")

    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nq)]
    for t in ths:
        t.start()
    # (needs ICReq first, bytes, expected FES, FEI)
    garbage = [(True, N.ch(0x0F, 0, 24, 0, 24) + bytes(16), N.FES_INVALID_HEADER, 0),
               (False, N.build_icreq(pfv=3), N.FES_UNSUPPORTED, 8),
               (True, N.build_capsule_cmd(capsule_sqe(), hlen=64), N.FES_INVALID_HEADER, 2),
               (False, N.build_capsule_cmd(capsule_sqe()), N.FES_SEQUENCE, 0)]
    bad = 0
    wrong = []
    while time.monotonic() < stop:
        ic, raw, fes, fei = garbage[bad % len(garbage)]
        c = N.Conn("127.0.0.1", Ctx.d.port, 5.0)
        try:
            if ic:
                c.icreq()
            c.send_raw(raw)
            pdu = c.expect_term(5.0)
            if pdu is None or (pdu.fes, pdu.fei) != (fes, fei):
                wrong.append(f"pattern {bad % len(garbage)}: "
                             f"{pdu and (pdu.fes, pdu.fei)} != {(fes, fei)}")
        except (N.ProtocolError, OSError) as e:
            wrong.append(f"pattern {bad % len(garbage)}: {type(e).__name__}: {e}")
        finally:
            c.close()
        bad += 1
    for t in ths:
        t.join(15)
    check(not any(t.is_alive() for t in ths), "an I/O thread hung")
    check(not errors, "; ".join(errors[:5]))
    check(min(counts) > 0, f"a queue made no progress: {counts}")
    check(not wrong, "bad peers: " + "; ".join(wrong[:5]))
    return f"{sum(counts)} verified write+read pairs on {nq} queues, {bad} bad peers"


# ---- main -----------------------------------------------------------------------------------
def main(argv):
    exe = argv[1] if len(argv) > 1 else os.environ.get("NVTCPD", "")
    tap = Tap()
    if not exe or not os.access(exe, os.X_OK):
        tap.result(False, "nvtcpd executable", f"not found: {exe!r}")
        print(f"1..{tap.n}")
        return 1
    exe = os.path.abspath(exe)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    workdir = tempfile.mkdtemp(prefix="nvtcp-it-")
    cfg = {"subsystems": [
        {"nqn": MEM0, "allow_any_host": True,
         "namespaces": [{"nsid": 1, "backend": "memory", "size": "64M", "block_size": 512}]},
        {"nqn": RESTRICTED, "allow_any_host": False, "hosts": [{"nqn": ALLOWED_HOST}],
         "namespaces": [{"nsid": 1, "backend": "memory", "size": "8M", "block_size": 512}]}]}
    Ctx.d = Daemon(exe, workdir, "main", cfg, cores=2)
    if not tap.case("nvtcpd starts with a config and listens", lambda: Ctx.d.start() and None):
        print(f"1..{tap.n}")
        return 1
    t_start = time.monotonic()
    half = []
    tap.case("partial-header peers opened",
             lambda: half.extend([HalfHeader(False), HalfHeader(True)]) or None)

    cases = [
        ("discovery log: records, genctr, partial reads", t_discovery),
        ("connect admin and I/O queues", t_connect),
        ("property get CAP/VS/CC/CSTS", t_properties),
        ("enable, shutdown (SHST), disable, re-enable", t_enable_shutdown),
        ("identify controller", t_identify_ctrl),
        ("identify namespace", t_identify_ns),
        ("active namespace list", t_active_ns),
        ("namespace descriptors stable across connects", t_ns_desc),
        ("log pages: error, SMART counters, changed ns, unknown", t_log_pages),
        ("log page: firmware slot information (mandatory)", t_fw_slot_log),
        ("Identify: NUSE follows writes and deallocation (thin provisioning), FRMW",
         t_nuse),
        ("features: queues, KATO, VWC, async event config", t_features),
        ("keep alive keeps a controller alive past KATO", t_keep_alive),
        ("AER held without completion; AERL enforced", t_aer),
    ]
    for hd, dd in ((False, False), (True, False), (False, True), (True, True)):
        cases.append((f"write/read 512 B..{LIM['MAX_XFER'] // 1024} KiB in-capsule and R2T, "
                      f"hdgst={int(hd)} ddgst={int(dd)}",
                      lambda hd=hd, dd=dd: rw_roundtrips(hd, dd)))
    cases += [
        ("read with SQ flow control disabled: C2HData SUCCESS, no CapsuleResp", t_sqfc_disabled),
        ("FUA write and flush", t_fua_flush),
        ("write zeroes reads back zeroes", t_write_zeroes),
        ("DSM deallocate reads back zeroes", t_dsm),
        ("LBA out of range: SC 80h, connection alive", t_lba_range),
        ("commands without data accept an all-zero SGL", t_zero_sgl_no_data),
        ("unknown opcode: Invalid Opcode", t_invalid_opcode),
        ("bad NSID: Invalid Namespace", t_invalid_ns),
        ("transfer > MDTS rejected", t_mdts),
        ("keep-alive timeout tears down a silent controller", t_kato_expiry),
        ("connect to an unknown NQN", t_unknown_nqn),
        ("connect from a host not allowed: SCT 1 SC 84h", t_host_not_allowed),
        ("I/O queue with a bad CNTLID", t_bad_cntlid),
        ("I/O queue before the admin queue", t_io_before_admin),
        ("SQSIZE 0 and too large", t_sqsize),
        ("adversarial: CapsuleCmd before ICReq (FES 02h)", t_cmd_before_icreq),
        ("adversarial: ICReq twice (FES 02h)", t_icreq_twice),
        ("adversarial: ICReq PFV 1 (FES 06h) and HPDA 32 (FES 01h)", t_icreq_pfv),
        ("adversarial: bad and wrong-direction PDU types", t_bad_pdu_type),
        ("adversarial: bad HLEN per PDU type", t_bad_hlen),
        ("adversarial: bad PDO", t_bad_pdo),
        ("adversarial: PLEN too small / too large", t_bad_plen),
        ("adversarial: in-capsule data larger than allowed", t_incapsule_too_big),
        ("in-capsule data at an offset (SGL address), plain and data digest; bad offsets",
         t_incapsule_offset),
        ("adversarial: header digest errors (FES 03h)", t_hdgst_error),
        ("adversarial: data digest errors fail the command (SC 22h), connection lives",
         t_ddgst_error),
        ("adversarial: unsolicited H2CData", t_unsolicited_h2c),
        ("adversarial: H2CData with wrong TTAG / CCCID", t_h2c_wrong_ttag_cccid),
        ("adversarial: DATAO gap and overlap (FES 04h)", t_datao),
        ("adversarial: DATAL beyond R2TL (FES 04h), DATAL mismatch", t_datal_beyond_r2tl),
        ("adversarial: more outstanding commands than SQSIZE", t_sq_overflow),
        ("adversarial: a peer that never reads: bounded RSS, then closed", t_never_reads),
        ("adversarial: 20 I/O queues busy while bad peers connect", t_concurrent),
    ]
    for name, fn in cases:
        tap.case(name, fn, timeout=40)

    if len(half) == 2:
        # conn.c: ICReq within 10 s; a started PDU must finish within 30 s (+ tick slack)
        tap.case("adversarial: half an ICReq then silence: closed (ICReq timeout)",
                 lambda: t_half_header(half[0], 16), timeout=40)
        tap.case("adversarial: half a CapsuleCmd header then silence: closed (idle timeout)",
                 lambda: t_half_header(half[1], 36), timeout=60)

    tap.case("file backend: write, restart nvtcpd, read back",
             lambda: t_file_backend(exe, workdir), timeout=60)
    tap.case("default config: mem0 with a 1 GiB namespace",
             lambda: t_default_config(exe, workdir), timeout=40)

    def t_final():
        check(Ctx.d.alive(), "nvtcpd is not running at the end of the suite:\n"
              + Ctx.d.stderr_tail())
        keep = admin()   # SIGTERM with a live connection
        check(keep.keep_alive().ok, "keep alive")
        rc = Ctx.d.stop()
        check(rc == 0, f"exit code {rc} on SIGTERM, expected 0:\n{Ctx.d.stderr_tail()}")
        return f"suite body took {time.monotonic() - t_start:.1f} s"
    tap.case("nvtcpd still running; SIGTERM exits 0", t_final, timeout=30)

    def t_sanitizers():
        san = sanitizer_errors(Ctx.d.stderr_text())
        check(not san, "sanitizer report in nvtcpd's stderr:\n" + "\n".join(san[:10]))
    tap.case("no sanitizer report in nvtcpd's stderr", t_sanitizers)
    if Ctx.d.alive():
        Ctx.d.proc.kill()
    print(f"1..{tap.n}")
    if tap.failed:
        print(f"# {len(tap.failed)} failed; nvtcpd stderr in {workdir}")
    else:
        subprocess.run(["rm", "-rf", workdir])
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
