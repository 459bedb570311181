"""A private InfluxDB 1.x (Debian's influxd) on loopback for the integration tests: free ports,
a temporary directory, reporting off. Used by test_lineproto_influx.py and test_dataway.py.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

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


