#!/usr/bin/env python3
"""Count TAP cases in a meson testlog.json: prints "PASSED SKIPPED FAILED" on the first line,
then one line per skipped case ("TEST: ok N - name # SKIP reason").

A case with a "# SKIP" directive is counted as skipped, not passed; a test binary that skipped
as a whole ("1..0 # SKIP", meson result SKIP) with no case line counts as one skip. A test
binary that failed (or timed out) without any TAP "not ok" line counts as one failure, so a
crash can never pass silently."""
import json
import re
import sys

# TAP directive: "# SKIP", case-insensitive, any word starting with skip ("# skipped: ...")
SKIP_RE = re.compile(r"#\s*skip", re.I)

passed = skipped = failed = 0
skip_lines = []
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout", "") or ""
        oks = re.findall(r"^ok \d+.*$", out, re.M)
        skips = [s for s in oks if SKIP_RE.search(s)]
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
            bad = 1
            print(f"test {t.get('name')} ended {t.get('result')} with no failing case", file=sys.stderr)
        passed += len(oks) - len(skips)
        if t.get("result") == "SKIP" and not oks and bad == 0:
            plan = re.search(r"^1\.\.0\b.*$", out, re.M)
            skips = [plan.group(0) if plan else "skipped as a whole"]
        skipped += len(skips)
        failed += bad
        skip_lines += [f"{t.get('name')}: {s.strip()}" for s in skips]
print(passed, skipped, failed)
for s in skip_lines:
    print(s)
