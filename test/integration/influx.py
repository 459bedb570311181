"""A private InfluxDB 1.x (Debian's influxd) on loopback for the integration tests: free ports,
a temporary directory, reporting off. Used by test_lineproto_influx.py and test_dataway.py.
"""
import json
import os
import shutil
import urllib.parse

from servers import LocalServer, free_port

INFLUXD = os.environ.get("INFLUXD", shutil.which("influxd") or "/usr/bin/influxd")


class Influx(LocalServer):
    """influxd on loopback with its own ports and directories, nothing else enabled."""
    HEALTH_PATH = "/ping"
    HEALTH_STATUS = 204

    def __init__(self):
        super().__init__("remora-influx-", "influxd.log")
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
        self.spawn([INFLUXD, "run", "-config", conf])

    def query(self, db, q):
        qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        code, text = self.request("POST", "/query?" + qs)
        # Numbers stay text: floats are compared bit for bit, -0 keeps its sign.
        return code, json.loads(text, parse_float=str, parse_int=str) if text else None

    def write(self, db, body):
        return self.request("POST", "/write?" + urllib.parse.urlencode({"db": db}),
                            body.encode())
