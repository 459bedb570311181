#!/usr/bin/python3
"""Sends a known set of metrics through aiodogstatsd (Debian's python3-aiodogstatsd, a real
asyncio DogStatsD client, run by the Debian interpreter it is installed for), for
test_dogstatsd.py. argv[1] is the UDP port.

aiodogstatsd formats values with Python's str() (so 1e-05, 2.5e+20 and -3 reach the server as
Python writes them), sends one message per datagram, and samples client-side: random() is
pinned to 0 so every sampled call is sent, with "|@rate". Prints {"done": true} when the client
has closed (its queue sent)."""
import asyncio
import json
import sys

import aiodogstatsd
import aiodogstatsd.client

aiodogstatsd.client.random = lambda: 0.0


async def main(port):
    c = aiodogstatsd.Client(host="127.0.0.1", port=port, namespace="aio",
                            constant_tags={"env": "it", "client": "aiodogstatsd"})
    await c.connect()
    c.gauge("temp", value=21.5, tags={"room": "a"})
    c.gauge("temp", value=1e-05, tags={"room": "b"})
    c.gauge("big", value=2.5e20)
    for _ in range(4):
        c.increment("req", sample_rate=0.25, tags={"code": "200"})
    c.decrement("req", value=3, tags={"code": "200"})
    for v in (0.5, 1.5, 2.5, 3.5):
        c.histogram("size", value=v)
    for v in (30, 10, 20):
        c.timing("lat", value=v, sample_rate=0.5)
    for v in (1, 2, 3, 4, 5):
        c.distribution("dist", value=v, tags={"unit": "s"})
    await c.close()
    print(json.dumps({"done": True}))


asyncio.run(main(int(sys.argv[1])))
