#!/usr/bin/env python3
"""Count TAP cases in a meson testlog.json: prints "PASSED FAILED".

A test binary that failed (or timed out) without any TAP "not ok" line counts as one failure,
so a crash can never pass silently."""
import json
import re
import sys

passed = failed = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout", "") or ""
        ok = len(re.findall(r"^ok \d+", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
            bad = 1
            print(f"test {t.get('name')} ended {t.get('result')} with no failing case", file=sys.stderr)
        passed += ok
        failed += bad
print(passed, failed)
