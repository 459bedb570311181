#!/usr/bin/env python3
"""The courier with the real binary: the http output posting the seq test input's numbered
records to a strict fake receiver that answers 200, 5xx, 429 with Retry-After, 413, 400, 403,
closes or hangs; for each, what the courier does, what arrives (counted) and what the counters,
/v1/status, `remora status` and `remora health` say.
"""
import http.client
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

from agentlib import BIN, BUILD, TMP, Agent, env, plugin_dir, write
from fakes import Receiver
from tap import main

TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_seq.so"),
                  os.path.join(TEST_PLUGINS, "input_echo.so"),
                  os.path.join(TEST_PLUGINS, "input_fetcher.so"),
                  os.path.join(TEST_PLUGINS, "output_haltout.so"), name="courier")
TOKEN = "tkn-9f8e7d6c5b4a"


def conf(name, url, count=500, per_tick=100, interval="50ms", extra=""):
    return write(os.path.join(TMP, f"{name}.conf"),
                 f"[input.seq]\ncount = {count}\nper_tick = {per_tick}\ninterval = {interval}\n\n"
                 f"[output.http]\nurl = {url}\nbatch_timeout = 100ms\nbatch_records = 100\n"
                 f"retry_initial = 100ms\nretry_max = 400ms\nrequest_timeout = 1s\n"
                 f"bearer_token = {TOKEN}\n{extra}")


def start(name, recv, **kw):
    extra_env = kw.pop("env", {})
    a = Agent(["-c", conf(name, recv.url, **kw)], REMORA_AGENT_PLUGIN_DIR=PDIR, **extra_env)
    return a


def counter(inst, name, key=None):
    c = (inst or {}).get("counters", {}).get(name)
    if isinstance(c, dict):
        return c.get(key, 0) if key is not None else sum(c.values())
    return c or 0


def all_arrived(recv, n):
    return lambda: set(recv.seq_values()) >= set(range(n))


def cli(a, *args):
    return subprocess.run([BIN, *args, "--address", a.http_address()], env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)


def test_delivers_with_token(t):
    recv = Receiver(content_type="application/x-ndjson",
                    expect_headers={"Authorization": f"Bearer {TOKEN}"})
    a = start("ok", recv)
    t.ok(recv.wait(all_arrived(recv, 500), 20), "200: all 500 records arrive",
         f"{len(recv.seq_values())} arrived\n{a.errors()}")
    t.eq(recv.violations, [], "every request passed the receiver's checks")
    t.ok(a.http_address() is not None, "the agent logs its listener address")
    # The receiver sees the last request before the agent has read its answer: wait for that.
    end = time.monotonic() + 10
    out = a.instance("output.http")
    while time.monotonic() < end and not (out and out["records_out"] == 500):
        time.sleep(0.05)
        out = a.instance("output.http")
    t.eq(out and out["records_out"], 500, "status: records_out is 500")
    t.eq(out and out["delivery"]["state"], "ok", "status: the output is ok")
    t.eq(counter(out, "http_responses", "200"), len(recv.requests), "status: one 200 per request")
    st_text = a.get("/v1/status")[1] + a.get("/metrics")[1]
    t.ok(TOKEN not in st_text, "the token is in neither /v1/status nor /metrics")
    r = cli(a, "health")
    t.eq(r.returncode, 0, "remora health exits 0", r.stdout + r.stderr)
    t.contains(r.stdout, "healthy", "remora health says healthy")
    r = cli(a, "status")
    t.eq(r.returncode, 0, "remora status exits 0", r.stderr)
    t.contains(r.stdout, "output.http", "remora status lists the output")
    t.ok(any(l.split()[:2] == ["output.http", "ok"] for l in r.stdout.splitlines()),
         "remora status shows its delivery state ok", r.stdout)
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.ok(TOKEN not in a.errors(), "the token is not in the log")
    recv.close()


