#!/usr/bin/env python3
"""Generate the golden NVMe/TCP PDU vectors (tests/vectors/*.hex) and fuzz seeds.

Independent of the C code on purpose: every field is laid out here by hand from the byte
offsets in docs nvme-tcp-wire.md, and CRC32C is this file's own bitwise implementation
(checked against the standard check value 0xE3069283 before anything is written).

File format: one line '# <name>: role=<ctrl|host> hdgst=0|1 ddgst=0|1 cpda=N hpda=N
maxh2cdata=N incapsule=N ic=0|1 expect=<ok|fes=XXh fei=N> [ddgst_ok=0]', then the PDU bytes
as hex, 16 per line. fes is hexadecimal (as the spec writes it), fei decimal (a byte offset).
Usage: gen_vectors.py <vector dir> [<fuzz seed dir>]
"""
import os
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4

# PDU types and flags (wire doc tables)
ICREQ, ICRESP, H2CTERM, C2HTERM, CMD, RSP, H2CDATA, C2HDATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
HDGSTF, DDGSTF, LAST, SUCCESS = 1, 2, 4, 8


def le16(v):
    return struct.pack("<H", v)


def le32(v):
    return struct.pack("<I", v)


def ch(typ, flags, hlen, pdo, plen):
    return bytes([typ, flags, hlen, pdo]) + le32(plen)


def align(x, a):
    return (x + a - 1) // a * a


class P:
    def __init__(self, role="ctrl", hdgst=0, ddgst=0, cpda=0, hpda=0, maxh2cdata=131072,
                 incapsule=8192, ic=1):
        self.role, self.hdgst, self.ddgst = role, hdgst, ddgst
        self.cpda, self.hpda, self.maxh2cdata, self.incapsule, self.ic = (
            cpda, hpda, maxh2cdata, incapsule, ic)

    def line(self):
        return ("role=%s hdgst=%d ddgst=%d cpda=%d hpda=%d maxh2cdata=%d incapsule=%d ic=%d" %
                (self.role, self.hdgst, self.ddgst, self.cpda, self.hpda, self.maxh2cdata,
                 self.incapsule, self.ic))


def with_data_pdu(typ, psh, hlen, data, p, extra_flags=0, pda=None, bad_ddgst=False,
                  bad_hdgst=False, pdo=None):
    """CH + PSH (+HDGST) + pad + data (+DDGST), built field by field."""
    hd = 4 if p.hdgst else 0
    dd = 4 if (p.ddgst and data) else 0
    flags = extra_flags | (HDGSTF if p.hdgst else 0) | (DDGSTF if dd else 0)
    if pdo is None:
        pdo = align(hlen + hd, (pda + 1) * 4) if data else 0
    plen = (pdo + len(data) + dd) if data else hlen + hd
    hdr = ch(typ, flags, hlen, pdo, plen) + psh
    assert len(hdr) == hlen
    out = hdr
    if hd:
        c = crc32c(hdr) ^ (1 if bad_hdgst else 0)
        out += le32(c)
    if data:
        out += bytes(max(0, pdo - len(out))) + data
        if dd:
            out += le32(crc32c(data) ^ (0x100 if bad_ddgst else 0))
    return out


def sqe(opc, cid, nsid=1, sgl_len=0, sgl_type=0x5A, cdw10=0):
    # SQE: OPC 0, FLAGS 1 (PSDT=SGL 0x40), CID 2-3, NSID 4-7, CDW2-3 8-15, MPTR 16-23,
    # SGL1 24-39 (addr 24-31, length 32-35, rsvd 36-38, type 39), CDW10-15 40-63
    s = bytes([opc, 0x40]) + le16(cid) + le32(nsid) + bytes(8) + bytes(8)
    s += bytes(8) + le32(sgl_len) + bytes(3) + bytes([sgl_type])
    s += le32(cdw10) + bytes(20)
    assert len(s) == 64
    return s


