"""A strict fake Datadog intake for the integration tests (stdlib, plus the `zstd` command for
zstd bodies: Python 3.11 has no zstd module).

Routes (shared/reference/PROTOCOLS.md section 9 and the datadog output's contract):
  GET  /api/v1/validate    200 {"valid":true} for the expected key,
                           else 403 {"errors":["Forbidden"]}
  POST /api/v2/series      JSON {"series":[MetricSeries]}, application/json
  POST /api/v1/series      JSON {"series":[{metric, points [[ts, v]], type "gauge"|...}]}
  POST /api/beta/sketches  protobuf SketchPayload, application/x-protobuf (decoded here)
  POST /api/v1/events      one JSON event
  POST /api/v1/check_run   a JSON array of service checks
A prefix (Intake(prefix="/datadog")) serves the same routes under it. validate_answer="500"
makes /api/v1/validate answer that status whatever the key.

Every request is checked: method and path, `DD-API-KEY` (a wrong or missing key is answered
403 {"errors":["Forbidden"]} as Datadog does, and counted in .forbidden), a remora User-Agent,
Content-Type, Content-Encoding (as the public API documents: zstd, named "zstd1", on
/api/v2/series only; gzip and deflate = a zlib stream everywhere; or none; `encoding=` pins the
one expected, "zstd1" meaning zstd1 for v2 series and deflate elsewhere), the size limits, and the body against a strict schema: required
fields, their types, no unknown field. A request that fails a check is recorded in .violations
and answered 400 {"errors":[...]} (as Datadog answers a bad payload).

A request that passed the checks gets the next status of the script (then the default):
"202", "400", "403", "413", "500", ... or "429:N" (429 with Retry-After: N). With
`script_paths`, only those paths take the script (the others get 202). Accepted (2xx)
requests are kept decoded in .accepted; helpers flatten them: series(), sketches(), events(),
checks().
"""
import gzip
import json
import math
import shutil
import struct
import subprocess
import threading
import time
import zlib

from fakes import loopback_server, send_json
from servers import wait_until

ZSTD = shutil.which("zstd")

V2_LIMIT_COMPRESSED = 512000
V2_LIMIT_RAW = 5242880
V2_LIMIT_POINTS = 10000
GENERIC_LIMIT_COMPRESSED = 2621440   # serializer_max_payload_size (2.5 MB)
GENERIC_LIMIT_RAW = 4194304          # serializer_max_uncompressed_payload_size (4 MiB)

JSON_TYPE = "application/json"
PROTO_TYPE = "application/x-protobuf"
ROUTES = {
    "/api/v2/series": JSON_TYPE,
    "/api/v1/series": JSON_TYPE,
    "/api/beta/sketches": PROTO_TYPE,
    "/api/v1/events": JSON_TYPE,
    "/api/v1/check_run": JSON_TYPE,
}
ALERT_TYPES = {"error", "warning", "info", "success", "user_update", "recommendation",
               "snapshot"}


class Bad(Exception):
    """A check failed: the message goes to .violations and to the 400's errors."""


