/* core/net/dgram: datagram listeners. See dgram.h for the contract; this file explains how.
 *
 * One listener is one non-blocking socket and one receive area allocated at open: batch
 * buffers of max_datagram bytes, the mmsghdr/iovec arrays that point into them, and the
 * struct rmr_dgram array handed to the callback. Nothing is allocated while reading.
 *
 * Loop mode: a uv_poll_t reports the socket readable; on_readable() calls recvmmsg() until
 * the socket is drained or WAKE_BUDGET calls have been made, so one busy socket cannot starve
 * the rest of the loop (libuv's poll is level-triggered: what is left wakes us again).
 *
 * Own-thread mode: a reader thread polls the socket and an eventfd, then calls recvmmsg()
 * until the socket is drained. A non-blocking recvmmsg() after poll() behaves as a blocking
 * one with MSG_WAITFORONE (a lone datagram comes at once, a burst fills the batch), but a
 * thread in poll() can be woken for pause and close without tricks such as shutdown() on an
 * unconnected socket: the loop thread sets the state under a mutex and writes the eventfd.
 * pause and close wait until the reader has acknowledged, so the callback never runs after
 * either returns. When datagrams arrive faster than one per wake-up but the last call did not
 * fill the batch, the reader lingers (see linger_ns()) so that it wakes once per batch instead
 * of once per datagram: wake-ups, not copies, are what a fast reader spends its CPU on.
 *
 * Stream mode (unixstream://): the uv_poll_t watches the listening socket and accepts; each
 * connection has a uv_poll_t and a buffer of max_datagram + 4 bytes, the most one frame
 * needs. A read appends to the buffer; every complete frame in it is handed over (pointing
 * into the buffer, in arrays of at most batch), then the partial frame left, if any, moves to
 * the front. A frame never needs more than the buffer, so a read always has room. */
#include "net/dgram/dgram.h"
#include "net/dgram/frame.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "self/log.h"
#include "util/yield.h"

#define SUBJECT              "core.dgram"
#define DEFAULT_MAX_DATAGRAM 65535u
#define DEFAULT_BATCH        32u
#define MAX_BATCH            1024u /* UIO_MAXIOV: the kernel's limit for one recvmmsg() */
#define MAX_DATAGRAM         (16u << 20)
#define MAX_AREA_BYTES       ((uint64_t)256 << 20) /* batch * max_datagram */
#define WAKE_BUDGET          16                    /* recvmmsg() calls per loop wake-up */
#define ERROR_BACKOFF_MS     10
/* Who may send to a Unix socket: everyone may write (connect and send need only write
 * permission on the socket file), only the owner may read. The Datadog Agent sets the same
 * 0722 on its dogstatsd socket, so clients that work with it work with us. */
#define UNIX_SOCKET_MODE 0722
/* Lingering: at most this long, and at most this share of the time the receive buffer would
 * take to fill at the current rate; and not at all unless the buffer holds LINGER_MIN_FILL_NS
 * of traffic. A reader that sleeps on a timer lets its CPU idle, and waking from that (in a
 * VM above all) sometimes takes milliseconds: only a buffer with room for such a hiccup can
 * afford it. With a small buffer the reader wakes on every datagram instead, which costs CPU
 * but drops less. */
#define LINGER_MAX_NS      (1000 * 1000)
#define LINGER_BUF_SHARE   8
#define LINGER_MIN_FILL_NS (16 * 1000 * 1000)
/* What a queued datagram costs the receive buffer: the kernel charges its allocation (the
 * payload rounded up, often to twice its size) plus some 768 bytes of bookkeeping. */
#define LINGER_TRUESIZE(len) (2 * (len) + 768)
#define RATE_WINDOW_NS       (50 * 1000 * 1000)
#define ADDRESS_TEXT_SIZE    (sizeof "unixstream://" + sizeof(((struct sockaddr_un *)0)->sun_path))
#define FRAME_HEADER         DGRAM_FRAME_HEADER

enum reader_state { READER_RUNNING, READER_PAUSED, READER_STOPPING };

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
};

struct dgram;

/* One accepted unixstream connection (loop thread only). */
struct stream_conn {
    uv_poll_t poll;
    struct dgram *d;
    struct stream_conn *next;
    int fd;
    int polling;
    char *buf; /* max_datagram + FRAME_HEADER bytes */
    uint32_t fill;
};

struct dgram {
    uv_loop_t *loop; /* NULL in own-thread mode when the caller passed none */
    uv_poll_t poll;  /* loop mode */
    int fd;
    int family;
    int own_thread;
    int polling;        /* loop mode: the poll handle is started */
    int paused;         /* loop thread's view */
    int closing;        /* loop mode: dgram_close() ran, maybe from inside the callback */
    int capped;         /* the kernel granted less receive buffer than asked */
    int unix_bound;     /* the socket file is ours to remove */
    int stream;         /* unixstream://: d->fd listens, connections in conns */
    size_t path_at;     /* where the socket path starts in address (Unix sockets) */
    uint32_t unix_qlen; /* net.unix.max_dgram_qlen: the queue bound of a Unix socket */
    dev_t unix_dev;
    ino_t unix_ino;
    dgram_cb cb;
    void *arg;
    uint32_t batch;
    uint32_t max_datagram;

    /* The receive area. */
    char *area;
    struct mmsghdr *hdrs;
    struct iovec *iovs;
    struct rmr_dgram *msgs;