def test_503_three_times(t):
    recv = Receiver(script=["503", "503", "503"])
    a = start("s503", recv)
    t.ok(recv.wait(all_arrived(recv, 500), 25), "503 x3 then 200: all 500 records arrive",
         f"{len(recv.seq_values())} arrived; statuses {recv.statuses()}\n{a.errors()}")
    out = a.instance("output.http")
    t.eq(counter(out, "http_responses", "503"), 3, "three 503s are counted")
    t.ok(counter(out, "retries") >= 3, "at least three retries are counted")
    t.eq(out["records_dropped"], 0, "nothing is dropped")
    t.eq(out["delivery"]["state"], "ok", "the output is ok again")
    t.contains(out["delivery"]["last_error"] or "", "HTTP 503", "last_error names the 503")
    metrics = a.get("/metrics")[1]
    t.contains(metrics, 'remora_http_responses_total{instance="output.http",plugin="http",'
               'kind="output",code="503"} 3', "/metrics counts the 503s")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    recv.close()


def test_500s_none_missing(t):
    recv = Receiver(script=["500"] * 6)
    a = start("s500", recv, count=1000)
    t.ok(recv.wait(all_arrived(recv, 1000), 30),
         "after six 500s every one of 1000 records arrives at least once",
         f"{len(set(recv.seq_values()))} distinct arrived\n{a.errors()}")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    vals = recv.seq_values()
    t.eq(sorted(set(vals)), list(range(1000)), "none missing")
    t.eq(len(vals), 1000, "and none twice (a 500 means not stored)")
    recv.close()


def test_retry_after(t):
    recv = Receiver(script=["429:2"])
    a = start("s429", recv, count=100)
    t.ok(recv.wait(all_arrived(recv, 100), 20), "429 then 200: all records arrive")
    times = [x[0] for x in recv.requests]
    gap = times[1] - times[0] if len(times) > 1 else 0
    t.ok(gap >= 1.9, f"the retry waited for Retry-After: 2 ({gap:.2f} s)")
    t.ok(gap < 6, "and not much longer")
    a.stop()
    recv.close()


def test_close_and_hang(t):
    recv = Receiver(script=["close", "hang"])
    a = start("hang", recv, count=200)
    t.ok(recv.wait(all_arrived(recv, 200), 25), "a closed connection and a hung request: "
         "all records arrive", f"statuses {recv.statuses()}\n{a.errors()}")
    out = a.instance("output.http")
    t.ok(counter(out, "http_responses", "error") >= 2, "both failures are counted as errors",
         out and out.get("counters"))
    t.contains(a.errors(), "timed out", "the hung request is logged as a timeout")
    a.stop()
    recv.close()


def test_413_split(t):
    recv = Receiver(default="413>30")
    a = start("split", recv, count=400, per_tick=200, extra="batch_records = 200\n")
    t.ok(recv.wait(all_arrived(recv, 400), 20), "413 for bodies over 30 lines: all 400 records "
         "arrive in smaller parts", f"{len(recv.seq_values())} arrived\n{a.errors()}")
    out = a.instance("output.http")
    t.ok(counter(out, "payloads_split") >= 4, "the courier split payloads",
         out and out.get("counters"))
    t.ok(all(n <= 30 for _, s, n, _ in recv.requests if s == "200"),
         "every accepted body has at most 30 lines")
    t.eq(len(recv.seq_values()), 400, "no record twice")
    a.stop()
    recv.close()


def test_400_rejects(t):
    recv = Receiver(default="400")
    a = start("reject", recv, count=300)
    ok = recv.wait(lambda: (a.instance("output.http") or {}).get("records_dropped", 0) >= 300,
                   20)
    out = a.instance("output.http")
    t.ok(ok, "400: the records are dropped", out)
    t.eq(out["drops"].get("rejected/metric"), 300, "counted as rejected metrics")
    t.eq(len(recv.requests), 3, "each payload is sent once, never retried")
    errs = a.errors()
    t.contains(errs, "field 'x' is bad", "the log quotes the body's error")
    t.ok(errs.count("backend rejected") == 1, "and is written once per interval",
         errs.count("backend rejected"))
    r = cli(a, "health")
    t.eq(r.returncode, 0, "rejections do not make the agent unhealthy", r.stdout)
    a.stop()
    recv.close()


