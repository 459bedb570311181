#!/usr/bin/env python3
"""The dogstatsd input in the real binary, fed by two real DogStatsD clients.

hot-shots (npm; scripts/setup --tests installs it into test/integration/node_modules) sends
every message type with tags over UDP, a Unix datagram socket and a Unix stream socket
(dsd_hotshots.js); the agent is configured by Datadog's variables only (DD_DOGSTATSD_PORT,
DD_DOGSTATSD_SOCKET, DD_DOGSTATSD_STREAM_SOCKET) and writes JSON lines with the file output.
The aggregates must equal what the Datadog Agent computes, worked out by hand below for each
transport. A packet with malformed lines between good ones (sent from Python) loses only the
bad lines. Everything is sent within one 10 s bucket and the agent is stopped with SIGTERM,
whose final flush emits the open bucket if the timer has not emitted it yet.

A second client from another ecosystem, aiodogstatsd (Debian's python3-aiodogstatsd, run by
/usr/bin/python3 in dsd_aio.py), sends values as Python writes them (1e-05, 2.5e+20, -3) with
sample rates; its aggregates are worked out by hand the same way.

Also: which variables turn the input on (check-config), and the self-metrics on /metrics.
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from agentlib import TMP, Agent, metric_value, run, run_client, write
from fakes import Receiver
from servers import free_udp_port, wait_bucket_start
from tap import main

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "node_modules")
CLIENT = os.path.join(HERE, "dsd_hotshots.js")
BUCKET = 10


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]



def wait_listening(a, n, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [x for x in a.errors().splitlines()
                 if "input.dogstatsd: listening for datagrams on " in x]
        if len(found) >= n or a.p.poll() is not None:
            return [x.rsplit(" ", 1)[1] for x in found]
        time.sleep(0.05)
    return []



def expected(prefix):
    """What the Datadog Agent makes of dsd_hotshots.js's sendAll() for one transport, by hand:
    name -> (type, value), for the bucket the messages were sent in."""
    hist = list(range(1, 11))
    # timing 6, 2, 4 at @0.5: each sample weighs int(1/0.5) = 2; count 6, sum 24.
    # sorted 2, 4, 6 with running weights 2, 4, 6; median target (6-1)//2 = 2 -> 4;
    # 95th target (95*6-1)//100 = 5 -> 6.
    return {
        f"{prefix}.gauge": ("gauge", 7.0),            # the last value
        f"{prefix}.count": ("rate", 5 / 0.5 / 10),    # sum(1/0.5) over 10 s
        f"{prefix}.hist.max": ("gauge", 10.0),
        f"{prefix}.hist.median": ("gauge", 5.0),      # target (10-1)//2 = 4: the 5th
        f"{prefix}.hist.avg": ("gauge", sum(hist) / 10),
        f"{prefix}.hist.count": ("rate", 10 / 10),
        f"{prefix}.hist.95percentile": ("gauge", 10.0),  # target (95*10-1)//100 = 9: the 10th
        f"{prefix}.timing.max": ("gauge", 6.0),
        f"{prefix}.timing.median": ("gauge", 4.0),
        f"{prefix}.timing.avg": ("gauge", 4.0),
        f"{prefix}.timing.count": ("rate", 6 / 10),
        f"{prefix}.timing.95percentile": ("gauge", 6.0),
        f"{prefix}.set": ("gauge", 2.0),              # a, b
        f"{prefix}.hosted": ("gauge", 1.0),
    }


def wait_samples(a, want, timeout=15):
    """Polls /metrics until the input counted want samples (its counters reach /metrics at each
    1 s flush). Returns (samples counted, the last /metrics text)."""
    end = time.monotonic() + timeout
    samples, metrics = 0, ""
    while time.monotonic() < end:
        _, metrics = a.get("/metrics")
        samples = metric_value(metrics, "remora_metrics_total", instance="input.dogstatsd") or 0
        if samples >= want:
            break
        time.sleep(0.2)
    return samples, metrics


def mismatches(want, found, tags):
    """What differs between want (key -> (type, value)) and found (key -> records): each key
    must have one record, of that type and value (to 1e-9, relative beyond 1), carrying tags
    (a dict), and a rate an interval of 10 s. Returns one line per difference."""
    bad = []
    for key, (typ, value) in want.items():
        rs = found.get(key, [])
        if len(rs) != 1:
            bad.append(f"{key}: {len(rs)} records")
            continue
        r = rs[0]
        if r["type"] != typ or abs(r["value"] - value) > 1e-9 * max(1.0, abs(value)):
            bad.append(f"{key}: got {r['type']} {r['value']}, want {typ} {value}")
        got_tags = r.get("tags", {})
        if any(got_tags.get(k) != v for k, v in tags.items()):
            bad.append(f"{key}: tags {got_tags}")
        if typ == "rate" and r.get("interval_ms") != BUCKET * 1000:
            bad.append(f"{key}: interval_ms {r.get('interval_ms')}")
    return bad


def send_uds_fallback(path, payloads):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for p in payloads:
        s.sendto(p.encode(), path)
    s.close()


def test_hotshots(t):
    if not os.path.isdir(os.path.join(NODE_MODULES, "hot-shots")):
        t.ok(False, "hot-shots is installed",
             f"{NODE_MODULES}/hot-shots is missing: run ./scripts/setup --deps-only --tests")
        return
    out = os.path.join(TMP, "dsd.ndjson")
    uds = os.path.join(TMP, "dsd.socket")
    stream = os.path.join(TMP, "dsd.stream")
    port = free_udp_port()
    conf = write(os.path.join(TMP, "dsd.conf"),
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], DD_DOGSTATSD_PORT=str(port), DD_DOGSTATSD_SOCKET=uds,
              DD_DOGSTATSD_STREAM_SOCKET=stream,
              REMORA_AGENT_PLUGIN_DIR=os.path.join(os.environ["BUILD_ROOT"], "plugins"))
    addrs = wait_listening(a, 3)
    t.eq(sorted(addrs), sorted([f"udp://127.0.0.1:{port}", f"unix://{uds}",
                                f"unixstream://{stream}"]),
         "the DD_DOGSTATSD_* variables alone turn the input on, with three transports",
         a.errors())
    t.contains(a.errors(), f"receive buffer of 'udp://127.0.0.1:{port}': 4194304 bytes asked",
               "the receive buffer asked (4 MiB) and granted is logged")

    wait_bucket_start(BUCKET)
    sent_at = time.time()
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p, result = run_client(["node", CLIENT, json.dumps({"udp_port": port, "uds": uds,
                                                        "stream": stream})], env=env)
    t.ok(p.returncode == 0 and result.get("done") and not result.get("errors"),
         "hot-shots sent everything without an error", p.stderr + json.dumps(result))
    if result.get("uds_native"):
        t.ok(True, "hot-shots sent the UDS datagrams itself (unix-dgram built)")
    else:
        # The native module did not build: send the payloads hot-shots formatted.
        print("# unix-dgram is not available: the UDS payloads hot-shots formatted (mock mode) "
              "are sent from Python")
        send_uds_fallback(uds, result.get("uds_fallback", []))
        t.ok(len(result.get("uds_fallback", [])) > 0, "hot-shots formatted the UDS payloads")

    # Good and malformed lines in one packet, as a client with a bug would send them.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"py.ok1:1|c|#env:it\npy.bad:1\npy.ok2:2|g\n:3|c\r\npy.ok3:4|g|#env:it",
             ("127.0.0.1", port))
    s.close()
    done_at = time.time()
    t.eq(int(done_at // BUCKET), int(sent_at // BUCKET),
         "everything was sent within one 10 s bucket")
    bucket = int(sent_at // BUCKET) * BUCKET

    # The self-metrics reach /metrics at the next flush (1 s): wait for every sample.
    per_transport = 2 + 5 + 10 + 3 + 3 + 4 + 1  # gauges, counts, hist, timing, set, dist, hosted
    want_samples = 3 * per_transport + 3
    samples, metrics = wait_samples(a, want_samples)
    t.eq(samples, want_samples, "every sample was received (remora_metrics_total)", metrics)
    t.eq(metric_value(metrics, "remora_metrics_total", instance="input.dogstatsd",
                      reason="histogram"), 30.0, "  counted by type: 10 histogram samples each")
    t.eq(metric_value(metrics, "remora_events_total", instance="input.dogstatsd"), 3.0,
         "  the events")
    t.eq(metric_value(metrics, "remora_service_checks_total", instance="input.dogstatsd"), 3.0,
         "  the service checks")
    t.eq(metric_value(metrics, "remora_parse_errors_total", instance="input.dogstatsd",
                      reason="no_type"), 1.0, "  parse_errors by reason: no_type")
    t.eq(metric_value(metrics, "remora_parse_errors_total", instance="input.dogstatsd",
                      reason="no_name"), 1.0, "  and no_name")
    t.ok((metric_value(metrics, "remora_dgram_packets_total", instance="input.dogstatsd",
                       address=f"unixstream://{stream}") or 0) > 0,
         "the stream listener's frames are counted (dgram_packets)")
    t.eq(metric_value(metrics, "remora_dgram_frame_errors_total", instance="input.dogstatsd"),
         0.0, "  without frame errors")
    t.contains(a.errors(), "dropped 1 malformed messages (no_type); the first: 'py.bad:1'",
               "the malformed line is logged with its reason")

    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors())
    recs = read_records(out)
    in_bucket = [r for r in recs if r.get("time", "").startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(bucket)))]
    metrics_by = {}
    for r in recs:
        if r["kind"] == "metric" and r in in_bucket:
            metrics_by.setdefault(r["name"], []).append(r)

    for prefix in ("udp", "uds", "stream"):
        bad = mismatches(expected(prefix), metrics_by, {"env": "it", "transport": prefix})
        t.ok(not bad, f"{prefix}: every aggregate equals the Datadog Agent's, with its tags",
             "\n".join(bad))
        count = metrics_by.get(f"{prefix}.count", [{}])[0]
        t.eq(count.get("tags", {}).get("kind"), "inc", f"{prefix}: a metric's own tags kept")
        hosted = metrics_by.get(f"{prefix}.hosted", [{}])[0]
        t.ok(hosted.get("host") == "custom-host" and "host" not in hosted.get("tags", {}),
             f"{prefix}: 'host:' sets the record's host and leaves the tags", hosted)
        d = metrics_by.get(f"{prefix}.dist", [{}])
        sk = d[0].get("sketch", {}) if len(d) == 1 else {}
        t.ok(d[0].get("type") == "distribution" and sk.get("count") == 4 and
             sk.get("min") == 1 and sk.get("max") == 100 and sk.get("sum") == 106,
             f"{prefix}: the distribution's sketch: count 4, min 1, max 100, sum 106", d)
        ev = [r for r in recs if r["kind"] == "event" and r["title"] == f"{prefix}.deploy"]
        t.ok(len(ev) == 1 and ev[0]["text"] == "version 2\nrolled out" and
             ev[0].get("alert_type") == "warning" and ev[0].get("priority") == "low" and
             ev[0].get("aggregation_key") == "deploys" and
             ev[0].get("source_type") == "ci" and ev[0]["tags"].get("team") == "core" and
             ev[0]["tags"].get("transport") == prefix,
             f"{prefix}: the event, its fields and tags", ev)
        ck = [r for r in recs if r["kind"] == "check" and r["name"] == f"{prefix}.check"]
        t.ok(len(ck) == 1 and ck[0]["status"] == 1 and ck[0].get("message") == "slow" and
             ck[0]["tags"].get("db") == "main",
             f"{prefix}: the service check (WARNING), its message and tags", ck)

    py = {n: metrics_by.get(n, [{}])[0].get("value") for n in ("py.ok1", "py.ok2", "py.ok3")}
    t.eq(py, {"py.ok1": 0.1, "py.ok2": 2.0, "py.ok3": 4.0},
         "the good lines of a packet with malformed ones are kept")
    t.ok(not os.path.exists(uds) and not os.path.exists(stream),
         "the socket files are removed on exit")


AIO_CLIENT = os.path.join(HERE, "dsd_aio.py")
DEBIAN_PYTHON = "/usr/bin/python3"


def test_aiodogstatsd(t):
    """A second real client, from another ecosystem: aiodogstatsd (dsd_aio.py) sends gauges with
    the exponent forms Python writes, counters with a sample rate and a decrement, a histogram,
    a timer at @0.5 and a distribution. Every aggregate is worked out by hand as the Datadog
    Agent computes it."""
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import aiodogstatsd"], capture_output=True,
                           text=True) if os.path.exists(DEBIAN_PYTHON) else None
    if probe is None or probe.returncode != 0:
        t.ok(False, "aiodogstatsd is installed",
             "python3-aiodogstatsd is missing: run ./scripts/setup --deps-only --tests")
        return
    out = os.path.join(TMP, "aio.ndjson")
    port = free_udp_port()
    conf = write(os.path.join(TMP, "aio.conf"),
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], DD_DOGSTATSD_PORT=str(port),
              REMORA_AGENT_PLUGIN_DIR=os.path.join(os.environ["BUILD_ROOT"], "plugins"))
    t.eq(len(wait_listening(a, 1)), 1, "aio: dogstatsd listens", a.errors())
    wait_bucket_start(BUCKET)
    sent_at = time.time()
    p, result = run_client([DEBIAN_PYTHON, AIO_CLIENT, str(port)])
    t.ok(p.returncode == 0 and result.get("done"), "aio: the client sent everything",
         p.stdout + p.stderr)
    t.eq(int(time.time() // BUCKET), int(sent_at // BUCKET),
         "aio: everything was sent within one 10 s bucket")
    want_samples = 2 + 1 + 5 + 4 + 3 + 5
    samples, metrics = wait_samples(a, want_samples)
    t.eq(samples, want_samples, "aio: every sample was received")
    t.eq(metric_value(metrics, "remora_contexts_live", instance="input.dogstatsd"), 7.0,
         "aio: the contexts_live gauge: temp x2, big, req, size, lat, dist", metrics)
    t.contains(metrics, "# TYPE remora_contexts_live gauge\n", "aio: typed as a gauge")
    t.eq(a.stop(), 0, "aio: SIGTERM exits 0", a.errors())
    got = {}
    for r in read_records(out):
        if r["kind"] == "metric":
            got.setdefault((r["name"], r.get("tags", {}).get("room", "")), []).append(r)
    # counter: 4 x 1 at @0.25 weigh 4 each, then -3: (16 - 3) / 10 s.
    # histogram 0.5 1.5 2.5 3.5: median target (4-1)//2 = 1 -> 1.5; 95th (95*4-1)//100 = 3.
    # timer 30 10 20 at @0.5: weights 2, count 6; sorted 10 20 30, running 2 4 6: median
    # target (6-1)//2 = 2 -> 20; 95th (95*6-1)//100 = 5 -> 30.
    want = {
        ("aio.temp", "a"): ("gauge", 21.5),
        ("aio.temp", "b"): ("gauge", 1e-05),
        ("aio.big", ""): ("gauge", 2.5e20),
        ("aio.req", ""): ("rate", 1.3),
        ("aio.size.max", ""): ("gauge", 3.5),
        ("aio.size.median", ""): ("gauge", 1.5),
        ("aio.size.avg", ""): ("gauge", 2.0),
        ("aio.size.count", ""): ("rate", 0.4),
        ("aio.size.95percentile", ""): ("gauge", 3.5),
        ("aio.lat.max", ""): ("gauge", 30.0),
        ("aio.lat.median", ""): ("gauge", 20.0),
        ("aio.lat.avg", ""): ("gauge", 20.0),
        ("aio.lat.count", ""): ("rate", 0.6),
        ("aio.lat.95percentile", ""): ("gauge", 30.0),
    }
    bad = mismatches(want, got, {"env": "it", "client": "aiodogstatsd"})
    t.ok(not bad, "aio: every aggregate equals the Datadog Agent's, with its tags",
         "\n".join(bad))
    t.eq(got.get(("aio.req", ""), [{}])[0].get("tags", {}).get("code"), "200",
         "aio: the counter keeps its own tag")
    d = got.get(("aio.dist", ""), [{}])
    sk = d[0].get("sketch", {})
    t.ok(len(d) == 1 and sk.get("count") == 5 and sk.get("min") == 1 and sk.get("max") == 5 and
         sk.get("sum") == 15 and d[0]["tags"].get("unit") == "s",
         "aio: the distribution's sketch: count 5, min 1, max 5, sum 15", d)
    t.eq(len(got), len(want) + 1, "aio: nothing else was made of it", sorted(got))


def test_block_backpressure(t):
    """An output with when_full = block pauses the datagram listeners from inside the emit
    that the flush timer makes while it holds the aggregator's lock, the lock the reader
    thread waits for while traffic flows. The pause must not wait for the reader: the agent
    keeps answering, resumes when the backend accepts again, and stops on SIGTERM."""
    recv = Receiver(default="503")
    port = free_udp_port()
    conf = write(os.path.join(TMP, "dsdblock.conf"),
                 f"[input.dogstatsd]\nport = {port}\nflush_interval = 100ms\n\n"
                 f"[output.http]\nurl = {recv.url}\nbatch_timeout = 50ms\n"
                 "batch_records = 200\nqueue_bytes = 64KiB\nwhen_full = block\n"
                 "max_in_flight = 1\nretry_initial = 5s\nretry_max = 5s\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=os.path.join(os.environ["BUILD_ROOT"],
                                                                 "plugins"))
    t.eq(len(wait_listening(a, 1)), 1, "dogstatsd listens", a.errors())
    stop = threading.Event()

    def blast():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        i = 0
        while not stop.is_set():
            lines = "\n".join(f"bp.g{(i + k) % 5000}:{k}|g|#k:v" for k in range(40))
            s.sendto(lines.encode(), ("127.0.0.1", port))
            i += 40
            if i % 4000 == 0:
                time.sleep(0.001)
        s.close()

    th = threading.Thread(target=blast, daemon=True)
    th.start()
    end = time.monotonic() + 25
    while time.monotonic() < end and "pausing datagram inputs" not in a.errors():
        time.sleep(0.1)
    t.contains(a.errors(), "pausing datagram inputs", "a full blocking output pauses the input")
    time.sleep(1)
    try:
        code, _ = a.get("/v1/ping", timeout=3)
    except Exception as e:  # noqa: BLE001 - a hung agent times out here
        code = repr(e)
    stop.set()
    th.join()
    t.eq(code, 200, "the agent still answers while paused (the loop is not stuck)")
    recv.set_default("200")
    ok = recv.wait(lambda: "resuming datagram inputs" in a.errors(), 20)
    t.ok(ok, "once the backend accepts, the input resumes", a.errors()[-3000:])
    t.eq(a.stop(timeout=15), 0, "SIGTERM stops it", a.errors()[-3000:])
    recv.close()


def test_enablement(t):
    pdir = os.path.join(os.environ["BUILD_ROOT"], "plugins")
    cases = [
        ({"ENV_DEFAULT_ENABLED_INPUTS": "dk,statsd"}, "env ENV_DEFAULT_ENABLED_INPUTS"),
        ({"DD_USE_DOGSTATSD": "true"}, "env DD_USE_DOGSTATSD"),
        ({"DD_DOGSTATSD_NON_LOCAL_TRAFFIC": "true"}, "env DD_DOGSTATSD_NON_LOCAL_TRAFFIC"),
        ({"DD_DOGSTATSD_SOCKET": "/tmp/x.sock"}, "env DD_DOGSTATSD_SOCKET"),
    ]
    for extra, by in cases:
        r = run(["check-config"], REMORA_AGENT_PLUGIN_DIR=pdir, **extra)
        t.contains(r.stdout, f"# enabled by {by}\n[input.dogstatsd]",
                   f"{' '.join(extra)} turns the input on")
    r = run(["check-config"], REMORA_AGENT_PLUGIN_DIR=pdir, DD_USE_DOGSTATSD="false")
    t.ok("[input.dogstatsd]" not in r.stdout, "DD_USE_DOGSTATSD=false does not")
    r = run(["check-config"], REMORA_AGENT_PLUGIN_DIR=pdir, DD_DOGSTATSD_NON_LOCAL_TRAFFIC="true",
            DD_HISTOGRAM_AGGREGATES="max min", DD_DOGSTATSD_BUFFER_SIZE="65536")
    t.contains(r.stdout, "non_local_traffic = true                # env "
               "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "the variables set the options")
    t.contains(r.stdout, "histogram_aggregates = max min", "  DD_HISTOGRAM_AGGREGATES")
    t.contains(r.stdout, "buffer_size = 65536", "  DD_DOGSTATSD_BUFFER_SIZE")
    r = run(["check-config"], REMORA_AGENT_PLUGIN_DIR=pdir, DD_DOGSTATSD_PORT="8125",
            DD_DOGSTATSD_TAGS="team:x env:b")
    t.contains(r.stdout, "dogstatsd_tags = team:x env:b           # env DD_DOGSTATSD_TAGS",
               "  DD_DOGSTATSD_TAGS (space-separated, as the Agent reads it)")
    r = run(["check-config"], REMORA_AGENT_PLUGIN_DIR=pdir, DD_DOGSTATSD_PORT="8125",
            DD_HISTOGRAM_PERCENTILES="0.95 1.5")
    t.ok(r.returncode != 0 and "invalid 'histogram_percentiles': '1.5'" in r.stderr,
         "a bad DD_HISTOGRAM_PERCENTILES stops startup with a sentence", r.stderr)


if __name__ == "__main__":
    try:
        main([test_enablement, test_hotshots, test_aiodogstatsd, test_block_backpressure])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
