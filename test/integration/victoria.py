"""A private VictoriaMetrics (Debian's `victoria-metrics`, 1.79) on loopback for the integration
tests: a free port, a temporary -storageDataPath, no query latency offset and no cache, so
what was written can be read back at once (after /internal/force_flush). Used by
test_datadog.py (its /datadog/api/v1/series route takes Datadog v1 series).
"""
import json
import os
import shutil
import urllib.parse

from servers import LocalServer

VICTORIA = os.environ.get("VICTORIA_METRICS",
                          shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")


class Victoria(LocalServer):
    def __init__(self):
        super().__init__("remora-vm-", "vm.log")
        self.spawn([VICTORIA, f"-httpListenAddr=127.0.0.1:{self.port}",
                    f"-storageDataPath={os.path.join(self.dir, 'data')}", "-retentionPeriod=1",
                    "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR",
                    "-selfScrapeInterval=0"])

    def export(self, match):
        """Every raw sample of the series matching the selector, after flushing VM's buffers:
        [{"metric": {labels}, "values": [...], "timestamps": [ms...]}]."""
        self.request("GET", "/internal/force_flush")
        qs = urllib.parse.urlencode({"match[]": match})
        code, text = self.request("GET", "/api/v1/export?" + qs)
        if code != 200:
            raise RuntimeError(f"export answered {code}: {text[:300]}")
        return [json.loads(x) for x in text.splitlines() if x.strip()]
