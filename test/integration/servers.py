"""What the tests' local servers share: a free loopback port, waiting for a condition, and a
real server (InfluxDB, VictoriaMetrics) run from a temporary directory on loopback, asked over
HTTP and stopped with its directory removed (influx.py, victoria.py).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port free at the time of asking (TCP, or UDP with socket.SOCK_DGRAM)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


def wait_bucket_start(bucket=10):
    """Sleeps until the wall clock is early in an aggregation bucket of that many seconds
    (0.2 s to 3 s in), so that what is sent now lands in one bucket even on a slow machine."""
    while True:
        t = time.time() % bucket
        if 0.2 <= t < 3:
            return
        time.sleep(0.05 if t < 0.2 else min(bucket - t + 0.2, 0.5))


def wait_until(pred, timeout, step=0.05):
    """pred() until it is true or timeout seconds have passed; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class LocalServer:
    """A server process on 127.0.0.1:port with its own temporary directory and log file.
    Subclasses start self.proc in __init__ after calling LocalServer.__init__, and name the
    health check (HEALTH_PATH answering HEALTH_STATUS)."""
    HEALTH_PATH = "/health"
    HEALTH_STATUS = 200

    def __init__(self, prefix, log_name):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, log_name), "w")
        self.proc = None

    def spawn(self, argv):
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def healthy(self):
        try:
            return self.request("GET", self.HEALTH_PATH)[0] == self.HEALTH_STATUS
        except OSError:
            return False

    def wait(self, timeout=60):
        """True once the health check passes; False when the process exits or time runs out."""
        ok = wait_until(lambda: self.proc.poll() is not None or self.healthy(), timeout, 0.1)
        return ok and self.proc.poll() is None

    def logtail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-3000:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
