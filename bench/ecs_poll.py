#!/usr/bin/env python3
"""Cost of the ECS inputs in the real agent: ecs_fargate and container poll the fake task
metadata endpoint (test/integration/fake_ecs.py: a generated task whose containers
include one with a null stats entry and the pause container; counters advance on every
/task/stats request) every second, and the file output writes every record to /dev/null.
Compared with an idle agent of the same length that runs only the dk input (also present in
the ECS run, so the ECS inputs are the only difference).

usage: bench/ecs_poll.py [BUILD_DIR] [--duration SECONDS] [--warmup SECONDS] [--interval D]
                         [--split] [--keepalive]

--split adds a run with each ECS input alone, to attribute the CPU to one or the other.
--keepalive makes the fake endpoint answer HTTP/1.1 with keep-alive, as the ECS agent's Go
server does; by default it answers HTTP/1.0 (http.server's default), one connection per GET.

Reported per run, over a window of --duration seconds (default 30) that starts --warmup
seconds (default 3) after the agent is ready, so start-up and the first polls are left out:
  - polls per instance: successful GETs of the instance (http_fetches{code=200} in
    /v1/status) / 2, a poll being /task + /task/stats; and records_in per poll;
  - CPU: utime + stime of /proc/PID/stat (10 ms ticks: over 60 polls a figure per poll moves
    in steps of 0.17 ms) and the sum of the threads' /proc/PID/task/*/schedstat (ns); the
    idle run's CPU rate times the window is subtracted, and what is left is divided by the
    polls of both instances;
  - memory at the end of the window: VmRSS, RssAnon (what the agent itself allocated; VmRSS
    adds shared libraries' pages it touched), VmHWM (peak), and the change of VmRSS over the
    window (a leak per poll would show here); and where the ECS run's extra VmRSS is, by
    mapping (/proc/PID/smaps).
/v1/status is read at both ends of the window in every run, idle included, so its cost cancels.

The agent's HTTP listener is on 127.0.0.1:0 (REMORA_AGENT_HTTP_LISTEN); its address comes
from the "listening for HTTP on" line of stderr. Loopback only; bounded by the durations.

No peers: none of Datadog Agent, Datakit or Metricbeat is installable here, so there is no
side-by-side number; compare against their published footprints with care.

Reported, not asserted: run it on a quiet machine and compare runs of the same machine.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import fake_ecs  # noqa: E402


def args():
    o = {"build": "build", "duration": 30.0, "warmup": 3.0, "interval": "1s", "split": False,
         "keepalive": False}
    a = sys.argv[1:]
    while a:
        x = a.pop(0)
        if x in ("--duration", "--warmup"):
            o[x[2:]] = float(a.pop(0))
        elif x == "--interval":
            o["interval"] = a.pop(0)
        elif x == "--split":
            o["split"] = True
        elif x == "--keepalive":
            o["keepalive"] = True
        elif x.startswith("-"):
            sys.exit(__doc__)
        else:
            o["build"] = x
    return o


def cpu_stat(pid):
    """utime + stime of every thread, seconds (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_sched(pid):
    """Time on CPU of the live threads, seconds (ns resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


def rss_by_mapping(pid):
    """VmRSS split by what is mapped (a library's file name, [heap], [anon], ...), KiB."""
    out, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
                name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1])
    return out


def mem_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "VmHWM"):
                out[k] = int(line.split()[1])
    return out