def capsule_cmd(p, data=b"", **kw):
    s = sqe(0x01, 0x1234, sgl_len=len(data) or 4096, sgl_type=0x01 if data else 0x5A)
    return with_data_pdu(CMD, s, 72, data, p, pda=p.cpda, **kw)


def capsule_resp(p, cid=0x1234, status=0, **kw):
    # CQE: DW0 0-3, DW1 4-7, SQHD 8-9, SQID 10-11, CID 12-13, STATUS 14-15
    cqe = le32(0xA5A5) + le32(0) + le16(7) + le16(1) + le16(cid) + le16(status)
    return with_data_pdu(RSP, cqe, 24, b"", p, **kw)


def h2c_data(p, data, cccid=0x1234, ttag=0x0042, datao=0, datal=None, last=True, **kw):
    psh = le16(cccid) + le16(ttag) + le32(datao) + le32(len(data) if datal is None else datal)
    psh += bytes(4)
    return with_data_pdu(H2CDATA, psh, 24, data, p, extra_flags=LAST if last else 0,
                         pda=p.cpda, **kw)


def c2h_data(p, data, cccid=0x1234, datao=0, last=True, success=False, **kw):
    psh = le16(cccid) + bytes(2) + le32(datao) + le32(len(data)) + bytes(4)
    fl = (LAST if last else 0) | (SUCCESS if success else 0)
    return with_data_pdu(C2HDATA, psh, 24, data, p, extra_flags=fl, pda=p.hpda, **kw)


def r2t(p, cccid=0x1234, ttag=0x0042, r2to=0, r2tl=8192, **kw):
    psh = le16(cccid) + le16(ttag) + le32(r2to) + le32(r2tl) + bytes(4)
    return with_data_pdu(R2T, psh, 24, b"", p, **kw)


def icreq(hpda=0, dgst=3, maxr2t=0, pfv=0, plen=128):
    return ch(ICREQ, 0, 128, 0, plen) + le16(pfv) + bytes([hpda, dgst]) + le32(maxr2t) + bytes(112)


def icresp(cpda=0, dgst=3, maxh2cdata=131072, pfv=0):
    return ch(ICRESP, 0, 128, 0, 128) + le16(pfv) + bytes([cpda, dgst]) + le32(maxh2cdata) + \
        bytes(112)


def term_req(typ, fes, fei, bad, plen=None):
    body = le16(fes) + le32(fei) + bytes(10)
    return ch(typ, 0, 24, 0, 24 + len(bad) if plen is None else plen) + body + bad


def payload(n, seed=1):
    return bytes(((i * 7 + seed * 13) ^ (i >> 8)) & 0xFF for i in range(n))


