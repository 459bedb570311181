#!/usr/bin/env python3
"""Who held the reader's core when datagrams were lost: remora's dogstatsd input under one metric
per datagram, traced with perf.

usage: bench/dsd_trace.py [BUILD_DIR] [--rate N] [--seconds S] [--rcvbuf BYTES] [--keep FILE]

Runs remora (BUILD_DIR/remora, the dogstatsd input and the file output to /dev/null, so_rcvbuf
0: the kernel's default buffer unless --rcvbuf) pinned to CPU 1, and bench/dsd_load on CPU 0
sending one metric per datagram at --rate (150000) for --seconds (35: three flushes), while
`perf record -a` takes sched:sched_switch, sched:sched_wakeup and skb:kfree_skb for
SOCKET_RCVBUFF (the kernel dropping a datagram for a full receive buffer). Needs perf and root.

It prints:
- drops: bursts of drops (drops less than 2 ms apart) and, for each burst, what ran on CPU 1
  in the 2 ms before its first drop, summed by command (swapper = the core was idle in the
  guest: a reader woken and not run is a vCPU the hypervisor did not schedule);
- reader waits: the times the reader thread (remora-dgram) was runnable and not running, and
  how many of them had remora's other threads (comm "remora": the loop and the encode
  workers) on the core for more than 0.5, 1 and 1.5 ms of the wait (a 208 KiB buffer holds
  1.7 ms of one-metric datagrams at 150,000/s);
- steal: the milliseconds /proc/stat reports for CPU 1 over the trace (10 ms ticks).
Reported, not asserted: a busy or stolen machine shows in the swapper and steal numbers.
"""
import bisect
import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from proclib import steal_ms

PROGRAM_CPU, SENDER_CPU = "1", "0"
EVENT = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)")
SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> "
                    r"next_comm=(.*?) next_pid=(\d+)")
SOCKET_RCVBUFF = 6  # enum skb_drop_reason


def args():
    o = {"build": "build", "rate": 150000, "seconds": 35.0, "rcvbuf": "0", "keep": None}
    a = sys.argv[1:]
    if a and not a[0].startswith("--"):
        o["build"] = a.pop(0)
    while a:
        k = a.pop(0)
        if k == "--rate":
            o["rate"] = int(a.pop(0))
        elif k == "--seconds":
            o["seconds"] = float(a.pop(0))
        elif k == "--rcvbuf":
            o["rcvbuf"] = a.pop(0)
        elif k == "--keep":
            o["keep"] = a.pop(0)
        else:
            sys.exit(__doc__)
    return o


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(o, tmp):
    plugins = os.path.join(tmp, "p")
    os.mkdir(plugins)
    for f in ("input_dogstatsd.so", "output_file.so"):
        shutil.copy(os.path.join(o["build"], "plugins", f), plugins)
    port = free_port()
    conf = os.path.join(tmp, "remora.conf")
    with open(conf, "w") as f:
        f.write(f"[input.dogstatsd]\nport = {port}\nso_rcvbuf = {o['rcvbuf']}\n"
                "\n[output.file]\npath = /dev/null\n")
    env = dict(os.environ, REMORA_AGENT_PLUGIN_DIR=plugins, REMORA_AGENT_LOG_LEVEL="warn")
    agent = subprocess.Popen(["taskset", "-c", PROGRAM_CPU, os.path.join(o["build"], "remora"),
                              "run", "-c", conf], env=env)
    time.sleep(1.0)
    data = os.path.join(tmp, "perf.data")
    load = subprocess.Popen([os.path.join(o["build"], "bench", "dsd_load"), "--target",
                             f"udp://127.0.0.1:{port}", "--per-packet", "1", "--rate",
                             str(o["rate"]), "--duration", str(o["seconds"]), "--cpu", SENDER_CPU],
                            stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    s0 = steal_ms(PROGRAM_CPU)
    subprocess.run(["perf", "record", "-q", "-a", "-o", data, "-e", "sched:sched_switch", "-e",
                    "sched:sched_wakeup", "-e", "skb:kfree_skb", "--filter",
                    f"reason == {SOCKET_RCVBUFF}", "--", "sleep", str(max(1.0, o["seconds"] - 2))],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steal = steal_ms(PROGRAM_CPU) - s0
    load.wait()
    agent.terminate()
    agent.wait(20)
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,cpu,time,event,trace"],
                          check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True).stdout
    if o["keep"]:
        with open(o["keep"], "w") as f:
            f.write(text)
    return text, steal


def analyse(text):
    runs, drops, waits = [], [], []
    cur = cur_t = None
    running, runnable, held = False, None, collections.Counter()
    for line in text.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        _, _, cpu, t, name, rest = m.groups()
        t = float(t)
        if name == "skb:kfree_skb":
            drops.append(t)
        elif name == "sched:sched_wakeup" and "comm=remora-dgram " in rest:
            if runnable is None and not running:
                runnable, held = t, collections.Counter()
        elif name == "sched:sched_switch" and int(cpu) == int(PROGRAM_CPU):
            s = SWITCH.search(rest)
            if s is None:
                continue
            prev, _, state, nxt, _ = s.groups()
            if cur is not None:
                runs.append((cur_t, t, cur))
                if runnable is not None:
                    held[cur] += t - max(cur_t, runnable)
            if prev == "remora-dgram":
                running = False
                runnable, held = (t if state.startswith("R") else None), collections.Counter()
            if nxt == "remora-dgram":
                if runnable is not None:
                    waits.append(held.get("remora", 0.0))
                runnable, running = None, True
            cur, cur_t = ("swapper" if nxt.startswith("swapper") else nxt), t
    bursts = []
    for t in sorted(drops):
        if bursts and t - bursts[-1][1] < 0.002:
            bursts[-1][1] = t
            bursts[-1][2] += 1
        else:
            bursts.append([t, t, 1])
    starts = [r[0] for r in runs]
    blame, count = collections.Counter(), collections.Counter()
    for first, _, n in bursts:
        lo = first - 0.002
        i = max(0, bisect.bisect_left(starts, lo) - 1)
        seen = collections.Counter()
        while i < len(runs) and runs[i][0] < first:
            s, e, who = runs[i]
            if min(e, first) > max(s, lo):
                seen[who] += min(e, first) - max(s, lo)
            i += 1
        who = seen.most_common(1)[0][0] if seen else "?"
        blame[who] += n
        count[who] += 1
    return drops, bursts, blame, count, waits


def main():
    o = args()
    if shutil.which("perf") is None:
        sys.exit("dsd_trace.py: needs perf (Debian package linux-perf)")
    tmp = tempfile.mkdtemp(prefix="remora-trace-")
    try:
        text, steal = run(o, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    drops, bursts, blame, count, waits = analyse(text)
    print(f"dsd_trace: {o['rate']} datagrams/s for {o['seconds']:.0f} s, so_rcvbuf {o['rcvbuf']}; "
          f"steal on CPU {PROGRAM_CPU}: {steal:.0f} ms")
    print(f"drops: {len(drops)} in {len(bursts)} bursts; by what held CPU {PROGRAM_CPU} most "
          "in the 2 ms before a burst:")
    for who, n in blame.most_common():
        print(f"  {who:24s} {n:7d} drops in {count[who]:4d} bursts")
    print(f"reader waits: {len(waits)}; with remora's other threads on the core for more than "
          f"0.5 ms: {sum(w > 0.0005 for w in waits)}, 1 ms: {sum(w > 0.001 for w in waits)}, "
          f"1.5 ms: {sum(w > 0.0015 for w in waits)}")


if __name__ == "__main__":
    main()