def decompress(encoding, body):
    if encoding is None:
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        # RFC 1950 zlib stream (what Datadog and VictoriaMetrics mean by deflate), not raw.
        d = zlib.decompressobj()
        out = d.decompress(body)
        if not d.eof or d.unused_data:
            raise Bad("deflate body is not one complete zlib stream")
        return out
    if encoding == "zstd1":
        if ZSTD is None:
            raise Bad("a zstd body but no zstd command to decode it")
        p = subprocess.run([ZSTD, "-d", "-c", "-q"], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            raise Bad(f"zstd: {p.stderr.decode(errors='replace').strip()}")
        return p.stdout
    raise Bad(f"unsupported Content-Encoding {encoding!r}")


# ---- JSON schema checks ---------------------------------------------------------------------

def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def is_num(x):
    return (is_int(x) or isinstance(x, float)) and math.isfinite(x)


def need(cond, what):
    if not cond:
        raise Bad(what)


def only_keys(obj, allowed, required, where):
    need(isinstance(obj, dict), f"{where}: not an object")
    unknown = sorted(set(obj) - set(allowed))
    need(not unknown, f"{where}: unknown fields {unknown}")
    missing = sorted(set(required) - set(obj))
    need(not missing, f"{where}: missing fields {missing}")


def check_tags(tags, where):
    need(isinstance(tags, list), f"{where}.tags: not an array")
    for x in tags:
        need(isinstance(x, str) and x != "", f"{where}.tags: {x!r} is not a non-empty string")


def check_time(ts, where, strict):
    need(is_int(ts) and ts > 0, f"{where}: timestamp {ts!r} is not integer seconds")
    if strict:
        now = time.time()
        need(now - 3600 <= ts <= now + 600,
             f"{where}: timestamp {ts} is not within the last hour / next 10 minutes")


def check_v2(doc, strict_time):
    only_keys(doc, {"series"}, {"series"}, "payload")
    need(isinstance(doc["series"], list) and doc["series"], "payload.series: empty or not an array")
    npoints = 0
    for i, s in enumerate(doc["series"]):
        w = f"series[{i}]"
        only_keys(s, {"metric", "type", "interval", "points", "resources", "tags", "unit",
                      "source_type_name", "metadata"}, {"metric", "type", "points"}, w)
        need(isinstance(s["metric"], str) and s["metric"], f"{w}.metric: empty or not a string")
        need(s["type"] in (1, 2, 3) and is_int(s["type"]), f"{w}.type: {s['type']!r} not 1|2|3")
        if s["type"] in (1, 2):
            need(is_int(s.get("interval")) and s["interval"] >= 1,
                 f"{w}.interval: {s.get('interval')!r} for a count/rate")
        else:
            need("interval" not in s, f"{w}.interval on a gauge")
        need(isinstance(s["points"], list) and s["points"], f"{w}.points: empty")
        for j, p in enumerate(s["points"]):
            only_keys(p, {"timestamp", "value"}, {"timestamp", "value"}, f"{w}.points[{j}]")
            check_time(p["timestamp"], f"{w}.points[{j}]", strict_time)
            need(is_num(p["value"]), f"{w}.points[{j}].value: {p['value']!r}")
        npoints += len(s["points"])
        if "resources" in s:
            need(isinstance(s["resources"], list) and s["resources"], f"{w}.resources: empty")
            for r in s["resources"]:
                only_keys(r, {"name", "type"}, {"name", "type"}, f"{w}.resources[]")
                need(isinstance(r["name"], str) and r["name"], f"{w}.resources[].name empty")
                need(r["type"] == "host", f"{w}.resources[].type {r['type']!r}")
        if "tags" in s:
            check_tags(s["tags"], w)
        if "unit" in s:
            need(isinstance(s["unit"], str) and s["unit"], f"{w}.unit: empty or not a string")
        if "source_type_name" in s:
            need(isinstance(s["source_type_name"], str) and s["source_type_name"],
                 f"{w}.source_type_name")
    need(npoints <= V2_LIMIT_POINTS, f"payload has {npoints} points (> {V2_LIMIT_POINTS})")


def check_v1(doc, strict_time):
    only_keys(doc, {"series"}, {"series"}, "payload")
    need(isinstance(doc["series"], list) and doc["series"], "payload.series: empty or not an array")
    for i, s in enumerate(doc["series"]):
        w = f"series[{i}]"
        only_keys(s, {"metric", "points", "type", "interval", "host", "tags", "device",
                      "source_type_name"}, {"metric", "points", "type"}, w)
        need(isinstance(s["metric"], str) and s["metric"], f"{w}.metric: empty or not a string")
        need(s["type"] in ("gauge", "rate", "count"), f"{w}.type: {s['type']!r}")
        if s["type"] in ("rate", "count"):
            need(is_int(s.get("interval")) and s["interval"] >= 1,
                 f"{w}.interval: {s.get('interval')!r} for a {s['type']}")
        else:
            need("interval" not in s, f"{w}.interval on a gauge")
        need(isinstance(s["points"], list) and s["points"], f"{w}.points: empty")
        for j, p in enumerate(s["points"]):
            need(isinstance(p, list) and len(p) == 2, f"{w}.points[{j}]: not [ts, value]")
            check_time(p[0], f"{w}.points[{j}]", strict_time)
            need(is_num(p[1]), f"{w}.points[{j}] value {p[1]!r}")
        if "host" in s:
            need(isinstance(s["host"], str) and s["host"], f"{w}.host: empty or not a string")
        if "tags" in s:
            check_tags(s["tags"], w)
        for k in ("device", "source_type_name"):
            if k in s:
                need(isinstance(s[k], str) and s[k], f"{w}.{k}")


def check_event(ev, strict_time):
    only_keys(ev, {"title", "text", "date_happened", "priority", "host", "tags", "alert_type",
                   "aggregation_key", "source_type_name"}, {"title", "text"}, "event")
    need(isinstance(ev["title"], str) and ev["title"], "event.title: empty or not a string")
    need(isinstance(ev["text"], str), "event.text: not a string")
    if "date_happened" in ev:
        check_time(ev["date_happened"], "event.date_happened", strict_time)
    if "priority" in ev:
        need(ev["priority"] in ("normal", "low"), f"event.priority {ev['priority']!r}")
    if "alert_type" in ev:
        need(ev["alert_type"] in ALERT_TYPES, f"event.alert_type {ev['alert_type']!r}")
    for k in ("host", "aggregation_key", "source_type_name"):
        if k in ev:
            need(isinstance(ev[k], str) and ev[k], f"event.{k}: empty or not a string")
    if "tags" in ev:
        check_tags(ev["tags"], "event")


def check_checks(doc, strict_time):
    need(isinstance(doc, list) and doc, "check_run: not a non-empty array")
    for i, c in enumerate(doc):
        w = f"check_run[{i}]"
        only_keys(c, {"check", "host_name", "timestamp", "status", "message", "tags"},
                  {"check", "host_name", "status"}, w)
        need(isinstance(c["check"], str) and c["check"], f"{w}.check: empty or not a string")
        need(isinstance(c["host_name"], str), f"{w}.host_name: not a string")
        need(is_int(c["status"]) and 0 <= c["status"] <= 3, f"{w}.status {c['status']!r}")
        if "timestamp" in c:
            check_time(c["timestamp"], f"{w}.timestamp", strict_time)
        if "message" in c:
            need(isinstance(c["message"], str), f"{w}.message: not a string")
        if "tags" in c:
            check_tags(c["tags"], w)


# ---- protobuf (SketchPayload), an independent decoder ---------------------------------------

def varint(buf, i):
    shift = out = 0
    while True:
        need(i < len(buf), "protobuf: truncated varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7
        need(shift < 70, "protobuf: varint too long")


def fields(buf):
    """(field number, wire type, value) of a message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        need(num > 0, "protobuf: field number 0")
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            need(i + 8 <= len(buf), "protobuf: truncated fixed64")
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            need(i + n <= len(buf), "protobuf: truncated length-delimited field")
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            need(i + 4 <= len(buf), "protobuf: truncated fixed32")
            v, i = buf[i:i + 4], i + 4
        else:
            raise Bad(f"protobuf: wire type {wt} (field {num})")
        yield num, wt, v


def zigzag32(u):
    need(u < 1 << 32, "protobuf: sint32 out of range")
    return (u >> 1) ^ -(u & 1)


def signed64(u):
    return u - (1 << 64) if u >= 1 << 63 else u


def packed(wt, v, what):
    """A repeated scalar varint field: packed (LEN) or, as parsers must also accept, one."""
    if wt == 0:
        return [v]
    need(wt == 2, f"{what}: wire type {wt}")
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(x)
    return out


def utf8(v, what):
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad(f"{what}: not UTF-8") from None


def decode_dogsketch(buf):
    d = {"k": [], "n": []}
    for num, wt, v in fields(buf):
        if num in (1, 2):
            need(wt == 0, f"dogsketch field {num}: wire type {wt}")
            d["ts" if num == 1 else "cnt"] = signed64(v)
        elif num in (3, 4, 5, 6):
            need(wt == 1, f"dogsketch field {num}: wire type {wt}")
            d[{3: "min", 4: "max", 5: "avg", 6: "sum"}[num]] = struct.unpack("<d", v)[0]
        elif num == 7:
            d["k"].extend(zigzag32(x) for x in packed(wt, v, "dogsketch.k"))
        elif num == 8:
            n = packed(wt, v, "dogsketch.n")
            need(all(x < 1 << 32 for x in n), "dogsketch.n: uint32 out of range")
            d["n"].extend(n)
        else:
            raise Bad(f"dogsketch: unknown field {num}")
    return d


def decode_sketch_payload(buf):
    out = {"sketches": [], "metadata": None}
    for num, wt, v in fields(buf):
        need(wt == 2, f"SketchPayload field {num}: wire type {wt}")
        if num == 1:
            sk = {"metric": None, "host": "", "tags": [], "dogsketches": []}
            for n2, w2, v2 in fields(v):
                if n2 in (1, 2, 4):
                    need(w2 == 2, f"sketch field {n2}: wire type {w2}")
                    s = utf8(v2, f"sketch field {n2}")
                    if n2 == 1:
                        sk["metric"] = s
                    elif n2 == 2:
                        sk["host"] = s
                    else:
                        sk["tags"].append(s)
                elif n2 == 7:
                    need(w2 == 2, f"sketch.dogsketches: wire type {w2}")
                    sk["dogsketches"].append(decode_dogsketch(v2))
                elif n2 == 8:
                    need(w2 == 2, f"sketch.metadata: wire type {w2}")
                else:
                    raise Bad(f"sketch: field {n2} is unused or unknown")
            out["sketches"].append(sk)
        elif num == 2:
            out["metadata"] = list(fields(v))
        else:
            raise Bad(f"SketchPayload: unknown field {num}")
    return out


def check_sketches(doc, strict_time):
    need(doc["sketches"], "SketchPayload without sketches")
    for i, sk in enumerate(doc["sketches"]):
        w = f"sketch[{i}] {sk['metric']!r}"
        need(sk["metric"], f"sketch[{i}]: no metric name")
        need(all(t != "" for t in sk["tags"]), f"{w}: an empty tag")
        need(len(sk["dogsketches"]) >= 1, f"{w}: no dogsketch")
        for d in sk["dogsketches"]:
            for k in ("ts", "cnt", "min", "max", "avg", "sum"):
                need(k in d, f"{w}: dogsketch without {k}")
            check_time(d["ts"], w, strict_time)
            need(d["cnt"] > 0, f"{w}: cnt {d['cnt']}")
            need(len(d["k"]) == len(d["n"]) and d["k"], f"{w}: {len(d['k'])} keys, "
                 f"{len(d['n'])} counts")
            need(d["k"] == sorted(set(d["k"])), f"{w}: keys not strictly increasing {d['k']}")
            need(all(x > 0 for x in d["n"]), f"{w}: a bin with count 0")
            need(sum(d["n"]) == d["cnt"], f"{w}: bins hold {sum(d['n'])}, cnt {d['cnt']}")
            need(d["min"] <= d["avg"] <= d["max"], f"{w}: min/avg/max out of order")
            need(math.isclose(d["avg"], d["sum"] / d["cnt"], rel_tol=1e-9, abs_tol=1e-12),
                 f"{w}: avg {d['avg']} != sum/cnt {d['sum'] / d['cnt']}")


# ---- the server -----------------------------------------------------------------------------

class Intake:
    def __init__(self, api_key, script=(), default="202", encoding=None, prefix="",
                 script_paths=None, strict_time=True, validate_answer=None):
        self.api_key = api_key
        self.validate_answer = validate_answer  # e.g. "500": answered whatever the key
        self.script = list(script)
        self.default = default
        self.encoding = encoding          # the configured Content-Encoding (None: any allowed)
        self.prefix = prefix.rstrip("/")
        self.script_paths = set(script_paths) if script_paths else None
        self.strict_time = strict_time
        self.lock = threading.Lock()
        self.requests = []     # (time, method, path, status) for every request
        self.accepted = []     # {"path", "encoding", "headers", "doc", "raw_len", "time"}
        self.violations = []
        self.forbidden = []    # (method, path) refused for the key
        self.validations = []  # statuses answered on /api/v1/validate
        intake = self
        self.server = loopback_server(do_GET=lambda h: intake._handle(h, "GET"),
                                      do_POST=lambda h: intake._handle(h, "POST"),
                                      do_PUT=lambda h: intake._handle(h, "PUT"))
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.prefix}"

    # -- answering --

    @staticmethod
    def _send(h, status, doc, extra=None):
        send_json(h, status, json.dumps(doc).encode(), extra)

    def _log(self, method, path, status):
        with self.lock:
            self.requests.append((time.monotonic(), method, path, status))

    def _handle(self, h, method):
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n > 0 else b""
        full = h.path.split("?", 1)[0]
        path = full[len(self.prefix):] if full.startswith(self.prefix + "/") else None
        if path == "/api/v1/validate":
            return self._validate(h, method, raw)
        if path not in ROUTES:
            self._violation(f"{method} {full}: no such route")
            self._log(method, full, 404)
            return self._send(h, 404, {"errors": ["Not found"]})
        if method != "POST":
            self._violation(f"{method} {path}: method not allowed")
            self._log(method, path, 405)
            return self._send(h, 405, {"errors": ["Method not allowed"]})
        if h.headers.get("DD-API-KEY") != self.api_key:
            with self.lock:
                self.forbidden.append((method, path))
            self._log(method, path, 403)
            return self._send(h, 403, {"errors": ["Forbidden"]})
        try:
            doc, enc = self._check(h, path, raw)
        except Bad as e:
            self._violation(f"POST {path}: {e}")
            self._log(method, path, 400)
            return self._send(h, 400, {"errors": [str(e)]})
        action = self._next(path)
        extra = {}
        if action.startswith("429:"):
            extra["Retry-After"] = action[4:]
            action = "429"
        status = int(action)
        self._log(method, path, status)
        if 200 <= status < 300:
            with self.lock:
                self.accepted.append({"path": path, "encoding": enc, "doc": doc,
                                      "headers": dict(h.headers), "raw_len": len(raw),
                                      "time": time.time()})
            ok = {"/api/v2/series": {"errors": []}, "/api/beta/sketches": {}}.get(
                path, {"status": "ok"})
            return self._send(h, status, ok)
        msg = {400: "Payload is not in the expected format (fake says 400)",
               403: "Forbidden", 413: "Payload too large", 429: "Too many requests",
               500: "Internal Server Error"}.get(status, f"fake says {status}")
        return self._send(h, status, {"errors": [msg]}, extra)

    def _validate(self, h, method, raw):
        if method != "GET" or raw:
            self._violation(f"{method} /api/v1/validate with {len(raw)} body bytes")
            self._log(method, "/api/v1/validate", 405)
            return self._send(h, 405, {"errors": ["Method not allowed"]})
        if not (h.headers.get("User-Agent") or "").startswith("remora/"):
            self._violation("validate: User-Agent is not remora's")
        ok = h.headers.get("DD-API-KEY") == self.api_key
        status = 200 if ok else 403
        if self.validate_answer is not None:
            status = int(self.validate_answer)
            with self.lock:
                self.validations.append(status)
            self._log("GET", "/api/v1/validate", status)
            return self._send(h, status, {"errors": [f"fake says {status}"]})
        with self.lock:
            self.validations.append(status)
            if not ok:
                self.forbidden.append(("GET", "/api/v1/validate"))
        self._log("GET", "/api/v1/validate", status)
        return self._send(h, status, {"valid": True} if ok else {"errors": ["Forbidden"]})

    def _violation(self, what):
        with self.lock:
            self.violations.append(what)

    def _next(self, path):
        with self.lock:
            if self.script_paths is not None and path not in self.script_paths:
                return "202"
            return self.script.pop(0) if self.script else self.default

    def _check(self, h, path, raw):
        if not (h.headers.get("User-Agent") or "").startswith("remora/"):
            raise Bad(f"User-Agent {h.headers.get('User-Agent')!r} is not remora's")
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != ROUTES[path]:
            raise Bad(f"Content-Type {h.headers.get('Content-Type')!r}, want {ROUTES[path]}")
        enc = h.headers.get("Content-Encoding")
        # What Datadog's public API documents: zstd ("zstd1") for /api/v2/series only; gzip
        # and deflate everywhere.
        allowed = ("zstd1", "gzip", "deflate") if path == "/api/v2/series" else ("gzip", "deflate")
        if enc is not None and enc not in allowed:
            raise Bad(f"Content-Encoding {enc!r} on {path} (the API takes {', '.join(allowed)})")
        if self.encoding is not None:
            want = ("deflate" if self.encoding == "zstd1" and path != "/api/v2/series"
                    else self.encoding)
            if (enc or "none") != want:
                raise Bad(f"Content-Encoding {enc!r} on {path}, want {want!r}")
        body = decompress(enc, raw)
        v2 = path == "/api/v2/series"
        lim_c = V2_LIMIT_COMPRESSED if v2 else GENERIC_LIMIT_COMPRESSED
        lim_r = V2_LIMIT_RAW if v2 else GENERIC_LIMIT_RAW
        if len(raw) > lim_c:   # the body as sent (compressed, or not at all)
            raise Bad(f"{len(raw)} bytes sent (> {lim_c})")
        if len(body) > lim_r:
            raise Bad(f"{len(body)} uncompressed bytes (> {lim_r})")
        if path == "/api/beta/sketches":
            doc = decode_sketch_payload(body)
            check_sketches(doc, self.strict_time)
            return doc, enc
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Bad(f"body is not JSON: {e}") from None
        {"/api/v2/series": check_v2, "/api/v1/series": check_v1, "/api/v1/events": check_event,
         "/api/v1/check_run": check_checks}[path](doc, self.strict_time)
        return doc, enc

    # -- reading what arrived --

    def payloads(self, path):
        """The decoded bodies accepted on path, one per request."""
        with self.lock:
            return [a["doc"] for a in self.accepted if a["path"] == path]

    def series(self, version="v2"):
        return [s for d in self.payloads(f"/api/{version}/series") for s in d["series"]]

    def sketches(self):
        return [s for d in self.payloads("/api/beta/sketches") for s in d["sketches"]]

    def events(self):
        return self.payloads("/api/v1/events")

    def checks(self):
        return [c for d in self.payloads("/api/v1/check_run") for c in d]

    def statuses(self, path=None):
        with self.lock:
            return [s for _, _, p, s in self.requests if path is None or p == path]

    def posts(self, path=None):
        """Data requests received (validate excluded), whatever their answer."""
        with self.lock:
            return [r for r in self.requests if r[1] == "POST" and (path is None or r[2] == path)]

    def encodings(self):
        with self.lock:
            return {a["encoding"] for a in self.accepted}

    def set_default(self, action):
        with self.lock:
            self.default = action

    def wait(self, pred, timeout):
        return wait_until(pred, timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