class Agent:
    def __init__(self, build, conf, extra_env):
        self.tmp = tempfile.mkdtemp(prefix="remora-ecsbench-")
        path = os.path.join(self.tmp, "remora.conf")
        with open(path, "w") as f:
            f.write(conf)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp, "LANG": "C",
               "REMORA_AGENT_HTTP_LISTEN": "127.0.0.1:0", "REMORA_AGENT_LOG_LEVEL": "info"}
        env.update(extra_env)
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen([os.path.join(build, "remora"), "run", "-c", path], env=env,
                                  stdout=subprocess.DEVNULL, stderr=self.err)
        self.addr = None
        end = time.monotonic() + 10
        while time.monotonic() < end and self.p.poll() is None:
            m = re.search(r"listening for HTTP on (\S+)", self.log())
            if m and " started with " in self.log():
                self.addr = m.group(1)
                break
            time.sleep(0.02)
        if self.addr is None:
            self.stop()
            sys.exit(f"the agent did not start:\n{self.log()}")

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def status(self):
        host, port = self.addr.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            c.request("GET", "/v1/status")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "killed"
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc


def counters(st):
    """instance name -> (polls so far, records_in, fetch errors)."""
    out = {}
    for i in st["instances"]:
        if i["kind"] != "input":
            continue
        f = i.get("counters", {}).get("http_fetches", {})
        ok = f.get("200", 0)
        out[i["name"]] = (ok / 2, i["records_in"], sum(v for k, v in f.items() if k != "200"))
    return out


def run(o, label, inputs, srv):
    conf = "[input.dk]\n\n"
    for name in inputs:
        conf += f"[input.{name}]\ninterval = {o['interval']}\n\n"
    conf += "[output.file]\npath = /dev/null\n"
    extra = {"ECS_CONTAINER_METADATA_URI_V4": srv.base} if inputs else {}
    a = Agent(o["build"], conf, extra)
    time.sleep(o["warmup"])
    pid = a.p.pid
    s0, c0, k0, m0, t0 = a.status(), cpu_stat(pid), cpu_sched(pid), mem_kib(pid), time.monotonic()
    req0 = len(srv.requests)
    time.sleep(o["duration"])
    s1, c1, k1, m1, t1 = a.status(), cpu_stat(pid), cpu_sched(pid), mem_kib(pid), time.monotonic()
    req1 = len(srv.requests)
    maps = rss_by_mapping(pid)
    rc = a.stop()
    n0, n1 = counters(s0), counters(s1)
    inst = {}
    for name in inputs:
        p = n1[f"input.{name}"][0] - n0[f"input.{name}"][0]
        r = n1[f"input.{name}"][1] - n0[f"input.{name}"][1]
        inst[name] = {"polls": p, "records": r, "errors": n1[f"input.{name}"][2]}
    return {"label": label, "inputs": inputs, "window": t1 - t0, "stat": c1 - c0,
            "sched": k1 - k0, "mem": m1, "rss_delta": m1["VmRSS"] - m0["VmRSS"], "rc": rc,
            "maps": maps, "instances": sorted(n1), "inst": inst, "requests": req1 - req0}


