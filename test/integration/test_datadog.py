#!/usr/bin/env python3
"""The datadog output with the real binary, against a strict fake Datadog intake
(fake_datadog.py) and a real VictoriaMetrics (Debian's victoria-metrics 1.79, v1 series).

- hot-shots (npm, a real DogStatsD client) sends every message type -> dogstatsd input ->
  datadog output turned on by DD_API_KEY and pointed at the fake by DD_DD_URL: v2 series with
  Datadog's names, types, intervals, hosts, tags and values worked out by hand here; the
  distribution as a sketch (protobuf decoded by the fake) with its count, min, max, sum and
  keys; the event and the service check with their fields.
- The API key is in no log line, neither /v1/status nor /metrics, nor check-config.
  DD_SITE names https://api.<site>; DD_URL overrides it.
- Answers: 400 drops and counts, 413 drops as too_large, 403 halts and keeps the queue,
  429 and 500 are retried and nothing is lost; a validate answering 500 only warns.
  12,000 records in one batch are split at the 10,000-point and 512,000-byte limits.
- A wrong key: /api/v1/validate answers 403, the output halts at start, says why, keeps its
  records and sends nothing.
- api_version = v1 with deflate: the exact v1 JSON at the fake, and into VictoriaMetrics, where
  the numbers and tags are queried back (/api/v1/export).
  Without victoria-metrics the test is skipped with a note, unless
  REMORA_REQUIRE_VICTORIAMETRICS=1.
- ecs_fargate (fake_ecs.py) -> datadog with ECS_FARGATE=true: ecs.fargate.* series with the
  task tags and no host, the fargate_check service check, a DogStatsD gauge with the task tags.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import time

import fake_ecs
from agentlib import (BIN, BUILD, TMP, Agent, env, metric_value, plugin_dir, run, run_client,
                      write)
from fake_datadog import ZSTD, Intake
from servers import free_udp_port, wait_bucket_start, wait_until
from tap import main
from victoria import VICTORIA, Victoria

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "node_modules")
TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_seq.so"), name="datadog")
KEY = "ddk5e7a91c3b04f6d28e9a7c1b3f05d4e6"     # distinctive: searched for everywhere
WRONG_KEY = "ddkbad0c0ffee0c0ffee0c0ffee0c0ffe"
HOST = "it-host-1"
GLOBAL = "it_global:yes"   # DD_TAGS: the host adds it to every record
BUCKET = 10

# hot-shots sends every DogStatsD type once over UDP; Math.random is pinned to 0 so every
# sampled call is sent (with "|@0.5"). argv[1]: {"port": N}. Prints {"done":true,...}.
HOTSHOTS = r"""
'use strict';
const StatsD = require('hot-shots');
Math.random = () => 0;
const cfg = JSON.parse(process.argv[1]);
const errors = [];
const c = new StatsD({ host: '127.0.0.1', port: cfg.port, globalTags: { env: 'it' },
  errorHandler: (e) => errors.push(String(e && e.message ? e.message : e)),
  includeDataDogTags: false, maxBufferSize: 1432, bufferFlushInterval: 50 });
c.gauge('dd.gauge', 3, ['bare', 'k:v']);
c.gauge('dd.gauge', 7, ['bare', 'k:v']);
for (let i = 0; i < 5; i++) c.increment('dd.count', 1, 0.5, ['kind:inc']);
c.increment('dd.count_plain', 4);
c.increment('dd.count_plain', 2);
for (let v = 1; v <= 10; v++) c.histogram('dd.hist', v);
for (const v of [6, 2, 4]) c.timing('dd.timing', v, 0.5);
for (const m of ['a', 'b', 'a']) c.set('dd.set', m);
for (const v of [1, 2, 3, 100]) c.distribution('dd.dist', v);
c.gauge('dd.hosted', 1, ['host:custom-host']);
c.event('dd.deploy', 'version 2\nrolled out',
  { alert_type: 'warning', aggregation_key: 'deploys', priority: 'low',
    source_type_name: 'ci', hostname: 'web-1' }, ['team:core']);
