#!/usr/bin/env python3
"""ECS Fargate end to end: the real binary with the ecs_fargate and container inputs polls a
fake task metadata endpoint (fake_ecs.py: a generated task that is none of the shared
fixtures, whose counters advance between polls) and writes to the file output. Checked: every
schema's names, values (computed here with the Docker formula) and tags; the pause container
and the null stats entry are skipped without an error; network rates are not summed across
containers; a schema-less input's records carry the task tags once the first poll is done;
endpoint failures give fargate_check CRITICAL/WARNING and counted errors; without a metadata
variable the input says once why it is idle and the agent exits 0 on SIGTERM.
"""
import json
import os
import socket
import time

import fake_ecs
from agentlib import BUILD, TMP, Agent, plugin_dir, write
from tap import main

TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_udpcount.so"), name="ecs")


def read_lines(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for x in f:
            if x.strip():
                out.append(json.loads(x))
    return out


def wait_for(path, pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = read_lines(path)
        if pred(lines):
            return lines
        time.sleep(0.05)
    return read_lines(path)


def sig4(x):
    return float(f"{x:.4g}")


def find(lines, **want):
    """Records whose top-level keys and tags match want (tag keys prefixed 'tag_')."""
    out = []
    for r in lines:
        ok = True
        for k, v in want.items():
            if k.startswith("tag_"):
                key = k[4:].replace("__", ".").replace("_dash_", "-")
                if r.get("tags", {}).get(key) != v:
                    ok = False
            elif r.get(k) != v:
                ok = False
        if ok:
            out.append(r)
    return out


def udp_address(a, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in a.errors().splitlines():
            if "input.udpcount: listening for datagrams on " in line:
                return line.rsplit(" ", 1)[1]
        time.sleep(0.05)
    return None


def send_udp(addr, word):
    host, port = addr[len("udp://"):].rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(word.encode(), (host, int(port)))
    s.close()


def test_fargate_task(t):
    srv = fake_ecs.MetadataServer()
    out = os.path.join(TMP, "ecs.ndjson")
    conf = write(os.path.join(TMP, "ecs.conf"),
                 "[input.ecs_fargate]\ninterval = 1s\n\n"
                 "[input.container]\ninterval = 1s\n\n"
                 "[input.udpcount]\n\n"
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, ECS_CONTAINER_METADATA_URI_V4=srv.base)
    addr = udp_address(a)
    t.ok(addr is not None, "the schema-less test input listens", a.errors())

    # Three polls at least: rates need two, and the third shows they keep coming.
    lines = wait_for(out, lambda ls: len(find(ls, schema="datadog",
                                              name="ecs.fargate.net.bytes_rcvd")) >= 4, 20)
    dd = [r for r in lines if r.get("schema") == "datadog"]
    web, rem = fake_ecs.expected("web", 2), fake_ecs.expected("remora", 2)
    cron = fake_ecs.expected("cron", 2)

    cpu = {r["tags"].get("container_name"): r["value"]
           for r in find(dd, name="ecs.fargate.cpu.percent")}
    t.eq(sorted(cpu), ["cron", "remora", "web"],
         "cpu.percent for each NORMAL container; pause and null stats skipped", cpu)
    t.eq(sig4(cpu.get("web", 0)), sig4(web["cpu_percent"]), "web cpu % by the Docker formula")
    t.eq(sig4(cpu.get("remora", 0)), sig4(rem["cpu_percent"]), "remora cpu % (cgroup v2)")
    idle = [r["value"] for r in find(dd, name="ecs.fargate.cpu.percent", tag_container_name="cron")]
    t.ok(idle and all(v == 0 for v in idle), "an idle container's cpu.percent is 0 at every poll",
         idle)

    ws = {r["tags"].get("container_name"): r["value"]
          for r in find(dd, name="ecs.fargate.mem.working_set")}
    t.eq(ws, {"web": web["working_set"], "remora": rem["working_set"],
              "cron": cron["working_set"]},
         "working set: usage - total_inactive_file (v1) / inactive_file (v2)")
    usage = {r["tags"].get("container_name"): r["value"]
             for r in find(dd, name="ecs.fargate.mem.usage")}
    t.eq(usage, {"web": web["mem_usage"], "remora": rem["mem_usage"], "cron": cron["mem_usage"]},
         "mem.usage is raw usage")

    rx = find(dd, name="ecs.fargate.net.bytes_rcvd")
    t.ok(len(rx) >= 2 and all(r["tags"].get("interface") == "eth1" for r in rx),
         "net.bytes_rcvd per interface", rx[:2])
    t.eq(sorted({r["tags"]["container_name"] for r in rx}), ["cron", "remora", "web"],
         "net rates per container, none for a task total")
    t.ok(all(abs(r["value"] - web["rx_rate"]) < 1e-6 for r in rx),
         f"every net rate is the task ENI's {web['rx_rate']} B/s, not a sum over containers",
         [r["value"] for r in rx])
    usage_rate = [r for r in find(dd, name="ecs.fargate.cpu.usage")
                  if r["tags"].get("container_name") == "web"]
    t.ok(usage_rate and abs(usage_rate[-1]["value"] - web["cpu_usage_rate"]) < 1e-3,
         f"cpu.usage is the rate of total_usage ({web['cpu_usage_rate']} ns/s)",
         usage_rate[-1:] if usage_rate else None)

    tags = find(dd, name="ecs.fargate.cpu.percent")[0]["tags"]
    for k, v in [("ecs_cluster_name", "payments-prod"), ("task_family", fake_ecs.FAMILY),
                 ("task_version", fake_ecs.REVISION), ("task_arn", fake_ecs.TASK_ARN),
                 ("region", fake_ecs.REGION), ("availability-zone", fake_ecs.AZ)]:
        t.eq(tags.get(k), v, f"datadog tag {k}")
    webtags = find(dd, name="ecs.fargate.cpu.percent", tag_container_name="web")[0]["tags"]
    t.eq([webtags.get(k) for k in ("short_image", "image_tag", "image_name")],
         ["web", "2.7.1", "123456789012.dkr.ecr.eu-west-3.amazonaws.com/shop/web"],
         "datadog image tags split from the reference")
    mtl = find(dd, name="ecs.fargate.mem.task.limit")
    t.ok(mtl and mtl[0]["value"] == 2048 * 1048576 and "container_name" not in mtl[0]["tags"],
         "mem.task.limit in bytes with task tags only", mtl[:1])
    chk = [r for r in lines if r.get("kind") == "check" and r.get("name") == "fargate_check"]
    t.ok(chk and all(r["status"] == 0 for r in chk), "fargate_check OK", chk[:1])

    el = [r for r in lines if r.get("schema") == "elastic"]
    elw = [r for r in el if r.get("tags", {}).get("container.name") == "web"]
    t.ok(elw, "an elastic awsfargate.task_stats document for web")
    if elw:
        f = elw[-1]["fields"]
        t.eq(sig4(f.get("awsfargate.task_stats.cpu.total.pct", -1)),
             sig4(web["cpu_percent"] / 100), "elastic cpu.total.pct is a fraction")
        t.eq(sig4(f.get("awsfargate.task_stats.cpu.user.pct", -1)), sig4(web["user_pct"]),
             "elastic cpu.user.pct from the document's own precpu window")
        t.eq(sig4(f.get("awsfargate.task_stats.cpu.kernel.pct", -1)), sig4(web["kernel_pct"]),
             "elastic cpu.kernel.pct likewise")
        first = elw[0]["fields"]
        t.ok("awsfargate.task_stats.cpu.user.pct" in first,
             "elastic cpu.user.pct already in the first document", sorted(first))
        t.eq(elw[-1]["tags"].get("cloud.region"), fake_ecs.REGION, "elastic cloud.region")
        t.eq(elw[-1]["tags"].get("awsfargate.task_stats.cluster_name"), "payments-prod",
             "elastic cluster_name")
    elc = [r for r in el if r.get("tags", {}).get("container.name") == "cron"]
    t.ok(elc and all(r["fields"].get("awsfargate.task_stats.cpu.total.pct") == 0 and
                     r["fields"].get("awsfargate.task_stats.cpu.user.pct") == 0 for r in elc),
         "elastic: an idle container's cpu.total.pct and cpu.user.pct are 0",
         [r["fields"] for r in elc[:1]])
    t.eq(sorted({r["tags"].get("container.name") for r in el}), ["cron", "remora", "web"],
         "elastic: one document per NORMAL container")

    gu = [r for r in lines if r.get("schema") == "guance" and r.get("kind") == "metric"]
    guw = [r for r in gu if r["tags"].get("container_name") == "web"]
    t.ok(guw, "a guance docker_containers metric for web")
    if guw:
        f = guw[-1]["fields"]
        t.eq(sig4(f.get("cpu_usage", -1)), sig4(web["cpu_percent"]), "guance cpu_usage")
        t.eq(f.get("mem_usage"), web["working_set"], "guance mem_usage is the working set")
        k = None
        for s in range(1, 50):  # which poll this record came from, by its cumulative counter
            if fake_ecs.expected("web", s)["rx_total"] == f.get("network_bytes_rcvd"):
                k = s
        t.ok(k is not None, "network_bytes_rcvd is the container's own cumulative counter",
             f.get("network_bytes_rcvd"))
        t.eq(guw[-1]["tags"].get("aws_ecs_cluster_name"), "payments-prod",
             "guance aws_ecs_cluster_name")
    objs = [r for r in lines if r.get("schema") == "guance" and r.get("kind") == "object"]
    t.eq(sorted({r["name"] for r in objs}), sorted([fake_ecs.CONTAINERS[0]["id"],
                                                   fake_ecs.CONTAINERS[1]["id"],
                                                   fake_ecs.CONTAINERS[4]["id"]]),
         "guance docker_containers objects named by container id")
    guc = [r for r in gu if r["tags"].get("container_name") == "cron"]
    t.ok(guc and all(r["fields"].get("cpu_usage") == 0 for r in guc),
         "guance cpu_usage of an idle container is 0", [r["fields"] for r in guc[:1]])
    if objs:
        t.ok(isinstance(json.loads(objs[0]["fields"]["message"]), dict),
             "the object's message is a JSON document")

    # A schema-less record after the first poll carries the task tags (as DogStatsD would).
    send_udp(addr, "after")
    lines = wait_for(out, lambda ls: find(ls, name="udp.len", tag_word="after"), 10)
    u = find(lines, name="udp.len", tag_word="after")
    t.ok(u, "the schema-less record arrived")
    if u:
        for k, v in [("ecs_cluster_name", "payments-prod"), ("task_arn", fake_ecs.TASK_ARN),
                     ("task_family", fake_ecs.FAMILY), ("region", fake_ecs.REGION),
                     ("availability-zone", fake_ecs.AZ)]:
            t.eq(u[0]["tags"].get(k), v, f"schema-less record carries {k}")
    t.ok("error" not in a.errors().lower() and "warn" not in a.errors().lower(),
         "no error or warning logged for the pause container or the null entry", a.errors())
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors())
    srv.close()


def test_failures(t):
    srv = fake_ecs.MetadataServer(mode="stats_500")
    out = os.path.join(TMP, "ecsfail.ndjson")
    conf = write(os.path.join(TMP, "ecsfail.conf"),
                 "[input.ecs_fargate]\ninterval = 1s\ntimeout = 500ms\n\n"
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, ECS_CONTAINER_METADATA_URI_V4=srv.base)

    def checks(ls):
        return [r for r in ls if r.get("kind") == "check" and r.get("name") == "fargate_check"]

    lines = wait_for(out, lambda ls: checks(ls), 10)
    t.eq([r["status"] for r in checks(lines)][:1], [1], "stats answering 500: WARNING")
    srv.set_mode("task_bad_json")
    lines = wait_for(out, lambda ls: any(r["status"] == 2 for r in checks(ls)), 10)
    t.ok(any(r["status"] == 2 for r in checks(lines)), "bad /task JSON: CRITICAL")
    srv.set_mode("ok")
    lines = wait_for(out, lambda ls: checks(ls) and checks(ls)[-1]["status"] == 0, 10)
    t.eq(checks(lines)[-1]["status"] if checks(lines) else None, 0,
         "the next good poll: OK again")
    t.ok(find(lines, name="ecs.fargate.cpu.percent"), "metrics flow after recovery")
    srv.set_mode("hang")
    time.sleep(2.5)
    t.eq(a.stop(), 0, "SIGTERM with a poll hanging exits 0", a.errors())
    lines = read_lines(out)
    t.ok(any(r["status"] == 2 for r in checks(lines)[-3:]), "a timed-out poll: CRITICAL",
         checks(lines)[-3:])
    t.ok(a.errors().count("500") >= 1, "the 500 is logged with its cause", a.errors())
    srv.close()

    # Nobody listening: CRITICAL, counted, and the agent keeps running.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out2 = os.path.join(TMP, "ecsdown.ndjson")
    conf = write(os.path.join(TMP, "ecsdown.conf"),
                 "[input.ecs_fargate]\ninterval = 1s\n\n"
                 f"[output.file]\npath = {out2}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR,
              ECS_CONTAINER_METADATA_URI_V4=f"http://127.0.0.1:{port}/v4/x")
    lines = wait_for(out2, lambda ls: len(checks(ls)) >= 2, 10)
    t.ok(len(checks(lines)) >= 2 and all(r["status"] == 2 for r in checks(lines)),
         "an unreachable endpoint: CRITICAL at every poll")
    t.eq(a.stop(), 0, "and the agent still exits 0", a.errors())


def test_not_on_ecs(t):
    out = os.path.join(TMP, "noecs.ndjson")
    conf = write(os.path.join(TMP, "noecs.conf"),
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, ECS_FARGATE="true")
    time.sleep(1.5)
    rc = a.stop()
    err = a.errors()
    idle = [x for x in err.splitlines() if "ecs_fargate" in x and "ECS_CONTAINER_METADATA_URI" in x]
    t.eq(len(idle), 1, "ECS_FARGATE=true without a metadata variable: one line says why", err)
    t.eq(rc, 0, "SIGTERM exits 0")
    t.eq([r for r in read_lines(out) if r.get("schema") == "datadog"], [], "nothing emitted")


if __name__ == "__main__":
    main([test_fargate_task, test_failures, test_not_on_ecs])
