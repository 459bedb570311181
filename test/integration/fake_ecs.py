"""A fake ECS task metadata endpoint (v4) on loopback, for integration tests and manual runs.

It serves ${base}/task and ${base}/task/stats for a generated Fargate task that is not among
the shared fixtures, and advances every counter on each /task/stats request, as a real task
does between two polls (stats "read" moves 10 s per request). The expected values are
computed here from the same numbers with the Docker formula, independently of remora.

Run alone: python3 fake_ecs.py [port]  (prints the ECS_CONTAINER_METADATA_URI_V4 to export).
"""
import json
import threading
from fakes import loopback_server, send_json

REGION = "eu-west-3"
CLUSTER = f"arn:aws:ecs:{REGION}:123456789012:cluster/payments-prod"
TASK_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/payments-prod/{TASK_ID}"
FAMILY = "checkout"
REVISION = "42"
AZ = "eu-west-3b"
T0 = 1795000000  # 2026-11-18, seconds
STEP_S = 10      # stats "read" advances this much per /task/stats request

# name -> how its counters move per step, and how it looks.
CONTAINERS = [
    {"name": "web", "id": f"{TASK_ID}-1111111111", "cgroup": 1, "online": 2,
     "image": "123456789012.dkr.ecr.eu-west-3.amazonaws.com/shop/web:2.7.1",
     "cpu_step": 123456789, "user_step": 100000000, "kernel_step": 23456789,
     "usage": 314572800, "inactive": 52428800, "read_step": 4096 * 3, "write_step": 4096 * 5},
    {"name": "remora", "id": f"{TASK_ID}-2222222222", "cgroup": 2, "online": 2,
     "image": "ghcr.io/acme/remora@sha256:" + "ab" * 32,
     "cpu_step": 3456789, "user_step": 3000000, "kernel_step": 456789,
     "usage": 9437184, "inactive": 1048576, "read_step": 0, "write_step": 0},
    {"name": "worker", "id": f"{TASK_ID}-3333333333", "null_stats": True, "cgroup": 1,
     "online": 2, "image": "busybox", "cpu_step": 0, "user_step": 0, "kernel_step": 0,
     "usage": 0, "inactive": 0, "read_step": 0, "write_step": 0},
    {"name": "~internal~ecs~pause", "id": f"{TASK_ID}-4444444444", "type": "CNI_PAUSE",
     "cgroup": 1, "online": 2, "image": "amazon/amazon-ecs-pause:0.1.0",
     "cpu_step": 999999, "user_step": 1, "kernel_step": 1, "usage": 1 << 20, "inactive": 0,
     "read_step": 0, "write_step": 0},
    # Idle: no CPU time between two samples while the host's moves on: 0 %, not no figure.
    {"name": "cron", "id": f"{TASK_ID}-5555555555", "cgroup": 2, "online": 2,
     "image": "public.ecr.aws/docker/library/alpine:3.20",
     "cpu_step": 0, "user_step": 0, "kernel_step": 0,
     "usage": 4194304, "inactive": 0, "read_step": 0, "write_step": 0},
]
SYSTEM_STEP = 2 * STEP_S * 10**9          # two CPUs for STEP_S seconds, in ns
RX_STEP, TX_STEP = 1_000_000, 250_000     # the task ENI, the same for every container


def iso(sec):
    import datetime
    return datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.123456789Z")


def task_doc():
    cs = []
    for c in CONTAINERS:
        cs.append({
            "DockerId": c["id"], "Name": c["name"], "DockerName": "ecs-" + c["name"],
            "Image": c["image"], "ImageID": "sha256:" + "cd" * 32,
            "Labels": {"com.amazonaws.ecs.cluster": CLUSTER,
                       "com.amazonaws.ecs.container-name": c["name"],
                       "com.amazonaws.ecs.task-arn": TASK_ARN,
                       "com.amazonaws.ecs.task-definition-family": FAMILY,
                       "com.amazonaws.ecs.task-definition-version": REVISION},
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
            "Limits": {"CPU": 0, "Memory": 0},
            "CreatedAt": iso(T0 - 400), "StartedAt": iso(T0 - 390),
            "Type": c.get("type", "NORMAL"),
            "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.1.23"]}],
        })
    return {"Cluster": CLUSTER, "TaskARN": TASK_ARN, "Family": FAMILY, "Revision": REVISION,
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
            "Limits": {"CPU": 1, "Memory": 2048}, "AvailabilityZone": AZ,
            "LaunchType": "FARGATE", "EphemeralStorageMetrics": {"Utilized": 312,
                                                                 "Reserved": 20496},
            "Containers": cs}


def counters(c, k):
    """Cumulative counters of container c after k steps."""
    return {"total": 10**10 + k * c["cpu_step"], "user": 8 * 10**9 + k * c["user_step"],
            "kernel": 2 * 10**9 + k * c["kernel_step"], "system": 10**13 + k * SYSTEM_STEP,
            "rx": 5 * 10**8 + k * RX_STEP, "tx": 10**8 + k * TX_STEP,
            "read": 10**6 + k * c["read_step"], "write": 2 * 10**6 + k * c["write_step"]}