c.check('dd.check', c.CHECKS.WARNING, { message: 'slow' }, ['db:main']);
c.close(() => process.stdout.write(JSON.stringify({ done: true, errors }) + '\n'));
"""
SAMPLES = 2 + 5 + 2 + 10 + 3 + 3 + 4 + 1



def counter(inst, name, key=None):
    c = (inst or {}).get("counters", {}).get(name)
    if isinstance(c, dict):
        return c.get(key, 0) if key is not None else sum(c.values())
    return c or 0


def out_inst(a):
    return a.instance("output.datadog") or {}


def state(a):
    return (out_inst(a).get("delivery") or {}).get("state")


def level(line):
    """The level of a log line: '<time> <level> <source>: <text>'."""
    parts = line.split(None, 2)
    return parts[1].lower() if len(parts) > 2 else ""


def wait(pred, timeout, step=0.05):
    return bool(wait_until(pred, timeout, step))



def cli(a, *args):
    return subprocess.run([BIN, *args, "--address", a.http_address()], env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)


def no_violations(t, intake, what="every request passed the fake intake's checks"):
    t.eq(intake.violations, [], what)


def seq_conf(name, intake_url, count=100, key=None, extra=""):
    k = f"api_key = {key}\n" if key else ""
    return write(os.path.join(TMP, f"dd-{name}.conf"),
                 f"[input.seq]\ncount = {count}\nper_tick = {count}\ninterval = 50ms\n\n"
                 f"[output.datadog]\n{k}url = {intake_url}\nbatch_timeout = 100ms\n"
                 f"batch_records = 1000\nretry_initial = 100ms\nretry_max = 400ms\n"
                 f"request_timeout = 2s\n{extra}")


def seq_values(intake):
    out = []
    for s in intake.series():
        if s["metric"] == "seq":
            tags = [x for x in s.get("tags", []) if x.startswith("seq:")]
            for p in s["points"]:
                if tags and int(tags[0][4:]) == p["value"]:
                    out.append(int(p["value"]))
                else:
                    out.append(-1)  # a seq point whose tag does not match its value
    return out


# ---- a, b: hot-shots end to end, and the key kept secret ------------------------------------

def expected_series():
    """What the Datadog Agent sends for HOTSHOTS in one bucket, by hand (README of the
    dogstatsd input and PROTOCOLS 4.3): name -> (v2 type, interval or None, value, tags, host).
    Counters are RATEs sum(v / rate) / 10; histograms and timers weigh each sample int(1/rate)
    and give .max .median .avg .count (RATE weight / 10) .95percentile."""
    g = [GLOBAL, "env:it"]
    hist = list(range(1, 11))
    # hist 1..10: median target (10-1)//2 = 4 -> the 5th sample, 5; 95th: (95*10-1)//100 = 9
    # -> the 10th, 10. timing 6, 2, 4 @0.5: weights 2 each, total 6, sum 24; sorted 2, 4, 6
    # with running weights 2, 4, 6: median target (6-1)//2 = 2 -> 4 (running 4 > 2);
    # 95th target (95*6-1)//100 = 5 -> 6.
    return {
        "dd.gauge": (3, None, 7.0, g + ["bare", "k:v"], HOST),
        "dd.count": (2, 10, 5 * (1 / 0.5) / 10, g + ["kind:inc"], HOST),
        "dd.count_plain": (2, 10, (4 + 2) / 10, g, HOST),
        "dd.hist.max": (3, None, 10.0, g, HOST),
        "dd.hist.median": (3, None, 5.0, g, HOST),
        "dd.hist.avg": (3, None, sum(hist) / 10, g, HOST),
        "dd.hist.count": (2, 10, 10 / 10, g, HOST),
        "dd.hist.95percentile": (3, None, 10.0, g, HOST),
        "dd.timing.max": (3, None, 6.0, g, HOST),
        "dd.timing.median": (3, None, 4.0, g, HOST),
        "dd.timing.avg": (3, None, (6 + 2 + 4) * 2 / 6, g, HOST),
        "dd.timing.count": (2, 10, 6 / 10, g, HOST),
        "dd.timing.95percentile": (3, None, 6.0, g, HOST),
        "dd.set": (3, None, 2.0, g, HOST),
        "dd.hosted": (3, None, 1.0, g, "custom-host"),
    }


def sketch_key(v):
    """Datadog's DDSketch key (PROTOCOLS 4.3): gamma 1 + 2/128, bias 1338, round half even."""
    return round(math.log(v) / math.log1p(2 / 128)) + 1338