    /* Own-thread mode. state is written under mu and read without it by the reader. */
    pthread_t thread;
    int thread_started;
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int state;  /* enum reader_state */
    int parked; /* the reader is waiting in park(), under mu */
    /* The reader's rate estimate for lingering (reader thread only). */
    uint64_t rate_start_ns;
    uint64_t rate_count;
    uint64_t interval_ns; /* mean time between datagrams in the last window; 0: unknown */

    /* Counters: written by the reader only (loop thread or reader thread), read with relaxed
     * atomic loads by dgram_stats(). */
    uint64_t packets;
    uint64_t bytes;
    uint64_t truncated;
    uint64_t recv_calls;
    uint64_t rcvbuf_granted;
    /* Stream mode (loop thread only). */
    struct stream_conn *conns;
    uint32_t nconns;
    uint64_t conns_refused;
    uint64_t frame_errors;

    /* Kernel drops (loop thread only): sk_drops is 32 bits wide, so deltas are accumulated. */
    uint32_t drops_raw;
    uint64_t drops_total;

    char address[ADDRESS_TEXT_SIZE];
};

static void add_relaxed(uint64_t *counter, uint64_t n)
{
    /* One writer: a plain load and store, atomic only so readers never see a torn value. */
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static uint64_t load_relaxed(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Maps a system call's errno onto the codes dgram_open() documents. */
static int map_errno(int e)
{
    switch (e) {
    case EADDRINUSE: return RMR_EADDRINUSE;
    case EACCES:
    case EPERM:
    case EROFS: return RMR_EACCES;
    case ENOMEM:
    case ENOBUFS:
    case EMFILE:
    case ENFILE: return RMR_ENOMEM;
    default: return RMR_EINVAL;
    }
}

static int fail_sys(int e, const char *address, const char *what, char *err, size_t errlen)
{
    if (what != NULL)
        snprintf(err, errlen, "cannot listen on '%s': %s: %s", address, what, uv_strerror(-e));
    else
        snprintf(err, errlen, "cannot listen on '%s': %s", address, uv_strerror(-e));
    return map_errno(e);
}

/* Address parsing. Untrusted in the sense that it comes from config: bounded, no name
 * lookups (a blocking resolver call has no place on the loop thread; "localhost" is
 * 127.0.0.1, as the Datadog Agent binds it). */

static int parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5)
        return RMR_EINVAL;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RMR_EINVAL;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return RMR_EINVAL;
    *out = (uint16_t)v;
    return 0;
}

static int parse_inet(const char *hostport, union sockaddr_any *sa, socklen_t *salen,
                      const char *address, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN];
    const char *port;
    size_t hostlen;
    int v6 = hostport[0] == '[';
    if (v6) {
        const char *close = strchr(hostport, ']');
        if (close == NULL || close[1] != ':')
            goto bad_form;
        hostlen = (size_t)(close - hostport - 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(hostport, ':');
        if (colon == NULL)
            goto bad_form;
        if (memchr(hostport, ':', (size_t)(colon - hostport)) != NULL) {
            snprintf(err, errlen,
                     "cannot listen on '%s': an IPv6 address needs brackets, as in "
                     "udp://[::1]:8125",
                     address);
            return RMR_EINVAL;
        }
        hostlen = (size_t)(colon - hostport);
        port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= sizeof host) {
        snprintf(err, errlen,
                 "cannot listen on '%s': the host must be an IP address or localhost "
                 "(0.0.0.0 or [::] for every interface)",
                 address);
        return RMR_EINVAL;
    }
    memcpy(host, hostport + v6, hostlen);
    host[hostlen] = '\0';

    uint16_t portnum;
    if (parse_port(port, strlen(port), &portnum) < 0) {
        snprintf(err, errlen, "cannot listen on '%s': the port must be a number from 0 to 65535",
                 address);
        return RMR_EINVAL;
    }

    memset(sa, 0, sizeof *sa);
    if (v6) {
        if (inet_pton(AF_INET6, host, &sa->in6.sin6_addr) != 1)
            goto bad_host;
        sa->in6.sin6_family = AF_INET6;
        sa->in6.sin6_port = htons(portnum);
        *salen = sizeof sa->in6;
        return 0;
    }
    if (strcmp(host, "localhost") == 0) {
        sa->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &sa->in.sin_addr) != 1) {
        goto bad_host;
    }
    sa->in.sin_family = AF_INET;
    sa->in.sin_port = htons(portnum);
    *salen = sizeof sa->in;
    return 0;

bad_host:
    snprintf(err, errlen,
             "cannot listen on '%s': '%s' is not an IP address (names other than localhost are "
             "not looked up)",
             address, host);
    return RMR_EINVAL;
bad_form:
    snprintf(err, errlen,
             "cannot listen on '%s': expected udp://HOST:PORT, unix:///PATH or "
             "unixstream:///PATH",
             address);
    return RMR_EINVAL;
}