def stats_doc(k):
    """/task/stats after k steps (k >= 1: cpu_stats at step k, precpu_stats at step k-1)."""
    out = {}
    for c in CONTAINERS:
        if c.get("null_stats"):
            out[c["id"]] = None
            continue
        cur, pre = counters(c, k), counters(c, k - 1)
        if c["cgroup"] == 1:
            mem = {"usage": c["usage"], "max_usage": c["usage"] + 4096,
                   "limit": 9223372036854771712,
                   "stats": {"cache": c["inactive"] + 4096, "rss": c["usage"] // 2,
                             "total_inactive_file": c["inactive"],
                             "inactive_file": c["inactive"], "pgfault": 1000 + k * 10}}
            blk = [{"major": 259, "minor": 0, "op": "Read", "value": cur["read"]},
                   {"major": 259, "minor": 0, "op": "Write", "value": cur["write"]},
                   {"major": 259, "minor": 0, "op": "Total",
                    "value": cur["read"] + cur["write"]}]
        else:
            mem = {"usage": c["usage"], "limit": 18446744073709551615,
                   "stats": {"anon": c["usage"] - c["inactive"], "file": c["inactive"],
                             "inactive_file": c["inactive"]}}
            blk = None
        out[c["id"]] = {
            "read": iso(T0 + k * STEP_S), "preread": iso(T0 + (k - 1) * STEP_S),
            "name": c["name"], "id": c["id"], "num_procs": 0, "pids_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": cur["total"],
                                        "usage_in_usermode": cur["user"],
                                        "usage_in_kernelmode": cur["kernel"]},
                          "system_cpu_usage": cur["system"], "online_cpus": c["online"],
                          "throttling_data": {"periods": 0, "throttled_periods": 0,
                                              "throttled_time": 0}},
            "precpu_stats": {"cpu_usage": {"total_usage": pre["total"],
                                           "usage_in_usermode": pre["user"],
                                           "usage_in_kernelmode": pre["kernel"]},
                             "system_cpu_usage": pre["system"], "online_cpus": c["online"]},
            "memory_stats": mem,
            "blkio_stats": {"io_service_bytes_recursive": blk, "io_serviced_recursive": []},
            "networks": {"eth1": {"rx_bytes": cur["rx"], "rx_packets": 100 + k,
                                  "rx_errors": 0, "rx_dropped": 0, "tx_bytes": cur["tx"],
                                  "tx_packets": 50 + k, "tx_errors": 0, "tx_dropped": 0}},
            "network_rate_stats": {"rx_bytes_per_sec": RX_STEP / STEP_S,
                                   "tx_bytes_per_sec": TX_STEP / STEP_S},
        }
    return out


def expected(name, k):
    """What a container's numbers are after k steps, by the Docker formula."""
    c = next(x for x in CONTAINERS if x["name"] == name)
    cur = counters(c, k)
    return {
        "cpu_percent": c["cpu_step"] / SYSTEM_STEP * c["online"] * 100,
        # Metricbeat's shares of one stats document (its cpu_stats against its precpu_stats).
        "user_pct": c["user_step"] / SYSTEM_STEP * c["online"],
        "kernel_pct": c["kernel_step"] / SYSTEM_STEP * c["online"],
        "working_set": c["usage"] - c["inactive"],
        "mem_usage": c["usage"],
        "online": c["online"],
        "cpu_usage_rate": c["cpu_step"] / STEP_S,   # ns/s between two polls
        "rx_rate": RX_STEP / STEP_S, "tx_rate": TX_STEP / STEP_S,
        "rx_total": cur["rx"], "tx_total": cur["tx"],
        "read_total": cur["read"], "write_total": cur["write"],
        "io_read_rate": c["read_step"] / STEP_S,
    }


class MetadataServer:
    """Serves the generated task under /v4/<own id>. mode: "ok", or a failure to inject:
    "stats_500" (task fine, stats 500), "task_bad_json", "hang" (never answers)."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.step = 0
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        # HTTP/1.0 by default: bench/ecs_poll.py --keepalive switches the handler to 1.1.
        self.srv = loopback_server(protocol="HTTP/1.0", do_GET=lambda h: outer._get(h))
        self.port = self.srv.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/v4/{CONTAINERS[1]['id']}"

    def _get(self, h):
        prefix = "/v4/" + CONTAINERS[1]["id"]
        with self.lock:
            self.requests.append(h.path)
            mode = self.mode
        if mode == "hang":
            import time
            time.sleep(30)
            return
        if h.path == prefix + "/task":
            if mode == "task_bad_json":
                return self._send(h, 200, b'{"Cluster": "x", "Containers": [')
            return self._send(h, 200, json.dumps(task_doc()).encode())
        if h.path == prefix + "/task/stats":
            if mode == "stats_500":
                return self._send(h, 500, b'{"error":"internal"}')
            with self.lock:
                self.step += 1
                k = self.step
            return self._send(h, 200, json.dumps(stats_doc(k)).encode())
        self._send(h, 404, b"404 page not found")

    @staticmethod
    def _send(h, code, body):
        send_json(h, code, body)

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


if __name__ == "__main__":
    s = MetadataServer()
    print(f"export ECS_CONTAINER_METADATA_URI_V4={s.base}", flush=True)
    threading.Event().wait()
