#!/usr/bin/env python3
"""Datagram listeners in the real binary through the udpcount test input: UDP on the loop and
on a reader thread (whose emits cross to the loop), a Unix datagram socket, the listener's
counters in /metrics, and back-pressure: an output that blocks pauses the sockets, the kernel
drops what overflows and /metrics shows those drops.
"""
import json
import os
import re
import shutil
import socket
import time

from agentlib import BUILD, TMP, Agent, metric_value, plugin_dir, write
from fakes import Receiver
from tap import main

TEST_PLUGINS = os.path.join(BUILD, "test", "plugins")
PDIR = plugin_dir(os.path.join(TEST_PLUGINS, "input_udpcount.so"), name="dgram")


def addresses(a, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = re.findall(r"(input\.udpcount\S*): listening for datagrams on (\S+)", a.errors())
        if found:
            return dict(found)
        time.sleep(0.05)
    return {}


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def wait_lines(path, n, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = read_lines(path)
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    return read_lines(path)


def send_udp(addr, n, word):
    host, port = addr[len("udp://"):].rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        s.sendto(f"{word} {'x' * (i % 50)}".encode(), (host, int(port)))
        if i % 100 == 99:
            time.sleep(0.005)
    s.close()



def test_udp_and_unix(t):
    out = os.path.join(TMP, "dgram.ndjson")
    sock_path = os.path.join(TMP, "dsd.sock")
    conf = write(os.path.join(TMP, "dgram.conf"),
                 "[input.udpcount.loop]\n\n"
                 "[input.udpcount.thread]\nown_thread = true\nrcvbuf = 4MiB\n\n"
                 f"[input.udpcount.unix]\naddress = unix://{sock_path}\n\n"
                 f"[output.file]\npath = {out}\nbatch_timeout = 50ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    addrs = addresses(a)
    t.eq(sorted(addrs), ["input.udpcount.loop", "input.udpcount.thread", "input.udpcount.unix"],
         "three listeners log their addresses", a.errors())
    send_udp(addrs["input.udpcount.loop"], 1000, "loop")
    send_udp(addrs["input.udpcount.thread"], 1000, "thread")
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for i in range(200):
        u.sendto(b"unix " + b"y" * i, sock_path)
    u.close()
    lines = wait_lines(out, 2200, 15)
    words = {}
    for x in lines:
        words[x["tags"]["word"]] = words.get(x["tags"]["word"], 0) + 1
    t.eq(words, {"loop": 1000, "thread": 1000, "unix": 200},
         "every datagram became one record (loop, reader thread, unix)")
    unix_lens = sorted(int(x["value"]) for x in lines if x["tags"]["word"] == "unix")
    t.eq(unix_lens, [5 + i for i in range(200)], "with its length")
    _, metrics = a.get("/metrics")
    t.eq(metric_value(metrics, "remora_dgram_packets_total",
                      instance="input.udpcount.thread",
                      address=addrs["input.udpcount.thread"]), 1000.0,
         "/metrics counts the reader thread's datagrams")
    t.eq(metric_value(metrics, "remora_dgram_kernel_drops_total",
                      instance="input.udpcount.loop"), 0.0,
         "/metrics exports the kernel's drop counter")
    granted = metric_value(metrics, "remora_dgram_rcvbuf_bytes", instance="input.udpcount.thread")
    t.ok(granted is not None and granted > 0, f"and the receive buffer granted ({granted})")
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors())
    t.ok(not os.path.exists(sock_path), "the unix socket is removed on exit")


def test_block_pauses_sockets(t):
    recv = Receiver(default="503")
    conf = write(os.path.join(TMP, "dgblock.conf"),
                 "[input.udpcount]\nrcvbuf = 4KiB\n\n"
                 f"[output.http]\nurl = {recv.url}\nbatch_timeout = 50ms\n"
                 "queue_bytes = 64KiB\nwhen_full = block\nmax_in_flight = 1\n"
                 "retry_initial = 200ms\nretry_max = 500ms\n")
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    addr = addresses(a)["input.udpcount"]
    paused = False
    for _ in range(40):
        send_udp(addr, 500, "w")
        if "pausing datagram inputs" in a.errors():
            paused = True
            break
    t.ok(paused, "a blocking output pauses the datagram input", a.errors())
    send_udp(addr, 3000, "late")
    time.sleep(0.3)
    _, metrics = a.get("/metrics")
    drops = metric_value(metrics, "remora_dgram_kernel_drops_total", instance="input.udpcount")
    t.ok(drops is not None and drops > 0, f"the kernel drops what overflows, counted ({drops})")
    t.eq(a.instance("output.http")["records_dropped"], 0, "the output drops nothing itself")
    recv.set_default("200")
    ok = recv.wait(lambda: "resuming datagram inputs" in a.errors(), 20)
    t.ok(ok, "once the queue drains, the input resumes")
    a.stop()
    recv.close()


if __name__ == "__main__":
    try:
        main([test_udp_and_unix, test_block_pauses_sockets])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