def vectors():
    v = []
    ctrl, host = P("ctrl"), P("host")
    ctrl_d = P("ctrl", hdgst=1, ddgst=1)
    host_d = P("host", hdgst=1, ddgst=1)
    ctrl_pre, host_pre = P("ctrl", ic=0), P("host", ic=0)
    ok = "ok"
    # --- valid PDUs: all nine types, with and without digests and padding
    v += [("icreq", ctrl_pre, icreq(), ok),
          ("icreq_hpda2", ctrl_pre, icreq(hpda=2, dgst=1, maxr2t=3), ok),
          ("icresp", host_pre, icresp(), ok),
          ("icresp_cpda3", host_pre, icresp(cpda=3, dgst=0, maxh2cdata=4096), ok),
          ("h2c_term_req", ctrl, term_req(H2CTERM, 1, 2, icreq()[:8]), ok),
          ("h2c_term_req_before_ic", ctrl_pre, term_req(H2CTERM, 2, 0, b""), ok),
          ("c2h_term_req", host, term_req(C2HTERM, 3, 0, capsule_cmd(ctrl)[:72]), ok),
          ("c2h_term_req_max", host, term_req(C2HTERM, 1, 3, payload(128)), ok),
          ("capsule_cmd", ctrl, capsule_cmd(ctrl), ok),
          ("capsule_cmd_hdgst", P("ctrl", hdgst=1), capsule_cmd(P("ctrl", hdgst=1)), ok),
          ("capsule_cmd_incapsule", ctrl, capsule_cmd(ctrl, payload(512)), ok),
          ("capsule_cmd_incapsule_dgst", ctrl_d, capsule_cmd(ctrl_d, payload(512)), ok),
          ("capsule_cmd_incapsule_cpda3_dgst", P("ctrl", 1, 1, cpda=3),
           capsule_cmd(P("ctrl", 1, 1, cpda=3), payload(100)), ok),
          ("capsule_cmd_ddgst_only", P("ctrl", 0, 1), capsule_cmd(P("ctrl", 0, 1), payload(64)),
           ok),
          ("capsule_cmd_connect_8k", P("ctrl", 1, 1), capsule_cmd(P("ctrl", 1, 1),
                                                                  payload(1024, 5)), ok),
          ("capsule_resp", host, capsule_resp(host), ok),
          ("capsule_resp_hdgst", host_d, capsule_resp(host_d), ok),
          ("h2c_data", ctrl, h2c_data(ctrl, payload(64)), ok),
          ("h2c_data_4k_dgst", ctrl_d, h2c_data(ctrl_d, payload(4096), last=False), ok),
          ("h2c_data_cpda7_dgst", P("ctrl", 1, 1, cpda=7),
           h2c_data(P("ctrl", 1, 1, cpda=7), payload(33), datao=4096), ok),
          ("h2c_data_cpda1", P("ctrl", cpda=1), h2c_data(P("ctrl", cpda=1), payload(16)), ok),
          ("c2h_data", host, c2h_data(host, payload(100)), ok),
          ("c2h_data_dgst_success", host_d, c2h_data(host_d, payload(512), success=True), ok),
          ("c2h_data_hpda1_dgst", P("host", 1, 1, hpda=1),
           c2h_data(P("host", 1, 1, hpda=1), payload(24), last=False), ok),
          ("c2h_data_hpda3", P("host", hpda=3), c2h_data(P("host", hpda=3), payload(8)), ok),
          ("r2t", host, r2t(host), ok),
          ("r2t_hdgst", P("host", 1, 0), r2t(P("host", 1, 0), r2to=4096, r2tl=65536), ok),
          ("c2h_data_bad_ddgst", host_d, c2h_data(host_d, payload(256), bad_ddgst=True),
           "ok ddgst_ok=0"),
          ("h2c_data_bad_ddgst", ctrl_d, h2c_data(ctrl_d, payload(4096), bad_ddgst=True),
           "ok ddgst_ok=0")]

    def fes(f, i=0):
        return "fes=%02Xh fei=%d" % (f, i)
    bad_type = bytearray(capsule_resp(host)); bad_type[0] = 0x08
    v += [("err_unknown_type", ctrl, bytes(bad_type), fes(1, 0)),
          ("err_unknown_type_0a_host", host, bytes([0x0A]) + bytes(bad_type[1:]), fes(1, 0))]
    hl = bytearray(capsule_cmd(ctrl)); hl[2] = 70
    v.append(("err_capsule_cmd_hlen", ctrl, bytes(hl), fes(1, 2)))
    v.append(("err_hdgstf_missing", ctrl_d, capsule_cmd(ctrl), fes(1, 1)))
    v.append(("err_ddgstf_unexpected", ctrl, capsule_cmd(P("ctrl", 0, 1), payload(64)),
              fes(1, 1)))
    v.append(("err_c2h_success_without_last", host,
              c2h_data(host, payload(16), last=False, success=True), fes(1, 1)))
    p3 = P("ctrl", 1, 1, cpda=3)
    v.append(("err_pdo_misaligned", p3, capsule_cmd(p3, payload(64), pdo=76), fes(1, 3)))
    v.append(("err_pdo_inside_header", ctrl, capsule_cmd(ctrl, payload(64), pdo=68), fes(1, 3)))
    v.append(("err_pdo_above_128", P("ctrl", cpda=1),
              capsule_cmd(P("ctrl", cpda=1), payload(64), pdo=136), fes(1, 3)))
    rp = bytearray(capsule_resp(host)); rp[3] = 24
    v.append(("err_capsule_resp_pdo", host, bytes(rp), fes(1, 3)))
    rl = bytearray(capsule_resp(host) + bytes(4)); rl[4] = 28
    v.append(("err_capsule_resp_plen", host, bytes(rl), fes(1, 4)))
    v.append(("err_r2t_plen_hdgst_missing_bytes", host_d,
              ch(R2T, HDGSTF, 24, 0, 24) + le16(1) + le16(2) + le32(0) + le32(8) + bytes(4),
              fes(1, 4)))
    v.append(("err_incapsule_too_big", P("ctrl", incapsule=4096),
              capsule_cmd(ctrl, payload(4100)), fes(1, 4)))
    v.append(("err_icreq_plen", ctrl_pre, icreq(plen=132) + bytes(4), fes(1, 4)))
    v.append(("err_term_req_plen", host, term_req(C2HTERM, 1, 0, payload(136)), fes(1, 4)))
    v.append(("err_h2c_datal_mismatch", ctrl, h2c_data(ctrl, payload(64), datal=60), fes(1, 16)))
    v.append(("err_h2c_datal_above_max", P("ctrl", maxh2cdata=4096),
              h2c_data(ctrl, payload(4100)), fes(5, 0)))
    v.append(("err_h2c_datal_zero", ctrl, h2c_data(ctrl, b"", datal=0), fes(1, 16)))
    v.append(("err_r2t_r2tl_zero", host, r2t(host, r2tl=0), fes(1, 16)))
    v.append(("err_icreq_hpda", ctrl_pre, icreq(hpda=32), fes(1, 10)))
    v.append(("err_icresp_maxh2cdata", host_pre, icresp(maxh2cdata=1000), fes(1, 12)))
    v.append(("err_seq_cmd_before_ic", ctrl_pre, capsule_cmd(ctrl), fes(2)))
    v.append(("err_seq_second_icreq", ctrl, icreq(), fes(2)))
    v.append(("err_seq_r2t_to_ctrl", ctrl, r2t(ctrl), fes(2)))
    v.append(("err_seq_capsule_cmd_to_host", host, capsule_cmd(ctrl), fes(2)))
    v.append(("err_hdgst_mismatch", ctrl_d, capsule_cmd(ctrl_d, bad_hdgst=True), fes(3)))
    v.append(("err_hdgst_mismatch_h2c", ctrl_d, h2c_data(ctrl_d, payload(64), bad_hdgst=True),
              fes(3)))
    v.append(("err_icreq_pfv", ctrl_pre, icreq(pfv=1), fes(6, 8)))
    v.append(("err_icresp_pfv", host_pre, icresp(pfv=2), fes(6, 8)))
    return v


