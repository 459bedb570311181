"""Strict fake backends for the integration tests (stdlib only).

Receiver is an HTTP server on loopback that checks every request it gets (method, path,
content type and encoding, that the body decodes and every line is JSON) and answers from a
script: one action per request, then a default. Actions:
  "200" "202" "400" "401" "403" "413" "500" "503" ...  that status (4xx/5xx with a JSON error)
  "429:N"      429 with Retry-After: N
  "close"      close the connection without answering
  "hang"       read the request, then say nothing for 30 s
  "413>N"      413 when the body has more than N lines, else 200
A strict check that fails is recorded in .violations and answered 400.
"""
import gzip
import http.server
import json
import socket
import threading
import time
import zlib

from servers import wait_until

try:
    import zstandard  # noqa: F401 - optional
except ImportError:  # pragma: no cover
    zstandard = None


def decode_body(encoding, body):
    if encoding in (None, "", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")



def send_json(h, status, body, extra=None):
    """Answers the request h handles: status, a JSON body (bytes), extra headers."""
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def loopback_server(protocol="HTTP/1.1", **methods):
    """A threaded HTTP server on a free loopback port, serving in a daemon thread. methods are
    the handler's methods (do_POST=fn(handler), ...); request logging is off. Returns the
    server: server_address[1] is the port, shutdown() and server_close() stop it."""
    handler = type("Handler", (http.server.BaseHTTPRequestHandler,),
                   {"protocol_version": protocol, "log_message": lambda self, *args: None,
                    **methods})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

class Receiver:
    def __init__(self, script=(), default="200", path="/ingest", content_type=None,
                 expect_headers=None):
        self.script = list(script)
        self.default = default
        self.path = path
        self.content_type = content_type
        self.expect_headers = expect_headers or {}
        self.lock = threading.Lock()
        self.requests = []    # (time, action, nlines, headers)
        self.lines = []       # every JSON line accepted with a 2xx
        self.violations = []
        self.hangs = []
        recv = self

        def do_get(h):
            recv._violation(f"GET {h.path}")
            h._send(405, b'{"error":"method"}')


        self.server = loopback_server(do_POST=lambda h: recv._handle(h), do_GET=do_get,
                                      _send=send_json)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _violation(self, what):
        with self.lock:
            self.violations.append(what)

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def set_default(self, action):
        with self.lock:
            self.default = action

    def _handle(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        raw = h.rfile.read(n)
        path = h.path
        if path.split("?")[0] != self.path:
            self._violation(f"path {path}")
            return h._send(404, b'{"error":"path"}')
        if self.content_type and h.headers.get("Content-Type") != self.content_type:
            self._violation(f"content type {h.headers.get('Content-Type')}")
            return h._send(400, b'{"error":"content type"}')
        for k, v in self.expect_headers.items():
            if h.headers.get(k) != v:
                self._violation(f"header {k}: {h.headers.get(k)!r}")
                return h._send(400, b'{"error":"header"}')
        try:
            body = decode_body(h.headers.get("Content-Encoding"), raw)
            lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        except Exception as e:  # noqa: BLE001 - any bad body is a violation
            self._violation(f"body: {e}")
            return h._send(400, b'{"error":"body"}')
        action = self.next_action()
        with self.lock:
            self.requests.append((time.monotonic(), action, len(lines), dict(h.headers)))
        if action == "close":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if action == "hang":
            self.hangs.append(h)
            time.sleep(30)
            h.close_connection = True
            return
        if action.startswith("413>"):
            action = "413" if len(lines) > int(action[4:]) else "200"
        extra = {}
        if action.startswith("429:"):
            extra["Retry-After"] = action[4:]
            action = "429"
        status = int(action)
        if 200 <= status < 300:
            with self.lock:
                self.lines.extend(lines)
            return h._send(status, b'{"status":"ok"}')
        h._send(status, json.dumps({"error": f"fake says {status}: field 'x' is bad"}).encode(),
                extra)

    def seq_values(self):
        with self.lock:
            return [int(x["value"]) for x in self.lines if x.get("name") == "seq"]

    def statuses(self):
        with self.lock:
            return [a for _, a, _, _ in self.requests]

    def wait(self, pred, timeout):
        return wait_until(pred, timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
