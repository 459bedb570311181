#!/usr/bin/env python3
"""Throughput and cost of the courier: the seq test input emits N numbered gauges as fast as
its timer allows (200k/s: 2,000 every 10 ms), the http output POSTs them (gzip) to a minimal receiver on loopback, and
the bench reports records/s delivered, the agent's CPU per record, its peak RSS, the bytes on
the wire, and the same with a receiver that answers 503 for the first half second.

usage: bench/courier.py [BUILD_DIR] [--records N] [--compression none|gzip|zstd]

Reported, not asserted. The receiver is a raw-socket HTTP/1.1 responder (keep-alive), cheap
enough that the agent is the thing measured.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def args():
    build, n, comp = "build", 1000000, "gzip"
    a = sys.argv[1:]
    while a:
        x = a.pop(0)
        if x == "--records":
            n = int(a.pop(0))
        elif x == "--compression":
            comp = a.pop(0)
        else:
            build = x
    return build, n, comp


class Sink:
    """Counts request bodies and their lines... by Content-Length only (bodies are gzip);
    records are counted by the agent's records_out."""

    def __init__(self, fail_for=0.0):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.requests = 0
        self.bytes = 0
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
            buf = buf[n:]
            if self.t0 is None:
                self.t0 = time.monotonic()
            if time.monotonic() - self.t0 < self.fail_for:
                c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                continue
            self.requests += 1
            self.bytes += n
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run(build, n, comp, fail_for):
    sink = Sink(fail_for)
    tmp = tempfile.mkdtemp(prefix="remora-bench-")
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write(f"[input.seq]\ncount = {n}\nper_tick = 2000\ninterval = 10ms\n\n"
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
    print(f"  {comp:5s} fail_for={fail_for:.1f}s: {n} records in {took:.2f} s = "
          f"{n / took / 1e3:.0f}k records/s; agent CPU {cpu:.2f} s = "
          f"{cpu / n * 1e6:.2f} us/record; peak RSS {rss / 2**20:.1f} MiB; "
          f"{sink.requests} requests, {sink.bytes / n:.1f} wire bytes/record")


def main():
    build, n, comp = args()
    print(f"courier bench: seq -> http output -> loopback sink ({os.cpu_count()} CPUs)")
    run(build, n, comp, 0.0)
    run(build, n, comp, 0.5)


if __name__ == "__main__":
    main()
