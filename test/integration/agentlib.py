"""What the integration tests share: the binary's environment, a background agent with its
stdout collected, private plugin directories, and an HTTP client for the agent's listener.

Environment (set by test/meson.build): REMORA_BIN, BUILD_ROOT, SOURCE_ROOT.
"""
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

BIN = os.environ["REMORA_BIN"]
BUILD = os.environ["BUILD_ROOT"]
SRC = os.environ["SOURCE_ROOT"]
PLUGINS = os.path.join(BUILD, "plugins")
ABI = os.path.join(BUILD, "test", "abi")
TMP = tempfile.mkdtemp(prefix="remora-it-")
EMPTY_CONF = os.path.join(TMP, "empty.conf")
open(EMPTY_CONF, "w").close()


def env(**extra):
    # Agents listen on a free port unless a test says otherwise, so runs never collide.
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": TMP, "LANG": "C",
         "REMORA_AGENT_HTTP_LISTEN": "127.0.0.1:0"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    e.update(extra)
    return e


def run(args, timeout=30, **extra):
    return subprocess.run([BIN] + args, env=env(**extra), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, errors="replace")


def run_client(args, env=None, timeout=60):
    """Runs a client program (a DogStatsD client script) that reports on stdout with a JSON
    line. Returns (the completed process, the last JSON object it printed, or {})."""
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    result = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    return p, result


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def plugin_dir(*extra, name="plugins"):
    """A private plugin directory with the built plugins plus test/abi ones by name."""
    d = tempfile.mkdtemp(prefix=name + "-", dir=TMP)
    os.chmod(d, 0o755)
    for f in os.listdir(PLUGINS):
        if f.endswith(".so"):
            shutil.copy(os.path.join(PLUGINS, f), d)
    for x in extra:
        src = x if os.path.isabs(x) else os.path.join(ABI, x + ".so")
        shutil.copy(src, d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o755)
    return d


class Agent:
    """remora run in the background, with stdout lines collected by a thread."""

    def __init__(self, args, **extra):
        self.stderr_path = os.path.join(TMP, f"stderr-{time.monotonic_ns()}.log")
        self.stderr = open(self.stderr_path, "w")
        self.start = time.monotonic()
        self.p = subprocess.Popen([BIN, "run"] + args, env=env(**extra), stdout=subprocess.PIPE,
                                  stderr=self.stderr, text=True, errors="replace")
        self.lines = queue.Queue()
        self.all = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put((time.monotonic(), line))

    def wait_line(self, pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                when, line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.all.append(line)
            if pred(line):
                return when, line
        return None, None

    def stop(self, sig=signal.SIGTERM, timeout=25):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "timeout"
        time.sleep(0.1)
        while not self.lines.empty():
            self.all.append(self.lines.get()[1])
        self.stderr.close()
        return rc

    def errors(self):
        with open(self.stderr_path) as f:
            return f.read()

    def http_address(self, timeout=10):
        """The shared listener's address, from the log line the agent writes when it binds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(r"listening for HTTP on (\S+)", self.errors())
            if m:
                return m.group(1)
            if self.p.poll() is not None:
                return None
            time.sleep(0.02)
        return None

    def get(self, path, timeout=10):
        """GET path on the shared listener: (status, body text)."""
        host, port = self.http_address().rsplit(":", 1)
        c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def status(self):
        code, body = self.get("/v1/status")
        return json.loads(body) if code == 200 else None

    def instance(self, name):
        st = self.status()
        for i in (st or {}).get("instances", []):
            if i["name"] == name:
                return i
        return None


def records(lines):
    out = []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def metric_value(text, family, **labels):
    """The sum of the samples of a Prometheus text family whose labels include these, or
    None when no sample matches."""
    total = None
    for line in text.splitlines():
        if line.startswith(family + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total
