#!/usr/bin/env python3
"""The dataway output with the real binary: ENV_DATAWAY=http://127.0.0.1:PORT?token=... turns
it on; the seq test input's numbered gauges, the dk input and a DogStatsD packet go to a strict
fake dataway (path per category, token in the query, gzip, X-Points, content type). 500 twice
then 200 loses nothing; 400 drops and logs; the token is never in stderr, /v1/status, /metrics
or check-config.
"""
import os
import re
import socket
import time

from agentlib import BUILD, TMP, Agent, plugin_dir, run, write
from fake_dataway import CATEGORIES, Dataway
from influx import INFLUXD, Influx
from servers import free_udp_port
from tap import main

TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_seq.so"), name="dataway")
TOKEN = "tkn_9f8e7d6c5b4a3921"


def conf(name, count=300, extra=""):
    return write(os.path.join(TMP, f"dw-{name}.conf"),
                 f"[input.seq]\ncount = {count}\nper_tick = 100\ninterval = 50ms\n\n"
                 f"[input.dk]\ninterval = 1s\n\n{extra}"
                 f"[output.dataway]\nbatch_timeout = 100ms\nbatch_records = 100\n"
                 f"retry_initial = 100ms\nretry_max = 400ms\nrequest_timeout = 2s\n")


def seq_values(dw):
    out = []
    for line in dw.category_lines("metric"):
        m = re.match(r"seq,(?:\S*,)?seq=(\d+)(?:,\S*)? value=", line)
        if m:
            out.append(int(m.group(1)))
    return out


def instance(a, name):
    return a.instance(name) or {}


def test_retries_lose_nothing(t):
    dw = Dataway(TOKEN, script=["500", "500"])
    port = free_udp_port()
    a = Agent(["-c", conf("retry", extra=f"[input.dogstatsd]\naddress = udp://127.0.0.1:{port}\n"
                          "flush_interval = 100ms\n\n")],
              REMORA_AGENT_PLUGIN_DIR=PDIR, ENV_DATAWAY=f"{dw.url}?token={TOKEN}")
    t.ok(a.http_address() is not None, "the agent starts", a.errors())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"page.views:3|g|#env:prod\n_e{6,9}:deploy|v2 is out|t:success\n"
             b"_sc|db.up|2|m:down", ("127.0.0.1", port))
    s.close()
    ok = dw.wait(lambda: set(seq_values(dw)) >= set(range(300)), 25)
    t.ok(ok, "500 twice then 200: all 300 seq records arrive",
         f"{len(set(seq_values(dw)))} arrived; statuses {dw.statuses()}\n{a.errors()[-2000:]}")
    t.eq(dw.statuses()[:2], [500, 500], "the first two requests got 500")
    t.eq(len(seq_values(dw)), 300, "none twice (a 500 means not stored)")
    t.ok(dw.wait(lambda: any(l.startswith("remora_") for l in dw.category_lines("metric")), 10),
         "dk metrics arrive as remora_* measurements")
    t.ok(dw.wait(lambda: len(dw.category_lines("keyevent")) >= 2, 10),
         "the DogStatsD event and service check arrive as keyevents",
         repr(dw.category_lines("keyevent")))
    t.ok(dw.wait(lambda: any(l.startswith("page_views,") for l in dw.category_lines("metric")),
                 25), "the DogStatsD gauge arrives as page_views")
    t.eq(dw.violations, [], "every request passed the fake dataway's checks")
    out = instance(a, "output.dataway")
    t.eq(out.get("records_dropped"), 0, "nothing is dropped")
    st_text = a.get("/v1/status")[1] + a.get("/metrics")[1]
    t.ok(TOKEN not in st_text, "the token is in neither /v1/status nor /metrics")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.ok(TOKEN not in a.errors(), "the token is not in the log")
    dw.close()


def test_400_drops_and_logs(t):
    dw = Dataway(TOKEN, default="400")
    a = Agent(["-c", conf("reject", count=100)], REMORA_AGENT_PLUGIN_DIR=PDIR,
              ENV_DATAWAY=f"{dw.url}?token={TOKEN}")
    t.ok(dw.wait(lambda: len(dw.statuses()) >= 1, 15), "requests reach the dataway")
    end = time.monotonic() + 10
    out = {}
    while time.monotonic() < end:
        out = instance(a, "output.dataway")
        if out.get("records_dropped", 0) >= 100:
            break
        time.sleep(0.1)
    t.ok(out.get("records_dropped", 0) >= 100, "400: the records are dropped and counted",
         repr(out))
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    err = a.errors()
    t.ok("400" in err and "fake dataway says 400" in err, "the 400 is logged with its body",
         err[-2000:])
    t.ok(TOKEN not in err, "the token is not in the log")
    t.eq(dw.violations, [], "every request passed the fake dataway's checks")
    dw.close()


