#!/usr/bin/env python3
"""nvmetcp.py - a small raw-socket NVMe/TCP host for nvtcp's integration tests.

Standard library only. Builds and parses the nine NVMe/TCP PDU types byte by byte (CRC32C
digests from a table), runs ICReq/ICResp, Fabrics Connect, Property Get/Set, controller
enable/shutdown, the admin commands (Identify, Get Log Page, Get/Set Features, Keep Alive,
AER) and the NVM I/O commands (Read, Write in-capsule or via R2T/H2CData, Flush, Write
Zeroes, DSM), and can send arbitrary raw bytes so tests can break the protocol on purpose.

One Conn is one TCP connection = one NVMe queue. Commands may be pipelined: submit() returns
a Cmd, wait() drives the connection until that Cmd completes, answering R2Ts on the way
(unless the Cmd asks to handle them itself).

Self-check against any target (e.g. the Linux kernel through kernel-target.sh):
    nvmetcp.py selftest ADDR PORT SUBNQN
"""
import os
import socket
import struct
import sys
import time
import uuid

DISC_NQN = "nqn.2014-08.org.nvmexpress.discovery"

# ---- PDU types, flags ------------------------------------------------------------------------
ICREQ, ICRESP, H2C_TERM, C2H_TERM, CMD, RSP, H2C_DATA, C2H_DATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
PDU_NAMES = {ICREQ: "ICReq", ICRESP: "ICResp", H2C_TERM: "H2CTermReq", C2H_TERM: "C2HTermReq",
             CMD: "CapsuleCmd", RSP: "CapsuleResp", H2C_DATA: "H2CData", C2H_DATA: "C2HData",
             R2T: "R2T"}
HLEN = {ICREQ: 128, ICRESP: 128, H2C_TERM: 24, C2H_TERM: 24, CMD: 72, RSP: 24, H2C_DATA: 24,
        C2H_DATA: 24, R2T: 24}
DIGEST_TYPES = (CMD, RSP, H2C_DATA, C2H_DATA, R2T)   # PDUs that carry HDGST when negotiated
DATA_TYPES = (CMD, H2C_DATA, C2H_DATA)               # PDUs that may carry data (and DDGST)
F_HDGST, F_DDGST, F_LAST, F_SUCCESS = 0x01, 0x02, 0x04, 0x08

# TermReq FES
FES_INVALID_HEADER, FES_SEQUENCE, FES_HDGST, FES_OUT_OF_RANGE, FES_R2T_LIMIT, FES_UNSUPPORTED = \
    1, 2, 3, 4, 5, 6

# SGL descriptor type bytes (type << 4 | subtype)
SGL_INCAPSULE = 0x01
SGL_TRANSPORT = 0x5A

# Opcodes
ADM_GET_LOG_PAGE, ADM_IDENTIFY, ADM_SET_FEATURES, ADM_GET_FEATURES, ADM_AER, ADM_KEEP_ALIVE = \
    0x02, 0x06, 0x09, 0x0A, 0x0C, 0x18
FABRICS = 0x7F
FCT_PROP_SET, FCT_CONNECT, FCT_PROP_GET, FCT_DISCONNECT = 0x00, 0x01, 0x04, 0x08
IO_FLUSH, IO_WRITE, IO_READ, IO_WRITE_ZEROES, IO_DSM = 0x00, 0x01, 0x02, 0x08, 0x09

# Properties
REG_CAP, REG_VS, REG_CC, REG_CSTS = 0x00, 0x08, 0x14, 0x1C
CC_EN = 1
CC_DEFAULT = (6 << 16) | (4 << 20)     # IOSQES 64 B, IOCQES 16 B, CSS NVM, MPS 4 KiB
CC_SHN_NORMAL = 1 << 14
CSTS_RDY, CSTS_CFS = 1, 2
CSTS_SHST_MASK, CSTS_SHST_CMPLT = 0xC, 0x8

# Identify CNS, log pages, features
CNS_NS, CNS_CTRL, CNS_NS_ACTIVE, CNS_NS_DESC = 0, 1, 2, 3
LOG_ERROR, LOG_SMART, LOG_FW_SLOT, LOG_CHANGED_NS, LOG_DISCOVERY = 0x01, 0x02, 0x03, 0x04, 0x70
FEAT_VWC, FEAT_NUM_QUEUES, FEAT_ASYNC_EVENT, FEAT_KATO = 0x06, 0x07, 0x0B, 0x0F

NSID_ALL = 0xFFFFFFFF


# ---- CRC32C (Castagnoli), reflected, table driven -------------------------------------------
def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C of data, continuing from a previous finalised crc (0 to start)."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ---- status helpers -------------------------------------------------------------------------
def st_sc(st):
    return (st >> 1) & 0xFF


def st_sct(st):
    return (st >> 9) & 0x7


def st_dnr(st):
    return (st >> 15) & 1


def status(sct, sc):
    """The 16-bit status word without phase/CRD/M/DNR, for comparisons via st_key()."""
    return (sct << 9) | (sc << 1)


def st_key(st):
    return st & 0x0FFE     # SCT + SC


_ST_NAMES = {(0, 0): "SUCCESS", (0, 1): "INVALID_OPCODE", (0, 2): "INVALID_FIELD",
             (0, 0x0B): "INVALID_NS", (0, 0x0C): "CMD_SEQ_ERROR", (0, 0x0F): "SGL_LENGTH_INVALID",
             (0, 0x22): "TRANSIENT_TRANSPORT", (0, 0x80): "LBA_RANGE", (1, 0x02): "QUEUE_SIZE",
             (1, 0x09): "INVALID_LOG_PAGE", (1, 0x80): "CONNECT_INCOMPATIBLE_FORMAT",
             (1, 0x81): "CONNECT_CTRL_BUSY", (1, 0x82): "CONNECT_INVALID_PARAM",
             (1, 0x83): "CONNECT_RESTART_DISC", (1, 0x84): "CONNECT_INVALID_HOST"}


