#!/usr/bin/env python3
"""A -Dbuiltin=dk,file,http,ecs_fargate,container,dogstatsd,dataway,datadog binary (shared plugin libraries linked once):
every plugin is listed as builtin and dk records reach stdout.
usage: builtin_smoke.py PATH/TO/remora"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1]
with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
    env = {"PATH": os.environ.get("PATH", ""), "REMORA_INPUT_DK_INTERVAL": "1s"}
    out = subprocess.run([binary, "plugins", "-c", conf.name], env=env, stdout=subprocess.PIPE,
                         text=True).stdout
    listed = [l for l in out.splitlines() if l.endswith("[builtin]")]
    want = {"dk", "file", "http", "ecs_fargate", "container", "dogstatsd", "dataway", "datadog"}
    if {l.split()[1] for l in listed} != want:
        sys.exit(f"expected {sorted(want)} as builtins:\n{out}")
    p = subprocess.Popen([binary, "run", "-c", conf.name], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    time.sleep(2.5)
    p.send_signal(signal.SIGTERM)
    stdout, _ = p.communicate(timeout=25)
    recs = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not any(r.get("name") == "remora.process.rss_bytes" for r in recs):
        sys.exit(f"builtin agent: exit {p.returncode}, {len(recs)} records")
print("builtin smoke: ok")