def test_url_and_token_option(t):
    dw = Dataway(TOKEN)
    path = write(os.path.join(TMP, "dw-token.conf"),
                 "[input.seq]\ncount = 50\nper_tick = 50\ninterval = 50ms\n\n"
                 f"[output.dataway]\nurl = {dw.url}/\ntoken = {TOKEN}\nbatch_timeout = 100ms\n")
    a = Agent(["-c", path], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(dw.wait(lambda: set(seq_values(dw)) >= set(range(50)), 15),
         "url + token: all 50 records arrive with ?token=", f"{dw.violations}\n{a.errors()[-2000:]}")
    t.eq(dw.violations, [], "every request passed the fake dataway's checks")
    t.ok(TOKEN not in a.get("/v1/status")[1], "the token is not in /v1/status")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.ok(TOKEN not in a.errors(), "the token is not in the log")
    dw.close()


def test_check_config_redacts(t):
    conf_path = write(os.path.join(TMP, "dw-check.conf"),
                      "[output.dataway]\nurl = http://127.0.0.1:1\ntoken = " + TOKEN + "\n")
    r = run(["check-config", "-c", conf_path], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.eq(r.returncode, 0, "check-config with a token exits 0", r.stderr)
    t.ok(TOKEN not in r.stdout + r.stderr, "the token option is redacted")
    r = run(["check-config", "-c", os.path.join(TMP, "empty.conf")], REMORA_AGENT_PLUGIN_DIR=PDIR,
            ENV_DATAWAY=f"http://127.0.0.1:1?token={TOKEN}")
    t.eq(r.returncode, 0, "check-config with ENV_DATAWAY exits 0", r.stderr)
    t.contains(r.stdout, "[output.dataway]", "ENV_DATAWAY turns the output on")
    t.ok(TOKEN not in r.stdout + r.stderr, "the url with its token is redacted")


def test_413_split_and_influx(t):
    """A 413 splits the body in two, each half with its own X-Points; then InfluxDB 1.x takes
    every line the fake dataway received."""
    dw = Dataway(TOKEN, script=["413"])
    port = free_udp_port()
    a = Agent(["-c", conf("split", extra=f"[input.dogstatsd]\naddress = udp://127.0.0.1:{port}\n"
                          "flush_interval = 100ms\n\n")],
              REMORA_AGENT_PLUGIN_DIR=PDIR, ENV_DATAWAY=f"{dw.url}?token={TOKEN}")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"api.latency:12|ms|#route:/a b,env:prod\napi.hits:1|c|#k=v:x\n"
             b"_e{5,4}:title|text|t:error", ("127.0.0.1", port))
    s.close()
    ok = dw.wait(lambda: set(seq_values(dw)) >= set(range(300)), 25)
    t.ok(ok, "after a 413 every seq record still arrives", f"statuses {dw.statuses()}")
    t.eq(dw.statuses()[:1], [413], "the first request got 413")
    t.eq(len(seq_values(dw)), 300, "none twice")
    t.eq(dw.violations, [], "each half passed the checks: X-Points equals its lines")
    _, metrics = a.get("/metrics")
    t.ok('remora_payloads_split_total{instance="output.dataway"' in metrics,
         "the split is counted")
    dw.wait(lambda: any(l.startswith("api_latency") for l in dw.category_lines("metric")), 25)
    t.eq(a.stop(), 0, "SIGTERM exits 0")

    if not os.path.exists(INFLUXD):
        t.ok(os.environ.get("REMORA_REQUIRE_INFLUXD") != "1",
             "influxd is installed (REMORA_REQUIRE_INFLUXD=1)")
        dw.close()
        return
    ix = Influx()
    t.ok(ix.wait(), "influxd starts", ix.logtail())
    refused = []
    total = 0
    for cat in CATEGORIES:
        lines = dw.category_lines(cat)
        if not lines:
            continue
        ix.query("", f'CREATE DATABASE "dw_{cat}"')
        for line in lines:
            total += 1
            code, text = ix.write(f"dw_{cat}", line + "\n")
            if code != 204:
                refused.append((cat, line[:200], text[:200]))
    t.ok(total >= 300, f"{total} lines received in all")
    t.eq(refused, [], "InfluxDB 1.x accepts every line the dataway received")
    ix.stop()
    dw.close()


if __name__ == "__main__":
    main([test_retries_lose_nothing, test_400_drops_and_logs, test_url_and_token_option,
          test_check_config_redacts, test_413_split_and_influx])