def status_str(st):
    if st is None:
        return "no status"
    sct, sc = st_sct(st), st_sc(st)
    return f"sct={sct:#x} sc={sc:#04x} dnr={st_dnr(st)} ({_ST_NAMES.get((sct, sc), '?')})"


def cstr(b):
    return bytes(b).split(b"\0", 1)[0].decode("ascii", "replace").strip()


# ---- exceptions -----------------------------------------------------------------------------
class ProtocolError(Exception):
    """The target broke the protocol (from the host's point of view)."""


class ConnClosed(ProtocolError):
    """The target closed the connection (EOF or reset)."""


class TermReqReceived(ProtocolError):
    def __init__(self, pdu):
        self.pdu = pdu
        super().__init__(f"C2HTermReq fes={pdu.fes:#x} fei={pdu.fei:#x}")


# ---- PDU building ---------------------------------------------------------------------------
def ch(ptype, flags, hlen, pdo, plen):
    return struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen)


def build_pdu(ptype, psh, data=b"", flags=0, hdgst=False, ddgst=False, align=4, hlen=None,
              pdo=None, plen=None, bad_hdgst=False, bad_ddgst=False, pad_fill=0):
    """Generic PDU: the 8-byte CH, the type-specific header psh, optional HDGST, pad up to PDO
    (a multiple of align), data, optional DDGST. The keyword overrides (hlen, pdo, plen,
    bad_*) let tests build invalid PDUs; the digests are computed over what is sent."""
    real_hlen = 8 + len(psh)
    hd = 4 if hdgst and ptype in DIGEST_TYPES else 0
    dd = 4 if ddgst and data else 0
    if hd:
        flags |= F_HDGST
    if dd:
        flags |= F_DDGST
    if data:
        real_pdo = -(-(real_hlen + hd) // align) * align
    else:
        real_pdo = 0
    pad = bytes([pad_fill]) * (real_pdo - real_hlen - hd) if data else b""
    real_plen = real_hlen + hd + len(pad) + len(data) + dd
    hdr = ch(ptype, flags, real_hlen if hlen is None else hlen,
             real_pdo if pdo is None else pdo, real_plen if plen is None else plen) + psh
    out = bytearray(hdr)
    if hd:
        d = crc32c(hdr)
        out += struct.pack("<I", d ^ 0x1 if bad_hdgst else d)
    out += pad
    out += data
    if dd:
        d = crc32c(data)
        out += struct.pack("<I", d ^ 0x1 if bad_ddgst else d)
    return bytes(out)


def build_icreq(pfv=0, hpda=0, hdgst=False, ddgst=False, maxr2t=0, hlen=128, plen=128):
    dgst = (1 if hdgst else 0) | (2 if ddgst else 0)
    psh = struct.pack("<HBBI", pfv, hpda, dgst, maxr2t).ljust(120, b"\0")
    return ch(ICREQ, 0, hlen, 0, plen) + psh


def build_icresp(pfv=0, cpda=0, hdgst=False, ddgst=False, maxh2cdata=131072):
    dgst = (1 if hdgst else 0) | (2 if ddgst else 0)
    psh = struct.pack("<HBBI", pfv, cpda, dgst, maxh2cdata).ljust(120, b"\0")
    return ch(ICRESP, 0, 128, 0, 128) + psh


def build_term_req(fes, fei=0, bad=b"", c2h=False):
    psh = struct.pack("<HI", fes, fei).ljust(16, b"\0")
    bad = bytes(bad[:128])
    return ch(C2H_TERM if c2h else H2C_TERM, 0, 24, 0, 24 + len(bad)) + psh + bad


def build_sqe(opcode, cid, nsid=0, sgl_type=None, sgl_len=0, sgl_addr=0, cdw10=0, cdw11=0,
              cdw12=0, cdw13=0, cdw14=0, cdw15=0, fctype=None, specific=None, flags=0x40):
    """A 64-byte SQE. PSDT=SGL by default. Fabrics commands: fctype goes in byte 4 (instead of
    NSID) and `specific` (bytes) is placed at byte 40 (Connect/Property fields). Without data
    the SGL is a zero-length Transport Data Block, as the Linux host sends (sgl_type=0 gives
    an all-zero descriptor)."""
    if sgl_type is None:
        sgl_type = SGL_TRANSPORT
    s = bytearray(64)
    struct.pack_into("<BBH", s, 0, opcode, flags, cid & 0xFFFF)
    if fctype is not None:
        s[4] = fctype
    else:
        struct.pack_into("<I", s, 4, nsid)
    struct.pack_into("<QI", s, 24, sgl_addr, sgl_len)
    s[39] = sgl_type
    struct.pack_into("<IIIIII", s, 40, cdw10 & 0xFFFFFFFF, cdw11 & 0xFFFFFFFF,
                     cdw12 & 0xFFFFFFFF, cdw13 & 0xFFFFFFFF, cdw14 & 0xFFFFFFFF, cdw15 & 0xFFFFFFFF)
    if specific is not None:
        s[40:40 + len(specific)] = specific
    return bytes(s)


def build_cqe(cid, status_word=0, dw0=0, dw1=0, sqhd=0, sqid=0):
    return struct.pack("<IIHHHH", dw0, dw1, sqhd, sqid, cid, status_word)


def build_capsule_cmd(sqe, data=b"", **kw):
    return build_pdu(CMD, sqe, data, **kw)


def build_capsule_resp(cqe, **kw):
    return build_pdu(RSP, cqe, **kw)


def build_h2c_data(cccid, ttag, datao, data, last=True, datal=None, **kw):
    psh = struct.pack("<HHIII", cccid, ttag, datao, len(data) if datal is None else datal, 0)
    return build_pdu(H2C_DATA, psh, data, flags=F_LAST if last else 0, **kw)


def build_c2h_data(cccid, datao, data, last=True, success=False, **kw):
    fl = (F_LAST if last else 0) | (F_SUCCESS if success else 0)
    psh = struct.pack("<HHIII", cccid, 0, datao, len(data), 0)
    return build_pdu(C2H_DATA, psh, data, flags=fl, **kw)


def build_r2t(cccid, ttag, r2to, r2tl, **kw):
    return build_pdu(R2T, struct.pack("<HHIII", cccid, ttag, r2to, r2tl, 0), **kw)


def connect_data(hostid, cntlid, subnqn, hostnqn):
    d = bytearray(1024)
    d[0:16] = hostid
    struct.pack_into("<H", d, 16, cntlid)
    sn, hn = subnqn.encode(), hostnqn.encode()
    d[256:256 + len(sn)] = sn[:255]
    d[512:512 + len(hn)] = hn[:255]
    return bytes(d)


# ---- PDU parsing ----------------------------------------------------------------------------
class Pdu:
    """A received (or built) PDU, decoded. raw: all bytes; hdr: the first HLEN bytes; data:
    the payload (DATAL bytes at PDO), without pad or digest."""

    def __init__(self, raw):
        self.raw = raw
        self.type, self.flags, self.hlen, self.pdo, self.plen = struct.unpack_from("<BBBBI", raw)
        self.hdr = raw[:self.hlen]
        self.data = b""
        self.hdgst_ok = self.ddgst_ok = True
        t = self.type
        hd = 4 if self.flags & F_HDGST and t in DIGEST_TYPES else 0
        if hd:
            self.hdgst_ok = struct.unpack_from("<I", raw, self.hlen)[0] == crc32c(self.hdr)
        if t in DATA_TYPES and self.pdo:
            end = self.plen - (4 if self.flags & F_DDGST else 0)
            self.data = raw[self.pdo:end]
            if self.flags & F_DDGST:
                self.ddgst_ok = struct.unpack_from("<I", raw, end)[0] == crc32c(self.data)
        if t in (ICREQ, ICRESP):
            self.pfv, self.pda, self.dgst, self.maxv = struct.unpack_from("<HBBI", raw, 8)
            self.cpda = self.hpda = self.pda
            self.maxh2cdata = self.maxr2t = self.maxv
        elif t in (H2C_TERM, C2H_TERM):
            self.fes, self.fei = struct.unpack_from("<HI", raw, 8)
            self.data = raw[24:self.plen]
        elif t == CMD:
            self.sqe = raw[8:72]
            self.opcode, _, self.cid = struct.unpack_from("<BBH", raw, 8)
        elif t == RSP:
            (self.dw0, self.dw1, self.sqhd, self.sqid, self.cid,
             self.status) = struct.unpack_from("<IIHHHH", raw, 8)
        elif t in (H2C_DATA, C2H_DATA, R2T):
            self.cccid, self.ttag, self.datao, self.datal = struct.unpack_from("<HHII", raw, 8)
            self.r2to, self.r2tl = self.datao, self.datal

    def __repr__(self):
        return (f"<{PDU_NAMES.get(self.type, hex(self.type))} flags={self.flags:#x} "
                f"hlen={self.hlen} pdo={self.pdo} plen={self.plen}>")


def parse_pdu(raw):
    return Pdu(bytes(raw))


# ---- commands -------------------------------------------------------------------------------
class Cmd:
    """One submitted command. After completion: status (16-bit word, 0 = success), dw0, dw1,
    sqhd, data (bytes read), success_flag (completed by C2HData SUCCESS, no CapsuleResp)."""

    def __init__(self, cid, sqe, out_data, in_len, auto_r2t):
        self.cid = cid
        self.sqe = sqe
        self.out_data = out_data
        self.in_len = in_len
        self.buf = bytearray(in_len)
        self.c2h_bytes = 0
        self.c2h_pdus = 0
        self.r2ts = []
        self.auto_r2t = auto_r2t
        self.done = False
        self.status = None
        self.dw0 = self.dw1 = self.sqhd = 0
        self.success_flag = False

    @property
    def data(self):
        return bytes(self.buf)

    @property
    def ok(self):
        return self.done and self.status == 0

    def __repr__(self):
        return f"<Cmd cid={self.cid} done={self.done} {status_str(self.status)}>"


class Conn:
    """One NVMe/TCP connection (one queue)."""

    def __init__(self, addr, port, timeout=10.0, sock=None):
        self.addr, self.port = addr, port
        if sock is None:
            sock = socket.create_connection((addr, port), timeout=timeout)
        self.s = sock
        self.s.settimeout(timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.hdgst = self.ddgst = False
        self.cpda = 0
        self.hpda = 0
        self.maxh2cdata = 0
        self.icresp = None
        self.next_cid = 0
        self.pending = {}
        self.unexpected = []      # PDUs that matched no pending command
        self.max_incapsule = 8192  # admin default; I/O queues: set from IOCCSZ
        self.cntlid = None
        self.qid = None
        self.idctrl = None
        self.trace = os.environ.get("NVMETCP_TRACE") == "1"

    # -- raw I/O ---------------------------------------------------------------------------
    def send_raw(self, b):
        if self.trace:
            print(f"# -> {len(b)} bytes {bytes(b[:8]).hex()}", file=sys.stderr)
        self.s.sendall(b)

    def recv_exact(self, n, timeout=None):
        buf = bytearray()
        if timeout is not None:
            self.s.settimeout(timeout)
        try:
            while len(buf) < n:
                try:
                    chunk = self.s.recv(n - len(buf))
                except ConnectionResetError as e:
                    raise ConnClosed(f"connection reset ({e}) after {len(buf)}/{n} bytes")
                if not chunk:
                    raise ConnClosed(f"connection closed by peer after {len(buf)}/{n} bytes")
                buf += chunk
        finally:
            if timeout is not None:
                self.s.settimeout(self.timeout)
        return bytes(buf)

    def recv_pdu(self, timeout=None, strict=True):
        """Receive one PDU. strict: check the header the way a careful host would (HLEN,
        digests present as negotiated and correct, PDO alignment)."""
        head = self.recv_exact(8, timeout)
        ptype, flags, hlen, pdo, plen = struct.unpack("<BBBBI", head)
        if plen < 8 or plen > 8 * 1024 * 1024:
            raise ProtocolError(f"bad PLEN {plen} in PDU type {ptype:#x}")
        raw = head + self.recv_exact(plen - 8, timeout)
        pdu = Pdu(raw)
        if self.trace:
            print(f"# <- {pdu!r}", file=sys.stderr)
        if strict:
            self.check_rx(pdu)
        return pdu

    def check_rx(self, pdu):
        t = pdu.type
        if t not in (ICRESP, C2H_TERM, RSP, C2H_DATA, R2T):
            raise ProtocolError(f"target sent PDU type {t:#x}, not valid controller-to-host")
        if pdu.hlen != HLEN[t]:
            raise ProtocolError(f"{pdu!r}: HLEN {pdu.hlen} != {HLEN[t]}")
        if t in DIGEST_TYPES and self.icresp is not None:
            if bool(pdu.flags & F_HDGST) != self.hdgst:
                raise ProtocolError(f"{pdu!r}: HDGSTF does not match negotiated digests")
            if t == C2H_DATA and bool(pdu.flags & F_DDGST) != self.ddgst:
                raise ProtocolError(f"{pdu!r}: DDGSTF does not match negotiated digests")
        if not pdu.hdgst_ok:
            raise ProtocolError(f"{pdu!r}: header digest mismatch")
        if not pdu.ddgst_ok:
            raise ProtocolError(f"{pdu!r}: data digest mismatch")
        if t == C2H_DATA:
            hd = 4 if self.hdgst else 0
            align = (self.hpda + 1) * 4
            if pdu.pdo < pdu.hlen + hd or pdu.pdo % align or pdu.pdo > 128:
                raise ProtocolError(f"{pdu!r}: bad PDO")
            if pdu.datal != len(pdu.data) or pdu.datal == 0:
                raise ProtocolError(f"{pdu!r}: DATAL {pdu.datal} != payload {len(pdu.data)}")
            if pdu.flags & F_SUCCESS and not pdu.flags & F_LAST:
                raise ProtocolError(f"{pdu!r}: SUCCESS without LAST_PDU")
        elif t in (RSP, R2T):
            if pdu.pdo != 0 or pdu.plen != pdu.hlen + (4 if self.hdgst else 0):
                raise ProtocolError(f"{pdu!r}: bad PDO/PLEN")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def expect_closed(self, timeout=5.0):
        """Read and drop anything until the peer closes. Returns seconds waited, or raises
        ProtocolError when the connection is still open after timeout."""
        t0 = time.monotonic()
        end = t0 + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"connection still open after {timeout:.1f} s")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - t0
            finally:
                self.s.settimeout(self.timeout)
            if not chunk:
                return time.monotonic() - t0

    def expect_term(self, timeout=5.0):
        """Wait for a C2HTermReq (skipping other PDUs: responses already in flight). Returns
        the TermReq Pdu, or None if the connection closed without one."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no C2HTermReq and no close within {timeout:.1f} s")
            try:
                pdu = self.recv_pdu(timeout=left, strict=False)
            except ConnClosed:
                return None
            except socket.timeout:
                continue
            if pdu.type == C2H_TERM:
                return pdu

    # -- connection setup ------------------------------------------------------------------
    def icreq(self, hdgst=False, ddgst=False, hpda=0, maxr2t=0):
        self.send_raw(build_icreq(0, hpda, hdgst, ddgst, maxr2t))
        pdu = self.recv_pdu(strict=False)
        if pdu.type == C2H_TERM:
            raise TermReqReceived(pdu)
        if pdu.type != ICRESP or pdu.hlen != 128 or pdu.plen != 128 or pdu.pdo != 0:
            raise ProtocolError(f"expected ICResp, got {pdu!r}")
        want = (1 if hdgst else 0) | (2 if ddgst else 0)
        if pdu.dgst != want:
            raise ProtocolError(f"ICResp DGST {pdu.dgst:#x} != requested {want:#x}")
        if pdu.pfv != 0:
            raise ProtocolError(f"ICResp PFV {pdu.pfv}")
        if pdu.cpda > 31:
            raise ProtocolError(f"ICResp CPDA {pdu.cpda}")
        if pdu.maxh2cdata < 4096 or pdu.maxh2cdata % 4:
            raise ProtocolError(f"ICResp MAXH2CDATA {pdu.maxh2cdata}")
        self.hdgst, self.ddgst = hdgst, ddgst
        self.cpda, self.hpda = pdu.cpda, hpda
        self.maxh2cdata = pdu.maxh2cdata
        self.icresp = pdu
        return pdu

    # -- PDU builders with this connection's parameters -------------------------------------
    def pdu_kw(self):
        return {"hdgst": self.hdgst, "ddgst": self.ddgst, "align": (self.cpda + 1) * 4}

    def capsule(self, sqe, data=b"", **over):
        kw = self.pdu_kw()
        kw.update(over)
        return build_capsule_cmd(sqe, data, **kw)

    def h2c(self, cccid, ttag, datao, data, last=True, **over):
        kw = self.pdu_kw()
        kw.update(over)
        return build_h2c_data(cccid, ttag, datao, data, last, **kw)

    # -- commands --------------------------------------------------------------------------
    def alloc_cid(self):
        for _ in range(65536):
            self.next_cid = (self.next_cid + 1) & 0xFFFF
            if self.next_cid not in self.pending:
                return self.next_cid
        raise RuntimeError("no free command id")

    def submit(self, sqe, out_data=b"", incapsule=True, in_len=0, auto_r2t=True,
               send=True, **over):
        """Send a command capsule (sqe with any CID: it is replaced by a fresh one unless the
        caller sets keep_cid=True in over). Returns the Cmd."""
        keep = over.pop("keep_cid", False)
        if keep:
            cid = struct.unpack_from("<H", sqe, 2)[0]
        else:
            cid = self.alloc_cid()
            sqe = sqe[:2] + struct.pack("<H", cid) + sqe[4:]
        cmd = Cmd(cid, sqe, out_data, in_len, auto_r2t)
        self.pending[cid] = cmd
        if send:
            self.send_raw(self.capsule(sqe, out_data if incapsule else b"", **over))
        return cmd

    def answer_r2t(self, cmd, pdu, split=None):
        """Send H2CData PDUs for one R2T: chunks of min(MAXH2CDATA, split) bytes."""
        off, end = pdu.r2to, pdu.r2to + pdu.r2tl
        if end > len(cmd.out_data):
            raise ProtocolError(f"R2T {pdu.r2to}+{pdu.r2tl} beyond the {len(cmd.out_data)}-byte "
                                f"write of cid {cmd.cid}")
        step = min(self.maxh2cdata or pdu.r2tl, split or pdu.r2tl)
        out = []
        while off < end:
            n = min(step, end - off)
            out.append(self.h2c(cmd.cid, pdu.ttag, off, cmd.out_data[off:off + n],
                                last=off + n == end))
            off += n
        self.send_raw(b"".join(out))

    def poll(self, timeout=None):
        """Receive and dispatch one PDU. Returns it."""
        pdu = self.recv_pdu(timeout)
        t = pdu.type
        if t == C2H_TERM:
            raise TermReqReceived(pdu)
        if t == ICRESP:
            raise ProtocolError("unexpected ICResp")
        cid = pdu.cid if t == RSP else pdu.cccid
        cmd = self.pending.get(cid)
        if cmd is None:
            self.unexpected.append(pdu)
            raise ProtocolError(f"{pdu!r} for unknown cid {cid}")
        if t == R2T:
            cmd.r2ts.append(pdu)
            if not cmd.out_data:
                raise ProtocolError(f"R2T for cid {cid}, which has no data to write")
            if cmd.auto_r2t:
                self.answer_r2t(cmd, pdu)
        elif t == C2H_DATA:
            if pdu.datao + pdu.datal > cmd.in_len:
                raise ProtocolError(f"C2HData {pdu.datao}+{pdu.datal} beyond {cmd.in_len}")
            if pdu.datao != cmd.c2h_bytes:
                raise ProtocolError(f"C2HData DATAO {pdu.datao}, expected {cmd.c2h_bytes}")
            cmd.buf[pdu.datao:pdu.datao + pdu.datal] = pdu.data
            cmd.c2h_bytes += pdu.datal
            cmd.c2h_pdus += 1
            if pdu.flags & F_SUCCESS:
                cmd.success_flag = True
                cmd.status = 0
                cmd.done = True
                del self.pending[cid]
        elif t == RSP:
            cmd.status = pdu.status & 0xFFFE
            cmd.dw0, cmd.dw1, cmd.sqhd = pdu.dw0, pdu.dw1, pdu.sqhd
            cmd.sqid = pdu.sqid
            cmd.done = True
            del self.pending[cid]
        return pdu

    def wait(self, cmd, timeout=None):
        end = time.monotonic() + (timeout or self.timeout)
        while not cmd.done:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"command cid {cmd.cid} not completed")
            self.poll(left)
        if cmd.status == 0 and cmd.in_len and cmd.c2h_bytes != cmd.in_len:
            raise ProtocolError(f"cid {cmd.cid}: {cmd.c2h_bytes} of {cmd.in_len} bytes read")
        return cmd

    def run(self, sqe, out_data=b"", incapsule=True, in_len=0, timeout=None, **over):
        return self.wait(self.submit(sqe, out_data, incapsule, in_len, **over), timeout)

    # -- Fabrics ---------------------------------------------------------------------------
    def connect(self, subnqn, hostnqn, hostid, qid=0, cntlid=0xFFFF, sqsize=31, kato=0,
                cattr=0, recfmt=0):
        data = connect_data(hostid, cntlid, subnqn, hostnqn)
        spec = struct.pack("<HHHBBI", recfmt, qid, sqsize, cattr, 0, kato)
        sqe = build_sqe(FABRICS, 0, sgl_type=SGL_INCAPSULE, sgl_len=1024, fctype=FCT_CONNECT,
                        specific=spec)
        cmd = self.run(sqe, data)
        if cmd.status == 0:
            self.cntlid = cmd.dw0 & 0xFFFF
            self.qid = qid
        return cmd

    def prop_get(self, ofst, size8=False):
        spec = struct.pack("<B3xI", 1 if size8 else 0, ofst)
        cmd = self.run(build_sqe(FABRICS, 0, fctype=FCT_PROP_GET, specific=spec))
        val = cmd.dw0 | (cmd.dw1 << 32 if size8 else 0)
        return cmd, val

    def prop_set(self, ofst, value, size8=False):
        spec = struct.pack("<B3xIQ", 1 if size8 else 0, ofst, value)
        return self.run(build_sqe(FABRICS, 0, fctype=FCT_PROP_SET, specific=spec))

    def disconnect(self):
        return self.run(build_sqe(FABRICS, 0, fctype=FCT_DISCONNECT))

    def enable(self, cc=CC_DEFAULT, timeout=5.0):
        """CC.EN=1, then poll CSTS.RDY. Returns CSTS."""
        cmd = self.prop_set(REG_CC, cc | CC_EN)
        if cmd.status:
            raise ProtocolError(f"Property Set CC: {status_str(cmd.status)}")
        end = time.monotonic() + timeout
        while True:
            cmd, csts = self.prop_get(REG_CSTS)
            if cmd.status:
                raise ProtocolError(f"Property Get CSTS: {status_str(cmd.status)}")
            if csts & CSTS_RDY or time.monotonic() > end:
                return csts
            time.sleep(0.01)

    def shutdown(self, timeout=5.0):
        """CC.SHN=normal; poll CSTS.SHST until complete. Returns CSTS."""
        cmd, cc = self.prop_get(REG_CC)
        cmd = self.prop_set(REG_CC, (cc & ~(3 << 14)) | CC_SHN_NORMAL)
        if cmd.status:
            raise ProtocolError(f"Property Set CC.SHN: {status_str(cmd.status)}")
        end = time.monotonic() + timeout
        while True:
            cmd, csts = self.prop_get(REG_CSTS)
            if (csts & CSTS_SHST_MASK) == CSTS_SHST_CMPLT or time.monotonic() > end:
                return csts
            time.sleep(0.01)

    # -- admin -----------------------------------------------------------------------------
    def identify(self, cns, nsid=0, cntid=0, length=4096):
        sqe = build_sqe(ADM_IDENTIFY, 0, nsid=nsid, sgl_type=SGL_TRANSPORT, sgl_len=length,
                        cdw10=cns | (cntid << 16))
        return self.run(sqe, in_len=length)

    def get_log_page(self, lid, length, offset=0, nsid=NSID_ALL, rae=False, lsp=0):
        numd = length // 4 - 1
        sqe = build_sqe(ADM_GET_LOG_PAGE, 0, nsid=nsid, sgl_type=SGL_TRANSPORT, sgl_len=length,
                        cdw10=(lid | (lsp << 8) | ((1 << 15) if rae else 0)
                               | ((numd & 0xFFFF) << 16)),
                        cdw11=numd >> 16, cdw12=offset & 0xFFFFFFFF, cdw13=offset >> 32)
        return self.run(sqe, in_len=length)

    def get_features(self, fid, nsid=0, cdw11=0, sel=0, in_len=0):
        sqe = build_sqe(ADM_GET_FEATURES, 0, nsid=nsid, cdw10=fid | (sel << 8), cdw11=cdw11,
                        sgl_len=in_len)
        return self.run(sqe, in_len=in_len)

    def set_features(self, fid, cdw11=0, nsid=0, save=False, data=b""):
        sqe = build_sqe(ADM_SET_FEATURES, 0, nsid=nsid, cdw10=fid | ((1 << 31) if save else 0),
                        cdw11=cdw11, sgl_type=SGL_INCAPSULE if data else None,
                        sgl_len=len(data))
        return self.run(sqe, data)

    def keep_alive(self):
        return self.run(build_sqe(ADM_KEEP_ALIVE, 0))

    def aer(self):
        """Submit an Asynchronous Event Request; returns the (pending) Cmd."""
        return self.submit(build_sqe(ADM_AER, 0))

    def set_num_queues(self, nsq, ncq=None):
        ncq = nsq if ncq is None else ncq
        return self.set_features(FEAT_NUM_QUEUES, ((ncq - 1) << 16) | (nsq - 1))

    # -- I/O -------------------------------------------------------------------------------
    def rw_sqe(self, opcode, nsid, slba, nlb, length, sgl_type, extra12=0, cdw13=0):
        return build_sqe(opcode, 0, nsid=nsid, sgl_type=sgl_type, sgl_len=length,
                         cdw10=slba & 0xFFFFFFFF, cdw11=slba >> 32,
                         cdw12=((nlb - 1) & 0xFFFF) | extra12, cdw13=cdw13)

    def submit_read(self, nsid, slba, nlb, bs=512, length=None):
        length = nlb * bs if length is None else length
        return self.submit(self.rw_sqe(IO_READ, nsid, slba, nlb, length, SGL_TRANSPORT),
                           in_len=length)

    def read(self, nsid, slba, nlb, bs=512, timeout=None):
        return self.wait(self.submit_read(nsid, slba, nlb, bs), timeout)

    def submit_write(self, nsid, slba, data, bs=512, incapsule=None, fua=False, auto_r2t=True):
        if incapsule is None:
            incapsule = len(data) <= self.max_incapsule
        nlb = len(data) // bs
        sqe = self.rw_sqe(IO_WRITE, nsid, slba, nlb, len(data),
                          SGL_INCAPSULE if incapsule else SGL_TRANSPORT,
                          extra12=(1 << 30) if fua else 0)
        return self.submit(sqe, data, incapsule=incapsule, auto_r2t=auto_r2t)

    def write(self, nsid, slba, data, bs=512, incapsule=None, fua=False, timeout=None):
        return self.wait(self.submit_write(nsid, slba, data, bs, incapsule, fua), timeout)

    def flush(self, nsid):
        return self.run(build_sqe(IO_FLUSH, 0, nsid=nsid))

    def write_zeroes(self, nsid, slba, nlb, deac=False):
        return self.run(self.rw_sqe(IO_WRITE_ZEROES, nsid, slba, nlb, 0, SGL_TRANSPORT,
                                    extra12=(1 << 25) if deac else 0))

    def dsm(self, nsid, ranges, ad=True):
        """ranges: [(slba, nlb)]; sent in-capsule (16 bytes each)."""
        data = b"".join(struct.pack("<IIQ", 0, nlb, slba) for slba, nlb in ranges)
        sqe = build_sqe(IO_DSM, 0, nsid=nsid, sgl_type=SGL_INCAPSULE, sgl_len=len(data),
                        cdw10=len(ranges) - 1, cdw11=4 if ad else 0)
        return self.run(sqe, data)


# ---- convenience: a host with admin and I/O queues ------------------------------------------
class Host:
    def __init__(self, addr, port, hostnqn=None, hostid=None, timeout=10.0):
        self.addr, self.port, self.timeout = addr, port, timeout
        self.hostid = hostid or uuid.uuid4().bytes
        self.hostnqn = hostnqn or f"nqn.2014-08.org.nvmexpress:uuid:{uuid.UUID(bytes=self.hostid)}"

    def conn(self, hdgst=False, ddgst=False):
        c = Conn(self.addr, self.port, self.timeout)
        c.icreq(hdgst, ddgst)
        return c

    def admin(self, subnqn, hdgst=False, ddgst=False, kato=0, enable=True, identify=True,
              sqsize=31):
        """ICReq + Connect (qid 0) [+ enable + Identify Controller]. Raises on failure."""
        c = self.conn(hdgst, ddgst)
        cmd = c.connect(subnqn, self.hostnqn, self.hostid, qid=0, sqsize=sqsize, kato=kato)
        if cmd.status:
            c.close()
            raise ProtocolError(f"admin Connect to {subnqn}: {status_str(cmd.status)}")
        if enable:
            csts = c.enable()
            if not csts & CSTS_RDY:
                c.close()
                raise ProtocolError(f"controller not ready: CSTS={csts:#x}")
            if identify:
                cmd = c.identify(CNS_CTRL)
                if cmd.status:
                    raise ProtocolError(f"Identify Controller: {status_str(cmd.status)}")
                c.idctrl = cmd.data
        return c

    def ioq(self, subnqn, cntlid, qid=1, hdgst=False, ddgst=False, sqsize=31, cattr=0,
            ioccsz=None):
        c = self.conn(hdgst, ddgst)
        cmd = c.connect(subnqn, self.hostnqn, self.hostid, qid=qid, cntlid=cntlid,
                        sqsize=sqsize, cattr=cattr)
        if cmd.status:
            c.close()
            raise ProtocolError(f"I/O Connect qid {qid}: {status_str(cmd.status)}")
        if ioccsz:
            c.max_incapsule = ioccsz * 16 - 64
        return c


def idctrl_fields(d):
    return {
        "vid": struct.unpack_from("<H", d, 0)[0],
        "sn": cstr(d[4:24]), "mn": cstr(d[24:64]), "fr": cstr(d[64:72]),
        "mdts": d[77], "cntlid": struct.unpack_from("<H", d, 78)[0],
        "ver": struct.unpack_from("<I", d, 80)[0],
        "oaes": struct.unpack_from("<I", d, 92)[0],
        "cntrltype": d[111], "aerl": d[259], "frmw": d[260], "lpa": d[261], "elpe": d[262],
        "kas": struct.unpack_from("<H", d, 320)[0],
        "sqes": d[512], "cqes": d[513], "maxcmd": struct.unpack_from("<H", d, 514)[0],
        "nn": struct.unpack_from("<I", d, 516)[0], "oncs": struct.unpack_from("<H", d, 520)[0],
        "vwc": d[525], "sgls": struct.unpack_from("<I", d, 536)[0],
        "subnqn": cstr(d[768:1024]),
        "ioccsz": struct.unpack_from("<I", d, 1792)[0],
        "iorcsz": struct.unpack_from("<I", d, 1796)[0],
        "icdoff": struct.unpack_from("<H", d, 1800)[0], "msdbd": d[1803],
    }


def idns_fields(d):
    flbas = d[26] & 0xF
    lbaf = struct.unpack_from("<HBB", d, 128 + 4 * flbas)
    return {"nsze": struct.unpack_from("<Q", d, 0)[0], "ncap": struct.unpack_from("<Q", d, 8)[0],
            "nuse": struct.unpack_from("<Q", d, 16)[0], "nsfeat": d[24], "nlbaf": d[25],
            "flbas": flbas, "dlfeat": d[33], "nguid": bytes(d[104:120]),
            "eui64": bytes(d[120:128]), "ms": lbaf[0], "lbads": lbaf[1]}


def parse_ns_desc(d):
    """Namespace Identification Descriptor list -> {nidt: bytes}."""
    out, off = {}, 0
    while off + 4 <= len(d):
        nidt, nidl = d[off], d[off + 1]
        if nidt == 0:
            break
        out[nidt] = bytes(d[off + 4:off + 4 + nidl])
        off += 4 + nidl
    return out


def parse_disc_log(d):
    genctr, numrec, recfmt = struct.unpack_from("<QQH", d, 0)
    entries = []
    for i in range(numrec):
        e = d[1024 * (i + 1):1024 * (i + 2)]
        if len(e) < 1024:
            break
        entries.append({
            "trtype": e[0], "adrfam": e[1], "subtype": e[2], "treq": e[3],
            "portid": struct.unpack_from("<H", e, 4)[0],
            "cntlid": struct.unpack_from("<H", e, 6)[0],
            "asqsz": struct.unpack_from("<H", e, 8)[0],
            "trsvcid": cstr(e[32:64]), "subnqn": cstr(e[256:512]), "traddr": cstr(e[512:768]),
            "sectype": e[768]})
    return genctr, numrec, recfmt, entries


def read_disc_log(c):
    cmd = c.get_log_page(LOG_DISCOVERY, 1024)
    if cmd.status:
        raise ProtocolError(f"Get Log Page 70h: {status_str(cmd.status)}")
    numrec = struct.unpack_from("<Q", cmd.data, 8)[0]
    cmd = c.get_log_page(LOG_DISCOVERY, 1024 * (1 + numrec))
    if cmd.status:
        raise ProtocolError(f"Get Log Page 70h: {status_str(cmd.status)}")
    return cmd.data


# ---- self-check -----------------------------------------------------------------------------
def selftest(addr, port, subnqn):
    """Exercise the library against a known-good target. Prints TAP; returns the exit code."""
    n = [0]
    fails = []

    def rep(ok, name, msg=""):
        n[0] += 1
        print(f"{'ok' if ok else 'not ok'} {n[0]} - {name}", flush=True)
        if msg:
            print(f"# {msg}", flush=True)
        if not ok:
            fails.append(name)

    def step(name, fn):
        try:
            msg = fn()
            rep(True, name, msg or "")
            return True
        except Exception as e:  # noqa: BLE001 - report any failure as a failed step
            rep(False, name, f"{type(e).__name__}: {e}")
            return False

    assert crc32c(b"123456789") == 0xE3069283
    rep(True, "crc32c check value")
    h = Host(addr, port)
    st = {}

    def disc():
        c = h.admin(DISC_NQN)
        f = idctrl_fields(c.idctrl)
        log = read_disc_log(c)
        genctr, numrec, recfmt, ents = parse_disc_log(log)
        part = c.get_log_page(LOG_DISCOVERY, 1024, offset=1024)
        if part.status or part.data != log[1024:2048]:
            raise ProtocolError("partial discovery log read differs")
        c.close()
        if not any(e["subnqn"] == subnqn for e in ents):
            raise ProtocolError(f"{subnqn} not in discovery log {ents}")
        return f"cntrltype={f['cntrltype']} genctr={genctr} numrec={numrec} " + \
            " ".join(f"[{e['subtype']} {e['subnqn']} {e['traddr']}:{e['trsvcid']}]" for e in ents)

    def admin_bringup(hd, dd):
        c = h.admin(subnqn, hd, dd, kato=10000)
        f = idctrl_fields(c.idctrl)
        cmd, cap = c.prop_get(REG_CAP, True)
        cmd2, vs = c.prop_get(REG_VS)
        if cmd.status or cmd2.status:
            raise ProtocolError("property get failed")
        if f["subnqn"] != subnqn or f["cntlid"] != c.cntlid:
            raise ProtocolError(f"identify: subnqn {f['subnqn']} cntlid {f['cntlid']}")
        cmd = c.identify(CNS_NS, nsid=1)
        ns = idns_fields(cmd.data)
        if cmd.status or ns["nsze"] == 0:
            raise ProtocolError(f"identify ns: {status_str(cmd.status)}")
        st.update(c=c, f=f, bs=1 << ns["lbads"], nsze=ns["nsze"])
        return (f"cntlid={c.cntlid} CAP={cap:#x} VS={vs:#x} mdts={f['mdts']} "
                f"ioccsz={f['ioccsz']} nsze={ns['nsze']} bs={1 << ns['lbads']} "
                f"maxh2cdata={c.maxh2cdata}")

    def admin_misc():
        c = st["c"]
        out = []
        for cns in (CNS_NS_ACTIVE, CNS_NS_DESC):
            cmd = c.identify(cns, nsid=0 if cns == CNS_NS_ACTIVE else 1)
            if cmd.status:
                raise ProtocolError(f"identify cns {cns}: {status_str(cmd.status)}")
        out.append(f"descs={sorted(parse_ns_desc(cmd.data))}")
        for lid, ln in ((LOG_ERROR, 64), (LOG_SMART, 512), (LOG_CHANGED_NS, 4096)):
            cmd = c.get_log_page(lid, ln)
            if cmd.status:
                raise ProtocolError(f"log {lid:#x}: {status_str(cmd.status)}")
        cmd = c.set_num_queues(2)
        if cmd.status:
            raise ProtocolError(f"set num queues: {status_str(cmd.status)}")
        out.append(f"queues dw0={cmd.dw0:#x}")
        for fid in (FEAT_KATO, FEAT_ASYNC_EVENT, FEAT_VWC):
            cmd = c.get_features(fid)
            val = "err " + status_str(cmd.status) if cmd.status else hex(cmd.dw0)
            out.append(f"feat {fid:#x}={val}")
        cmd = c.keep_alive()
        if cmd.status:
            raise ProtocolError(f"keep alive: {status_str(cmd.status)}")
        a = c.aer()
        try:
            c.wait(a, timeout=0.5)
            raise ProtocolError("AER completed at once")
        except socket.timeout:
            pass
        if not c.keep_alive().ok:
            raise ProtocolError("keep alive behind an AER failed")
        return " ".join(out)

    def io(hd, dd):
        c, f, bs = st["c"], st["f"], st["bs"]
        q = h.ioq(subnqn, c.cntlid, qid=1, hdgst=hd, ddgst=dd, ioccsz=f["ioccsz"])
        done = []
        slba = 64
        for size in (512, 4096, 16384, 65536, 131072, 524288):
            if size < bs:
                continue
            data = os.urandom(size)
            cmd = q.write(1, slba, data, bs)
            if cmd.status:
                raise ProtocolError(f"write {size}: {status_str(cmd.status)}")
            cmd = q.read(1, slba, size // bs, bs)
            if cmd.status or cmd.data != data:
                raise ProtocolError(f"read {size}: {status_str(cmd.status)} "
                                    f"{'match' if cmd.data == data else 'MISMATCH'}")
            done.append(f"{size}{'i' if size <= q.max_incapsule else 'r'}")
            slba += size // bs
        if not q.flush(1).ok:
            raise ProtocolError("flush")
        cmd = q.write_zeroes(1, 64, 8)
        rd = q.read(1, 64, 8, bs)
        if cmd.status or rd.data != bytes(8 * bs):
            raise ProtocolError(f"write zeroes: {status_str(cmd.status)}")
        # Out of range must fail and leave the queue usable; the status is the target's
        # (Linux nvmet on null_blk answers Internal Error, not LBA Out of Range).
        cmd = q.read(1, st["nsze"], 1, bs)
        if cmd.status == 0:
            raise ProtocolError("read beyond the namespace succeeded")
        if not q.flush(1).ok:
            raise ProtocolError("flush after the out-of-range read failed")
        q.close()
        return ("sizes " + " ".join(done) + " flush, write zeroes ok; out-of-range read: "
                + status_str(cmd.status))

    step("discovery", disc)
    for hd, dd in ((False, False), (True, True)):
        tag = f"digest hdr={int(hd)} data={int(dd)}"
        if step(f"admin bring-up ({tag})", lambda: admin_bringup(hd, dd)):
            if not hd:
                step("admin commands", admin_misc)
            step(f"I/O round trips ({tag})", lambda: io(hd, dd))
            st["c"].close()
    print(f"1..{n[0]}")
    if fails:
        print(f"# failed: {', '.join(fails)}")
    return 1 if fails else 0


def main(argv):
    if len(argv) >= 4 and argv[0] == "selftest":
        return selftest(argv[1], int(argv[2]), argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
