/* bench_dgram: what a datagram listener costs at DogStatsD rates. A sender thread sends packed
 * DogStatsD datagrams of up to 1432 bytes (24 metrics each) to a listener on loopback at a fixed
 * rate; the report gives datagrams and metrics received per second, the loss, and the CPU of
 * the thread that reads (the reader thread in own-thread mode, the loop thread in loop mode),
 * from its schedstat in nanoseconds.
 *
 *   build-dg/bench/dgram/bench_dgram                     # 100k datagrams/s for 5 s, own thread
 *   build-dg/bench/dgram/bench_dgram --rate 200000 --batch 128 --rcvbuf 33554432
 *   build-dg/bench/dgram/bench_dgram --loop              # read on the loop thread instead
 *   build-dg/bench/dgram/bench_dgram --unix /tmp/dsd.sock
 *   build-dg/bench/dgram/bench_dgram --touch             # the callback reads every byte
 *
 * The sender's own CPU is printed too: on loopback it carries the kernel's receive path
 * (the softirq runs in the sending thread), so the reader's number is what the agent pays. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "net/dgram/dgram.h"
#include "self/log.h"

#define DATAGRAM  1432
#define SEND_MMSG 32

struct reader {
    pid_t tid;
    uint64_t datagrams;
    uint64_t bytes;
    uint64_t metrics;
    uint64_t calls;
    int touch;
};

struct sender {
    const char *address;
    uint64_t rate;    /* datagrams per second; 0: as fast as it can */
    uint64_t tick_ns; /* the sender wakes this often and sends what is due */
    int single;       /* send() per datagram, as independent clients do, not sendmmsg() */
    double seconds;
    char payload[DATAGRAM];
    size_t len;
    uint64_t metrics_per_datagram;
    uint64_t sent;
    uint64_t send_errors;
    uint64_t cpu_ns;
    double elapsed;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of one thread of this process, in nanoseconds. */
static uint64_t thread_cpu_ns(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)tid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

static void on_dgrams(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct reader *r = arg;
    if (r->tid == 0)
        __atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    uint64_t bytes = 0, metrics = 0;
    for (uint32_t i = 0; i < count; i++) {
        bytes += msgs[i].len;
        if (r->touch) {
            /* A stand-in for parsing: look at every byte once. */
            for (uint32_t j = 0; j < msgs[i].len; j++)
                metrics += msgs[i].data[j] == '\n';
        }
    }
    __atomic_store_n(&r->datagrams, r->datagrams + count, __ATOMIC_RELAXED);
    __atomic_store_n(&r->bytes, r->bytes + bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&r->metrics, r->metrics + metrics, __ATOMIC_RELAXED);
    __atomic_store_n(&r->calls, r->calls + 1, __ATOMIC_RELAXED);
}

/* DogStatsD lines, as a client library packs them, up to DATAGRAM bytes. */
static void build_payload(struct sender *s)
{
    s->len = 0;
    s->metrics_per_datagram = 0;
    for (int i = 0;; i++) {
        char line[128];
        int n = snprintf(line, sizeof line,
                         "app.request.latency_%02d:%d|h|#env:prod,service:webapp,v:12\n", i % 100,
                         100 + i);
        if (s->len + (size_t)n > DATAGRAM)
            break;
        memcpy(s->payload + s->len, line, (size_t)n);
        s->len += (size_t)n;
        s->metrics_per_datagram++;
    }
}

static int connect_to(const char *address)
{
    if (strncmp(address, "unix://", 7) == 0) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof un.sun_path, "%s", address + 7);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof un) == 0)
            return fd;
        return -1;
    }
    const char *colon = strrchr(address, ':');
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&in, sizeof in) == 0)
        return fd;
    return -1;
}

