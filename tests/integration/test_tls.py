#!/usr/bin/env python3
"""test_tls.py - NVMe/TCP over TLS 1.3 (PSK): the nvtcp CLI against nvtcpd on loopback, TAP.

Usage: test_tls.py NVTCPD NVTCP

nvtcpd gets a config with a TLS-required, a TLS-optional and a plain port, and two subsystems:
one whose host has a SHA-256 key (hh 01, TLS_AES_128_GCM_SHA256) given inline, one whose host
has a SHA-384 key (hh 02, TLS_AES_256_GCM_SHA384) in a 0600 key file. Cases: discover (TSAS
reports TLS), identify, write then read back and compare, perf -t 3 --verify, for both
identity forms and both cipher suites; perf --verify with KeyUpdates forced every 16 records
by the host (NVTCP_TLS_KEYUPDATE_EVERY) on both suites; plaintext host on the required port
refused, plaintext host on the optional port served, TLS host on the plain port failing
cleanly, wrong key failing cleanly, a key file readable by others refused by nvtcpd. The
Linux kernel peers cannot do TLS here (no tlshd on Debian 12): nvtcp <-> nvtcpd only.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from harness import Nvtcpd, Tap, check, free_port, run_cli

HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
SUB128 = "nqn.2024-01.io.nvtcp:tls128"
SUB256 = "nqn.2024-01.io.nvtcp:tls256"
# libnvme's test vector (hh 01, 32 bytes) and a 48-byte hh 02 key (bytes 30h..5Fh)
KEY128 = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:"
KEY256 = ("NVMeTLSkey-1:02:MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f"
          "+ENbJA==:")
WRONG = "NVMeTLSkey-1:01:NcaiDakZHbs8XWq5/phuwUmjrYqxWK8y332sSkcm3We9aYKB:"
MODEL = {SUB128: "nvtcp tls128 model", SUB256: "nvtcp tls256 model"}  # Identify MN per subsystem

NVTCPD = NVTCP = TMP = None
TAP = Tap(timed=False, prefix="# ", tail=25)
case = TAP.case


def write_config(ports, key_file, extra_host=None):
    cfg = {
        "ports": [{"addr": "127.0.0.1", "port": ports[0], "secure": "required"},
                  {"addr": "127.0.0.1", "port": ports[1], "secure": "optional"},
                  {"addr": "127.0.0.1", "port": ports[2]}],
        "subsystems": [
            {"nqn": SUB128, "model": MODEL[SUB128], "hosts": [{"nqn": HOSTNQN, "psk": KEY128}],
             "namespaces": [{"nsid": 1, "backend": "memory", "size": "64M"}]},
            {"nqn": SUB256, "model": MODEL[SUB256],
             "hosts": [{"nqn": HOSTNQN, "psk_file": key_file}],
             "namespaces": [{"nsid": 1, "backend": "memory", "size": "64M"}]},
        ],
    }
    path = os.path.join(TMP, "nvtcpd-%d.json" % ports[0])
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def start_target(config, port):
    """nvtcpd with config (its ports in it), started once port listens. With
    --zero-copy-reads: TLS connections must keep copying (they encrypt a copy anyway)."""
    return Nvtcpd(NVTCPD, TMP, port, config, args=["--zero-copy-reads"]).start()


def stop_target(tgt):
    tgt.stop(10)
    check(not tgt.sanitizer_report(), "sanitizer report in nvtcpd:\n" + tgt.log_text()[-3000:])


def nvtcp(args, port, key=None, version=None, env=None, timeout=60, data=None):
    cmd = [NVTCP] + args + ["-a", "127.0.0.1", "-s", str(port), "--hostnqn", HOSTNQN]
    if key:
        cmd += ["--tls-key", key]
    if version is not None:
        cmd += ["--tls-identity", "v%d" % version]
    e = dict(os.environ)
    e.update(env or {})
    p, err, _ = run_cli(cmd, stdin=data, timeout=timeout, env=e)
    return p.returncode, p.stdout, err


def main():
    global NVTCPD, NVTCP, TMP
    NVTCPD, NVTCP = sys.argv[1], sys.argv[2]
    TMP = tempfile.mkdtemp(prefix="nvtcp-tls-")
    ports = [free_port(), free_port(), free_port()]
    req, opt, plain = ports
    key_file = os.path.join(TMP, "key256")
    with open(key_file, "w") as f:
        f.write(KEY256 + "\n")
    os.chmod(key_file, 0o600)
    tgt = start_target(write_config(ports, key_file), req)
    suites = [(SUB128, KEY128, "TLS_AES_128_GCM_SHA256"),
              (SUB256, KEY256, "TLS_AES_256_GCM_SHA384")]

    def discover():
        rc, out, err = nvtcp(["discover"], req, KEY128, 0)
        check(rc == 0, "discover over TLS failed: " + err)
        text = out.decode()
        check(SUB128 in text and SUB256 in text, "subsystems missing:\n" + text)
        # TSAS: the required and optional ports report TLS, the plain one none
        # 3 ports x (discovery subsystem + 2 NVM subsystems)
        check(text.count("sectype: tls") == 6 and text.count("sectype: none") == 3,
              "unexpected TSAS:\n" + text)

    case("discover over TLS (required port), TSAS says TLS 1.3", discover)

    for sub, key, suite in suites:
        for version in (0, 1):
            tag = "%s v%d" % (suite, version)

            def identify(sub=sub, key=key, version=version, suite=suite):
                mark = tgt.mark()
                rc, out, err = nvtcp(["identify", "-n", sub, "--json"], req, key, version)
                check(rc == 0, "identify failed: " + err)
                ctrl = json.loads(out)["controller"]
                check(ctrl["subnqn"] == sub and ctrl["mn"] == MODEL[sub],
                      "identify: subnqn %r mn %r, expected %r %r"
                      % (ctrl["subnqn"], ctrl["mn"], sub, MODEL[sub]))
                # only what this identify logged: every handshake used suite and a vN identity
                # whose hash (NVMe<v>R<hh>) is the key's
                ident = "NVMe%dR%s" % (version, key.split(":")[1])
                est = re.findall(r"TLS 1\.3 established: (\S+), PSK identity (\S+)",
                                 tgt.since(mark))
                check(est and all(c == suite and i == ident for c, i in est),
                      "target did not log %s with identity %s for this identify: %r"
                      % (suite, ident, est))

            case("identify over TLS, " + tag, identify)

            def write_read(sub=sub, key=key, version=version):
                blob = os.urandom(64 * 1024 + 512)
                n = len(blob) // 512
                rc, _, err = nvtcp(["write", "-n", sub, "--start-block", "100", "--block-count",
                                    str(n), "--data", "-"], req, key, version, data=blob)
                check(rc == 0, "write failed: " + err)
                rc, out, err = nvtcp(["read", "-n", sub, "--start-block", "100", "--block-count",
                                      str(n)], req, key, version)
                check(rc == 0, "read failed: " + err)
                check(out == blob, "read back differs (%d bytes vs %d)" % (len(out), len(blob)))

            case("write then read back over TLS, " + tag, write_read)

            def perf(sub=sub, key=key, version=version):
                rc, out, err = nvtcp(["perf", "-n", sub, "-t", "3", "-q", "16", "-o", "16k",
                                      "-w", "randrw", "--verify"], req, key, version, timeout=90)
                check(rc == 0, "perf --verify failed:\n" + out.decode()[-1500:] + err[-1500:])

            case("perf -t 3 --verify over TLS, " + tag, perf)

    for sub, key, suite in suites:
        def keyupdate(sub=sub, key=key, suite=suite):
            before = len(re.findall(r"after (\d+) KeyUpdates received", tgt.log_text()))
            rc, out, err = nvtcp(["perf", "-n", sub, "-t", "3", "-q", "32", "-o", "128k",
                                  "-w", "randrw", "--verify"], req, key, 1,
                                 env={"NVTCP_TLS_KEYUPDATE_EVERY": "16"}, timeout=90)
            check(rc == 0, "perf --verify with forced KeyUpdates failed:\n" +
                  out.decode()[-1500:] + err[-1500:])
            time.sleep(0.3)
            counts = [int(n) for n in
                      re.findall(r"after (\d+) KeyUpdates received", tgt.log_text())[before:]]
            # 3 s of 128 KiB I/O are thousands of records: many KeyUpdates per queue
            check(counts and max(counts) >= 20, "target saw too few KeyUpdates: %s" % counts)

        case("KeyUpdate every 16 records under perf --verify load, " + suite, keyupdate)

    def tls_digests():
        # C2HData digests are computed as the stream hands the data to TLS; TLS takes at
        # most 64 KiB per call, so a 128 KiB payload is CRC'd piece by piece after each call
        for size in ("4k", "128k"):
            rc, out, err = nvtcp(["perf", "-n", SUB128, "-t", "2", "-q", "16", "-o", size,
                                  "-w", "randrw", "--verify", "--hdr-digest", "--data-digest"],
                                 req, KEY128, 0, timeout=90)
            check(rc == 0, "perf --verify %s with digests over TLS failed:\n" % size +
                  out.decode()[-1500:] + err[-1500:])

    case("perf --verify over TLS with header and data digests, 4K and 128K", tls_digests)

    def tls_large_reads():
        # nvtcpd runs with --zero-copy-reads: 128K-512K Reads without digests would go by
        # reference on plain TCP, and must be copied into TLS records here
        for size in ("128k", "512k"):
            rc, out, err = nvtcp(["perf", "-n", SUB128, "-t", "1", "-q", "8", "-o", size,
                                  "-w", "randrw", "--verify"], req, KEY128, 0, timeout=90)
            check(rc == 0, "perf --verify %s over TLS failed:\n" % size +
                  out.decode()[-1500:] + err[-1500:])

    case("perf --verify 128K and 512K over TLS, nvtcpd --zero-copy-reads (copied)",
         tls_large_reads)

    def plain_to_required():
        rc, _, err = nvtcp(["discover"], req)
        check(rc != 0, "plaintext host was served by a TLS-required port")
        check("refused: plaintext NVMe/TCP" in tgt.log_text(), "target logged no clear refusal")

    case("plaintext host on the required port is refused", plain_to_required)

    def plain_to_optional():
        rc, out, err = nvtcp(["identify", "-n", SUB128], opt)
        check(rc == 0, "plaintext identify on the optional port failed: " + err)
        rc, out, err = nvtcp(["identify", "-n", SUB256], opt, KEY256, 1)
        check(rc == 0, "TLS identify on the optional port failed: " + err)

    case("optional port serves plaintext and TLS hosts", plain_to_optional)

    def tls_to_plain():
        rc, _, err = nvtcp(["discover"], plain, KEY128, 0, timeout=30)
        check(rc != 0, "TLS host succeeded against a plain port")
        check("does not speak TLS" in err, "unclear error: " + err)

    case("TLS host on a plain port fails cleanly", tls_to_plain)

    def wrong_key():
        for version in (0, 1):
            rc, _, err = nvtcp(["identify", "-n", SUB128], req, WRONG, version, timeout=30)
            check(rc != 0, "wrong key accepted (v%d)" % version)
            check("refused the TLS PSK" in err, "unclear error (v%d): %s" % (version, err))

    case("wrong key fails the handshake with a clear error", wrong_key)

    def key_file_mode():
        loose = os.path.join(TMP, "loose")
        with open(loose, "w") as f:
            f.write(KEY256)
        os.chmod(loose, 0o644)
        p2 = [free_port(), free_port(), free_port()]
        cfg = write_config(p2, loose)
        p = subprocess.run([NVTCPD, "-c", cfg], capture_output=True, timeout=20)
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0, "nvtcpd accepted a world-readable key file")
        check("mode 0600 or 0400" in err and KEY256[20:40] not in err,
              "unclear error or key shown: " + err)

    case("a key file readable by others is refused", key_file_mode)

    def no_secrets_logged():
        text = tgt.log_text()
        for k in (KEY128, KEY256):
            check(k[16:40] not in text, "key material in the target log")

    case("no key material in the target log", no_secrets_logged)
    case("nvtcpd stops cleanly (no sanitizer report)", stop_target, tgt)

    print("1..%d" % len(TAP.results))
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