def test_hotshots_end_to_end(t):
    if not os.path.isdir(os.path.join(NODE_MODULES, "hot-shots")):
        t.ok(False, "hot-shots is installed",
             f"{NODE_MODULES}/hot-shots is missing: run ./scripts/setup --deps-only --tests")
        return
    if ZSTD is None:
        t.ok(False, "the zstd command is installed (the fake decodes zstd bodies with it)")
        return
    intake = Intake(KEY, encoding="zstd1")
    port = free_udp_port()
    conf = write(os.path.join(TMP, "dd-e2e.conf"),
                 f"[input.dogstatsd]\nport = {port}\nflush_interval = 100ms\n\n"
                 "[output.datadog]\nbatch_timeout = 100ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, DD_API_KEY=KEY, DD_DD_URL=intake.url,
              DD_HOSTNAME=HOST, DD_TAGS=GLOBAL)
    t.ok(a.http_address() is not None, "the agent starts", a.errors())
    t.ok(intake.wait(lambda: intake.validations == [200], 10),
         "the key is validated once at start (GET /api/v1/validate: 200)", intake.validations)
    t.ok(wait(lambda: "API key is valid" in a.errors(), 5), "and the log says it is valid",
         a.errors()[-2000:])

    wait_bucket_start(BUCKET)
    sent_at = time.time()
    p, res = run_client(["node", "-e", HOTSHOTS, json.dumps({"port": port})],
                        env=dict(os.environ, NODE_PATH=NODE_MODULES))
    done_at = time.time()
    t.ok(p.returncode == 0 and res.get("done") and not res.get("errors"),
         "hot-shots sent everything without an error", p.stderr + json.dumps(res))
    t.eq(int(done_at // BUCKET), int(sent_at // BUCKET), "all of it within one 10 s bucket")
    bucket = int(sent_at // BUCKET) * BUCKET

    metrics = ""

    def all_counted():
        nonlocal metrics
        metrics = a.get("/metrics")[1]
        return (metric_value(metrics, "remora_metrics_total", instance="input.dogstatsd") ==
                SAMPLES and
                metric_value(metrics, "remora_events_total", instance="input.dogstatsd") == 1 and
                metric_value(metrics, "remora_service_checks_total",
                             instance="input.dogstatsd") == 1)
    t.ok(wait(all_counted, 10, 0.1), f"dogstatsd took {SAMPLES} samples, 1 event, 1 check",
         metrics)
    t.ok(intake.wait(lambda: intake.events() and intake.checks(), 10),
         "the event and the service check are sent at the next flush")

    # b: the key is nowhere but in the request headers.
    status_text = a.get("/v1/status")[1]
    t.ok("output.datadog" in status_text and KEY not in status_text,
         "the API key is not in /v1/status")
    t.ok(KEY not in a.get("/metrics")[1], "nor in /metrics")
    r = cli(a, "status")
    t.ok(r.returncode == 0 and KEY not in r.stdout + r.stderr, "nor in `remora status`")

    # SIGTERM: the final flush emits the open bucket and the output drains it.
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors()[-3000:])
    log = a.errors() + "".join(a.all)
    t.ok(KEY not in log, "the API key is in no line the agent wrote (stdout and stderr)")
    no_violations(t, intake)
    t.eq(intake.forbidden, [], "no request was refused for its key")
    t.eq(intake.encodings(), {"zstd1", "deflate"},
         "series go zstd (Content-Encoding: zstd1, the default), the rest deflate")

    got = {}
    extra = []
    for s in intake.series():
        for pt in s["points"]:
            if pt["timestamp"] == bucket:
                if s["metric"] in got:
                    extra.append(f"{s['metric']} twice")
                got[s["metric"]] = (s, pt["value"])
            elif s["metric"] in ("dd.count", "dd.count_plain") and pt["value"] == 0 and \
                    pt["timestamp"] > bucket:
                pass  # the Agent's zero-fill of a counter in a later bucket (slow machine)
            elif s["metric"].startswith("dd."):
                extra.append(f"{s['metric']} at {pt['timestamp']} (bucket {bucket})")
    want = expected_series()
    t.eq(sorted(got), sorted(want), "v2 series: exactly Datadog's names for the bucket, "
         "the distribution not among them", "\n".join(extra))
    t.eq(extra, [], "each series once, stamped with the bucket start")
    bad = []
    for name, (typ, interval, value, tags, host) in want.items():
        if name not in got:
            continue
        s, v = got[name]
        if s["type"] != typ:
            bad.append(f"{name}: type {s['type']}, want {typ}")
        if s.get("interval") != interval:
            bad.append(f"{name}: interval {s.get('interval')}, want {interval}")
        if v != value:
            bad.append(f"{name}: value {v!r}, want {value!r}")
        if sorted(s.get("tags", [])) != sorted(tags):
            bad.append(f"{name}: tags {s.get('tags')}, want {sorted(tags)}")
        if s.get("resources") != [{"name": host, "type": "host"}]:
            bad.append(f"{name}: resources {s.get('resources')}, want host {host}")
        keys = {"metric", "type", "points", "resources", "tags"} | ({"interval"} if interval
                                                                     else set())
        if set(s) != keys:
            bad.append(f"{name}: fields {sorted(s)}, want {sorted(keys)} (no unit: none sent)")
    t.ok(not bad, "every series has Datadog's type, interval, value, tags and host", "\n".join(bad))

    sk = [x for x in intake.sketches() if x["metric"] == "dd.dist"]
    t.eq(len(sk), 1, "the distribution arrives as one sketch (POST /api/beta/sketches)",
         intake.sketches())
    if sk:
        sk = sk[0]
        t.eq(sk["host"], HOST, "sketch host: the agent's hostname")
        t.eq(sorted(sk["tags"]), sorted([GLOBAL, "env:it"]), "sketch tags")
        ds = sk["dogsketches"]
        t.eq(len(ds), 1, "one dogsketch")
        d = ds[0] if ds else {}
        vals = [1, 2, 3, 100]
        t.eq({k: d.get(k) for k in ("ts", "cnt", "min", "max", "sum", "avg")},
             {"ts": bucket, "cnt": 4, "min": 1.0, "max": 100.0, "sum": 106.0,
              "avg": sum(vals) / 4},
             "dogsketch ts, cnt, min, max, sum, avg")
        t.eq(list(zip(d.get("k", []), d.get("n", []))), [(sketch_key(v), 1) for v in vals],
             "dogsketch keys (Datadog's mapping) and counts")

    ev = intake.events()
    t.eq(len(ev), 1, "one event (POST /api/v1/events)")
    if ev:
        e = dict(ev[0])
        happened = e.pop("date_happened", None)
        t.ok(happened is not None and int(sent_at) - 1 <= happened <= int(done_at) + 1,
             "event date_happened: when it was sent, in seconds", happened)
        e["tags"] = sorted(e.get("tags", []))
        t.eq(e, {"title": "dd.deploy", "text": "version 2\nrolled out", "priority": "low",
                 "alert_type": "warning", "aggregation_key": "deploys",
                 "source_type_name": "ci", "host": "web-1",
                 "tags": sorted([GLOBAL, "env:it", "team:core"])},
             "the event's fields (h: sets its host)")
    ck = intake.checks()
    t.eq(len(ck), 1, "one service check (POST /api/v1/check_run)")
    if ck:
        c = dict(ck[0])
        ts = c.pop("timestamp", None)
        t.ok(ts is not None and int(sent_at) - 1 <= ts <= int(done_at) + 1,
             "check_run timestamp: when it was sent, in seconds", ts)
        c["tags"] = sorted(c.get("tags", []))
        t.eq(c, {"check": "dd.check", "host_name": HOST, "status": 1, "message": "slow",
                 "tags": sorted([GLOBAL, "env:it", "db:main"])},
             "the service check's fields (WARNING = 1, the agent's hostname)")
    intake.close()


def test_key_redacted(t):
    r = run(["check-config", "-c", os.path.join(TMP, "empty.conf")],
            REMORA_AGENT_PLUGIN_DIR=PDIR, DD_API_KEY=KEY)
    t.eq(r.returncode, 0, "check-config with DD_API_KEY exits 0", r.stderr)
    t.contains(r.stdout, "# enabled by env DD_API_KEY\n[output.datadog]",
               "DD_API_KEY alone turns the output on")
    t.contains(r.stdout, "api_key = <redacted>", "the key is shown as <redacted>")
    t.ok(KEY not in r.stdout + r.stderr, "check-config redacts the key", r.stdout)
    conf = write(os.path.join(TMP, "dd-redact.conf"),
                 f"[output.datadog]\napi_key = {KEY}\nurl = http://127.0.0.1:9\n")
    r = run(["check-config", "-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(r.returncode == 0 and KEY not in r.stdout + r.stderr,
         "check-config redacts api_key from the file too", r.stdout + r.stderr)


def test_site_and_url(t):
    """DD_SITE picks https://api.<site>; DD_URL (DD_DD_URL's alias) overrides it, a trailing
    '/' ignored."""
    conf = write(os.path.join(TMP, "dd-site.conf"), "[output.datadog]\nvalidate = false\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, DD_API_KEY=KEY,
              DD_SITE="us5.datadoghq.com")
    t.ok(wait(lambda: "output.datadog: sending" in a.errors(), 10), "the output starts",
         a.errors())
    t.contains(a.errors(), "'https://api.us5.datadoghq.com'", "DD_SITE: https://api.<site>")
    t.ok("validate" not in a.errors(), "validate = false: no validation", a.errors())
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    intake = Intake(KEY)
    a = Agent(["-c", os.path.join(TMP, "empty.conf")], REMORA_AGENT_PLUGIN_DIR=PDIR,
              DD_API_KEY=KEY, DD_SITE="datadoghq.eu", DD_URL=intake.url + "/")
    t.ok(intake.wait(lambda: intake.validations == [200], 10),
         "DD_URL wins over DD_SITE; with a trailing '/' the validate path is /api/v1/validate",
         f"{intake.violations}\n{a.errors()}")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    no_violations(t, intake)
    intake.close()


# ---- c: the answers -------------------------------------------------------------------------

def test_400_drops(t):
    intake = Intake(KEY, default="400", encoding="gzip")
    a = Agent(["-c", seq_conf("400", intake.url, key=KEY, extra="compression = gzip\n")],
              REMORA_AGENT_PLUGIN_DIR=PDIR)
    ok = wait(lambda: out_inst(a).get("records_dropped", 0) >= 100, 15)
    out = out_inst(a)
    t.ok(ok, "400: the 100 records are dropped", out)
    t.eq(out.get("records_dropped"), 100, "records_dropped is 100")
    t.eq((out.get("drops") or {}).get("rejected/metric"), 100, "counted as rejected metrics",
         out.get("drops"))
    n400 = intake.statuses("/api/v2/series").count(400)
    t.ok(n400 >= 1 and counter(out, "http_responses", "400") == n400,
         f"http_responses counts the {n400} 400s", out.get("counters"))
    t.eq(counter(out, "retries"), 0, "a 400 is never retried")
    t.eq(intake.series(), [], "nothing was accepted")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.contains(a.errors(), "Payload is not in the expected format (fake says 400)",
               "the log quotes Datadog's errors")
    t.ok(KEY not in a.errors(), "the key is not in the log")
    no_violations(t, intake, "every request was well formed (gzip)")
    intake.close()


def test_413_too_large(t):
    intake = Intake(KEY, default="413", encoding="none")
    a = Agent(["-c", seq_conf("413", intake.url, key=KEY, extra="compression = none\n")],
              REMORA_AGENT_PLUGIN_DIR=PDIR)
    ok = wait(lambda: out_inst(a).get("records_dropped", 0) >= 100, 15)
    out = out_inst(a)
    t.ok(ok, "413: the 100 records are dropped", out)
    t.eq((out.get("drops") or {}).get("too_large/metric"), 100, "counted as too_large",
         out.get("drops"))
    t.eq(counter(out, "http_responses", "413"), intake.statuses("/api/v2/series").count(413),
         "http_responses counts the 413s")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    no_violations(t, intake, "every request was well formed (no Content-Encoding)")
    intake.close()


def test_403_halts_and_keeps(t):
    intake = Intake(KEY, default="403", encoding="deflate")
    a = Agent(["-c", seq_conf("403", intake.url, key=KEY,
                              extra="compression = deflate\nhalt_probe = 1s\n")],
              REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(wait(lambda: state(a) == "halted", 15), "403 on /api/v2/series: the output halts",
         out_inst(a))
    out = out_inst(a)
    t.eq(out.get("records_dropped"), 0, "nothing is dropped while halted")
    t.ok((out.get("delivery") or {}).get("queue_records", 0) > 0, "the queue keeps the records",
         out.get("delivery"))
    t.contains((out.get("delivery") or {}).get("last_error") or "", "403",
               "status: last_error names the 403")
    t.ok(counter(out, "http_responses", "403") >= 1, "the 403 is counted", out.get("counters"))
    intake.set_default("202")
    t.ok(intake.wait(lambda: sorted(seq_values(intake)) == list(range(100)), 15),
         "once the intake accepts, the probe resumes and all 100 arrive, each once",
         f"{len(seq_values(intake))} points")
    t.ok(wait(lambda: state(a) == "ok", 5), "the output is ok again")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    no_violations(t, intake, "every request was well formed (deflate = zlib stream)")
    intake.close()


def test_429_500_retried(t):
    intake = Intake(KEY, script=["429:1", "500"], encoding="zstd1", validate_answer="500")
    a = Agent(["-c", seq_conf("retry", intake.url, key=KEY)], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(intake.wait(lambda: sorted(seq_values(intake)) == list(range(100)), 20),
         "429 then 500 then 202: all 100 records arrive, each once",
         f"{sorted(seq_values(intake))[:10]}... statuses {intake.statuses()}")
    t.eq(intake.statuses("/api/v2/series")[:2], [429, 500], "the first two answers")
    t.ok(wait(lambda: counter(out_inst(a), "http_responses", "202") >= 1, 5),
         "the agent read the 202")
    out = out_inst(a)
    t.eq([counter(out, "http_responses", c) for c in ("429", "500")], [1, 1],
         "http_responses counts one 429 and one 500", out.get("counters"))
    t.ok(counter(out, "retries") >= 2, "both were retried", out.get("counters"))
    t.eq(out.get("records_dropped"), 0, "nothing dropped")
    t.eq(state(a), "ok", "the output is ok")
    t.eq(intake.validations, [500], "validate was asked once and answered 500")
    t.ok(any(level(x) == "warn" and "validate" in x for x in a.errors().splitlines()),
         "a validate answering 500 is a warning, and the output goes on", a.errors()[-2000:])
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    no_violations(t, intake)
    intake.close()


def test_split_at_limits(t):
    """12,000 records in one batch: with zstd the 10,000-point limit splits the v2 payload,
    without compression the 512,000-byte limit does; the fake refuses any payload over them,
    and every record arrives once."""
    big, raw = Intake(KEY, encoding="zstd1"), Intake(KEY, encoding="none")
    n = 12000
    conf = write(os.path.join(TMP, "dd-split.conf"),
                 f"[input.seq]\ncount = {n}\nper_tick = {n}\ninterval = 50ms\n\n"
                 f"[output.datadog]\napi_key = {KEY}\nurl = {big.url}\nbatch_timeout = 200ms\n"
                 f"batch_records = {2 * n}\nbatch_bytes = 32MiB\n\n"
                 f"[output.datadog.raw]\napi_key = {KEY}\nurl = {raw.url}\n"
                 f"compression = none\nbatch_timeout = 200ms\nbatch_records = {2 * n}\n"
                 "batch_bytes = 32MiB\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, DD_HOSTNAME=HOST)
    for intake, what in ((big, "zstd1"), (raw, "none")):
        ok = intake.wait(lambda: len(seq_values(intake)) >= n or intake.violations, 30)
        t.ok(ok and sorted(seq_values(intake)) == list(range(n)),
             f"{what}: all {n} records arrive, each once", f"{len(seq_values(intake))} "
             f"arrived; {intake.violations[:3]}\n{a.errors()[-1500:]}")
        sizes = [len(d["series"]) for d in intake.payloads("/api/v2/series")]
        t.ok(len(sizes) >= 2, f"{what}: split into {len(sizes)} payloads", sizes)
        no_violations(t, intake, f"{what}: no payload over a limit (points, bytes sent)")
    for name in ("output.datadog", "output.datadog.raw"):
        t.eq((a.instance(name) or {}).get("records_dropped"), 0, f"{name}: nothing dropped")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    big.close()
    raw.close()


# ---- d: a wrong key -------------------------------------------------------------------------

def test_wrong_key_halts_at_start(t):
    intake = Intake(KEY)
    a = Agent(["-c", seq_conf("badkey", intake.url, count=50)], REMORA_AGENT_PLUGIN_DIR=PDIR,
              DD_API_KEY=WRONG_KEY)
    t.ok(wait(lambda: state(a) == "halted", 10), "validate answers 403: the output halts",
         out_inst(a))
    t.eq(intake.validations, [403], "validate was asked once")
    t.ok(wait(lambda: out_inst(a).get("records_in", 0) >= 50, 5), "its records reach the queue",
         out_inst(a))
    time.sleep(1.5)
    out = out_inst(a)
    d = out.get("delivery") or {}
    t.eq(out.get("records_dropped"), 0, "nothing is dropped")
    t.ok(d.get("queue_records", 0) >= 1, "the queue keeps the records", d)
    t.eq(intake.posts(), [], "no series is sent while halted (halt_probe 60 s)")
    t.ok("/api/v1/validate" in (d.get("last_error") or "") and "403" in d.get("last_error", ""),
         "status says why: refused by /api/v1/validate (HTTP 403)", d)
    errs = [x for x in a.errors().splitlines() if level(x) == "error"]
    t.ok(any("/api/v1/validate" in x and "403" in x for x in errs),
         "an ERROR line says the key was refused by /api/v1/validate", a.errors())
    t.ok(len(errs) <= 2, "said once (the output's line and the core's halt line)", errs)
    r = cli(a, "health")
    t.eq(r.returncode, 1, "remora health exits 1", r.stdout)
    t.contains(r.stdout, "output.datadog is halted", "and says the output is halted")
    status_text = a.get("/v1/status")[1]
    begin = time.monotonic()
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.ok(time.monotonic() - begin < 5, "without waiting out the grace period")
    log = a.errors() + "".join(a.all)
    t.ok(WRONG_KEY not in log and WRONG_KEY not in status_text,
         "the refused key is neither in the log nor in /v1/status")
    t.eq(intake.forbidden, [("GET", "/api/v1/validate")], "only the validate was refused")
    no_violations(t, intake)
    intake.close()


# ---- e: api_version = v1, to the fake and to VictoriaMetrics --------------------------------

def test_v1_and_victoriametrics(t):
    """Two datadog outputs with api_version = v1 and deflate: one to the strict fake (the v1
    JSON exactly), one to VictoriaMetrics (what it stores, queried back)."""
    have_vm = os.path.exists(VICTORIA)
    if not have_vm:
        if os.environ.get("REMORA_REQUIRE_VICTORIAMETRICS") == "1":
            t.ok(False, "victoria-metrics is installed (REMORA_REQUIRE_VICTORIAMETRICS=1)")
        else:
            t.n += 1
            print(f"ok {t.n} - VictoriaMetrics round trip # SKIP victoria-metrics is not "
                  "installed (scripts/setup --tests)", flush=True)
    vm = Victoria() if have_vm else None
    intake = Intake(KEY, encoding="deflate")
    try:
        if vm is not None and not t.ok(vm.wait(), "victoria-metrics starts on loopback",
                                       vm.logtail()):
            return
        port = free_udp_port()
        vm_out = (f"[output.datadog]\napi_key = {KEY}\napi_version = v1\n"
                  f"url = {vm.base}/datadog/\ncompression = deflate\nbatch_timeout = 100ms\n\n"
                  if vm is not None else "")
        conf = write(os.path.join(TMP, "dd-v1.conf"),
                     f"[input.dogstatsd]\nport = {port}\nflush_interval = 100ms\n\n{vm_out}"
                     f"[output.datadog.fake]\napi_key = {KEY}\napi_version = v1\n"
                     f"url = {intake.url}\ncompression = deflate\nbatch_timeout = 100ms\n")
        a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, DD_HOSTNAME="vm-host")
        t.ok(intake.wait(lambda: intake.validations == [200], 10), "the fake validated the key",
             a.errors()[-2000:])
        if vm is not None:
            t.ok(wait(lambda: a.errors().count("API key is valid") == 2, 10),
                 "VictoriaMetrics' /datadog/api/v1/validate says valid too", a.errors()[-2000:])
        wait_bucket_start(BUCKET)
        sent_at = time.time()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"vm.gauge:2.5|g|#env:it,svc:web\nvm.gauge:3.25|g|#env:it,svc:web\n"
                 b"vm.count:4|c|#env:it,bare\nvm.count:6|c|@0.5|#env:it,bare\n"
                 b"vm.hosted:42|g|#host:db-1,env:it", ("127.0.0.1", port))
        s.close()
        bucket = int(sent_at // BUCKET) * BUCKET
        t.ok(wait(lambda: metric_value(a.get("/metrics")[1], "remora_metrics_total",
                                       instance="input.dogstatsd") == 5, 10, 0.1),
             "dogstatsd took the 5 samples")
        t.eq(a.stop(), 0, "SIGTERM exits 0 (the open bucket is flushed and delivered)",
             a.errors()[-2000:])
        t.ok(KEY not in a.errors(), "the key is not in the log")
        count = (4 + 6 / 0.5) / 10

        got, later = [], []
        for x in intake.series("v1"):
            if not x["metric"].startswith("vm."):
                continue
            x = dict(x, tags=sorted(x.get("tags", [])))
            if x["points"][0][0] > bucket:   # a later bucket: only a counter's zero-fill
                later.append((x["metric"], x["points"]))
            else:
                got.append(x)
        got.sort(key=lambda x: x["metric"])
        t.ok(all(m == "vm.count" and all(p[1] == 0 for p in pts) for m, pts in later),
             "later buckets hold only the counter's zero-fill, if anything", later)
        t.eq(got, [
            {"metric": "vm.count", "points": [[bucket, count]], "type": "rate", "interval": 10,
             "host": "vm-host", "tags": ["bare", "env:it"]},
            {"metric": "vm.gauge", "points": [[bucket, 3.25]], "type": "gauge",
             "host": "vm-host", "tags": ["env:it", "svc:web"]},
            {"metric": "vm.hosted", "points": [[bucket, 42.0]], "type": "gauge", "host": "db-1",
             "tags": ["env:it"]},
        ], "v1 series (POST /api/v1/series): names, points [[s, v]], types, interval, host, tags")
        no_violations(t, intake, "every v1 request was well formed (deflate)")
        if vm is None:
            return
        rows = vm.export('{__name__=~"vm[.].*"}')
        got = {}
        for r in rows:
            for v, ts in zip(r["values"], r["timestamps"]):
                if ts == bucket * 1000 or r["metric"]["__name__"] != "vm.count" or v != 0:
                    got.setdefault(r["metric"]["__name__"], []).append((r["metric"], v, ts))
        want = {
            "vm.gauge": ({"__name__": "vm.gauge", "host": "vm-host", "env": "it", "svc": "web"},
                         3.25),
            "vm.count": ({"__name__": "vm.count", "host": "vm-host", "env": "it",
                          "bare": "no_label_value"}, count),
            "vm.hosted": ({"__name__": "vm.hosted", "host": "db-1", "env": "it"}, 42.0),
        }
        t.eq(sorted(got), sorted(want), "VictoriaMetrics has the three names", rows)
        for name, (labels, value) in want.items():
            t.eq(got.get(name), [(labels, value, bucket * 1000)],
                 f"VictoriaMetrics {name}: labels (tags, host), value and bucket time")
    finally:
        intake.close()
        if vm is not None:
            vm.stop()


# ---- f: ecs_fargate -> datadog --------------------------------------------------------------

def test_fargate(t):
    srv = fake_ecs.MetadataServer()
    intake = Intake(KEY)
    port = free_udp_port()
    conf = write(os.path.join(TMP, "dd-fargate.conf"),
                 "[input.ecs_fargate]\ninterval = 1s\n\n"
                 f"[input.dogstatsd]\nport = {port}\nflush_interval = 100ms\n\n"
                 "[output.datadog]\nbatch_timeout = 100ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR, ECS_FARGATE="true",
              ECS_CONTAINER_METADATA_URI_V4=srv.base, DD_API_KEY=KEY, DD_DD_URL=intake.url,
              DD_HOSTNAME=HOST)

    def rx():
        return [s for s in intake.series() if s["metric"] == "ecs.fargate.net.bytes_rcvd"]
    t.ok(intake.wait(lambda: len(rx()) >= 2 and intake.checks(), 15),
         "ecs.fargate.* series and fargate_check reach the intake",
         f"{[s['metric'] for s in intake.series()][:20]}\n{a.errors()[-2000:]}")
    # A DogStatsD gauge once the task is known: it carries the task tags.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"app.up:1|g|#env:it", ("127.0.0.1", port))
    s.close()
    t.ok(wait(lambda: metric_value(a.get("/metrics")[1], "remora_metrics_total",
                                   instance="input.dogstatsd") == 1, 10, 0.1),
         "dogstatsd took the gauge")
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors()[-2000:])
    series = intake.series()
    web = fake_ecs.expected("web", 2)
    task = {"ecs_cluster_name:payments-prod", f"task_family:{fake_ecs.FAMILY}",
            f"task_version:{fake_ecs.REVISION}", f"task_arn:{fake_ecs.TASK_ARN}",
            f"region:{fake_ecs.REGION}", f"availability-zone:{fake_ecs.AZ}"}
    cpu = [x for x in series if x["metric"] == "ecs.fargate.cpu.percent" and
           "container_name:web" in x.get("tags", [])]
    t.ok(cpu, "ecs.fargate.cpu.percent for the web container")
    if cpu:
        t.eq(cpu[-1]["type"], 3, "cpu.percent is a gauge (3)")
        t.ok(abs(cpu[-1]["points"][0]["value"] - web["cpu_percent"]) < 1e-9,
             f"cpu.percent by the Docker formula ({web['cpu_percent']})", cpu[-1])
        t.eq(sorted(task - set(cpu[-1].get("tags", []))), [], "with the task tags", cpu[-1])
        t.eq(cpu[-1].get("unit"), "percent", "unit percent (as series_v2.json)")
    r = rx()
    t.ok(r and all(x["type"] == 2 and x.get("interval") == fake_ecs.STEP_S for x in r),
         f"net.bytes_rcvd is a rate (2) over {fake_ecs.STEP_S} s", r[:1])
    t.ok(r and all(x["points"][0]["value"] == web["rx_rate"] and
                   "interface:eth1" in x.get("tags", []) for x in r),
         f"net.bytes_rcvd = {web['rx_rate']} B/s per interface", r[:2])
    t.ok(r and all(x.get("unit") == "byte" for x in r), "unit byte (as series_v2.json)", r[:1])
    hosted = [x["metric"] for x in series if "resources" in x]
    t.eq(hosted, [], "on Fargate no series names a host (ECS_FARGATE=true)")
    ck = [c for c in intake.checks() if c["check"] == "fargate_check"]
    t.ok(ck and all(c["status"] == 0 for c in ck), "fargate_check OK (0)", ck[:1])
    t.ok(ck and all(c["host_name"] == "" for c in ck), "fargate_check without a host", ck[:1])
    up = [x for x in series if x["metric"] == "app.up"]
    t.ok(up and task <= set(up[0].get("tags", [])) and "env:it" in up[0]["tags"] and
         "resources" not in up[0], "a DogStatsD gauge carries the task tags and no host", up)
    no_violations(t, intake)
    intake.close()
    srv.close()


if __name__ == "__main__":
    try:
        main([test_key_redacted, test_site_and_url, test_hotshots_end_to_end, test_400_drops,
              test_413_too_large, test_403_halts_and_keeps, test_429_500_retried,
              test_split_at_limits, test_wrong_key_halts_at_start, test_v1_and_victoriametrics,
              test_fargate])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
