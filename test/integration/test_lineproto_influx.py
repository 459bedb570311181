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
import struct
import subprocess

from influx import INFLUXD, Influx
from tap import main

BUILD = os.environ["BUILD_ROOT"]
GOLDEN_BIN = os.environ.get("LP_GOLDEN", os.path.join(BUILD, "test", "test_lib_lineproto"))


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
