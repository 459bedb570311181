"""A strict fake Guance dataway for the integration tests (stdlib only).

It accepts POST /v1/write/<category>?token=<token> and checks every request the way a dataway
would need it: a known category path, the expected token in the query, Content-Type
application/line-protocol, a gzip body when Content-Encoding says so, X-Points equal to the
number of lines, a remora User-Agent, and that every line parses as line protocol (loosely:
measurement, fields, timestamp). It answers from a script (one status per request, then a
default). A failed check is recorded in .violations and answered 400. Lines accepted with a
2xx are kept per category.
"""
import gzip
import re
import threading
import urllib.parse

from fakes import loopback_server, send_json
from servers import wait_until

CATEGORIES = {"metric", "object", "logging", "tracing", "keyevent"}
# measurement[,tags] fields [timestamp]: unescaped spaces separate the three parts.
LINE = re.compile(r'^(?:[^ ,\\]|\\.)+(?:,(?:[^ \\]|\\.)+)? (?:[^ "\\]|\\.|"(?:[^"\\]|\\.)*")+'
                  r'(?: -?\d+)?$', re.S)


class Dataway:
    def __init__(self, token, script=(), default="200"):
        self.token = token
        self.script = list(script)
        self.default = default
        self.lock = threading.Lock()
        self.requests = []  # (category, status, nlines)
        self.lines = {c: [] for c in CATEGORIES}
        self.violations = []
        dw = self

        self.server = loopback_server(do_POST=lambda h: dw._handle(h))
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _check(self, h, body):
        u = urllib.parse.urlsplit(h.path)
        m = re.fullmatch(r"/v1/write/([a-z_]+)", u.path)
        if not m or m.group(1) not in CATEGORIES:
            return None, None, f"unknown path {u.path}"
        q = urllib.parse.parse_qs(u.query)
        if q.get("token") != [self.token]:
            return None, None, "wrong or missing token"
        if h.headers.get("Content-Type") != "application/line-protocol":
            return None, None, f"content type {h.headers.get('Content-Type')!r}"
        if h.headers.get("Content-Encoding") != "gzip":
            return None, None, "body not gzip"
        if not (h.headers.get("User-Agent") or "").startswith("remora/"):
            return None, None, "User-Agent is not remora's"
        try:
            text = gzip.decompress(body).decode()
        except Exception as e:  # noqa: BLE001 - any decode error is a violation
            return None, None, f"gzip: {e}"
        if not text.endswith("\n"):
            return None, None, "body does not end in a newline"
        lines = text[:-1].split("\n")
        if h.headers.get("X-Points") != str(len(lines)):
            return None, None, f"X-Points {h.headers.get('X-Points')} for {len(lines)} lines"
        for line in lines:
            if not LINE.match(line):
                return None, None, f"bad line {line[:200]!r}"
        return m.group(1), lines, None

    def _handle(self, h):
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n)
        cat, lines, err = self._check(h, body)
        with self.lock:
            if err is not None:
                self.violations.append(err)
                status = 400
            else:
                status = int(self.script.pop(0) if self.script else self.default)
            self.requests.append((cat, status, len(lines or [])))
            if 200 <= status < 300 and lines:
                self.lines[cat].extend(lines)
        reply = b'{"code":%d,"message":"fake dataway says %d"}' % (status, status)
        send_json(h, status, reply)

    def statuses(self):
        with self.lock:
            return [s for _, s, _ in self.requests]

    def category_lines(self, cat):
        with self.lock:
            return list(self.lines[cat])

    def wait(self, pred, timeout):
        return wait_until(pred, timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