def test_403_halts_and_keeps(t):
    recv = Receiver(default="403")
    a = start("halt", recv, count=300, extra="halt_probe = 1s\n")
    halted = recv.wait(lambda: ((a.instance("output.http") or {}).get("delivery") or {})
                       .get("state") == "halted", 15)
    t.ok(halted, "403: the output halts")
    time.sleep(0.5)
    out = a.instance("output.http")
    t.eq(out["records_dropped"], 0, "nothing is dropped while halted")
    t.ok(out["delivery"]["queue_records"] > 0, "the queue keeps the records",
         out["delivery"])
    r = cli(a, "health")
    t.eq(r.returncode, 1, "remora health exits 1")
    t.contains(r.stdout, "output.http is halted: HTTP 403", "and says why in one line")
    n_before = len(recv.requests)
    time.sleep(2.2)
    probes = len(recv.requests) - n_before
    t.ok(1 <= probes <= 3, f"it probes slowly (halt_probe 1s): {probes} requests in 2.2 s")
    recv.set_default("200")
    t.ok(recv.wait(all_arrived(recv, 300), 15), "after the key is fixed every record arrives")
    out = a.instance("output.http")
    t.eq(out["delivery"]["state"], "ok", "the output is ok again")
    r = cli(a, "health")
    t.eq(r.returncode, 0, "remora health exits 0 again", r.stdout)
    a.stop()
    recv.close()


def test_output_halts_itself(t):
    """rmr_output_halt (ABI 1.3): an output halts before sending anything, keeps its queue,
    says why, and the first accepted probe resumes it."""
    recv = Receiver()
    path = write(os.path.join(TMP, "selfhalt.conf"),
                 "[input.seq]\ncount = 200\nper_tick = 100\ninterval = 50ms\n\n"
                 f"[output.haltout]\nurl = {recv.url}\nbatch_timeout = 100ms\n"
                 "halt_probe = 2s\n")
    a = Agent(["-c", path], REMORA_AGENT_PLUGIN_DIR=PDIR)
    halted = recv.wait(lambda: ((a.instance("output.haltout") or {}).get("delivery") or {})
                       .get("state") == "halted", 10)
    t.ok(halted, "the output is halted from its start")
    t.ok(recv.wait(lambda: (a.instance("output.haltout") or {}).get("records_in", 0) >= 200, 5),
         "the records reach its queue")
    out = a.instance("output.haltout")
    t.eq(len(recv.requests), 0, "nothing is sent before halt_probe has passed")
    t.eq(out["records_dropped"], 0, "nothing is dropped")
    t.contains(json.dumps(out["delivery"]), "told to halt at start", "status says why")
    r = cli(a, "health")
    t.eq(r.returncode, 1, "remora health exits 1 while halted", r.stdout)
    t.contains(a.errors(), "halted: the output asked to halt (told to halt at start)",
               "one error line says why")
    t.ok(recv.wait(all_arrived(recv, 200), 10), "the probe is accepted and every record arrives")
    t.eq(a.instance("output.haltout")["delivery"]["state"], "ok", "the output is ok again")
    a.stop()
    recv.close()


def test_halted_shutdown(t):
    recv = Receiver(default="401")
    a = start("haltstop", recv, count=200)
    halted = recv.wait(lambda: ((a.instance("output.http") or {}).get("delivery") or {})
                       .get("state") == "halted", 15)
    t.ok(halted, "401: the output halts")
    begin = time.monotonic()
    rc = a.stop()
    took = time.monotonic() - begin
    t.eq(rc, 0, "SIGTERM exits 0")
    t.ok(took < 5, f"without waiting out the 20 s grace for a halted output ({took:.1f} s)")
    t.contains(a.errors(), "records undelivered", "and says how many records it could not ship")
    recv.close()


def test_when_full_drop_oldest(t):
    recv = Receiver(default="503")
    a = start("dropold", recv, count=3000, per_tick=500,
              extra="queue_bytes = 64KiB\nwhen_full = drop_oldest\nmax_in_flight = 1\n")
    ok = recv.wait(lambda: (a.instance("output.http") or {}).get("records_dropped", 0) > 0, 15)
    out = a.instance("output.http")
    t.ok(ok, "a full queue drops the oldest", out)
    t.ok(out["drops"].get("queue_full/metric", 0) > 0, "counted as queue_full metrics",
         out["drops"])
    t.ok(out["delivery"]["queue_bytes"] <= 65536 + 16384, "the queue stays near its bound",
         out["delivery"])
    a.stop()
    recv.close()


