#!/usr/bin/env python3
"""Throughput and cost of the courier: the seq test input offers N numbered gauges at a fixed
rate, the http output POSTs them (gzip) to a minimal receiver on loopback, and the bench
reports the records that arrived (the sink decompresses each body and counts its lines),
records/s, the agent's CPU per record, its peak RSS and the bytes on the wire; then the same
with a receiver that answers 503 for the first half second.

usage: bench/courier.py [BUILD_DIR] [--records N] [--compression none|gzip|zstd] [--per-tick N]

--per-tick sets how many records the input offers every 10 ms (default 2000: 200k/s); a
rate above what the agent sustains fills the queue up to queue_bytes (64 MiB by default).

Reported, not asserted. The receiver is a raw-socket HTTP/1.1 responder (keep-alive), cheap
enough that the agent is the thing measured.
"""
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from proclib import cpu_seconds, peak_rss


def args():
    build, n, comp, per_tick = "build", 1000000, "gzip", 2000
    a = sys.argv[1:]
    while a:
        x = a.pop(0)
        if x == "--records":
            n = int(a.pop(0))
        elif x == "--per-tick":
            per_tick = int(a.pop(0))
        elif x == "--compression":
            comp = a.pop(0)
        else:
            build = x
    return build, n, comp, per_tick


class Sink:
    """Answers every request 200 (or 503 during fail_for) and counts the bodies' lines."""

    def __init__(self, fail_for=0.0):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.requests = 0
        self.bytes = 0
        self.records = 0
        self.t0 = None
        self.fail_for = fail_for
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.s.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                got = c.recv(1 << 16)
                if not got:
                    return
                buf += got
            head, buf = buf.split(b"\r\n\r\n", 1)
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            while len(buf) < n:
                got = c.recv(1 << 20)
                if not got:
                    return
                buf += got
            body, buf = buf[:n], buf[n:]
            if self.t0 is None:
                self.t0 = time.monotonic()
            if time.monotonic() - self.t0 < self.fail_for:
                c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                continue
            self.requests += 1
            self.bytes += n
            if head.lower().find(b"content-encoding: gzip") >= 0:
                body = gzip.decompress(body)
            self.records += body.count(b"\n")
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")




def run(build, n, comp, per_tick, fail_for):
    sink = Sink(fail_for)
    tmp = tempfile.mkdtemp(prefix="remora-bench-")
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write(f"[input.seq]\ncount = {n}\nper_tick = {per_tick}\ninterval = 10ms\n\n"
                f"[output.http]\nurl = http://127.0.0.1:{sink.port}/x\ncompression = {comp}\n"
                "batch_records = 5000\nbatch_timeout = 100ms\nretry_initial = 100ms\n"
                "retry_max = 200ms\n")
    env = dict(os.environ, REMORA_AGENT_PLUGIN_DIR=os.path.join(tmp, "p"),
               REMORA_AGENT_HTTP_LISTEN="127.0.0.1:0", REMORA_AGENT_LOG_LEVEL="warn")
    os.mkdir(os.path.join(tmp, "p"))
    for d, f in [(os.path.join(build, "plugins"), "output_http.so"),
                 (os.path.join(build, "test", "plugins"), "input_seq.so")]:
        subprocess.run(["cp", os.path.join(d, f), os.path.join(tmp, "p")], check=True)
    start = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "remora"), "run", "-c", conf], env=env,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # Done when the sink has stopped receiving for a second after the first request.
    last, last_change = -1, time.monotonic()
    while time.monotonic() - start < 300:
        time.sleep(0.05)
        if sink.requests != last:
            last, last_change = sink.requests, time.monotonic()
        elif sink.requests > 0 and time.monotonic() - last_change > 1.0:
            break
    took = last_change - start
    cpu = cpu_seconds(p.pid)
    rss = peak_rss(p.pid)
    p.terminate()
    p.wait(30)
    got = sink.records
    print(f"  {comp:5s} fail_for={fail_for:.1f}s: {got}/{n} records arrived in {took:.2f} s = "
          f"{got / took / 1e3:.0f}k records/s; agent CPU {cpu:.2f} s = "
          f"{cpu / max(got, 1) * 1e6:.2f} us/record; peak RSS {rss / 2**20:.1f} MiB; "
          f"{sink.requests} requests, {sink.bytes / max(got, 1):.1f} wire bytes/record")


def main():
    build, n, comp, per_tick = args()
    print(f"courier bench: seq ({per_tick * 100} records/s offered) -> http output -> "
          f"loopback sink ({os.cpu_count()} CPUs)")
    run(build, n, comp, per_tick, 0.0)
    run(build, n, comp, per_tick, 0.5)


if __name__ == "__main__":
    main()