/* *stream is set to 1 for unixstream://, *path_at to where a Unix path starts in address. */
static int parse_address(const char *address, union sockaddr_any *sa, socklen_t *salen, int *stream,
                         size_t *path_at, char *err, size_t errlen)
{
    static const char udp[] = "udp://", unx[] = "unix://", unxs[] = "unixstream://";
    *stream = 0;
    *path_at = 0;
    if (address == NULL || address[0] == '\0') {
        snprintf(err, errlen,
                 "cannot listen: no address (expected udp://HOST:PORT, unix:///PATH or "
                 "unixstream:///PATH)");
        return RMR_EINVAL;
    }
    if (strnlen(address, 4096) == 4096) {
        snprintf(err, errlen, "cannot listen on '%.64s...': the address is too long", address);
        return RMR_EINVAL;
    }
    size_t prefix = 0;
    if (strncmp(address, unx, sizeof unx - 1) == 0)
        prefix = sizeof unx - 1;
    else if (strncmp(address, unxs, sizeof unxs - 1) == 0)
        prefix = sizeof unxs - 1;
    if (prefix > 0) {
        *stream = prefix == sizeof unxs - 1;
        *path_at = prefix;
        const char *path = address + prefix;
        size_t len = strlen(path);
        memset(sa, 0, sizeof *sa);
        if (len == 0) {
            snprintf(err, errlen, "cannot listen on '%s': no socket path", address);
            return RMR_EINVAL;
        }
        if (len >= sizeof sa->un.sun_path) {
            snprintf(err, errlen,
                     "cannot listen on '%s': the path is %zu bytes, longer than the %zu a Unix "
                     "socket allows",
                     address, len, sizeof sa->un.sun_path - 1);
            return RMR_EINVAL;
        }
        sa->un.sun_family = AF_UNIX;
        memcpy(sa->un.sun_path, path, len + 1);
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
    }
    const char *hostport = address;
    if (strncmp(address, udp, sizeof udp - 1) == 0) {
        hostport = address + sizeof udp - 1;
    } else if (strstr(address, "://") != NULL) {
        snprintf(err, errlen,
                 "cannot listen on '%s': the scheme must be udp://, unix:// or unixstream://",
                 address);
        return RMR_EINVAL;
    }
    return parse_inet(hostport, sa, salen, address, err, errlen);
}

static void format_address(struct dgram *d, const union sockaddr_any *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";
    switch (sa->sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &sa->in.sin_addr, host, sizeof host);
        snprintf(d->address, sizeof d->address, "udp://%s:%u", host, ntohs(sa->in.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &sa->in6.sin6_addr, host, sizeof host);
        snprintf(d->address, sizeof d->address, "udp://[%s]:%u", host, ntohs(sa->in6.sin6_port));
        break;
    default: snprintf(d->address, sizeof d->address, "unix://%s", sa->un.sun_path); break;
    }
}

/* A socket file left by a listener that has gone is removed; a live one, or any other kind
 * of file, is never touched. Live means a datagram socket accepts a connect() (a stream
 * socket answers EPROTOTYPE: live too, and someone else's). */
static int unix_clear_stale(const union sockaddr_any *sa, socklen_t salen, const char *address,
                            char *err, size_t errlen)
{
    const char *path = sa->un.sun_path;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return fail_sys(errno, address, "cannot inspect the path", err, errlen);
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen,
                 "cannot listen on '%s': '%s' exists and is not a socket (remove it or choose "
                 "another path)",
                 address, path);
        return RMR_EADDRINUSE;
    }
    int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return fail_sys(errno, address, NULL, err, errlen);
    int rc = connect(probe, &sa->sa, salen);
    int e = errno;
    close(probe);
    if (rc == 0 || e == EPROTOTYPE) {
        snprintf(err, errlen, "cannot listen on '%s': another process listens on '%s'", address,
                 path);
        return RMR_EADDRINUSE;
    }
    if (e != ECONNREFUSED)
        return fail_sys(e, address, "cannot check the existing socket", err, errlen);
    if (unlink(path) != 0 && errno != ENOENT)
        return fail_sys(errno, address, "cannot remove the stale socket", err, errlen);
    return 0;
}

static uint64_t get_rcvbuf(int fd)
{
    int val = 0;
    socklen_t len = sizeof val;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &val, &len) != 0 || val < 0)
        return 0;
    return (uint64_t)val;
}

/* Linux doubles what it is asked for (the other half is its bookkeeping) and caps the
 * request at net.core.rmem_max, unless the caller has CAP_NET_ADMIN and uses SO_RCVBUFFORCE.
 * "Granted" below is what getsockopt() reports, so granted / 2 compares with the request. */
static void set_rcvbuf(struct dgram *d, uint64_t want)
{
    int val = want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;
    (void)setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &val, sizeof val);
    uint64_t granted = get_rcvbuf(d->fd);
    if (granted / 2 < want && setsockopt(d->fd, SOL_SOCKET, SO_RCVBUFFORCE, &val, sizeof val) == 0)
        granted = get_rcvbuf(d->fd);
    d->rcvbuf_granted = granted;
    if (granted / 2 >= want)
        return;
    d->capped = 1;
    log_write(RMR_LOG_WARN, SUBJECT,
              "receive buffer of '%s' is %llu bytes, %llu were asked for: datagrams may be "
              "dropped in bursts; raise the limit with 'sysctl -w net.core.rmem_max=%llu' (or "
              "run with CAP_NET_ADMIN)",
              d->address, (unsigned long long)(granted / 2), (unsigned long long)want,
              (unsigned long long)want);
}

/* The kernel's drop counter. */

/* Parses one decimal field; 0 on success. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return RMR_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RMR_EINVAL;
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return RMR_ERANGE;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

/* Columns of /proc/net/udp and udp6: sl local_address rem_address st tx_queue:rx_queue
 * tr:tm->when retrnsmt uid timeout inode ref pointer drops. The inode is the tenth; drops is
 * the last, wherever a future kernel puts it. */
#define PROC_INODE_FIELD     9
#define PROC_FIELDS_AT_LEAST 13

