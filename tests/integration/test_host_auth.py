#!/usr/bin/env python3
"""test_host_auth.py - DH-HMAC-CHAP: the nvtcp CLI (libnvtcp) against nvtcpd on loopback, TAP.

Usage: test_host_auth.py NVTCPD NVTCP

nvtcpd gets two subsystems whose allowed host has a host key (hh 01, transformed) and a
controller key (hh 02): BIDI with the default hash/group lists, STRICT allowing only sha512 and
ffdhe2048. Cases: identify with both secrets (nvtcpd must log the admin queue authenticated,
host and controller); write then read back with the secrets read from 0600 files; perf -t 2
--verify on 2 queues (admin and both I/O queues authenticated); host secret only
(unidirectional); the host's --dhchap-hash/--dhchap-dhgroup lists (agreeing and disjoint);
a wrong host secret, a wrong controller secret and no secret at all fail quickly with exit 1
and the library's message; a world-readable secret file is refused; discovery works with a
secret (never authenticated); kill -9 of nvtcpd under perf --verify with a restart: every
queue authenticates again and perf ends with 0 errors. Secrets are generated per run.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zlib

from harness import SAN_RE, Nvtcpd, Tap, check, free_port, run_cli

HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:3f2c9a1e-5b7d-4e21-9c3a-7d1e2f3a4b5c"
OTHERNQN = "nqn.2014-08.org.nvmexpress:uuid:3f2c9a1e-5b7d-4e21-9c3a-7d1e2f3a4b5d"
BIDI = "nqn.2024-01.io.nvtcp:hostauth-bidi"
STRICT = "nqn.2024-01.io.nvtcp:hostauth-strict"

NVTCPD = NVTCP = TMP = None
TAP = Tap()
case = TAP.case


def gen_key(hh, n):
    k = os.urandom(n)
    return "DHHC-1:%02d:%s:" % (hh, base64.b64encode(k + zlib.crc32(k).to_bytes(4, "little"))
                                .decode())


KEY = gen_key(1, 32)
CKEY = gen_key(2, 48)
WRONG = gen_key(0, 32)
OTHER = gen_key(0, 64)


def Target(port, config):
    """nvtcpd with config, listening on 127.0.0.1:port; not started."""
    return Nvtcpd(NVTCPD, TMP, port, config, listen=[port])


def write_config(path, ns_path):
    with open(path, "w") as f:
        json.dump({"subsystems": [
            {"nqn": BIDI,
             "hosts": [{"nqn": HOSTNQN, "dhchap_key": KEY, "dhchap_ctrl_key": CKEY}],
             "namespaces": [{"nsid": 1, "backend": "file", "path": ns_path, "size": "32M"}]},
            {"nqn": STRICT, "dhchap_hashes": ["sha512"], "dhchap_dhgroups": ["ffdhe2048"],
             "hosts": [{"nqn": HOSTNQN, "dhchap_key": KEY, "dhchap_ctrl_key": CKEY},
                       {"nqn": OTHERNQN, "dhchap_key": OTHER}],
             "namespaces": [{"nsid": 1, "backend": "memory", "size": "16M"}]}]}, f)


def nvtcp(args, port, nqn=None, secret=KEY, ctrl_secret=CKEY, extra=(), timeout=60,
          expect_rc=0, hostnqn=HOSTNQN):
    """Run the CLI; returns (rc, stdout bytes, stderr text, seconds)."""
    cmd = [NVTCP] + args + ["-a", "127.0.0.1", "-s", str(port), "--hostnqn", hostnqn]
    if nqn:
        cmd += ["-n", nqn]
    if secret:
        cmd += ["--dhchap-secret", secret]
    if ctrl_secret:
        cmd += ["--dhchap-ctrl-secret", ctrl_secret]
    cmd += list(extra)
    p, err, took = run_cli(cmd, args[0], timeout=timeout,
                           env=dict(os.environ, XDG_CONFIG_HOME=TMP))
    if expect_rc == 0:
        check(p.returncode == 0, "%s exited %d: %s" % (" ".join(args), p.returncode,
                                                       err[-1500:]))
    else:
        check(p.returncode != 0, "%s succeeded; stderr: %s" % (" ".join(args), err[-800:]))
    # A secret never appears in what the tool prints.
    for s in (KEY, CKEY, WRONG, OTHER):
        check(s.split(":")[2][:20] not in err, "a secret was printed")
    return p.returncode, p.stdout, err, took


def auth_lines(log, nqn=HOSTNQN):
    return re.findall(r"(q\d+) ctrl (\d+): authenticated host %s with hash (\w+) dhgroup (\w+)"
                      r"(, controller authenticated too)?" % re.escape(nqn), log)


def t_identify_bidi(tgt):
    m = tgt.mark()
    _, out, err, _ = nvtcp(["identify"], tgt.port, BIDI)
    check(b"mn" in out, "no identify output")
    lines = auth_lines(tgt.since(m))
    check(len(lines) == 1 and lines[0][0] == "q0" and lines[0][4],
          "nvtcpd did not log one bidirectional admin-queue authentication: %r" % lines)
    check("authenticated with hash" in err and "controller authenticated" in err,
          "the host did not report the controller authenticated: " + err[-800:])


def t_rw_files(tgt):
    hk, ck = os.path.join(TMP, "host.key"), os.path.join(TMP, "ctrl.key")
    for path, s in ((hk, KEY), (ck, CKEY)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (s + "\n").encode())
        os.close(fd)
    files = ["--dhchap-secret-file", hk, "--dhchap-ctrl-secret-file", ck]
    data = os.urandom(64 * 512)
    src, dst = os.path.join(TMP, "src.bin"), os.path.join(TMP, "dst.bin")
    with open(src, "wb") as f:
        f.write(data)
    rw = ["-N", "1", "-b", "100", "-c", "64"]
    nvtcp(["write", "-d", src] + rw, tgt.port, BIDI, secret=None, ctrl_secret=None,
          extra=files)
    nvtcp(["read", "-d", dst] + rw, tgt.port, BIDI, secret=None, ctrl_secret=None,
          extra=files)
    with open(dst, "rb") as f:
        check(f.read() == data, "data read back differs")


def t_perf_2q(tgt):
    m = tgt.mark()
    _, out, _, _ = nvtcp(["perf", "--json", "-t", "2", "--verify", "--queues", "2"], tgt.port,
                         BIDI)
    j = json.loads(out)
    check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
          "perf: %r" % j)
    queues = sorted(q for q, _, _, _, bidi in auth_lines(tgt.since(m)) if bidi)
    check(queues == ["q0", "q1", "q2"], "authenticated queues: %r" % queues)


def t_uni(tgt):
    m = tgt.mark()
    nvtcp(["identify"], tgt.port, BIDI, ctrl_secret=None)
    lines = auth_lines(tgt.since(m))
    check(len(lines) == 1 and not lines[0][4], "expected one unidirectional: %r" % lines)


def t_lists(tgt):
    m = tgt.mark()
    nvtcp(["identify"], tgt.port, STRICT, extra=["--dhchap-hash", "sha256,sha512",
                                                 "--dhchap-dhgroup", "null,ffdhe2048"])
    lines = auth_lines(tgt.since(m))
    check(len(lines) == 1 and lines[0][2:4] == ("sha512", "ffdhe2048"),
          "hash/group: %r" % lines)
    _, _, err, took = nvtcp(["identify"], tgt.port, STRICT, expect_rc=1,
                            extra=["--dhchap-hash", "sha256,sha384"])
    check("controller refused the exchange (reason 0x4: hash function not usable)" in err,
          "message: " + err[-800:])
    check(took < 10, "took %.1f s" % took)
    _, _, err, _ = nvtcp(["identify"], tgt.port, STRICT, expect_rc=1,
                         extra=["--dhchap-hash", "sha512,md5"])
    check("md5" in err, "bad list not reported: " + err[-800:])


def t_wrong_host(tgt):
    m = tgt.mark()
    rc, _, err, took = nvtcp(["perf", "-t", "1", "--queues", "2"], tgt.port, BIDI, secret=WRONG,
                             ctrl_secret=None, expect_rc=1)
    check("DH-HMAC-CHAP authentication failed: controller rejected our key (reason 0x1" in err,
          "message: " + err[-800:])
    check(took < 10, "took %.1f s" % took)
    log = tgt.since(m)
    check("authentication failed (reason 0x1)" in log and not auth_lines(log),
          "nvtcpd log: " + log[-800:])


def t_wrong_ctrl(tgt):
    _, _, err, took = nvtcp(["identify"], tgt.port, BIDI, ctrl_secret=gen_key(2, 48),
                            expect_rc=1)
    check("DH-HMAC-CHAP authentication failed: controller failed to authenticate itself" in err,
          "message: " + err[-800:])
    check(took < 10, "took %.1f s" % took)


def t_no_secret(tgt):
    _, _, err, _ = nvtcp(["identify"], tgt.port, BIDI, secret=None, ctrl_secret=None,
                         expect_rc=1)
    check("requires DH-HMAC-CHAP authentication" in err and "--dhchap-secret" in err,
          "message: " + err[-800:])
    # Another allowed host's key does not work for this host NQN (keys are bound to NQNs).
    _, _, err, _ = nvtcp(["identify"], tgt.port, STRICT, secret=OTHER, ctrl_secret=None,
                         expect_rc=1)
    check("controller rejected our key" in err, "message: " + err[-800:])
    nvtcp(["identify"], tgt.port, STRICT, secret=OTHER, ctrl_secret=None, hostnqn=OTHERNQN)


def t_file_mode(tgt):
    path = os.path.join(TMP, "loose.key")
    with open(path, "w") as f:
        f.write(KEY + "\n")
    os.chmod(path, 0o644)
    _, _, err, _ = nvtcp(["identify"], tgt.port, BIDI, secret=None, ctrl_secret=None,
                         expect_rc=1, extra=["--dhchap-secret-file", path])
    check("mode 0600 or 0400" in err, "message: " + err[-800:])


def t_discover(tgt):
    m = tgt.mark()
    _, out, _, _ = nvtcp(["discover", "--json"], tgt.port, None)
    check(BIDI in out.decode(), "discovery log lacks the subsystem")
    check(not auth_lines(tgt.since(m)), "discovery was authenticated")


def t_reconnect(tgt):
    cmd = [NVTCP, "perf", "--json", "-a", "127.0.0.1", "-s", str(tgt.port), "-n", BIDI,
           "--hostnqn", HOSTNQN, "--dhchap-secret", KEY, "--dhchap-ctrl-secret", CKEY,
           "-t", "5", "--verify", "--queues", "2", "-q", "16", "--reconnect-delay", "0.2",
           "--ctrl-loss-tmo", "15"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, XDG_CONFIG_HOME=TMP))
    time.sleep(1.5)
    check(p.poll() is None, "perf ended early")
    tgt.kill9()
    time.sleep(0.5)
    m = tgt.mark()
    tgt.start()
    out, err = p.communicate(timeout=60)
    err = err.decode(errors="replace")
    check(not SAN_RE.search(err), "sanitizer report from perf:\n" + err[-3000:])
    check(p.returncode == 0, "perf exited %d: %s" % (p.returncode, err[-1500:]))
    j = json.loads(out)
    check(j["errors"] == 0 and j["mismatched_blocks"] == 0 and j["verified_blocks"] > 0,
          "after restart: %r" % j)
    queues = sorted(q for q, _, _, _, bidi in auth_lines(tgt.since(m)) if bidi)
    check(queues == ["q0", "q1", "q2"], "re-authenticated queues after restart: %r" % queues)


def main():
    global NVTCPD, NVTCP, TMP
    if len(sys.argv) < 3:
        print("usage: test_host_auth.py NVTCPD NVTCP", file=sys.stderr)
        return 2
    NVTCPD, NVTCP = sys.argv[1], sys.argv[2]
    TMP = tempfile.mkdtemp(prefix="nvtcp-hostauth-")
    signal.alarm(200)  # the whole suite, hard bound
    cfg = os.path.join(TMP, "nvtcpd.json")
    write_config(cfg, os.path.join(TMP, "ns1.img"))
    tgt = Target(free_port(), cfg).start()
    try:
        case("identify, bidirectional: admin queue authenticated both ways", t_identify_bidi,
             tgt)
        case("write then read back, secrets from 0600 files", t_rw_files, tgt)
        case("perf -t 2 --verify on 2 queues: admin and both I/O queues authenticated",
             t_perf_2q, tgt)
        case("host secret only: unidirectional", t_uni, tgt)
        case("--dhchap-hash/--dhchap-dhgroup: agreeing lists, disjoint lists, bad name",
             t_lists, tgt)
        case("wrong host secret: exit 1, 'controller rejected our key', quickly", t_wrong_host,
             tgt)
        case("wrong controller secret: exit 1, 'controller failed to authenticate itself'",
             t_wrong_ctrl, tgt)
        case("no secret / another host's secret: refused; right NQN and key: served",
             t_no_secret, tgt)
        case("world-readable secret file refused", t_file_mode, tgt)
        case("discover with a secret: not authenticated", t_discover, tgt)
        case("kill -9 nvtcpd under perf --verify: every queue re-authenticates, 0 errors",
             t_reconnect, tgt)
    finally:
        rc = tgt.stop()
    case("nvtcpd exits 0 on SIGTERM, no sanitizer report",
         lambda: check(rc == 0 and not SAN_RE.search(tgt.log_text()),
                       "rc %d, log tail: %s" % (rc, tgt.log_text()[-1500:])))
    print("1..%d" % len(TAP.results))  # the plan last: no count to keep in step by hand
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
