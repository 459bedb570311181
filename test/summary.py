#!/usr/bin/env python3
"""Counts test results across builds and prints one closing line "N passed, N failed".

Each argument is a meson build dir (or "dir:build-failed"). A TAP test contributes one result
per "ok"/"not ok" line; other tests one result by exit status. --result NAME ok|fail counts one check; --fuzz DIR SECONDS runs every
fuzz_* binary under DIR/test/fuzz for SECONDS each on its seed corpus, one result per target.
"""
import glob
import json
import os
import re
import subprocess
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count_build(d):
    passed = failed = 0
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"{d}: no test log")
        return 0, 1
    with open(log) as f:
        for line in f:
            t = json.loads(line)
            name = t.get("name", "?")
            out = t.get("stdout") or ""
            tap = [TAP.match(l) for l in out.splitlines()]
            tap = [m for m in tap if m]
            result = t.get("result")
            if tap:
                p = sum(1 for m in tap if m.group(1) == "ok" and "# SKIP" not in m.group(2))
                fl = sum(1 for m in tap if m.group(1) == "not ok" and "# TODO" not in m.group(2))
                if result not in ("OK", "EXPECTEDFAIL", "SKIP") and fl == 0:
                    fl = 1  # crashed or timed out after its last line
                passed += p
                failed += fl
                if fl:
                    print(f"FAIL {d} {name}: {fl} failed")
            elif result == "SKIP":
                continue
            elif result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
                print(f"FAIL {d} {name}: {result}")
    print(f"{d}: {passed} passed, {failed} failed")
    return passed, failed


def run_fuzz(d, seconds):
    passed = failed = 0
    for exe in sorted(glob.glob(os.path.join(d, "test", "fuzz", "fuzz_*"))):
        if not os.access(exe, os.X_OK) or exe.endswith((".p", ".o")) or os.path.isdir(exe):
            continue
        name = os.path.basename(exe)
        corpus_src = os.path.join("test", "fuzz", "corpus", name.replace("fuzz_", ""))
        work = os.path.join(d, "corpus-" + name)
        os.makedirs(work, exist_ok=True)
        args = [exe, f"-max_total_time={seconds}", "-print_final_stats=0", work]
        if os.path.isdir(corpus_src):
            args.append(corpus_src)
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
        if r.returncode == 0:
            passed += 1
            print(f"fuzz {name}: ok ({seconds}s)")
        else:
            failed += 1
            print(f"FAIL fuzz {name}: exit {r.returncode}")
            print("\n".join(r.stdout.splitlines()[-30:]))
    print(f"fuzz: {passed} passed, {failed} failed")
    return passed, failed


def main(argv):
    passed = failed = 0
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--fuzz":
            p, f = run_fuzz(argv[i + 1], int(argv[i + 2]))
            i += 3
        elif a == "--result":
            name, res = argv[i + 1], argv[i + 2]
            p, f = (1, 0) if res == "ok" else (0, 1)
            print(f"{name}: {res}")
            i += 3
        elif a == "--fuzz-failed":
            p, f = 0, 1
            i += 1
        elif a.endswith(":build-failed"):
            print(f"{a}: counted as one failure")
            p, f = 0, 1
            i += 1
        else:
            p, f = count_build(a)
            i += 1
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