def test_when_full_block(t):
    recv = Receiver(default="503")
    a = start("block", recv, count=2000, per_tick=500,
              extra="queue_bytes = 64KiB\nwhen_full = block\nmax_in_flight = 1\n")
    ok = recv.wait(lambda: counter(a.instance("output.http"), "records_blocked") > 0, 15)
    t.ok(ok, "a full queue refuses new records (block)")
    t.eq(a.instance("output.http")["records_dropped"], 0, "and drops nothing")
    recv.set_default("200")
    t.ok(recv.wait(all_arrived(recv, 2000), 30),
         "once the backend recovers, every record arrives (the input offered them again)",
         f"{len(set(recv.seq_values()))} distinct")
    a.stop()
    recv.close()


def test_http_input_answers_429(t):
    recv = Receiver(default="503")
    conf = write(os.path.join(TMP, "echo429.conf"),
                 f"[input.echo]\n\n[output.http]\nurl = {recv.url}\nbatch_timeout = 50ms\n"
                 "queue_bytes = 64KiB\nmax_in_flight = 1\nretry_initial = 100ms\n"
                 "retry_max = 300ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    host, port = a.http_address().rsplit(":", 1)
    body = b"".join(b"log line %d with some padding to take room\n" % i for i in range(300))
    got = None
    for _ in range(60):
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        c.request("POST", "/test/echo", body=body)
        r = c.getresponse()
        r.read()
        c.close()
        if r.status == 429:
            got = r
            break
        time.sleep(0.05)
    t.ok(got is not None, "an HTTP input whose output blocks answers 429 (when_full auto, logs)")
    t.eq(got and got.getheader("Retry-After"), "1", "with Retry-After")
    out = a.instance("output.http")
    t.eq(out["drops"].get("queue_full/log"), None, "logs are refused, not dropped")
    a.stop()
    recv.close()


def test_fetch(t):
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("X-Test"),
                         self.headers.get("User-Agent", "")))
            body = json.dumps({"ok": True, "pad": "x" * 100}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    out = os.path.join(TMP, "fetch.ndjson")
    conf = write(os.path.join(TMP, "fetch.conf"),
                 f"[input.fetcher]\nurl = http://127.0.0.1:{srv.server_address[1]}/v4/task\n\n"
                 "[input.fetcher.down]\nurl = http://127.0.0.1:9/nothing\n\n"
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    lines = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if os.path.exists(out):
            with open(out) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        if any(x["value"] == 200 for x in lines) and any(x["value"] < 0 for x in lines):
            break
        time.sleep(0.1)
    a.stop()
    srv.shutdown()
    ok = [x for x in lines if x["value"] == 200]
    t.ok(len(ok) > 0, "a polling input's GET through the host client answers 200")
    body_len = len(json.dumps({"ok": True, "pad": "x" * 100}))
    t.eq(ok and ok[0]["tags"]["len"], str(body_len), "with the whole body")
    t.ok(seen and seen[0][0] == "/v4/task" and seen[0][1] == "fetcher",
         "the path and the plugin's header arrive", seen[:1])
    t.ok(seen and seen[0][2].startswith("remora/"), "the User-Agent names remora", seen[:1])
    refused = [x for x in lines if x["value"] < 0]
    t.eq(refused and refused[0]["value"], -111, "a closed port is RMR_ECONNREFUSED")


def test_unreachable(t):
    r = subprocess.run([BIN, "health", "--address", "127.0.0.1:9"], env=env(),
                       stdout=subprocess.PIPE, text=True, timeout=20)
    t.eq(r.returncode, 1, "health without an agent exits 1")
    t.contains(r.stdout, "unhealthy: cannot reach remora at 127.0.0.1:9", "and says why")


if __name__ == "__main__":
    try:
        main([test_delivers_with_token, test_503_three_times, test_500s_none_missing,
              test_retry_after, test_close_and_hang, test_413_split, test_400_rejects,
              test_403_halts_and_keeps, test_output_halts_itself, test_halted_shutdown, test_when_full_drop_oldest,
              test_when_full_block,
              test_http_input_answers_429, test_fetch, test_unreachable])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