int dgram_proc_drops_line(const char *line, size_t len, uint64_t inode, uint64_t *drops)
{
    const char *field[PROC_FIELDS_AT_LEAST];
    size_t flen[PROC_FIELDS_AT_LEAST];
    const char *last = NULL;
    size_t lastlen = 0;
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n'))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\n')
            i++;
        if (n < PROC_FIELDS_AT_LEAST) {
            field[n] = line + start;
            flen[n] = i - start;
        }
        n++;
        last = line + start;
        lastlen = i - start;
    }
    if (n < PROC_FIELDS_AT_LEAST)
        return RMR_EINVAL;
    uint64_t ino;
    if (parse_u64(field[PROC_INODE_FIELD], flen[PROC_INODE_FIELD], &ino) < 0 || ino != inode)
        return RMR_ENOENT;
    uint64_t v;
    if (parse_u64(last, lastlen, &v) < 0)
        return RMR_EINVAL;
    *drops = v;
    return 0;
}

int dgram_proc_drops(const char *text, size_t len, uint64_t inode, uint64_t *drops)
{
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        if (dgram_proc_drops_line(text + start, end - start, inode, drops) == 0)
            return 0;
        start = end + 1;
    }
    return RMR_ENOENT;
}

/* Streams one /proc table through the line parser with a fixed buffer: the table lists every
 * UDP socket of the network namespace and may be large. */
static int proc_file_drops(const char *path, uint64_t inode, uint64_t *drops)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[16384];
    size_t have = 0;
    int rc = RMR_ENOENT;
    for (;;) {
        ssize_t got = read(fd, buf + have, sizeof buf - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (have > 0 && dgram_proc_drops_line(buf, have, inode, drops) == 0)
                rc = 0;
            break;
        }
        have += (size_t)got;
        size_t start = 0;
        const char *nl;
        while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
            size_t end = (size_t)(nl - buf);
            if (dgram_proc_drops_line(buf + start, end - start, inode, drops) == 0) {
                rc = 0;
                goto done;
            }
            start = end + 1;
        }
        if (start == 0 && have == sizeof buf)
            start = have; /* a line longer than the buffer is not a socket line: skip it */
        memmove(buf, buf + start, have - start);
        have -= start;
    }
done:
    close(fd);
    return rc;
}

/* Reads sk_drops: SO_MEMINFO (Linux 4.6) in one call; else the /proc tables, whose "drops"
 * column prints the same counter. Unix datagram sockets have no such counter: a full
 * receiver makes senders block or fail with EAGAIN, so nothing is dropped silently. */