def main():
    o = args()
    srv = fake_ecs.MetadataServer()
    if o["keepalive"]:
        # Handlers are made per connection from this class: HTTP/1.1 keeps connections open.
        srv.srv.RequestHandlerClass.protocol_version = "HTTP/1.1"
    plan = [("idle: dk", []), ("dk + ecs_fargate + container", ["ecs_fargate", "container"])]
    if o["split"]:
        plan += [("dk + ecs_fargate", ["ecs_fargate"]), ("dk + container", ["container"])]
    cs = fake_ecs.CONTAINERS
    null = sum(1 for c in cs if c.get("null_stats"))
    pause = sum(1 for c in cs if not c.get("null_stats") and
                (c.get("type", "NORMAL") != "NORMAL" or c["name"] == "~internal~ecs~pause"))
    print(f"ecs_poll: {os.path.join(o['build'], 'remora')}, inputs every {o['interval']} against "
          f"fake_ecs ({len(cs)} containers: {len(cs) - null - pause} with stats, {null} null "
          f"entry, {pause} pause; {'HTTP/1.1 keep-alive' if o['keepalive'] else 'HTTP/1.0'}), "
          f"file output to /dev/null; {o['duration']:.0f} s windows after "
          f"{o['warmup']:.0f} s warm-up; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")
    res = []
    for label, inputs in plan:
        res.append(run(o, label, inputs, srv))
    srv.close()
    idle = res[0]
    rate_stat, rate_sched = idle["stat"] / idle["window"], idle["sched"] / idle["window"]

    print("\nper input (window)")
    print(f"  {'run':30s} {'input':12s} {'polls':>6s} {'records/poll':>13s} {'fetch errors':>13s}")
    for r in res[1:]:
        for name, v in r["inst"].items():
            rp = v["records"] / v["polls"] if v["polls"] else 0
            print(f"  {r['label']:30s} {name:12s} {v['polls']:6.0f} {rp:13.1f} {v['errors']:13d}")

    print("\nper run (CPU over idle; memory at the end of the window)")
    print(f"  {'run':30s} {'window':>6s} {'polls':>5s} {'CPU ms':>13s} {'over idle ms':>13s} "
          f"{'us/poll':>15s} {'% of 1 vCPU':>11s} {'VmRSS':>7s} {'RssAnon':>7s} {'VmHWM':>7s} "
          f"{'dRSS':>6s} {'exit':>4s}")
    print(f"  {'':30s} {'s':>6s} {'':>5s} {'stat/sched':>13s} {'stat/sched':>13s} "
          f"{'stat/sched':>15s} {'sched':>11s} {'MiB':>7s} {'MiB':>7s} {'MiB':>7s} "
          f"{'KiB':>6s} {'':>4s}")
    for r in res:
        polls = sum(v["polls"] for v in r["inst"].values())
        over_stat = r["stat"] - rate_stat * r["window"]
        over_sched = r["sched"] - rate_sched * r["window"]
        per = (f"{over_stat / polls * 1e6:.0f}/{over_sched / polls * 1e6:.0f}" if polls
               else "-")
        over = f"{over_stat * 1e3:.0f}/{over_sched * 1e3:.1f}" if r is not idle else "-"
        pct = f"{100 * over_sched / r['window']:.3f}" if r is not idle else \
            f"({100 * r['sched'] / r['window']:.3f})"
        m = r["mem"]
        cpu = f"{r['stat'] * 1e3:.0f}/{r['sched'] * 1e3:.1f}"
        print(f"  {r['label']:30s} {r['window']:6.1f} {polls:5.0f} {cpu:>13s} "
              f"{over:>13s} {per:>15s} {pct:>11s} {m['VmRSS'] / 1024:7.2f} "
              f"{m.get('RssAnon', 0) / 1024:7.2f} {m['VmHWM'] / 1024:7.2f} {r['rss_delta']:6d} "
              f"{r['rc']!s:>4s}")
    ecs, base = res[1]["mem"], idle["mem"]
    d = {k: (ecs.get(k, 0) - base.get(k, 0)) / 1024 for k in ("VmRSS", "RssAnon", "VmHWM")}
    print(f"\nECS inputs' memory over idle: VmRSS {d['VmRSS']:+.2f} MiB, "
          f"RssAnon {d['RssAnon']:+.2f} MiB, VmHWM {d['VmHWM']:+.2f} MiB")
    diff = {k: res[1]["maps"].get(k, 0) - idle["maps"].get(k, 0)
            for k in set(res[1]["maps"]) | set(idle["maps"])}
    top = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:6]
    print("  where (VmRSS by mapping, KiB over idle): " +
          ", ".join(f"{k} {v:+d}" for k, v in top))
    print(f"fake endpoint: {res[1]['requests']} requests in the both-inputs window; "
          f"instances: {', '.join(res[1]['instances'])} (idle: {', '.join(idle['instances'])})")
    print("CPU ms: utime+stime from /proc/PID/stat (10 ms ticks) / schedstat sum of threads (ns); "
          "the idle row's % is its own total.")


if __name__ == "__main__":
    main()