static void *sender_main(void *p)
{
    struct sender *s = p;
    int fd = connect_to(s->address);
    if (fd < 0) {
        fprintf(stderr, "bench_dgram: cannot connect to %s: %s\n", s->address, strerror(errno));
        return NULL;
    }
    struct iovec iov[SEND_MMSG];
    struct mmsghdr hdr[SEND_MMSG];
    memset(hdr, 0, sizeof hdr);
    for (int i = 0; i < SEND_MMSG; i++) {
        iov[i].iov_base = s->payload;
        iov[i].iov_len = s->len;
        hdr[i].msg_hdr.msg_iov = &iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(s->seconds * 1e9);
    uint64_t next = start;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        uint64_t due = s->rate == 0 ? s->sent + SEND_MMSG
                                    : (uint64_t)((double)(now - start) * (double)s->rate / 1e9);
        while (s->sent < due) {
            uint64_t want = due - s->sent;
            unsigned n = want < SEND_MMSG ? (unsigned)want : SEND_MMSG;
            if (s->single)
                n = 1;
            int got = s->single ? (send(fd, s->payload, s->len, 0) > 0 ? 1 : -1)
                                : sendmmsg(fd, hdr, n, 0);
            if (got <= 0) {
                s->send_errors++;
                break;
            }
            s->sent += (uint64_t)got;
        }
        if (s->rate != 0) {
            next += s->tick_ns;
            if (next > now) {
                struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            } else {
                next = now;
            }
        }
    }
    s->elapsed = (double)(now_ns() - start) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    s->cpu_ns = (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000 +
                (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000;
    close(fd);
    return NULL;
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_dgram [--rate DATAGRAMS_PER_S (0: flat out)] [--seconds S] "
                    "[--tick-us US] [--single] [--batch N] [--max-datagram BYTES] [--rcvbuf BYTES] "
                    "[--loop] [--touch] [--unix PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct sender s = {.rate = 100000, .seconds = 5, .tick_ns = 1000000};
    static struct reader r;
    struct dgram_opts o = {.address = "udp://127.0.0.1:0",
                           .rcvbuf_bytes = 16u << 20,
                           .max_datagram = 8192,
                           .batch = 64,
                           .own_thread = 1};
    char unix_address[128];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--loop") == 0) {
            o.own_thread = 0;
        } else if (strcmp(a, "--touch") == 0) {
            r.touch = 1;
        } else if (strcmp(a, "--single") == 0) {
            s.single = 1;
        } else if (v == NULL) {
            usage();
        } else if (strcmp(a, "--rate") == 0) {
            s.rate = strtoull(v, NULL, 10), i++;
        } else if (strcmp(a, "--tick-us") == 0) {
            s.tick_ns = strtoull(v, NULL, 10) * 1000, i++;
        } else if (strcmp(a, "--seconds") == 0) {
            s.seconds = strtod(v, NULL), i++;
        } else if (strcmp(a, "--batch") == 0) {
            o.batch = (uint32_t)strtoul(v, NULL, 10), i++;
        } else if (strcmp(a, "--max-datagram") == 0) {
            o.max_datagram = (uint32_t)strtoul(v, NULL, 10), i++;
        } else if (strcmp(a, "--rcvbuf") == 0) {
            o.rcvbuf_bytes = strtoull(v, NULL, 10), i++;
        } else if (strcmp(a, "--unix") == 0) {
            snprintf(unix_address, sizeof unix_address, "unix://%s", v);
            o.address = unix_address, i++;
        } else {
            usage();
        }
    }
    log_configure(RMR_LOG_INFO, 0, 0);
    build_payload(&s);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct dgram *d = NULL;
    char err[256];
    if (dgram_open(&loop, &o, on_dgrams, &r, &d, err, sizeof err) != 0) {
        fprintf(stderr, "bench_dgram: %s\n", err);
        return 1;
    }
    s.address = dgram_address(d);

    struct rusage ru0;
    getrusage(RUSAGE_THREAD, &ru0);
    pid_t main_tid = (pid_t)syscall(SYS_gettid);
    uint64_t loop_cpu0 = thread_cpu_ns(main_tid);
    pthread_t th;
    pthread_create(&th, NULL, sender_main, &s);
    /* Run (or idle) while the sender sends, then a moment for the last datagrams. */
    uint64_t run_ms = (uint64_t)(s.seconds * 1000) + 200;
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    if (o.own_thread) {
        struct timespec ts = {(time_t)(run_ms / 1000), (long)(run_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    } else {
        uv_timer_start(&stop, on_stop, run_ms, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&stop, NULL);
    pthread_join(th, NULL);

    pid_t tid = o.own_thread ? __atomic_load_n(&r.tid, __ATOMIC_ACQUIRE) : main_tid;
    uint64_t reader_cpu = tid != 0 ? thread_cpu_ns(tid) : 0;
    if (!o.own_thread)
        reader_cpu -= loop_cpu0;
    struct dgram_stats st;
    dgram_stats(d, &st);
    dgram_close(d);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);

    uint64_t got = __atomic_load_n(&r.datagrams, __ATOMIC_RELAXED);
    double secs = s.elapsed > 0 ? s.elapsed : s.seconds;
    double lost = s.sent > 0 ? 100.0 * (double)(s.sent - got) / (double)s.sent : 0;
    printf("bench_dgram: %s, %s, batch %u, rcvbuf granted %" PRIu64 " (asked %" PRIu64 ")\n",
           o.own_thread ? "own thread" : "loop thread", s.address, o.batch, st.rcvbuf_granted,
           o.rcvbuf_bytes);
    printf("  sent       %" PRIu64 " datagrams of %zu bytes (%" PRIu64 " metrics each) in %.2f s: "
           "%.0f/s, %.2fM metrics/s%s\n",
           s.sent, s.len, s.metrics_per_datagram, secs, (double)s.sent / secs,
           (double)s.sent * (double)s.metrics_per_datagram / secs / 1e6,
           s.send_errors ? " (send errors)" : "");
    printf("  received   %" PRIu64 " (%.0f/s, %.2fM metrics/s), lost %" PRIu64
           " (%.3f%%), kernel_drops %" PRIu64 "\n",
           got, (double)got / secs, (double)got * (double)s.metrics_per_datagram / secs / 1e6,
           s.sent - got, lost, st.kernel_drops);
    printf("  reader     %.3f core (%.0f ns per datagram), %" PRIu64 " recv calls, %.1f "
           "datagrams per call\n",
           (double)reader_cpu / 1e9 / secs, got ? (double)reader_cpu / (double)got : 0,
           st.recv_calls, st.recv_calls ? (double)st.packets / (double)st.recv_calls : 0);
    printf("  sender     %.3f core (%s every %" PRIu64 " us, loopback receive path included)\n",
           (double)s.cpu_ns / 1e9 / secs, s.single ? "send() per datagram" : "sendmmsg() of 32",
           s.tick_ns / 1000);
    if (r.touch)
        printf("  touched    %" PRIu64 " lines\n", r.metrics);
    return got == s.sent ? 0 : 1;
}
