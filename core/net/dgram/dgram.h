/* core/net/dgram: UDP and Unix datagram listeners with batched receive (recvmmsg), datagrams
 * handed over in arrays, a configurable SO_RCVBUF (with a warning when the kernel grants
 * less), and the kernel's drop counter for the socket. A listener reads either on the loop
 * thread (uv_poll readiness, then recvmmsg until EAGAIN, bounded per wake-up) or on a reader
 * thread of its own (poll, then recvmmsg until EAGAIN). Under a steady high rate with a
 * receive buffer that holds at least 16 ms of it, the reader thread waits up to 1 ms between
 * reads so that each wake-up takes a whole batch (a third of the CPU at 100k datagrams/s).
 *
 * A third kind, "unixstream://PATH", is a Unix stream socket whose clients send messages each
 * prefixed by its length as 4 bytes little-endian (DogStatsD's "unixstream" transport,
 * datadog-go statsd/uds.go). The listener accepts connections, reassembles frames across
 * reads and hands them over as datagrams, in the same arrays to the same callback. It always
 * reads on the loop thread (own_thread is ignored: one thread per connection would cost more
 * than the copies it saves, and a frame parser on the loop never blocks).
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
    int own_thread;        /* 1: read on a reader thread (not for unixstream://) */
    int reserved_;
};

/* msgs are valid during the call only. */
typedef void (*dgram_cb)(void *arg, const struct rmr_dgram *msgs, uint32_t count);

struct dgram_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t truncated;
    uint64_t kernel_drops; /* the kernel's count of datagrams dropped for this socket */
    uint64_t recv_calls;
    uint64_t rcvbuf_granted; /* bytes, as getsockopt(SO_RCVBUF) reports after setting */
    /* unixstream:// only (0 otherwise): */
    int stream;                   /* 1 for a unixstream:// listener */
    uint32_t connections;         /* open now */
    uint64_t connections_refused; /* closed at accept: DGRAM_STREAM_MAX_CONNS were open */
    uint64_t frame_errors;        /* connections closed for a length over max_datagram, plus frames
                                     cut short by the peer closing (the partial frame is dropped) */
};

/* Connections a unixstream:// listener holds at once; more are closed at accept and counted.
 * Each holds a buffer of max_datagram + 4 bytes while it is open. */
#define DGRAM_STREAM_MAX_CONNS 256u

struct dgram;

/* Opens and starts reading. A Unix socket path is unlinked first when it is a stale socket
 * (never another kind of file) and removed on close. On failure writes one sentence into err.
 * Errors: RMR_EADDRINUSE, RMR_EACCES, RMR_EINVAL, RMR_ENOMEM.
 *
 * Addresses: "udp://HOST:PORT" or bare "HOST:PORT", where HOST is an IPv4 address, an IPv6
 * address in brackets or "localhost" (127.0.0.1; no other name is looked up, as a resolver
 * would block the loop); port 0 picks a free port. "unix://PATH": a Unix datagram socket,
 * made writable for every user (mode 0722, as the Datadog Agent does) whatever the umask; a
 * path longer than sun_path allows, a path that is another kind of file, and a socket another
 * process still listens on are refused. Other failures of the system (no IPv6, an address
 * not on this host) are RMR_EINVAL with the system's reason in err. For a Unix socket the
 * kernel bounds the queue by net.unix.max_dgram_qlen datagrams (often 10) and each sender's
 * SO_SNDBUF, not by SO_RCVBUF (which is set all the same, as the Datadog Agent does).
 * "unixstream://PATH": a Unix stream socket with the same path rules; each client message is
 * a 4-byte little-endian length followed by that many bytes. A frame longer than
 * max_datagram closes its connection (counted in frame_errors, logged); an empty frame is
 * skipped; a partial frame when the peer closes is dropped (counted). Frames reach cb in
 * arrays of at most batch, on the loop thread whatever own_thread says; frames already read
 * when cb pauses the listener are still delivered (they are the batch in hand).
 * loop: borrowed; may be NULL in own-thread mode (never for unixstream://). opts and its
 * strings: borrowed for the call. arg: borrowed until dgram_close() returns. out: set to an
 * owned listener on success, NULL on failure (cb never runs then). The receive area, batch *
 * max_datagram bytes, is allocated here once (at most 256 MiB; batch at most 1024); a
 * unixstream:// listener allocates instead max_datagram + 4 bytes per open connection. When
 * rcvbuf_bytes is set and the kernel grants less (net.core.rmem_max; SO_RCVBUFFORCE is tried
 * first), one warning is logged. */
int dgram_open(uv_loop_t *loop, const struct dgram_opts *opts, dgram_cb cb, void *arg,
               struct dgram **out, char *err, size_t errlen);
/* "udp://127.0.0.1:40123", "unix:///run/x.sock" or "unixstream:///run/x.sock". */
const char *dgram_address(const struct dgram *d);
/* 1 when the kernel granted less than rcvbuf_bytes (already warned through the log). */
int dgram_rcvbuf_capped(const struct dgram *d);
/* Reads the counters (kernel_drops refreshed now). Safe while the reader thread runs.
 * kernel_drops is the socket's sk_drops (SO_MEMINFO, else the "drops" column of
 * /proc/net/udp{,6}); for a Unix socket it is always 0: the kernel drops nothing there, a
 * sender to a full socket blocks or gets EAGAIN. */
void dgram_stats(struct dgram *d, struct dgram_stats *out);
/* Stops reading without closing (back-pressure); the kernel buffers, then drops (counted).
 * Loop thread (in loop mode also from inside cb). In own-thread mode it waits for the batch
 * in hand: cb does not run after dgram_pause() returns until dgram_resume(). Both are no-ops
 * when already in the state asked for. */
void dgram_pause(struct dgram *d);
/* The same without waiting: in own-thread mode the reader finishes the batch in hand (its
 * callback may still run once, or be running) and then parks. For the host's back-pressure,
 * which pauses from inside the pipeline on the loop thread: a reader callback may be waiting
 * for a lock that the loop thread holds while it emits (an aggregating input flushing under
 * its lock), so waiting for the reader there could wait forever. Loop thread. */
void dgram_pause_nowait(struct dgram *d);
void dgram_resume(struct dgram *d);
/* Stops reading (joins the reader thread; cb does not run after this returns) and frees d
 * once libuv has closed its handles. The socket is closed and a Unix socket file removed
 * before it returns, so the address may be opened again at once. Loop thread; in loop mode
 * also from inside cb; never from cb on the reader thread. NULL is a no-op. */
void dgram_close(struct dgram *d);

/* The drops column of one /proc/net/udp or /proc/net/udp6 line (pointer + length, no NUL
 * needed) when its inode column equals inode. Returns 0 and sets *drops, RMR_ENOENT for
 * another socket's line or the header, RMR_EINVAL for a malformed line. Thread: any. */
int dgram_proc_drops_line(const char *line, size_t len, uint64_t inode, uint64_t *drops);
/* The same over a whole table (lines separated by '\n'): 0, or RMR_ENOENT when no line
 * matches. */
int dgram_proc_drops(const char *text, size_t len, uint64_t inode, uint64_t *drops);

#endif
