#!/usr/bin/env python3
"""The shared HTTP listener of the real binary under abuse: malformed requests, oversize
headers and bodies, a 200 MB body, a gzip bomb, slowloris, 1,000 keep-alive requests on one
connection, 200 concurrent connections, routes answered asynchronously, 429 when an input is
full; /v1/ping answers throughout. /metrics passes `promtool check metrics` when promtool is
installed (Debian's prometheus package; scripts/setup installs it).
"""
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from agentlib import BUILD, TMP, Agent, plugin_dir, write
from tap import main

TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_echo.so"), name="httpd")
CONF = write(os.path.join(TMP, "httpd.conf"),
             "[input.echo]\n\n[output.file]\npath = /dev/null\n")
AGENT = None


def addr():
    host, port = AGENT.http_address().rsplit(":", 1)
    return host, int(port)


def ping_ok():
    c = http.client.HTTPConnection(*addr(), timeout=5)
    try:
        c.request("GET", "/v1/ping")
        r = c.getresponse()
        return r.status == 200 and r.read() == b"pong\n"
    except OSError:
        return False
    finally:
        c.close()


def raw(data, timeout=5, shut=True):
    """Sends raw bytes, returns everything the server sends until it closes or times out."""
    s = socket.create_connection(addr(), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def post(path, body, headers=None, timeout=10):
    c = http.client.HTTPConnection(*addr(), timeout=timeout)
    try:
        c.request("POST", path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def test_routes(t):
    t.ok(ping_ok(), "/v1/ping answers 200 pong")
    code, body, hdrs = post("/test/echo", b"a\nbb\nccc\n")
    t.eq(code, 200, "a plugin's route answers")
    t.eq(json.loads(body), {"len": 9, "lines": 3}, "with what it computed from the body")
    t.eq(hdrs.get("X-Echo"), "yes", "and the plugin's header")
    start = time.monotonic()
    code, body, _ = post("/test/echo?delay=300", b"x\n")
    took = time.monotonic() - start
    t.eq(code, 200, "an asynchronous answer arrives")
    t.ok(0.25 <= took < 3, f"after the plugin's delay ({took:.2f} s)")
    t.eq(status_of(raw(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")), 404, "unknown path: 404")
    t.eq(status_of(raw(b"DELETE /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")), 405,
         "known path, other method: 405")


def test_encodings(t):
    body = b"".join(b"line %d\n" % i for i in range(1000))
    code, resp, _ = post("/test/echo", gzip.compress(body), {"Content-Encoding": "gzip"})
    t.eq((code, json.loads(resp)["lines"]), (200, 1000), "a gzip body is decoded")
    import zlib
    code, resp, _ = post("/test/echo", zlib.compress(body), {"Content-Encoding": "deflate"})
    t.eq((code, json.loads(resp)["len"]), (200, len(body)), "a deflate body is decoded")
    zstd = shutil.which("zstd")
    if zstd:
        comp = subprocess.run([zstd, "-q", "-c"], input=body, stdout=subprocess.PIPE).stdout
        code, resp, _ = post("/test/echo", comp, {"Content-Encoding": "zstd"})
        t.eq((code, json.loads(resp)["len"]), (200, len(body)), "a zstd body is decoded")
    code, _, _ = post("/test/echo", b"not gzip at all", {"Content-Encoding": "gzip"})
    t.eq(code, 400, "a corrupt gzip body gets 400")
    code, _, _ = post("/test/echo", b"x", {"Content-Encoding": "br"})
    t.eq(code, 415, "an unknown encoding gets 415")
    chunked = (b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nab\nc\r\n3\r\nd\ne\r\n0\r\n\r\n")
    resp = raw(chunked, shut=False, timeout=2)
    t.eq(status_of(resp), 200, "a chunked body is accepted")
    t.contains(resp.decode(errors="replace"), '"len":7', "and joined")


def test_malformed(t):
    for name, data in [("garbage", b"\x00\x01\x02 hello\r\n\r\n"),
                       ("no version", b"GET /v1/ping\r\n\r\n"),
                       ("bad header", b"GET /v1/ping HTTP/1.1\r\nNo colon here\r\n\r\n"),
                       ("bad chunk", b"POST /test/echo HTTP/1.1\r\nTransfer-Encoding: chunked"
                                     b"\r\n\r\nzz\r\n")]:
        resp = raw(data)
        t.eq(status_of(resp), 400, f"malformed ({name}): 400")
    t.ok(ping_ok(), "the server still answers /v1/ping")


def test_oversize(t):
    big = b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
    t.eq(status_of(raw(big)), 431, "headers over 64 KiB: 431")
    # 200 MB declared and streamed: the answer comes at once, without reading the body.
    s = socket.create_connection(addr(), timeout=10)
    s.sendall(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n")
    sent = 0
    chunk = b"z" * 65536
    resp = b""
    start = time.monotonic()
    try:
        s.setblocking(False)
        while sent < 209715200 and time.monotonic() - start < 20:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
            try:
                got = s.recv(4096)
                if got:
                    resp += got
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
        s.setblocking(True)
        s.settimeout(5)
        try:
            while True:
                got = s.recv(4096)
                if not got:
                    break
                resp += got
        except OSError:
            pass
    finally:
        s.close()
    t.eq(status_of(resp), 413, f"a 200 MB body gets 413 (after {sent >> 20} MiB were sent)")
    t.ok(sent < 209715200, "before the client finished sending it")
    # 100 MB of zeros, gzip'd to ~100 KB, expands beyond the 32 MiB decoded cap set below.
    bomb = gzip.compress(b"\0" * (100 << 20), compresslevel=9)
    code, _, _ = post("/test/echo", bomb, {"Content-Encoding": "gzip"}, timeout=30)
    t.eq(code, 413, f"a gzip bomb ({len(bomb)} bytes) gets 413")
    t.ok(ping_ok(), "the server still answers /v1/ping")
    st = AGENT.status()
    t.ok(st["process"]["rss_bytes"] < 200 << 20, "and the bomb did not blow up memory",
         st["process"])


def test_slowloris(t):
    s = socket.create_connection(addr(), timeout=10)
    start = time.monotonic()
    data = b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
    resp = b""
    try:
        for b in data:
            try:
                s.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.05)
            try:
                got = s.recv(4096, socket.MSG_DONTWAIT)
                if got:
                    resp += got
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            if time.monotonic() - start > 8:
                break
        took = time.monotonic() - start
        s.settimeout(3)
        while True:
            got = s.recv(4096)
            if not got:
                break
            resp += got
    except OSError:
        pass
    finally:
        s.close()
    t.eq(status_of(resp), 408, "a slowloris client gets 408")
    t.ok(1.8 <= took < 4, f"when the 2 s header timeout ends ({took:.1f} s)")
    t.ok(ping_ok(), "the server still answers /v1/ping")


def test_keepalive_1000(t):
    c = http.client.HTTPConnection(*addr(), timeout=5)
    good = 0
    for _ in range(1000):
        c.request("GET", "/v1/ping")
        r = c.getresponse()
        good += r.status == 200 and r.read() == b"pong\n"
    c.close()
    t.eq(good, 1000, "1,000 keep-alive requests on one connection all answered")
    # Pipelined: three requests in one write, answered in order.
    resp = raw(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nq\n"
               b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = resp.decode(errors="replace")
    t.eq(text.count("HTTP/1.1 200"), 3, "three pipelined requests get three answers")
    t.ok(text.find("pong") < text.find('"len":2') < text.rfind("pong"), "in order")


def test_concurrent_200(t):
    results = []
    lock = threading.Lock()
    socks = []
    for _ in range(200):
        socks.append(socket.create_connection(addr(), timeout=10))

    def one(s):
        try:
            s.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                got = s.recv(4096)
                if not got:
                    break
                out += got
            ok = out.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        finally:
            s.close()
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=one, args=(s,)) for s in socks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    t.eq(sum(results), 200, "200 concurrent connections are all answered")
    t.ok(ping_ok(), "the server still answers /v1/ping")


def test_max_connections(t):
    a = Agent(["-c", CONF], REMORA_AGENT_PLUGIN_DIR=PDIR, REMORA_AGENT_HTTP_MAX_CONNECTIONS="4")
    host, port = a.http_address().rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(4)]
    time.sleep(0.2)
    extra = socket.create_connection((host, int(port)), timeout=5)
    try:
        extra.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        got = extra.recv(4096)
    except OSError:
        got = b""
    t.ok(not got.startswith(b"HTTP/1.1 200"), "a fifth connection over the limit is refused")
    for s in held:
        s.close()
    time.sleep(0.3)
    code, _ = a.get("/v1/ping")
    t.eq(code, 200, "after the others close, requests are served again")
    a.stop()


def test_metrics_promtool(t):
    code, text = AGENT.get("/metrics")
    t.eq(code, 200, "/metrics answers 200")
    for fam in ("remora_build_info", "remora_process_resident_memory_bytes",
                "remora_records_in_total", "remora_event_loop_lag_seconds",
                "remora_http_server_responses_total", "remora_request_duration_seconds"):
        t.contains(text, f"# TYPE {fam} ", f"/metrics has {fam}")
    promtool = shutil.which("promtool")
    if promtool is None:
        t.ok(os.environ.get("REMORA_REQUIRE_PROMTOOL") != "1",
             "promtool is installed (REMORA_REQUIRE_PROMTOOL=1)")
        return
    r = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t.eq(r.returncode, 0, "promtool check metrics accepts /metrics", r.stdout)


def test_status_json(t):
    st = AGENT.status()
    t.eq(st["phase"], "running", "/v1/status: running")
    names = [i["name"] for i in st["instances"]]
    t.eq(names, ["input.echo", "output.file"], "/v1/status lists the instances")
    echo = st["instances"][0]
    t.ok(echo["counters"].get("http_requests", 0) > 0, "the echo input counts its requests")


def test_own_listener(t):
    a = Agent(["-c", CONF], REMORA_AGENT_PLUGIN_DIR=PDIR, REMORA_INPUT_ECHO_LISTEN="127.0.0.1:0")
    a.http_address()
    end = time.monotonic() + 10
    own = None
    while own is None and time.monotonic() < end:
        m = re.search(r"input\.echo: listening for HTTP on (\S+)", a.errors())
        own = m.group(1) if m else None
        time.sleep(0.05)
    t.ok(own is not None and own != a.http_address(), "a plugin opens a listener of its own",
         a.errors())
    host, port = own.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    c.request("POST", "/test/echo", body=b"one\ntwo\n")
    r = c.getresponse()
    t.eq((r.status, json.loads(r.read())), (200, {"len": 8, "lines": 2}),
         "its route answers there")
    c.request("GET", "/v1/ping")
    r = c.getresponse()
    r.read()
    t.eq(r.status, 404, "and the agent's own routes stay on the shared listener")
    c.close()
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors())


def test_listen_conflict(t):
    a = Agent(["-c", CONF], REMORA_AGENT_PLUGIN_DIR=PDIR,
              REMORA_AGENT_HTTP_LISTEN=AGENT.http_address())
    rc = a.p.wait(timeout=15)
    t.eq(rc, 1, "a taken listen address fails startup")
    t.contains(a.errors(), "address already in use", "with a sentence that says so")
    a.stop()


if __name__ == "__main__":
    try:
        AGENT = Agent(["-c", CONF], REMORA_AGENT_PLUGIN_DIR=PDIR,
                      REMORA_AGENT_HTTP_HEADER_TIMEOUT="2s",
                      REMORA_AGENT_HTTP_MAX_DECODED_BYTES="32MiB")
        if AGENT.http_address() is None:
            print("Bail out! the agent did not start:\n" + AGENT.errors())
            raise SystemExit(1)
        main([test_routes, test_encodings, test_malformed, test_oversize, test_slowloris,
              test_keepalive_1000, test_concurrent_200, test_max_connections,
              test_metrics_promtool, test_status_json, test_own_listener,
              test_listen_conflict])
    finally:
        if AGENT is not None:
            AGENT.stop()
        shutil.rmtree(TMP, ignore_errors=True)
