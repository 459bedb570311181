/* core/net/dgram: UDP and Unix datagram listeners with batched receive (recvmmsg), datagrams
 * handed over in arrays, a configurable SO_RCVBUF (with a warning when the kernel grants
 * less), and the kernel's drop counter for the socket. A listener reads either on the loop
 * thread (uv_poll readiness, then recvmmsg until EAGAIN, bounded per wake-up) or on a reader
 * thread of its own blocked in recvmmsg.
 * Thread: open/close/stats on the loop thread; the callback as the mode says. */
#ifndef REMORA_CORE_NET_DGRAM_H
#define REMORA_CORE_NET_DGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <remora/plugin.h>

struct dgram_opts {
    const char *address;   /* "udp://127.0.0.1:8125", "udp://[::]:8125", "unix:///run/x.sock" */
    uint64_t rcvbuf_bytes; /* 0: kernel default */
    uint32_t max_datagram; /* 0: 65535 */
    uint32_t batch;        /* 0: 32; at most 1024 */
    int own_thread;        /* 1: read on a reader thread */
    int reserved_;
};

/* msgs are valid during the call only. */
typedef void (*dgram_cb)(void *arg, const struct rmr_dgram *msgs, uint32_t count);

struct dgram_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t truncated;
    uint64_t kernel_drops;  /* the kernel's count of datagrams dropped for this socket */
    uint64_t recv_calls;
    uint64_t rcvbuf_granted; /* bytes, as getsockopt(SO_RCVBUF) reports after setting */
};

struct dgram;

/* Opens and starts reading. A Unix socket path is unlinked first when it is a stale socket
 * (never another kind of file) and removed on close. On failure writes one sentence into err.
 * Errors: RMR_EADDRINUSE, RMR_EACCES, RMR_EINVAL, RMR_ENOMEM. */
int dgram_open(uv_loop_t *loop, const struct dgram_opts *opts, dgram_cb cb, void *arg,
               struct dgram **out, char *err, size_t errlen);
/* "udp://127.0.0.1:40123" or "unix:///run/x.sock". */
const char *dgram_address(const struct dgram *d);
/* 1 when the kernel granted less than rcvbuf_bytes (already warned through the log). */
int dgram_rcvbuf_capped(const struct dgram *d);
/* Reads the counters (kernel_drops refreshed now). Safe while the reader thread runs. */
void dgram_stats(struct dgram *d, struct dgram_stats *out);
/* Stops reading without closing (back-pressure); the kernel buffers, then drops (counted). */
void dgram_pause(struct dgram *d);
void dgram_resume(struct dgram *d);
/* Stops reading (joins the reader thread; cb does not run after this returns) and frees d
 * once libuv has closed its handles. */
void dgram_close(struct dgram *d);

#endif
