"""harness.py - what the nvtcpd/nvtcp integration suites share: TAP cases, nvtcpd start/stop.

Used by test_host_target.py, test_host_auth.py and test_tls.py (test_target.py and test_load.py
have their own Tap/Daemon, test_load.py reusing test_target.py's). A suite raises Failure (via
check) to fail a case; any other exception fails it too, with the traceback. Every process
started here writes its stderr to a file under the suite's temporary directory, and a
sanitizer report in any of it fails the case that looks.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

SAN_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer")


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tap:
    """Numbered TAP results. timed: append "(x.y s)" to each line; prefix and tail: how the
    failure detail is printed (tail=None: every line, also for a passing case)."""

    def __init__(self, timed=True, prefix="#   ", tail=None):
        self.timed = timed
        self.prefix = prefix
        self.tail = tail
        self.results = []

    def case(self, name, fn, *a):
        t0 = time.time()
        try:
            fn(*a)
            ok, why = True, ""
        except Failure as e:
            ok, why = False, str(e)
        except Exception:  # noqa: BLE001 - a bug in the test itself fails the case too
            ok, why = False, traceback.format_exc()
        self.results.append(ok)
        line = "%s %d - %s" % ("ok" if ok else "not ok", len(self.results), name)
        if self.timed:
            line += " (%.1f s)" % (time.time() - t0)
        print(line)
        lines = why.splitlines()
        if self.tail is not None:
            lines = lines[-self.tail:]
        for text in lines:
            print(self.prefix + text)
        sys.stdout.flush()

    def finish(self):
        """Prints the summary comment; returns the exit code."""
        failed = self.results.count(False)
        print("# %d passed, %d failed" % (len(self.results) - failed, failed))
        return 1 if failed else 0


class Nvtcpd:
    """One nvtcpd process. config: -c file or None; listen: ports given as --listen
    127.0.0.1:P; args: more options; port: the one start() waits for. Each start() logs to a new file in tmp."""

    def __init__(self, exe, tmp, port, config=None, listen=(), args=()):
        self.exe = exe
        self.args = list(args)
        self.tmp = tmp
        self.port = port
        self.config = config
        self.listen = list(listen)
        self.proc = None
        self.logs = []

    def start(self):
        args = [self.exe]
        if self.config:
            args += ["-c", self.config]
        for p in self.listen:
            args += ["--listen", "127.0.0.1:%d" % p]
        args += self.args
        log = open(os.path.join(self.tmp, "nvtcpd-%d-%d.log" % (self.port, len(self.logs))), "w+")
        self.logs.append(log)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure("nvtcpd exited at start: " + self.log_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise Failure("nvtcpd did not start listening")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after timeout seconds; returns the exit code (-999: killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -999
        return self.proc.returncode

    def log_text(self):
        """Everything every start() logged, in order."""
        out = ""
        for log in self.logs:
            log.flush()
            log.seek(0)
            out += log.read()
        return out

    def sanitizer_report(self):
        return bool(SAN_RE.search(self.log_text()))

    def mark(self):
        return len(self.log_text())

    def since(self, mark):
        return self.log_text()[mark:]


def run_cli(cmd, what=None, stdin=None, timeout=60, env=None):
    """Run the nvtcp CLI (cmd: full argv); a sanitizer report in its stderr raises Failure
    naming what. Returns (CompletedProcess, stderr text, seconds)."""
    t0 = time.time()
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, env=env)
    took = time.time() - t0
    err = p.stderr.decode(errors="replace")
    if what is None:
        check(not SAN_RE.search(err), "sanitizer report:\n" + err[-3000:])
    else:
        check(not SAN_RE.search(err), "sanitizer report from %s:\n%s" % (what, err[-3000:]))
    return p, err, took
