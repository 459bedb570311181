#!/usr/bin/env python3
"""The line protocol encoder (plugins/lib/lineproto) against a real InfluxDB 1.x (Debian's
`influxdb`, /usr/bin/influxd): the hostile golden points that test_lib_lineproto prints with
--golden are written one per database, every /write must answer 204, and a query reads back the
measurement, the tags, the field types and values (floats bit for bit) and the timestamp.
Also the whole set in one body. Without influxd the test passes with a note, unless
REMORA_REQUIRE_INFLUXD=1.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from tap import main

BUILD = os.environ["BUILD_ROOT"]
GOLDEN_BIN = os.environ.get("LP_GOLDEN", os.path.join(BUILD, "test", "test_lib_lineproto"))
INFLUXD = os.environ.get("INFLUXD", shutil.which("influxd") or "/usr/bin/influxd")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Influx:
    """influxd on loopback with its own ports and directories, nothing else enabled."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="remora-influx-")
        self.port = free_port()
        rpc = free_port()
        conf = os.path.join(self.dir, "influxdb.conf")
        with open(conf, "w") as f:
            f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.dir}/meta"
  logging-enabled = false
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
[coordinator]
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
""")
        self.log = open(os.path.join(self.dir, "influxd.log"), "w")
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", conf],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                if self.request("GET", "/ping")[0] == 204:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def query(self, db, q):
        qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        code, text = self.request("POST", "/query?" + qs)
        # Numbers stay text: floats are compared bit for bit, -0 keeps its sign.
        return code, json.loads(text, parse_float=str, parse_int=str) if text else None

    def write(self, db, body):
        return self.request("POST", "/write?" + urllib.parse.urlencode({"db": db}),
                            body.encode())

    def logtail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-3000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def golden():
    r = subprocess.run([GOLDEN_BIN, "--golden"], stdout=subprocess.PIPE, check=True)
    return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]


def same_value(kind, got, want):
    if kind == "float":
        return got is not None and struct.pack(">d", float(got)) == struct.pack(">d", float(want))
    if kind == "integer":
        return got is not None and int(got) == int(want)
    if kind == "boolean":
        return got is (want == "true")
    return got == want


def check_point(t, ix, i, p):
    db = f"lp{i}"
    code, _ = ix.query("", f'CREATE DATABASE "{db}"')
    t.eq(code, 200, f"{p['name']}: database created")
    code, text = ix.write(db, p["line"])
    if not t.eq(code, 204, f"{p['name']}: /write answers 204", f"line {p['line']!r}: {text}"):
        return
    code, res = ix.query(db, "SELECT * FROM /.*/")
    series = res["results"][0].get("series", [])
    if not t.eq(len(series), 1, f"{p['name']}: one series read back", json.dumps(res)):
        return
    s = series[0]
    t.eq(s["name"], p["measurement"], f"{p['name']}: measurement")
    t.eq(len(s["values"]), 1, f"{p['name']}: one row")
    row = dict(zip(s["columns"], s["values"][0]))
    if p["time"] != 0:
        t.eq(int(row["time"]), p["time"], f"{p['name']}: timestamp")
    _, tk = ix.query(db, "SHOW TAG KEYS")
    tser = tk["results"][0].get("series", [])
    tag_keys = sorted(v[0] for v in tser[0]["values"]) if tser else []
    t.eq(tag_keys, sorted(k for k, _ in p["tags"]), f"{p['name']}: tag keys")
    t.eq({k: row.get(k) for k, _ in p["tags"]}, dict(p["tags"]), f"{p['name']}: tag values")
    _, fk = ix.query(db, "SHOW FIELD KEYS")
    fser = fk["results"][0].get("series", [])
    types = {v[0]: v[1] for v in fser[0]["values"]} if fser else {}
    t.eq(types, {k: kind for k, kind, _ in p["fields"]}, f"{p['name']}: field keys and types")
    bad = [(k, row.get(k), want) for k, kind, want in p["fields"]
           if not same_value(kind, row.get(k), want)]
    t.eq(bad, [], f"{p['name']}: field values exact")


def test_influx_round_trip(t):
    if not os.path.exists(INFLUXD):
        t.ok(os.environ.get("REMORA_REQUIRE_INFLUXD") != "1",
             "influxd is installed (REMORA_REQUIRE_INFLUXD=1)")
        return
    points = golden()
    t.ok(len(points) >= 10, f"{len(points)} golden points")
    ix = Influx()
    try:
        if not t.ok(ix.wait(), "influxd answers /ping", ix.logtail()):
            return
        for i, p in enumerate(points):
            check_point(t, ix, i, p)
        # All of them in one body: one 204, every point stored.
        ix.query("", 'CREATE DATABASE "lpall"')
        code, text = ix.write("lpall", "".join(p["line"] for p in points))
        t.eq(code, 204, "one body with every golden line: 204", text)
        _, res = ix.query("lpall", "SHOW MEASUREMENTS")
        ser = res["results"][0].get("series", [])
        names = sorted(v[0] for v in ser[0]["values"]) if ser else []
        t.eq(names, sorted(p["measurement"] for p in points), "one body: every point stored")
    finally:
        ix.stop()


if __name__ == "__main__":
    main([test_influx_round_trip])
