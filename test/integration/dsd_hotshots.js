// Sends every DogStatsD message type through hot-shots (a real DogStatsD client, installed in
// test/integration/node_modules by scripts/setup --tests) over UDP, a Unix datagram socket and
// a Unix stream socket, for test_dogstatsd.py.
//
// argv[2] is JSON: {"udp_port": N, "uds": PATH, "stream": PATH}. Each transport sends the same
// messages under its own prefix (udp., uds., stream.) with the global tags env:it and
// transport:<prefix>. hot-shots samples client-side (a call with sample rate 0.5 is sent with
// probability 0.5): Math.random is pinned to 0 so every sampled call is sent, with "|@0.5".
//
// hot-shots speaks UDS datagrams through the optional native module unix-dgram. When that
// module did not build, the UDS client runs in hot-shots' mock mode and the messages it
// formatted are printed as {"uds_fallback": [...]} for the test to send itself.
//
// hot-shots has no length-prefixed Unix stream transport (datadog-go's "unixstream"); its
// "stream" protocol writes to any stream, so the stream client writes to a Writable that
// prefixes each payload with its length (4 bytes, little-endian) on a net.Socket, as
// datadog-go does. Prints {"done": true} once every client has closed.
'use strict';

const net = require('net');
const { Writable } = require('stream');
const StatsD = require('hot-shots');

Math.random = () => 0;

const cfg = JSON.parse(process.argv[2]);
const errors = [];
const onError = (e) => errors.push(String(e && e.message ? e.message : e));

function sendAll(client, p) {
  client.gauge(p + '.gauge', 3);
  client.gauge(p + '.gauge', 7);
  for (let i = 0; i < 5; i++) client.increment(p + '.count', 1, 0.5, ['kind:inc']);
  for (let v = 1; v <= 10; v++) client.histogram(p + '.hist', v);
  for (const v of [6, 2, 4]) client.timing(p + '.timing', v, 0.5);
  for (const m of ['a', 'b', 'a']) client.set(p + '.set', m);
  for (const v of [1, 2, 3, 100]) client.distribution(p + '.dist', v);
  client.gauge(p + '.hosted', 1, ['host:custom-host']);
  client.event(p + '.deploy', 'version 2\nrolled out',
    { alert_type: 'warning', aggregation_key: 'deploys', priority: 'low',
      source_type_name: 'ci' },
    ['team:core']);
  client.check(p + '.check', client.CHECKS.WARNING, { message: 'slow' }, ['db:main']);
}

function common(prefix) {
  return {
    globalTags: { env: 'it', transport: prefix },
    errorHandler: onError,
    includeDataDogTags: false,
  };
}

function closeAll(clients, done) {
  let left = clients.length;
  for (const c of clients)
    c.close(() => {
      if (--left === 0) done();
    });
}

const clients = [];
let udsMock = null;

// UDP, packing messages into datagrams of up to 1432 bytes (datadog-go's optimal size).
const udp = new StatsD({ ...common('udp'), host: '127.0.0.1', port: cfg.udp_port,
  maxBufferSize: 1432, bufferFlushInterval: 50 });
sendAll(udp, 'udp');
clients.push(udp);

// Unix datagrams: the native module when it built, else mock mode.
let haveUnixDgram = true;
try {
  require('unix-dgram');
} catch (e) {
  haveUnixDgram = false;
}
if (haveUnixDgram) {
  const uds = new StatsD({ ...common('uds'), protocol: 'uds', path: cfg.uds,
    maxBufferSize: 8192, bufferFlushInterval: 50 });
  sendAll(uds, 'uds');
  clients.push(uds);
} else {
  udsMock = new StatsD({ ...common('uds'), mock: true });
  sendAll(udsMock, 'uds');
}

// Unix stream, length-prefixed.
const sock = net.createConnection(cfg.stream);
sock.on('error', onError);
const framed = new Writable({
  write(chunk, _enc, cb) {
    const head = Buffer.alloc(4);
    head.writeUInt32LE(chunk.length, 0);
    sock.write(Buffer.concat([head, chunk]));
    cb();
  },
});
const stream = new StatsD({ ...common('stream'), protocol: 'stream', stream: framed,
  maxBufferSize: 8192, bufferFlushInterval: 50 });
sendAll(stream, 'stream');
clients.push(stream);

closeAll(clients, () => {
  sock.end(() => {
    const out = { done: true, errors, uds_native: haveUnixDgram };
    if (udsMock !== null) out.uds_fallback = udsMock.mockBuffer;
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