def fuzz_params(p, mode):
    b0 = (1 if p.role == "host" else 0) | (2 if p.hdgst else 0) | (4 if p.ddgst else 0)
    b0 |= 0 if p.ic else 8
    b0 |= (mode & 3) << 4 | 0x40
    k = max(0, min(7, (p.maxh2cdata // 4096).bit_length() - 1))
    q = max(0, min(3, (p.incapsule // 8192).bit_length() - 1))
    return bytes([b0, p.cpda | k << 5, p.hpda | q << 6, 0x5A + mode])


def main():
    vdir = sys.argv[1]
    fdir = sys.argv[2] if len(sys.argv) > 2 else None
    for f in os.listdir(vdir):
        if f.endswith(".hex"):
            os.remove(os.path.join(vdir, f))
    for name, p, data, expect in vectors():
        with open(os.path.join(vdir, name + ".hex"), "w") as out:
            out.write("# %s: %s expect=%s\n" % (name, p.line(), expect))
            for i in range(0, len(data), 16):
                out.write(" ".join("%02x" % b for b in data[i:i + 16]) + "\n")
        if fdir:
            for mode in range(4):
                with open(os.path.join(fdir, "seed_%s_%d" % (name, mode)), "wb") as out:
                    out.write(fuzz_params(p, mode) + data)


if __name__ == "__main__":
    main()
