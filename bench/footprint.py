#!/usr/bin/env python3
"""Footprint of an idle remora: exec-to-ready time, RSS and CPU with every built plugin loaded.

usage: bench/footprint.py [BUILD_DIR] [--idle SECONDS] [--starts N]

"Ready" is the moment the agent logs that it started (all instances created and started; the
first listener joins with the network services). RSS is VmRSS from /proc; CPU is the time
on CPU of every thread (/proc/PID/task/*/schedstat) over the idle window, as a percentage of
one core. Reported, not asserted: run it on a quiet
machine and compare runs of the same machine.
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def args():
    build, idle, starts = "build", 60.0, 20
    a = sys.argv[1:]
    while a:
        x = a.pop(0)
        if x == "--idle":
            idle = float(a.pop(0))
        elif x == "--starts":
            starts = int(a.pop(0))
        else:
            build = x
    return build, idle, starts


def proc_stat(pid):
    """CPU seconds used by every thread of pid, in nanosecond resolution (schedstat), since
    /proc/PID/stat counts in 10 ms ticks, too coarse for an idle process."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    build, idle, starts = args()
    binary = os.path.join(build, "remora")
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.close()
    env = {"PATH": os.environ.get("PATH", ""), "REMORA_AGENT_LOG_LEVEL": "info"}
    plugins = subprocess.run([binary, "plugins", "-c", conf.name], env=env,
                             stdout=subprocess.PIPE, text=True).stdout
    loaded = [l.split()[1] for l in plugins.splitlines()[1:] if l.split()[:1] in (["input"], ["output"])]

    times = []
    for _ in range(starts):
        t0 = time.perf_counter()
        p = subprocess.Popen([binary, "run", "-c", conf.name], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        for line in p.stderr:
            if " started with " in line:
                times.append((time.perf_counter() - t0) * 1000)
                break
        p.send_signal(signal.SIGTERM)
        p.wait()

    p = subprocess.Popen([binary, "run", "-c", conf.name], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    cpu0, t0 = proc_stat(p.pid), time.monotonic()
    peak = 0
    while time.monotonic() - t0 < idle:
        time.sleep(min(1.0, idle))
        peak = max(peak, rss_kib(p.pid))
    cpu1, t1 = proc_stat(p.pid), time.monotonic()
    rss = rss_kib(p.pid)
    p.send_signal(signal.SIGTERM)
    rc = p.wait()
    os.unlink(conf.name)

    print(f"plugins loaded: {', '.join(loaded)}")
    print(f"exec to ready: median {statistics.median(times):.2f} ms, "
          f"p90 {sorted(times)[int(len(times) * 0.9) - 1]:.2f} ms, max {max(times):.2f} ms "
          f"over {len(times)} starts")
    print(f"idle RSS: {rss / 1024:.2f} MiB (peak {peak / 1024:.2f} MiB)")
    print(f"idle CPU: {100 * (cpu1 - cpu0) / (t1 - t0):.4f}% of one core over {t1 - t0:.0f} s "
          f"(dk ticking every 10 s, file output to /dev/null)")
    print(f"exit code after SIGTERM: {rc}")


if __name__ == "__main__":
    main()