static int read_kernel_drops(const struct dgram *d, uint32_t *out)
{
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    if (getsockopt(d->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
        len >= (SK_MEMINFO_DROPS + 1) * sizeof mem[0]) {
        *out = mem[SK_MEMINFO_DROPS];
        return 0;
    }
    struct stat st;
    if (fstat(d->fd, &st) != 0)
        return -errno;
    uint64_t drops;
    const char *first = d->family == AF_INET6 ? "/proc/net/udp6" : "/proc/net/udp";
    const char *second = d->family == AF_INET6 ? "/proc/net/udp" : "/proc/net/udp6";
    if (proc_file_drops(first, (uint64_t)st.st_ino, &drops) != 0 &&
        proc_file_drops(second, (uint64_t)st.st_ino, &drops) != 0)
        return RMR_ENOENT;
    *out = (uint32_t)drops;
    return 0;
}

static void refresh_drops(struct dgram *d)
{
    if (d->family == AF_UNIX || d->fd < 0)
        return;
    uint32_t raw = 0;
    if (read_kernel_drops(d, &raw) != 0)
        return;
    d->drops_total += (uint32_t)(raw - d->drops_raw); /* modulo 2^32: survives the wrap */
    d->drops_raw = raw;
}

/* Reading. */

/* One recvmmsg() and one callback. Returns the number of datagrams (the batch size when the
 * socket may hold more), or a negative errno. */
static int recv_batch(struct dgram *d)
{
    int n;
    do {
        n = recvmmsg(d->fd, d->hdrs, d->batch, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        if (e != EAGAIN && e != EWOULDBLOCK)
            log_write(RMR_LOG_ERROR, SUBJECT, "cannot read from '%s': %s", d->address,
                      uv_strerror(-e));
        return -e;
    }
    uint64_t bytes = 0;
    uint64_t truncated = 0;
    for (int i = 0; i < n; i++) {
        struct mmsghdr *h = &d->hdrs[i];
        uint32_t len = h->msg_len < d->max_datagram ? h->msg_len : d->max_datagram;
        uint32_t flags = 0;
        if (h->msg_hdr.msg_flags & MSG_TRUNC) {
            flags = RMR_DGRAM_TRUNCATED;
            truncated++;
        }
        d->msgs[i].len = len;
        d->msgs[i].flags = flags;
        bytes += len;
    }
    add_relaxed(&d->recv_calls, 1);
    if (n == 0)
        return 0;
    add_relaxed(&d->packets, (uint64_t)n);
    add_relaxed(&d->bytes, bytes);
    if (truncated > 0)
        add_relaxed(&d->truncated, truncated);
    d->cb(d->arg, d->msgs, (uint32_t)n);
    return n;
}

static void on_readable(uv_poll_t *handle, int status, int events)
{
    struct dgram *d = handle->data;
    if (status < 0) {
        log_write(RMR_LOG_ERROR, SUBJECT, "cannot poll '%s': %s", d->address, uv_strerror(status));
        return;
    }
    /* The callback may pause or close the listener: both are checked after every batch. */
    for (int i = 0; i < WAKE_BUDGET && !d->paused && !d->closing; i++) {
        if (recv_batch(d) < (int)d->batch)
            break;
    }
}

/* Own-thread mode. */

static void wake_reader(struct dgram *d)
{
    uint64_t one = 1;
    while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void drain_wake(struct dgram *d)
{
    uint64_t v;
    while (read(d->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

static int reader_state(struct dgram *d)
{
    return __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
}

static void set_state(struct dgram *d, int state)
{
    pthread_mutex_lock(&d->mu);
    __atomic_store_n(&d->state, state, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

/* Waits while paused. Returns 1 when the reader is to stop. */
static int park(struct dgram *d)
{
    pthread_mutex_lock(&d->mu);
    d->parked = 1;
    pthread_cond_broadcast(&d->cond);
    while (d->state == READER_PAUSED)
        pthread_cond_wait(&d->cond, &d->mu);
    d->parked = 0;
    int stop = d->state == READER_STOPPING;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

/* Waits for the socket, or for the eventfd, up to timeout_ns (negative: no limit). */
static void wait_readable(struct dgram *d, int64_t timeout_ns, int socket_too)
{
    struct pollfd pfd[2] = {{.fd = d->efd, .events = POLLIN}, {.fd = d->fd, .events = POLLIN}};
    struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
    int n = ppoll(pfd, socket_too ? 2 : 1, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n > 0 && (pfd[0].revents & POLLIN))
        drain_wake(d);
}

/* How long the socket's buffer takes to fill at the recent rate (0 before a rate is known). */
static uint64_t buffer_fill_ns(struct dgram *d)
{
    uint64_t capacity; /* datagrams the socket can queue */
    if (d->family == AF_UNIX) {
        capacity = d->unix_qlen;
    } else {
        uint64_t packets = load_relaxed(&d->packets);
        uint64_t mean = packets > 0 ? load_relaxed(&d->bytes) / packets : d->max_datagram;
        capacity = d->rcvbuf_granted / LINGER_TRUESIZE(mean);
    }
    return capacity * d->interval_ns;
}

/* How long to wait before the next recvmmsg() after one that returned got < batch datagrams
 * (so the socket is empty now): long enough for a batch to arrive at the recent rate, within
 * the limits above. 0 (block in poll instead) when the buffer is too small to linger or the
 * rate too low for lingering to gather more than one datagram per wake-up. */
static uint64_t linger_ns(struct dgram *d, uint32_t got)
{
    if (d->interval_ns == 0 || got == 0)
        return 0;
    uint64_t want = (uint64_t)d->batch * d->interval_ns;
    if (want > LINGER_MAX_NS)
        want = LINGER_MAX_NS;
    uint64_t fill_ns = buffer_fill_ns(d);
    if (fill_ns < LINGER_MIN_FILL_NS)
        return 0;
    if (want > fill_ns / LINGER_BUF_SHARE)
        want = fill_ns / LINGER_BUF_SHARE;
    /* Waiting for fewer than two more datagrams saves nothing. */
    if (want < 2 * d->interval_ns)
        return 0;
    return want;
}

static void update_rate(struct dgram *d, uint32_t got)
{
    uint64_t now = now_ns();
    /* Encode jobs on this core yield to a reader whose buffer fills in milliseconds
     * (util/yield.h); a Unix datagram sender waits instead of losing. */
    if (got > 0 && d->family != AF_UNIX && d->interval_ns != 0 && buffer_fill_ns(d) < YIELD_FILL_NS)
        yield_reader_here(now);
    d->rate_count += got;
    uint64_t elapsed = now - d->rate_start_ns;
    if (elapsed < RATE_WINDOW_NS)
        return;
    d->interval_ns = d->rate_count > 0 ? elapsed / d->rate_count : 0;
    d->rate_start_ns = now;
    d->rate_count = 0;
}

static void *reader_main(void *p)
{
    struct dgram *d = p;
    d->rate_start_ns = now_ns();
    for (;;) {
        int state = reader_state(d);
        if (state == READER_STOPPING)
            break;
        if (state == READER_PAUSED) {
            if (park(d))
                break;
            continue;
        }
        int n = recv_batch(d);
        if (n == (int)d->batch) {
            update_rate(d, (uint32_t)n);
            continue;
        }
        if (n > 0) {
            update_rate(d, (uint32_t)n);
            uint64_t linger = linger_ns(d, (uint32_t)n);
            if (linger > 0) {
                /* The eventfd alone: pause and close still wake us at once. */
                wait_readable(d, (int64_t)linger, 0);
                continue;
            }
        } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
            wait_readable(d, (int64_t)ERROR_BACKOFF_MS * 1000000, 0);
            continue;
        }
        wait_readable(d, -1, 1);
        if (n <= 0)
            update_rate(d, 0);
    }
    return NULL;
}

static int start_thread(struct dgram *d, char *err, size_t errlen)
{
    d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->efd < 0)
        return fail_sys(errno, d->address, "cannot create an eventfd", err, errlen);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->state = READER_RUNNING;
    /* The reader takes no signals: they belong to the loop thread's handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&d->thread, NULL, reader_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->mu);
        return fail_sys(rc, d->address, "cannot start the reader thread", err, errlen);
    }
    pthread_setname_np(d->thread, "remora-dgram");
    d->thread_started = 1;
    return 0;
}

static void stop_thread(struct dgram *d)
{
    if (!d->thread_started)
        return;
    assert(!pthread_equal(pthread_self(), d->thread)); /* the loop thread's call */
    set_state(d, READER_STOPPING);
    wake_reader(d);
    pthread_join(d->thread, NULL);
    d->thread_started = 0;
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
}

/* Stream mode (unixstream://). Everything here runs on the loop thread. */

static void on_conn_closed(uv_handle_t *handle)
{
    struct stream_conn *c = handle->data;
    free(c->buf);
    free(c);
}

/* Closes one connection: its fd at once, its struct once libuv lets go of the handle (the
 * caller may be inside on_conn_readable() for it). */
static void conn_close(struct stream_conn *c)
{
    struct dgram *d = c->d;
    for (struct stream_conn **pp = &d->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    d->nconns--;
    if (c->polling)
        uv_poll_stop(&c->poll);
    c->polling = 0;
    close(c->fd);
    c->fd = -1;
    uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

/* Hands count frames to the callback. Returns 1 when the callback closed the listener. */
static int deliver(struct dgram *d, uint32_t count, uint64_t bytes)
{
    add_relaxed(&d->packets, count);
    add_relaxed(&d->bytes, bytes);
    d->cb(d->arg, d->msgs, count);
    return d->closing;
}

/* Hands over every complete frame in c's buffer and keeps the partial one. Returns 1 when the
 * connection is gone (a bad length closed it, or the callback closed the listener). */
static int take_frames(struct stream_conn *c)
{
    struct dgram *d = c->d;
    uint32_t off = 0, count = 0;
    uint64_t bytes = 0;
    for (;;) {
        uint32_t len = 0;
        int rc = dgram_frame_next(c->buf + off, c->fill - off, d->max_datagram, &len);
        if (rc == 0)
            break;
        if (rc < 0) {
            /* The rest of the stream cannot be framed any more: drop the connection. The
             * frames before it are good and still go. */
            d->frame_errors++;
            log_write(RMR_LOG_WARN, SUBJECT,
                      "closing a connection to '%s': a frame is longer than the %u bytes "
                      "allowed (or the client does not prefix messages with their length)",
                      d->address, d->max_datagram);
            if (count > 0 && deliver(d, count, bytes))
                return 1;
            conn_close(c);
            return 1;
        }
        if (len > 0) {
            d->msgs[count].data = c->buf + off + FRAME_HEADER;
            d->msgs[count].len = len;
            d->msgs[count].flags = 0;
            count++;
            bytes += len;
        }
        off += FRAME_HEADER + len;
        if (count == d->batch) {
            if (deliver(d, count, bytes))
                return 1;
            count = 0;
            bytes = 0;
        }
    }
    if (count > 0 && deliver(d, count, bytes))
        return 1;
    if (off > 0) {
        memmove(c->buf, c->buf + off, c->fill - off);
        c->fill -= off;
    }
    return 0;
}

static void on_conn_readable(uv_poll_t *handle, int status, int events)
{
    (void)events;
    struct stream_conn *c = handle->data;
    struct dgram *d = c->d;
    size_t cap = (size_t)d->max_datagram + FRAME_HEADER;
    if (status < 0) {
        log_write(RMR_LOG_WARN, SUBJECT, "closing a connection to '%s': %s", d->address,
                  uv_strerror(status));
        conn_close(c);
        return;
    }
    for (int i = 0; i < WAKE_BUDGET && !d->closing && !d->paused; i++) {
        size_t room = cap - c->fill;
        ssize_t n;
        do {
            n = read(c->fd, c->buf + c->fill, room);
        } while (n < 0 && errno == EINTR);
        add_relaxed(&d->recv_calls, 1);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* The peer closed (or reset): what is left is a frame it never finished. */
            if (c->fill > 0)
                d->frame_errors++;
            conn_close(c);
            return;
        }
        c->fill += (uint32_t)n;
        if (take_frames(c))
            return;
        if ((size_t)n < room)
            return; /* drained: poll says when there is more */
    }
}

static void on_accept(uv_poll_t *handle, int status, int events)
{
    (void)events;
    struct dgram *d = handle->data;
    if (status < 0) {
        log_write(RMR_LOG_ERROR, SUBJECT, "cannot poll '%s': %s", d->address, uv_strerror(status));
        return;
    }
    for (int i = 0; i < WAKE_BUDGET && !d->closing; i++) {
        int fd = accept4(d->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                log_write(RMR_LOG_ERROR, SUBJECT, "cannot accept on '%s': %s", d->address,
                          uv_strerror(-e));
            return;
        }
        if (d->nconns >= DGRAM_STREAM_MAX_CONNS) {
            close(fd);
            d->conns_refused++;
            log_write(RMR_LOG_WARN, SUBJECT,
                      "refusing a connection to '%s': %u connections are open already", d->address,
                      DGRAM_STREAM_MAX_CONNS);
            continue;
        }
        struct stream_conn *c = calloc(1, sizeof *c);
        char *buf = malloc((size_t)d->max_datagram + FRAME_HEADER);
        if (c == NULL || buf == NULL || uv_poll_init(d->loop, &c->poll, fd) != 0) {
            free(buf);
            free(c);
            close(fd);
            log_write(RMR_LOG_ERROR, SUBJECT, "refusing a connection to '%s': out of memory",
                      d->address);
            continue;
        }
        c->poll.data = c;
        c->d = d;
        c->fd = fd;
        c->buf = buf;
        c->next = d->conns;
        d->conns = c;
        d->nconns++;
        if (!d->paused && uv_poll_start(&c->poll, UV_READABLE, on_conn_readable) == 0)
            c->polling = 1;
    }
}

static void conns_poll(struct dgram *d, int on)
{
    for (struct stream_conn *c = d->conns; c != NULL; c = c->next) {
        if (on && !c->polling && uv_poll_start(&c->poll, UV_READABLE, on_conn_readable) == 0)
            c->polling = 1;
        else if (!on && c->polling) {
            uv_poll_stop(&c->poll);
            c->polling = 0;
        }
    }
}

/* Lifecycle. */

/* A Unix datagram socket queues at most net.unix.max_dgram_qlen datagrams (copied into the
 * socket when it is created; SO_RCVBUF plays no part), often only 10: a reader that lingers
 * would make senders block or fail. Read once at open, a small in-memory file. */
static uint32_t read_unix_qlen(void)
{
    uint32_t qlen = 10; /* the kernel's default */
    int fd = open("/proc/sys/net/unix/max_dgram_qlen", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qlen;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    size_t len = 0;
    while (n > 0 && len < (size_t)n && buf[len] >= '0' && buf[len] <= '9')
        len++;
    uint64_t v;
    if (parse_u64(buf, len, &v) == 0 && v <= UINT32_MAX)
        qlen = (uint32_t)v;
    return qlen;
}

/* Releases everything but the struct and the poll handle. */
static void release(struct dgram *d)
{
    stop_thread(d);
    if (d->efd >= 0)
        close(d->efd);
    d->efd = -1;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    if (d->unix_bound) {
        /* Only our own socket file: another listener may have replaced it since. */
        const char *path = d->address + d->path_at;
        struct stat st;
        if (lstat(path, &st) == 0 && st.st_dev == d->unix_dev && st.st_ino == d->unix_ino)
            unlink(path);
        d->unix_bound = 0;
    }
    free(d->area);
    free(d->hdrs);
    free(d->iovs);
    free(d->msgs);
    d->area = NULL;
    d->hdrs = NULL;
    d->iovs = NULL;
    d->msgs = NULL;
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int alloc_area(struct dgram *d)
{
    if (d->stream) {
        /* Frames point into the connections' buffers: only the array is needed. */
        d->msgs = calloc(d->batch, sizeof *d->msgs);
        return d->msgs != NULL ? 0 : RMR_ENOMEM;
    }
    size_t area = (size_t)d->batch * d->max_datagram;
    d->area = malloc(area);
    d->hdrs = calloc(d->batch, sizeof *d->hdrs);
    d->iovs = calloc(d->batch, sizeof *d->iovs);
    d->msgs = calloc(d->batch, sizeof *d->msgs);
    if (d->area == NULL || d->hdrs == NULL || d->iovs == NULL || d->msgs == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < d->batch; i++) {
        char *buf = d->area + (size_t)i * d->max_datagram;
        d->iovs[i].iov_base = buf;
        d->iovs[i].iov_len = d->max_datagram;
        d->hdrs[i].msg_hdr.msg_iov = &d->iovs[i];
        d->hdrs[i].msg_hdr.msg_iovlen = 1;
        d->msgs[i].data = buf;
    }
    return 0;
}

int dgram_open(uv_loop_t *loop, const struct dgram_opts *opts, dgram_cb cb, void *arg,
               struct dgram **out, char *err, size_t errlen)
{
    assert(opts != NULL && cb != NULL && out != NULL && err != NULL);
    assert(loop != NULL || opts->own_thread);
    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';

    union sockaddr_any sa;
    socklen_t salen = 0;
    int stream;
    size_t path_at;
    int rc = parse_address(opts->address, &sa, &salen, &stream, &path_at, err, errlen);
    if (rc < 0)
        return rc;
    if (stream && loop == NULL) {
        snprintf(err, errlen, "cannot listen on '%s': a stream listener reads on the loop",
                 opts->address);
        return RMR_EINVAL;
    }
    uint32_t batch = opts->batch != 0 ? opts->batch : DEFAULT_BATCH;
    uint32_t max_datagram = opts->max_datagram != 0 ? opts->max_datagram : DEFAULT_MAX_DATAGRAM;
    if (batch > MAX_BATCH) {
        snprintf(err, errlen, "cannot listen on '%s': batch is %u, at most %u", opts->address,
                 batch, MAX_BATCH);
        return RMR_EINVAL;
    }
    if (max_datagram > MAX_DATAGRAM) {
        snprintf(err, errlen, "cannot listen on '%s': max_datagram is %u bytes, at most %u",
                 opts->address, max_datagram, MAX_DATAGRAM);
        return RMR_EINVAL;
    }
    if ((uint64_t)batch * max_datagram > MAX_AREA_BYTES) {
        snprintf(err, errlen,
                 "cannot listen on '%s': %u datagrams of %u bytes per batch exceed the %llu "
                 "bytes a listener may hold",
                 opts->address, batch, max_datagram, (unsigned long long)MAX_AREA_BYTES);
        return RMR_EINVAL;
    }

    struct dgram *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "cannot listen on '%s': out of memory", opts->address);
        return RMR_ENOMEM;
    }
    d->loop = loop;
    d->fd = -1;
    d->efd = -1;
    d->family = sa.sa.sa_family;
    d->stream = stream;
    d->path_at = path_at;
    d->own_thread = opts->own_thread != 0 && !stream;
    d->cb = cb;
    d->arg = arg;
    d->batch = batch;
    d->max_datagram = max_datagram;
    snprintf(d->address, sizeof d->address, "%s", opts->address);
    if (alloc_area(d) < 0) {
        rc = RMR_ENOMEM;
        snprintf(err, errlen, "cannot listen on '%s': out of memory for %u buffers of %u bytes",
                 opts->address, batch, max_datagram);
        goto fail;
    }

    d->fd =
        socket(d->family, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0) {
        rc = fail_sys(errno, opts->address, NULL, err, errlen);
        goto fail;
    }
    if (d->family == AF_UNIX) {
        rc = unix_clear_stale(&sa, salen, opts->address, err, errlen);
        if (rc < 0)
            goto fail;
    }
    /* No SO_REUSEADDR: on UDP it would let a second listener share the port silently. */
    if (bind(d->fd, &sa.sa, salen) != 0) {
        rc = fail_sys(errno, opts->address, NULL, err, errlen);
        goto fail;
    }
    if (d->family == AF_UNIX) {
        d->unix_qlen = read_unix_qlen();
        struct stat st;
        if (lstat(sa.un.sun_path, &st) == 0) {
            d->unix_bound = 1;
            d->unix_dev = st.st_dev;
            d->unix_ino = st.st_ino;
        }
        /* bind() applied the umask; senders running as other users need write access. */
        if (chmod(sa.un.sun_path, UNIX_SOCKET_MODE) != 0)
            log_write(RMR_LOG_WARN, SUBJECT, "cannot make '%s' writable for all: %s",
                      sa.un.sun_path, uv_strerror(-errno));
    } else {
        union sockaddr_any bound;
        socklen_t blen = sizeof bound;
        if (getsockname(d->fd, &bound.sa, &blen) == 0)
            format_address(d, &bound);
    }
    /* Accepted stream connections inherit the listening socket's receive buffer. */
    if (opts->rcvbuf_bytes != 0)
        set_rcvbuf(d, opts->rcvbuf_bytes);
    else
        d->rcvbuf_granted = get_rcvbuf(d->fd);
    if (stream && listen(d->fd, SOMAXCONN) != 0) {
        rc = fail_sys(errno, opts->address, NULL, err, errlen);
        goto fail;
    }
    refresh_drops(d); /* a baseline; a fresh socket has dropped nothing */
    d->drops_total = 0;

    if (d->own_thread) {
        rc = start_thread(d, err, errlen);
        if (rc < 0)
            goto fail;
    } else {
        rc = uv_poll_init(loop, &d->poll, d->fd);
        if (rc < 0) {
            snprintf(err, errlen, "cannot listen on '%s': %s", d->address, uv_strerror(rc));
            rc = RMR_ENOMEM;
            goto fail;
        }
        d->poll.data = d;
        rc = uv_poll_start(&d->poll, UV_READABLE, stream ? on_accept : on_readable);
        if (rc < 0) {
            snprintf(err, errlen, "cannot listen on '%s': %s", d->address, uv_strerror(rc));
            release(d);
            uv_close((uv_handle_t *)&d->poll, on_poll_closed);
            return RMR_ENOMEM;
        }
        d->polling = 1;
    }
    *out = d;
    return 0;

fail:
    release(d);
    free(d);
    return rc;
}

const char *dgram_address(const struct dgram *d)
{
    return d->address;
}

int dgram_rcvbuf_capped(const struct dgram *d)
{
    return d->capped;
}

void dgram_stats(struct dgram *d, struct dgram_stats *out)
{
    refresh_drops(d);
    out->packets = load_relaxed(&d->packets);
    out->bytes = load_relaxed(&d->bytes);
    out->truncated = load_relaxed(&d->truncated);
    out->kernel_drops = d->drops_total;
    out->recv_calls = load_relaxed(&d->recv_calls);
    out->rcvbuf_granted = d->rcvbuf_granted;
    out->stream = d->stream;
    out->connections = d->nconns;
    out->connections_refused = d->conns_refused;
    out->frame_errors = d->frame_errors;
}

/* Sets the paused state; in own-thread mode returns without waiting for the reader (1), for
 * the caller to wait or not. */
static int pause_state(struct dgram *d)
{
    if (d->paused || d->closing)
        return 0;
    d->paused = 1;
    if (d->stream) {
        /* Connections are still accepted (the kernel would queue them anyway); none is read
         * until resume, so clients block or get EAGAIN once their socket buffer is full. */
        conns_poll(d, 0);
        return 0;
    }
    if (!d->own_thread) {
        uv_poll_stop(&d->poll);
        d->polling = 0;
        return 0;
    }
    assert(!pthread_equal(pthread_self(), d->thread));
    set_state(d, READER_PAUSED);
    wake_reader(d);
    return 1;
}

void dgram_pause_nowait(struct dgram *d)
{
    (void)pause_state(d);
}

void dgram_pause(struct dgram *d)
{
    if (!pause_state(d))
        return;
    /* Wait for the reader to finish the batch in hand: no callback after this returns. */
    pthread_mutex_lock(&d->mu);
    while (!d->parked)
        pthread_cond_wait(&d->cond, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

void dgram_resume(struct dgram *d)
{
    if (!d->paused || d->closing)
        return;
    d->paused = 0;
    if (d->stream) {
        conns_poll(d, 1);
        return;
    }
    if (!d->own_thread) {
        if (uv_poll_start(&d->poll, UV_READABLE, on_readable) == 0)
            d->polling = 1;
        return;
    }
    set_state(d, READER_RUNNING);
}

void dgram_close(struct dgram *d)
{
    if (d == NULL || d->closing)
        return;
    d->closing = 1;
    if (d->own_thread) {
        release(d);
        free(d);
        return;
    }
    /* uv_poll_stop() takes the fd out of epoll at once, so it may be closed now and the port
     * or path is free when this returns; the struct lives until the handle's close callback,
     * since on_readable() may be on the stack (dgram_close() called from the callback). */
    if (d->polling)
        uv_poll_stop(&d->poll);
    d->polling = 0;
    while (d->conns != NULL)
        conn_close(d->conns);
    release(d);
    uv_close((uv_handle_t *)&d->poll, on_poll_closed);
}
