/* core/net/dgram: UDP and Unix datagram listeners on the loop and on a reader thread, with
 * real sockets on loopback: delivery in order and in arrays, truncation, pause and resume,
 * close from the loop and from the callback, a pause that does not wait for a reader blocked
 * in its callback, stale Unix sockets, the kernel's drop counter, the receive buffer the kernel
 * grants, and unixstream:// framing (a table of prefixes) and listeners (frames split across
 * reads, several per read, empty, oversized, cut short by the peer; pause, close from the
 * callback, the connection limit). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/sock_diag.h>

#include "net/dgram/dgram.h"
#include "net/dgram/frame.h"
#include "self/log.h"
#include "tap.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t read_sysctl(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

/* A socket connected to a listener's address text ("udp://A:P", "udp://[A]:P", "unix://P"). */
static int client_for(const char *address, int nonblock)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } sa;
    socklen_t len;
    memset(&sa, 0, sizeof sa);
    if (strncmp(address, "unix://", 7) == 0) {
        sa.un.sun_family = AF_UNIX;
        snprintf(sa.un.sun_path, sizeof sa.un.sun_path, "%s", address + 7);
        len = sizeof sa.un;
    } else if (strncmp(address, "udp://[", 7) == 0) {
        char host[64];
        const char *close = strchr(address, ']');
        snprintf(host, sizeof host, "%.*s", (int)(close - address - 7), address + 7);
        sa.in6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, host, &sa.in6.sin6_addr);
        sa.in6.sin6_port = htons((uint16_t)atoi(close + 2));
        len = sizeof sa.in6;
    } else {
        char host[64];
        const char *colon = strrchr(address, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon - address - 6), address + 6);
        sa.in.sin_family = AF_INET;
        inet_pton(AF_INET, host, &sa.in.sin_addr);
        sa.in.sin_port = htons((uint16_t)atoi(colon + 1));
        len = sizeof sa.in;
    }
    int fd = socket(sa.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0 || connect(fd, &sa.sa, len) != 0) {
        printf("# cannot connect to %s: %s\n", address, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void send_str(int fd, const char *s)
{
    if (send(fd, s, strlen(s), 0) != (ssize_t)strlen(s))
        printf("# send: %s\n", strerror(errno));
}

/* What a loop-mode callback saw. */
#define KEEP 1100
struct got {
    int calls;
    int n;
    uint32_t counts[64];
    char data[KEEP][72];
    uint32_t len[KEEP];
    uint32_t flags[KEEP];
    struct dgram *close_in_cb; /* closed in the first callback */
    struct dgram *pause_in_cb; /* paused in the first callback */
};

static void on_dgrams(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct got *g = arg;
    if (g->calls < 64)
        g->counts[g->calls] = count;
    g->calls++;
    for (uint32_t i = 0; i < count; i++) {
        if (g->n < KEEP) {
            size_t keep = msgs[i].len < sizeof g->data[0] - 1 ? msgs[i].len : sizeof g->data[0] - 1;
            memcpy(g->data[g->n], msgs[i].data, keep);
            g->data[g->n][keep] = '\0';
            g->len[g->n] = msgs[i].len;
            g->flags[g->n] = msgs[i].flags;
        }
        g->n++;
    }
    if (g->close_in_cb != NULL) {
        dgram_close(g->close_in_cb);
        g->close_in_cb = NULL;
    }
    if (g->pause_in_cb != NULL) {
        dgram_pause(g->pause_in_cb);
        g->pause_in_cb = NULL;
    }
}

/* Runs the loop until *have reaches want or timeout_ms passes. */
static int run_until(uv_loop_t *loop, const int *have, int want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (*have < want && now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (*have < want)
            sleep_ms(1);
    }
    return *have >= want;
}

static void run_for(uv_loop_t *loop, int ms)
{
    int never = 0;
    run_until(loop, &never, 1, ms);
}

static struct dgram *open_ok(uv_loop_t *loop, const struct dgram_opts *o, dgram_cb cb, void *arg)
{
    char err[256] = "";
    struct dgram *d = NULL;
    int rc = dgram_open(loop, o, cb, arg, &d, err, sizeof err);
    if (rc != 0)
        printf("# dgram_open(%s): %d %s\n", o->address, rc, err);
    return d;
}

static void bad_addresses(uv_loop_t *loop)
{
    static const struct {
        const char *address;
        uint32_t batch;
        int rc;
        const char *err;
    } cases[] = {
        {"", 0, RMR_EINVAL, "cannot listen: no address"},
        {"tcp://127.0.0.1:1", 0, RMR_EINVAL, "the scheme must be udp://, unix:// or unixstream://"},
        {"udp://127.0.0.1", 0, RMR_EINVAL,
         "expected udp://HOST:PORT, unix:///PATH or unixstream:///PATH"},
        {"udp://127.0.0.1:", 0, RMR_EINVAL, "the port must be a number from 0 to 65535"},
        {"udp://127.0.0.1:65536", 0, RMR_EINVAL, "the port must be a number from 0 to 65535"},
        {"udp://127.0.0.1:-1", 0, RMR_EINVAL, "the port must be a number"},
        {"udp://127.0.0.1:80a", 0, RMR_EINVAL, "the port must be a number"},
        {"udp://127.0.0.1:000008125", 0, RMR_EINVAL, "the port must be a number"},
        {"udp://:8125", 0, RMR_EINVAL, "the host must be an IP address or localhost"},
        {"udp://::1:8125", 0, RMR_EINVAL, "an IPv6 address needs brackets"},
        {"udp://[::1:8125", 0, RMR_EINVAL, "expected udp://HOST:PORT"},
        {"udp://[::1]8125", 0, RMR_EINVAL, "expected udp://HOST:PORT"},
        {"udp://[127.0.0.1]:8125", 0, RMR_EINVAL, "'127.0.0.1' is not an IP address"},
        {"udp://999.1.1.1:8125", 0, RMR_EINVAL, "'999.1.1.1' is not an IP address"},
        {"udp://example.com:8125", 0, RMR_EINVAL, "names other than localhost are not looked up"},
        {"unix://", 0, RMR_EINVAL, "no socket path"},
        {"unixstream://", 0, RMR_EINVAL, "no socket path"},
        {"unixstream:///x", 2000, RMR_EINVAL, "batch is 2000, at most 1024"},
        {"udp://127.0.0.1:0", 1025, RMR_EINVAL, "batch is 1025, at most 1024"},
        {"udp://192.0.2.1:0", 0, RMR_EINVAL, "address not available"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct got g = {0};
        struct dgram_opts o = {.address = cases[i].address, .batch = cases[i].batch};
        struct dgram *d = (struct dgram *)&g; /* must be reset to NULL */
        char err[256] = "";
        char name[160];
        int rc = dgram_open(loop, &o, on_dgrams, &g, &d, err, sizeof err);
        snprintf(name, sizeof name, "refused: '%s'", cases[i].address);
        IS_INT(rc, cases[i].rc, name);
        CONTAINS(err, cases[i].err, "  with the reason");
        OK(strncmp(err, "cannot listen", 13) == 0 && d == NULL, "  in a sentence; out is NULL");
    }

    char address[200] = "unix:///tmp/";
    memset(address + strlen(address), 'a', 120);
    address[132] = '\0';
    struct dgram_opts o = {.address = address};
    struct dgram *d = NULL;
    char err[512];
    IS_INT(dgram_open(loop, &o, on_dgrams, NULL, &d, err, sizeof err), RMR_EINVAL,
           "a Unix path longer than sun_path is refused");
    CONTAINS(err, "the path is 125 bytes, longer than the 107 a Unix socket allows",
             "  with a sentence naming both lengths");

    o = (struct dgram_opts){
        .address = "udp://127.0.0.1:0", .max_datagram = 1u << 20, .batch = 1024};
    IS_INT(dgram_open(loop, &o, on_dgrams, NULL, &d, err, sizeof err), RMR_EINVAL,
           "a receive area over 256 MiB is refused");
    CONTAINS(err, "1024 datagrams of 1048576 bytes per batch exceed", "  with the sizes");
    o = (struct dgram_opts){.address = "udp://127.0.0.1:0", .max_datagram = 32u << 20, .batch = 1};
    IS_INT(dgram_open(loop, &o, on_dgrams, NULL, &d, err, sizeof err), RMR_EINVAL,
           "max_datagram over 16 MiB is refused");
    CONTAINS(err, "max_datagram is 33554432 bytes, at most 16777216", "  with the sizes");
}

static void udp_loop(uv_loop_t *loop)
{
    static struct got g;
    memset(&g, 0, sizeof g);
    struct dgram_opts o = {.address = "udp://127.0.0.1:0", .max_datagram = 2048};
    struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
    OK(d != NULL, "udp: opens 127.0.0.1:0 in loop mode");
    if (d == NULL)
        return;
    const char *addr = dgram_address(d);
    OK(strncmp(addr, "udp://127.0.0.1:", 16) == 0 && atoi(addr + 16) > 0,
       "udp: the address names the port picked");
    int fd = client_for(addr, 0);

    /* In chunks, so that the default receive buffer never overflows. */
    const int total = 1000;
    uint64_t want_bytes = 0;
    for (int sent = 0; sent < total;) {
        for (int k = 0; k < 50; k++, sent++) {
            char msg[64];
            snprintf(msg, sizeof msg, "page.views:%d|c|#n:%d", sent, sent * 7);
            want_bytes += strlen(msg);
            send_str(fd, msg);
        }
        run_until(loop, &g.n, sent, 2000);
    }
    IS_INT(g.n, total, "udp: every datagram arrives");
    int in_order = 1;
    for (int i = 0; i < total && i < KEEP; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "page.views:%d|c|#n:%d", i, i * 7);
        if (strcmp(g.data[i], msg) != 0 || g.len[i] != strlen(msg) || g.flags[i] != 0) {
            printf("# datagram %d: \"%s\" (%u bytes, flags %u)\n", i, g.data[i], g.len[i],
                   g.flags[i]);
            in_order = 0;
            break;
        }
    }
    OK(in_order, "udp: content, length and order as sent, no flags");

    struct dgram_stats st;
    dgram_stats(d, &st);
    IS_UINT(st.packets, total, "udp: stats count the packets");
    IS_UINT(st.bytes, want_bytes, "udp: and the bytes");
    IS_UINT(st.truncated, 0, "udp: nothing truncated");
    IS_UINT(st.kernel_drops, 0, "udp: no kernel drops");
    OK(st.recv_calls >= (uint64_t)g.calls && st.recv_calls > 0, "udp: recv_calls counted");
    OK(st.rcvbuf_granted > 0, "udp: the kernel's default buffer is reported");
    IS_INT(dgram_rcvbuf_capped(d), 0, "udp: not capped when nothing was asked");

    /* A burst before the loop runs comes in one array. */
    memset(&g, 0, sizeof g);
    for (int i = 0; i < 10; i++)
        send_str(fd, "burst");
    run_until(loop, &g.n, 10, 2000);
    IS_INT(g.calls, 1, "udp: a burst sent before the loop runs is one callback");
    IS_UINT(g.counts[0], 10, "  of 10 datagrams");

    /* A zero-length datagram is a datagram. */
    memset(&g, 0, sizeof g);
    send(fd, "", 0, 0);
    run_until(loop, &g.n, 1, 2000);
    OK(g.n == 1 && g.len[0] == 0 && g.flags[0] == 0, "udp: an empty datagram arrives empty");

    /* The address is taken while open, free as soon as dgram_close() returns. */
    struct dgram_opts again = {.address = addr};
    char err[256];
    char want_err[160];
    struct dgram *d2 = NULL;
    snprintf(want_err, sizeof want_err, "cannot listen on '%s': address already in use", addr);
    IS_INT(dgram_open(loop, &again, on_dgrams, &g, &d2, err, sizeof err), RMR_EADDRINUSE,
           "udp: a taken port is RMR_EADDRINUSE");
    IS_STR(err, want_err, "  with a sentence");
    char saved[64];
    snprintf(saved, sizeof saved, "%s", addr);
    dgram_close(d);
    again.address = saved;
    d2 = open_ok(loop, &again, on_dgrams, &g);
    OK(d2 != NULL, "udp: the port is free again as soon as dgram_close() returns");
    dgram_close(d2);
    close(fd);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void udp_batches(uv_loop_t *loop)
{
    static struct got g;
    memset(&g, 0, sizeof g);
    struct dgram_opts o = {.address = "udp://127.0.0.1:0", .batch = 4, .max_datagram = 64};
    struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
    if (d == NULL)
        return;
    int fd = client_for(dgram_address(d), 0);
    for (int i = 0; i < 10; i++)
        send_str(fd, "x");
    run_until(loop, &g.n, 10, 2000);
    IS_INT(g.calls, 3, "batch 4: ten datagrams in three callbacks");
    OK(g.counts[0] == 4 && g.counts[1] == 4 && g.counts[2] == 2, "  of 4, 4 and 2");

    /* Truncation. */
    memset(&g, 0, sizeof g);
    char big[100];
    memset(big, 'B', sizeof big);
    send(fd, big, sizeof big, 0);
    send(fd, big, 64, 0);
    send_str(fd, "small");
    run_until(loop, &g.n, 3, 2000);
    IS_INT(g.n, 3, "truncation: three datagrams");
    IS_UINT(g.flags[0], RMR_DGRAM_TRUNCATED, "  the 100-byte one is flagged truncated");
    IS_UINT(g.len[0], 64, "  and cut at max_datagram");
    OK(memcmp(g.data[0], big, 64) == 0, "  keeping its first bytes");
    IS_UINT(g.flags[1], 0, "  one of exactly max_datagram bytes is not truncated");
    IS_UINT(g.len[1], 64, "  and whole");
    OK(g.flags[2] == 0 && strcmp(g.data[2], "small") == 0, "  the next one is intact");
    struct dgram_stats st;
    dgram_stats(d, &st);
    IS_UINT(st.truncated, 1, "truncation: counted once");
    IS_UINT(st.bytes, 64 + 64 + 5 + 10, "truncation: bytes count what was kept");

    /* Pause and resume. */
    memset(&g, 0, sizeof g);
    dgram_pause(d);
    dgram_pause(d); /* a no-op */
    for (int i = 0; i < 6; i++)
        send_str(fd, "p");
    run_for(loop, 50);
    IS_INT(g.n, 0, "loop pause: nothing delivered while paused");
    dgram_resume(d);
    dgram_resume(d); /* a no-op */
    run_until(loop, &g.n, 6, 2000);
    IS_INT(g.n, 6, "loop resume: what the kernel kept is delivered");

    /* Pause from inside the callback stops the wake-up's loop at once. */
    memset(&g, 0, sizeof g);
    g.pause_in_cb = d;
    for (int i = 0; i < 10; i++)
        send_str(fd, "q");
    run_for(loop, 50);
    IS_INT(g.calls, 1, "pause in the callback: no further callback");
    dgram_resume(d);
    run_until(loop, &g.n, 10, 2000);
    IS_INT(g.n, 10, "  resume delivers the rest");

    /* Close from inside the callback. */
    memset(&g, 0, sizeof g);
    g.close_in_cb = d;
    for (int i = 0; i < 10; i++)
        send_str(fd, "c");
    run_for(loop, 50);
    IS_INT(g.calls, 1, "close in the callback: no further callback");
    IS_INT(g.n, 4, "  after the batch in hand");
    close(fd);
}

static void udp_v6_and_names(uv_loop_t *loop)
{
    static struct got g;
    memset(&g, 0, sizeof g);
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0)
        close(probe);
    if (!have_v6) {
        OK(1, "ipv6 loopback # SKIP no IPv6 on this host");
    } else {
        struct dgram_opts o = {.address = "udp://[::1]:0"};
        struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
        OK(d != NULL && strncmp(dgram_address(d), "udp://[::1]:", 12) == 0,
           "ipv6: [::1]:0 opens and names its port");
        if (d != NULL) {
            int fd = client_for(dgram_address(d), 0);
            send_str(fd, "six");
            run_until(loop, &g.n, 1, 2000);
            OK(g.n == 1 && strcmp(g.data[0], "six") == 0, "ipv6: a datagram arrives");
            close(fd);
            dgram_close(d);
        }
    }

    static const struct {
        const char *address;
        const char *prefix;
    } names[] = {
        {"udp://localhost:0", "udp://127.0.0.1:"},
        {"127.0.0.1:0", "udp://127.0.0.1:"},
        {"localhost:0", "udp://127.0.0.1:"},
        {"udp://0.0.0.0:0", "udp://0.0.0.0:"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        memset(&g, 0, sizeof g);
        struct dgram_opts o = {.address = names[i].address};
        struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
        char name[128];
        snprintf(name, sizeof name, "'%s' listens on %s...", names[i].address, names[i].prefix);
        OK(d != NULL && strncmp(dgram_address(d), names[i].prefix, strlen(names[i].prefix)) == 0,
           name);
        if (d == NULL)
            continue;
        char to[64];
        snprintf(to, sizeof to, "udp://127.0.0.1:%s", strrchr(dgram_address(d), ':') + 1);
        int fd = client_for(to, 0);
        send_str(fd, "hi");
        run_until(loop, &g.n, 1, 2000);
        IS_INT(g.n, 1, "  and receives");
        close(fd);
        dgram_close(d);
    }
    uv_run(loop, UV_RUN_NOWAIT);
}

static void unix_sockets(uv_loop_t *loop)
{
    static struct got g;
    memset(&g, 0, sizeof g);
    char dir[] = "/tmp/remora-dgram-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        OK(0, "unix: mkdtemp");
        return;
    }
    char path[64], address[96], err[512];
    snprintf(path, sizeof path, "%s/dsd.socket", dir);
    snprintf(address, sizeof address, "unix://%s", path);

    /* A stale socket: bound, then its owner went away. */
    int stale = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path, path, strlen(path) + 1); /* short: under /tmp */
    bind(stale, (struct sockaddr *)&un, sizeof un);
    close(stale);
    struct stat st;
    OK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "unix: a stale socket file is there");

    mode_t old_umask = umask(077);
    struct dgram_opts o = {.address = address};
    struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
    umask(old_umask);
    OK(d != NULL, "unix: the stale socket is replaced");
    if (d == NULL)
        return;
    IS_STR(dgram_address(d), address, "unix: the address is the path");
    OK(lstat(path, &st) == 0, "unix: the socket exists");
    IS_INT(st.st_mode & 0777, 0722, "unix: everyone may write to it, whatever the umask");

    int fd = client_for(address, 0);
    send_str(fd, "one");
    send_str(fd, "two");
    run_until(loop, &g.n, 2, 2000);
    OK(g.n == 2 && strcmp(g.data[0], "one") == 0 && strcmp(g.data[1], "two") == 0,
       "unix: datagrams arrive in order");

    /* Another listener on the same path while this one lives. */
    struct dgram *d2 = NULL;
    IS_INT(dgram_open(loop, &o, on_dgrams, &g, &d2, err, sizeof err), RMR_EADDRINUSE,
           "unix: a live socket is never replaced");
    CONTAINS(err, "another process listens on", "  with a sentence");
    struct stat st2;
    OK(lstat(path, &st2) == 0 && st2.st_ino == st.st_ino, "  and the live socket is untouched");

    /* While paused the socket's queue fills; senders then get EAGAIN, nothing is dropped. */
    memset(&g, 0, sizeof g);
    dgram_pause(d);
    int nb = client_for(address, 1);
    int sent = 0;
    while (sent < 100000 && send(nb, "q", 1, 0) == 1)
        sent++;
    IS_INT(errno, EAGAIN, "unix: a sender to a full socket gets EAGAIN");
    struct dgram_stats ds;
    dgram_stats(d, &ds);
    IS_UINT(ds.kernel_drops, 0, "unix: kernel_drops is 0 (the kernel drops nothing)");
    dgram_resume(d);
    run_until(loop, &g.n, sent, 2000);
    IS_INT(g.n, sent, "unix: after resume every datagram the kernel accepted arrives");
    close(nb);
    close(fd);

    dgram_close(d);
    OK(lstat(path, &st) != 0 && errno == ENOENT, "unix: close removes the socket file");
    uv_run(loop, UV_RUN_NOWAIT);

    /* Any other kind of file is refused and left alone. */
    int f = open(path, O_CREAT | O_WRONLY, 0600);
    close(f);
    d2 = NULL;
    IS_INT(dgram_open(loop, &o, on_dgrams, &g, &d2, err, sizeof err), RMR_EADDRINUSE,
           "unix: a regular file at the path is RMR_EADDRINUSE");
    char want[400];
    snprintf(want, sizeof want,
             "cannot listen on '%s': '%s' exists and is not a socket (remove it or choose "
             "another path)",
             address, path);
    IS_STR(err, want, "  with a sentence");
    OK(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "  and the file is still there");
    unlink(path);

    /* A socket file replaced behind the listener's back is not removed by its close. */
    d = open_ok(loop, &o, on_dgrams, &g);
    unlink(path);
    int other = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(other, (struct sockaddr *)&un, sizeof un);
    dgram_close(d);
    OK(lstat(path, &st) == 0, "unix: close leaves another listener's socket file alone");
    close(other);
    unlink(path);
    uv_run(loop, UV_RUN_NOWAIT);
    rmdir(dir);
}

/* ---- unixstream:// ---------------------------------------------------------------------- */

/* The framing alone, on a table of inputs (the listener's use is below, with sockets). */
static void frame_table(void)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        uint32_t max;
        int rc;
        uint32_t frame_len;
    } cases[] = {
        {"frame: empty input needs more", "", 0, 64, 0, 0},
        {"frame: a partial prefix needs more", "\x05\x00\x00", 3, 64, 0, 0},
        {"frame: a prefix without its bytes needs more",
         "\x05\x00\x00\x00"
         "abcd",
         8, 64, 0, 0},
        {"frame: a whole frame",
         "\x05\x00\x00\x00"
         "abcde",
         9, 64, 1, 5},
        {"frame: a whole frame with the next one's start",
         "\x01\x00\x00\x00"
         "a\x09",
         6, 64, 1, 1},
        {"frame: an empty frame is whole", "\x00\x00\x00\x00", 4, 64, 1, 0},
        {"frame: exactly max",
         "\x02\x00\x00\x00"
         "ab",
         6, 2, 1, 2},
        {"frame: over max is refused at once", "\x03\x00\x00\x00", 4, 2, RMR_E2BIG, 0},
        {"frame: little-endian: 0x0100 is 256", "\x00\x01\x00\x00", 4, 255, RMR_E2BIG, 0},
        {"frame: the largest length is refused", "\xff\xff\xff\xff", 4, 16u << 20, RMR_E2BIG, 0},
        {"frame: a big-endian 5 reads as 83886080",
         "\x00\x00\x00\x05"
         "abcde",
         9, 65535, RMR_E2BIG, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t n = 12345;
        int rc = dgram_frame_next(cases[i].bytes, cases[i].len, cases[i].max, &n);
        IS_INT(rc, cases[i].rc, cases[i].name);
        if (rc == 1)
            IS_UINT(n, cases[i].frame_len, "  of its length");
        else
            IS_UINT(n, 12345, "  frame_len untouched");
    }
}

static int stream_client(const char *path)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) != 0) {
        printf("# cannot connect to %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Appends one frame (length prefix, little-endian, then the bytes) to buf at *len. */
static void frame(char *buf, size_t *len, const char *msg, uint32_t claimed)
{
    uint32_t n = claimed;
    buf[*len + 0] = (char)(n & 0xff);
    buf[*len + 1] = (char)(n >> 8 & 0xff);
    buf[*len + 2] = (char)(n >> 16 & 0xff);
    buf[*len + 3] = (char)(n >> 24 & 0xff);
    memcpy(buf + *len + 4, msg, strlen(msg));
    *len += 4 + strlen(msg);
}

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0) {
            printf("# send: %s\n", strerror(errno));
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* 1 when the peer has closed fd (read gives EOF or a reset) within timeout_ms of running the
 * loop. */
static int peer_closed(uv_loop_t *loop, int fd, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        sleep_ms(1);
    }
    return 0;
}

static void stream_sockets(uv_loop_t *loop)
{
    static struct got g;
    memset(&g, 0, sizeof g);
    char dir[] = "/tmp/remora-dgram-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        OK(0, "stream: mkdtemp");
        return;
    }
    char path[64], address[96], err[512];
    snprintf(path, sizeof path, "%s/dsd.stream", dir);
    snprintf(address, sizeof address, "unixstream://%s", path);

    /* A stale stream socket file: bound and listened on, then its owner went away. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path, path, strlen(path) + 1);
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(stale, (struct sockaddr *)&un, sizeof un);
    listen(stale, 1);
    close(stale);

    mode_t old_umask = umask(077);
    struct dgram_opts o = {.address = address, .max_datagram = 64, .batch = 4, .own_thread = 1};
    struct dgram *d = open_ok(loop, &o, on_dgrams, &g);
    umask(old_umask);
    OK(d != NULL, "stream: opens, replacing a stale socket file (own_thread is ignored)");
    if (d == NULL)
        return;
    IS_STR(dgram_address(d), address, "stream: the address is the scheme and the path");
    struct stat st;
    OK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "stream: the socket exists");
    IS_INT(st.st_mode & 0777, 0722, "stream: everyone may connect, whatever the umask");

    struct dgram *d2 = NULL;
    IS_INT(dgram_open(loop, &o, on_dgrams, &g, &d2, err, sizeof err), RMR_EADDRINUSE,
           "stream: a live stream socket is never replaced");
    CONTAINS(err, "another process listens on", "  with a sentence");

    int fd = stream_client(path);
    char buf[4096];
    size_t len = 0;

    /* One frame dribbled in: the prefix byte by byte, then the message in two parts. */
    frame(buf, &len, "page.views:1|c", (uint32_t)strlen("page.views:1|c"));
    for (size_t i = 0; i < len; i++) {
        send_all(fd, buf + i, 1);
        run_for(loop, i == 3 || i == 9 ? 20 : 2);
        if (i + 1 < len && g.n != 0)
            break;
    }
    run_until(loop, &g.n, 1, 2000);
    OK(g.n == 1 && strcmp(g.data[0], "page.views:1|c") == 0 && g.len[0] == 14,
       "stream: a frame split across many reads arrives once, whole");

    /* Several frames in one write, with an empty one among them: arrays of at most batch. */
    memset(&g, 0, sizeof g);
    len = 0;
    frame(buf, &len, "a:1|c", 5);
    frame(buf, &len, "b:2|c", 5);
    frame(buf, &len, "", 0);
    frame(buf, &len, "c:3|g", 5);
    frame(buf, &len, "d:4|h", 5);
    frame(buf, &len, "e:5|s", 5);
    frame(buf, &len, "f:6|d", 5);
    send_all(fd, buf, len);
    run_until(loop, &g.n, 6, 2000);
    IS_INT(g.n, 6, "stream: several frames in one read all arrive; the empty one is skipped");
    OK(strcmp(g.data[0], "a:1|c") == 0 && strcmp(g.data[2], "c:3|g") == 0 &&
           strcmp(g.data[5], "f:6|d") == 0,
       "  in order");
    OK(g.calls == 2 && g.counts[0] == 4 && g.counts[1] == 2, "  in arrays of at most batch (4)");

    /* A frame of exactly max_datagram bytes is fine; the next length beyond it is not. */
    memset(&g, 0, sizeof g);
    char big[65];
    memset(big, 'x', 64);
    big[64] = '\0';
    len = 0;
    frame(buf, &len, big, 64);
    frame(buf, &len, "ok:1|c", 6);
    frame(buf, &len, "", 65); /* only the prefix: the length alone is refused */
    send_all(fd, buf, len);
    run_until(loop, &g.n, 2, 2000);
    IS_INT(g.n, 2, "stream: frames before an oversized length still arrive");
    OK(g.len[0] == 64 && strcmp(g.data[1], "ok:1|c") == 0, "  the 64-byte one whole");
    OK(peer_closed(loop, fd, 2000), "stream: an oversized length closes that connection");
    close(fd);
    struct dgram_stats ds;
    dgram_stats(d, &ds);
    IS_UINT(ds.frame_errors, 1, "stream: and counts a frame error");
    IS_INT(ds.stream, 1, "stream: stats say it is a stream listener");
    IS_UINT(ds.packets, 1 + 6 + 2, "stream: packets count the frames delivered");
    IS_UINT(ds.bytes, 14 + 30 + 64 + 6, "stream: bytes count their payload");
    IS_UINT(ds.kernel_drops, 0, "stream: no kernel drops");

    /* The peer closes in the middle of a frame: the complete frames go, the partial one is
     * dropped and counted. */
    memset(&g, 0, sizeof g);
    fd = stream_client(path);
    len = 0;
    frame(buf, &len, "whole:1|c", 9);
    frame(buf, &len, "cut", 9);
    send_all(fd, buf, len);
    close(fd);
    run_until(loop, &g.n, 1, 2000);
    run_for(loop, 50);
    OK(g.n == 1 && strcmp(g.data[0], "whole:1|c") == 0,
       "stream: on peer close the complete frames arrive");
    dgram_stats(d, &ds);
    IS_UINT(ds.frame_errors, 2, "stream: the frame cut short is counted");
    IS_UINT(ds.connections, 0, "stream: closed connections are gone");

    /* Two clients at once, each with its own reassembly. */
    memset(&g, 0, sizeof g);
    int c1 = stream_client(path), c2 = stream_client(path);
    run_for(loop, 20);
    dgram_stats(d, &ds);
    IS_UINT(ds.connections, 2, "stream: connections are counted while open");
    len = 0;
    frame(buf, &len, "one:1|c", 7);
    send_all(c1, buf, 3);
    len = 0;
    frame(buf, &len, "two:2|c", 7);
    send_all(c2, buf, len);
    run_until(loop, &g.n, 1, 2000);
    len = 0;
    frame(buf, &len, "one:1|c", 7);
    send_all(c1, buf + 3, len - 3);
    run_until(loop, &g.n, 2, 2000);
    OK(g.n == 2 && strcmp(g.data[0], "two:2|c") == 0 && strcmp(g.data[1], "one:1|c") == 0,
       "stream: interleaved clients keep their own partial frames");

    /* Paused: nothing is read; resumed: what waited arrives. */
    memset(&g, 0, sizeof g);
    dgram_pause(d);
    send_all(c1, buf, len);
    run_for(loop, 50);
    IS_INT(g.n, 0, "stream: nothing arrives while paused");
    dgram_resume(d);
    run_until(loop, &g.n, 1, 2000);
    IS_INT(g.n, 1, "stream: resumed, it arrives");

    /* Closed from the callback: nothing more is delivered, the file goes. */
    memset(&g, 0, sizeof g);
    g.close_in_cb = d;
    len = 0;
    for (int i = 0; i < 10; i++)
        frame(buf, &len, "z:1|c", 5);
    send_all(c2, buf, len);
    run_until(loop, &g.n, 1, 2000);
    run_for(loop, 20);
    OK(g.calls == 1 && g.n == 4, "stream: closed from the callback, no array follows");
    OK(lstat(path, &st) != 0 && errno == ENOENT, "stream: close removes the socket file");
    OK(peer_closed(loop, c1, 1000) && peer_closed(loop, c2, 1000),
       "stream: close ends every connection");
    close(c1);
    close(c2);
    uv_run(loop, UV_RUN_NOWAIT);

    /* The connection limit. */
    memset(&g, 0, sizeof g);
    d = open_ok(loop, &o, on_dgrams, &g);
    int fds[DGRAM_STREAM_MAX_CONNS + 1];
    int opened = 0;
    for (uint32_t i = 0; i <= DGRAM_STREAM_MAX_CONNS; i++) {
        fds[i] = stream_client(path);
        if (fds[i] >= 0)
            opened++;
        if (i % 32 == 31)
            run_for(loop, 5);
    }
    run_for(loop, 50);
    dgram_stats(d, &ds);
    IS_INT(opened, DGRAM_STREAM_MAX_CONNS + 1, "stream: clients beyond the limit connect...");
    IS_UINT(ds.connections, DGRAM_STREAM_MAX_CONNS, "  but only the limit stays open");
    IS_UINT(ds.connections_refused, 1, "  and the one beyond is counted");
    OK(peer_closed(loop, fds[DGRAM_STREAM_MAX_CONNS], 1000), "  and closed");
    len = 0;
    frame(buf, &len, "still:1|c", 9);
    send_all(fds[0], buf, len);
    run_until(loop, &g.n, 1, 2000);
    IS_INT(g.n, 1, "stream: the connections kept still work");
    for (uint32_t i = 0; i <= DGRAM_STREAM_MAX_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    dgram_close(d);
    uv_run(loop, UV_RUN_NOWAIT);

    struct dgram_opts none = {.address = address};
    IS_INT(dgram_open(NULL, &(struct dgram_opts){.address = address, .own_thread = 1}, on_dgrams,
                      &g, &d2, err, sizeof err),
           RMR_EINVAL, "stream: refused without a loop");
    (void)none;
    rmdir(dir);
}

/* Own-thread mode: counters shared between the reader, the sender and the test. */
struct tsink {
    uint64_t packets;
    uint64_t sum;
    uint64_t bad;
    uint64_t out_of_order;
    uint64_t next;
    uint64_t calls;
    uint64_t max_count;
    int closed; /* set after dgram_close() returned */
    uint64_t after_close;
};

static uint64_t atomic_get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

#define PAYLOAD 64

static void fill_payload(unsigned char *buf, uint64_t seq)
{
    memcpy(buf, &seq, sizeof seq);
    for (int j = 8; j < PAYLOAD; j++)
        buf[j] = (unsigned char)(seq * 31 + (uint64_t)j);
}

static void on_thread_dgrams(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct tsink *t = arg;
    if (__atomic_load_n(&t->closed, __ATOMIC_ACQUIRE))
        __atomic_add_fetch(&t->after_close, 1, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < count; i++) {
        unsigned char want[PAYLOAD];
        uint64_t seq = 0;
        if (msgs[i].len == PAYLOAD) {
            memcpy(&seq, msgs[i].data, sizeof seq);
            fill_payload(want, seq);
        }
        if (msgs[i].len != PAYLOAD || memcmp(want, msgs[i].data, PAYLOAD) != 0) {
            t->bad++;
            continue;
        }
        if (seq != t->next)
            t->out_of_order++;
        t->next = seq + 1;
        t->sum += seq;
    }
    if (count > t->max_count)
        t->max_count = count;
    __atomic_add_fetch(&t->calls, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&t->packets, count, __ATOMIC_RELEASE);
}

struct sender {
    const char *address;
    struct tsink *sink;
    uint64_t total;  /* 0: until stop */
    uint64_t window; /* at most this many unread in flight; 0: no pacing */
    int stop;
    uint64_t sent;
};

static void *sender_main(void *p)
{
    struct sender *s = p;
    int fd = client_for(s->address, 0);
    if (fd < 0)
        return NULL;
    unsigned char buf[PAYLOAD];
    for (uint64_t seq = 0; s->total == 0 || seq < s->total; seq++) {
        if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
            break;
        while (s->window > 0 && seq - atomic_get(&s->sink->packets) >= s->window)
            sched_yield();
        fill_payload(buf, seq);
        if (send(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf)
            __atomic_add_fetch(&s->sent, 1, __ATOMIC_RELEASE);
    }
    close(fd);
    return NULL;
}

static int wait_for(const uint64_t *counter, uint64_t want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (atomic_get(counter) < want && now_ms() < end)
        sleep_ms(1);
    return atomic_get(counter) >= want;
}

static void own_thread(uv_loop_t *loop)
{
    static struct tsink t;
    memset(&t, 0, sizeof t);
    struct dgram_opts o = {.address = "udp://127.0.0.1:0",
                           .rcvbuf_bytes = 4u << 20,
                           .max_datagram = 1500,
                           .batch = 64,
                           .own_thread = 1};
    struct dgram *d = open_ok(loop, &o, on_thread_dgrams, &t);
    OK(d != NULL, "thread: opens");
    if (d == NULL)
        return;
    struct dgram_stats st;
    dgram_stats(d, &st);
    /* Pacing keeps what is in flight within the buffer the kernel granted. */
    uint64_t window = st.rcvbuf_granted / 4096;
    window = window < 32 ? 32 : window > 4096 ? 4096 : window;
    const uint64_t total = 100000;
    struct sender s = {.address = dgram_address(d), .sink = &t, .total = total, .window = window};
    pthread_t th;
    pthread_create(&th, NULL, sender_main, &s);
    wait_for(&t.packets, total, 30000);
    pthread_join(th, NULL);
    dgram_stats(d, &st);
    IS_UINT(s.sent, total, "thread: 100000 datagrams sent");
    IS_UINT(atomic_get(&t.packets), total, "thread: 100000 received, none lost");
    IS_UINT(t.sum, total * (total - 1) / 2, "thread: checksum of sequence numbers matches");
    IS_UINT(t.bad, 0, "thread: every payload intact");
    IS_UINT(t.out_of_order, 0, "thread: in order");
    IS_UINT(st.packets, total, "thread: stats count them");
    IS_UINT(st.bytes, total * PAYLOAD, "thread: and their bytes");
    IS_UINT(st.kernel_drops, 0, "thread: the kernel dropped none");
    printf("# window %llu, %llu callbacks, largest array %llu, %llu recv calls\n",
           (unsigned long long)window, (unsigned long long)t.calls, (unsigned long long)t.max_count,
           (unsigned long long)st.recv_calls);

    /* Right after a high rate, when the reader may linger, a lone datagram still comes at
     * once (within a millisecond or so; 50 ms leaves room for a loaded machine). */
    int fd = client_for(dgram_address(d), 0);
    unsigned char buf[PAYLOAD];
    uint64_t before = atomic_get(&t.packets);
    fill_payload(buf, total);
    uint64_t t0 = now_ms();
    send(fd, buf, sizeof buf, 0);
    wait_for(&t.packets, before + 1, 2000);
    uint64_t took = now_ms() - t0;
    OK(took < 50 && atomic_get(&t.packets) == before + 1, "thread: a lone datagram comes promptly");
    printf("#   took %llu ms\n", (unsigned long long)took);

    /* Paused: nothing is read; resumed: the kernel's queue arrives, in one array. */
    dgram_pause(d);
    before = atomic_get(&t.packets);
    for (uint64_t seq = total + 1; seq < total + 11; seq++) {
        fill_payload(buf, seq);
        send(fd, buf, sizeof buf, 0);
    }
    sleep_ms(50);
    IS_UINT(atomic_get(&t.packets), before, "thread pause: nothing delivered while paused");
    uint64_t calls = atomic_get(&t.calls);
    t.max_count = 0;
    dgram_resume(d);
    wait_for(&t.packets, before + 10, 2000);
    IS_UINT(atomic_get(&t.packets), before + 10, "thread resume: the queued ten arrive");
    IS_UINT(atomic_get(&t.calls), calls + 1, "  in one callback");
    OK(t.bad == 0 && t.out_of_order == 0, "  intact and in order");
    close(fd);

    /* Close while idle: the reader sleeps in poll() and must wake at once. */
    t0 = now_ms();
    dgram_close(d);
    took = now_ms() - t0;
    OK(took < 100, "thread: close of an idle reader is prompt");
    printf("#   took %llu ms\n", (unsigned long long)took);
    (void)loop;
}

/* pause_nowait: the loop may hold a lock the reader's callback is waiting for (an input that
 * flushes its aggregates under that lock and emits; the emit pauses inputs for back-pressure).
 * Pausing must not wait for the reader then. */
struct gated {
    pthread_mutex_t gate;
    int entered;
    uint64_t packets;
};

static void on_gated(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct gated *g = arg;
    (void)msgs;
    __atomic_store_n(&g->entered, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&g->gate);
    __atomic_add_fetch(&g->packets, count, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g->gate);
}

static void *pause_main(void *p)
{
    dgram_pause_nowait(p);
    return NULL;
}

static void own_thread_pause_nowait(void)
{
    static struct gated g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.gate, NULL);
    struct dgram_opts o = {.address = "udp://127.0.0.1:0", .own_thread = 1};
    struct dgram *d = open_ok(NULL, &o, on_gated, &g);
    OK(d != NULL, "pause_nowait: opens");
    if (d == NULL)
        return;
    int fd = client_for(dgram_address(d), 0);
    pthread_mutex_lock(&g.gate); /* the "loop" holds the lock */
    send_str(fd, "one");
    uint64_t end = now_ms() + 2000;
    while (!__atomic_load_n(&g.entered, __ATOMIC_ACQUIRE) && now_ms() < end)
        sleep_ms(1);
    OK(g.entered, "pause_nowait: the reader's callback waits for the lock");
    pthread_t th;
    pthread_create(&th, NULL, pause_main, d);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    int joined = pthread_timedjoin_np(th, NULL, &deadline) == 0;
    OK(joined, "pause_nowait: returns while the callback still waits (no deadlock)");
    pthread_mutex_unlock(&g.gate);
    if (!joined)
        pthread_join(th, NULL);
    wait_for(&g.packets, 1, 2000);
    IS_UINT(atomic_get(&g.packets), 1, "pause_nowait: the batch in hand completes");
    sleep_ms(20); /* the reader parks */
    send_str(fd, "two");
    sleep_ms(50);
    IS_UINT(atomic_get(&g.packets), 1, "pause_nowait: then nothing is read while paused");
    dgram_resume(d);
    wait_for(&g.packets, 2, 2000);
    IS_UINT(atomic_get(&g.packets), 2, "pause_nowait: resumed, it arrives");
    close(fd);
    dgram_close(d);
    pthread_mutex_destroy(&g.gate);
}

static void own_thread_close_under_load(void)
{
    static struct tsink t;
    memset(&t, 0, sizeof t);
    struct dgram_opts o = {.address = "udp://127.0.0.1:0", .batch = 16, .own_thread = 1};
    struct dgram *d = open_ok(NULL, &o, on_thread_dgrams, &t);
    OK(d != NULL, "thread: opens without a loop");
    if (d == NULL)
        return;
    char address[64];
    snprintf(address, sizeof address, "%s", dgram_address(d));
    struct sender s = {.address = address, .sink = &t};
    pthread_t th;
    pthread_create(&th, NULL, sender_main, &s);
    wait_for(&t.packets, 1000, 2000);
    sleep_ms(50);
    uint64_t t0 = now_ms();
    dgram_close(d);
    __atomic_store_n(&t.closed, 1, __ATOMIC_RELEASE);
    uint64_t took = now_ms() - t0;
    uint64_t calls = atomic_get(&t.calls);
    sleep_ms(50); /* the sender keeps sending to the closed port */
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    OK(took < 100, "thread: close under load joins within 100 ms");
    printf("#   took %llu ms after %llu datagrams\n", (unsigned long long)took,
           (unsigned long long)atomic_get(&t.packets));
    IS_UINT(atomic_get(&t.after_close), 0, "thread: no callback after close returned");
    IS_UINT(atomic_get(&t.calls), calls, "  nor later");

    /* Close while paused. */
    memset(&t, 0, sizeof t);
    d = open_ok(NULL, &o, on_thread_dgrams, &t);
    if (d == NULL)
        return;
    dgram_pause(d);
    t0 = now_ms();
    dgram_close(d);
    OK(now_ms() - t0 < 100, "thread: close of a paused reader is prompt");
}

static void kernel_drops(uv_loop_t *loop)
{
    for (int own = 0; own <= 1; own++) {
        static struct got g;
        static struct tsink t;
        memset(&g, 0, sizeof g);
        memset(&t, 0, sizeof t);
        struct dgram_opts o = {.address = "udp://127.0.0.1:0",
                               .rcvbuf_bytes = 4096,
                               .max_datagram = 1024,
                               .own_thread = own};
        struct dgram *d =
            own ? open_ok(NULL, &o, on_thread_dgrams, &t) : open_ok(loop, &o, on_dgrams, &g);
        if (d == NULL) {
            OK(0, "drops: opens");
            continue;
        }
        struct dgram_stats st;
        dgram_stats(d, &st);
        IS_UINT(st.rcvbuf_granted, 8192,
                own ? "thread drops: 4096 asked, 8192 as getsockopt says"
                    : "drops: 4096 asked, 8192 as getsockopt says");
        IS_INT(dgram_rcvbuf_capped(d), 0, "  not capped");
        dgram_pause(d);
        int fd = client_for(dgram_address(d), 0);
        const int total = 2000;
        unsigned char buf[PAYLOAD];
        for (int i = 0; i < total; i++) {
            fill_payload(buf, (uint64_t)i);
            send(fd, buf, sizeof buf, 0);
        }
        dgram_stats(d, &st);
        OK(st.kernel_drops > 0, own ? "thread drops: overflowing a paused 4 KiB buffer is counted"
                                    : "drops: overflowing a paused 4 KiB buffer is counted");
        printf("#   %llu of %d dropped\n", (unsigned long long)st.kernel_drops, total);
        dgram_resume(d);
        uint64_t want = (uint64_t)total - st.kernel_drops;
        if (own) {
            wait_for(&t.packets, want, 2000);
            sleep_ms(20);
        } else {
            run_until(loop, &g.n, (int)want, 2000);
            run_for(loop, 20);
        }
        struct dgram_stats after;
        dgram_stats(d, &after);
        IS_UINT(after.packets + after.kernel_drops, total, "  received + dropped == sent");
        IS_UINT(after.kernel_drops, st.kernel_drops, "  and the count holds still");
        close(fd);
        dgram_close(d);
    }
    uv_run(loop, UV_RUN_NOWAIT);
}

/* The /proc parser: a table of lines, then the real table against SO_MEMINFO. */
static void proc_parser(void)
{
    static const struct {
        const char *line;
        size_t trim; /* bytes cut off the end: the parser never reads past len */
        uint64_t inode;
        int rc;
        uint64_t drops;
    } cases[] = {
        {"  1234: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0    "
         "    0 424242 2 ffff8880085e1a40 17",
         0, 424242, 0, 17},
        {"  1234: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0    "
         "    0 424242 2 ffff8880085e1a40 17\n",
         0, 424242, 0, 17},
        {"\t1:\t0:0\t0:0\t07\t0:0\t0:0\t0\t0\t0\t99\t2\tffff\t0", 0, 99, 0, 0},
        {"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
         "timeout inode ref pointer drops",
         0, 0, RMR_ENOENT, 0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424243 2 ffff 17", 0, 424242, RMR_ENOENT, 0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff 17 5", 0, 424242, 0, 5},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff 170", 1, 424242, 0, 17},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff", 0, 424242, RMR_EINVAL, 0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff x7", 0, 424242, RMR_EINVAL, 0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff -1", 0, 424242, RMR_EINVAL, 0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 424242 2 ffff 99999999999999999999", 0, 424242, RMR_EINVAL,
         0},
        {"  1: 0:0 0:0 07 0:0 0:0 0 0 0 4242x2 2 ffff 1", 0, 424242, RMR_ENOENT, 0},
        {"", 0, 1, RMR_EINVAL, 0},
        {"\n\n\n", 0, 1, RMR_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t drops = 12345;
        size_t len = strlen(cases[i].line) - cases[i].trim;
        char name[64];
        snprintf(name, sizeof name, "proc line %zu: result", i);
        IS_INT(dgram_proc_drops_line(cases[i].line, len, cases[i].inode, &drops), cases[i].rc,
               name);
        IS_UINT(drops, cases[i].rc == 0 ? cases[i].drops : 12345, "  drops as expected");
    }
    const char table[] = "   sl  local_address ... drops\n"
                         "  1: 0:0 0:0 07 0:0 0:0 0 0 0 11 2 ffff 3\n"
                         "  2: 0:0 0:0 07 0:0 0:0 0 0 0 22 2 ffff 4";
    uint64_t drops = 0;
    OK(dgram_proc_drops(table, sizeof table - 1, 22, &drops) == 0 && drops == 4,
       "proc table: the last line, with no newline");
    IS_INT(dgram_proc_drops(table, sizeof table - 1, 33, &drops), RMR_ENOENT,
           "proc table: no such inode");

    /* A real socket overflowed: /proc agrees with SO_MEMINFO. */
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    int small = 4096;
    setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof lo;
    bind(rx, (struct sockaddr *)&lo, sizeof lo);
    getsockname(rx, (struct sockaddr *)&lo, &len);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    connect(tx, (struct sockaddr *)&lo, sizeof lo);
    char buf[512] = {0};
    for (int i = 0; i < 200; i++)
        send(tx, buf, sizeof buf, 0);
    uint32_t mem[SK_MEMINFO_VARS] = {0};
    socklen_t mlen = sizeof mem;
    getsockopt(rx, SOL_SOCKET, SO_MEMINFO, mem, &mlen);
    struct stat st;
    fstat(rx, &st);
    static char text[1 << 20];
    int pf = open("/proc/net/udp", O_RDONLY);
    size_t have = 0;
    ssize_t n;
    while (pf >= 0 && have < sizeof text && (n = read(pf, text + have, sizeof text - have)) > 0)
        have += (size_t)n;
    if (pf >= 0)
        close(pf);
    drops = 0;
    IS_INT(dgram_proc_drops(text, have, (uint64_t)st.st_ino, &drops), 0,
           "proc: the socket's line is found by inode");
    OK(drops > 0 && drops == mem[SK_MEMINFO_DROPS], "proc: its drops equal SO_MEMINFO's");
    printf("#   %llu and %u\n", (unsigned long long)drops, mem[SK_MEMINFO_DROPS]);
    close(tx);
    close(rx);
}

/* Receive buffers beyond net.core.rmem_max. */
static char captured[8192];

struct big_open {
    uint64_t ask;
    int drop_cap;
    int rc;
    int capped;
    uint64_t granted;
};

static void noop_cb(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
}

/* Capabilities are per thread: dropping CAP_NET_ADMIN here leaves the rest of the test as it
 * was. */
static void *big_open_main(void *p)
{
    struct big_open *b = p;
    if (b->drop_cap) {
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        syscall(SYS_capget, &hdr, data);
        data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
        if (syscall(SYS_capset, &hdr, data) != 0)
            printf("# capset: %s\n", strerror(errno));
    }
    struct dgram_opts o = {.address = "udp://127.0.0.1:0", .rcvbuf_bytes = b->ask, .own_thread = 1};
    struct dgram *d = NULL;
    char err[256];
    b->rc = dgram_open(NULL, &o, noop_cb, NULL, &d, err, sizeof err);
    if (d != NULL) {
        struct dgram_stats st;
        dgram_stats(d, &st);
        b->capped = dgram_rcvbuf_capped(d);
        b->granted = st.rcvbuf_granted;
        dgram_close(d);
    }
    return NULL;
}

static const char *run_captured(struct big_open *b)
{
    char path[] = "/tmp/remora-dgram-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    pthread_t th;
    pthread_create(&th, NULL, big_open_main, b);
    pthread_join(th, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, captured, sizeof captured - 1);
    captured[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return captured;
}

static void rcvbuf_caps(void)
{
    uint64_t rmem_max = read_sysctl("/proc/sys/net/core/rmem_max");
    if (rmem_max == 0 || rmem_max > (64u << 20)) {
        OK(1, "rcvbuf beyond rmem_max # SKIP rmem_max unreadable or above 64 MiB");
        return;
    }
    log_configure(RMR_LOG_INFO, 0, 0);
    struct big_open b = {.ask = rmem_max * 4};
    const char *out = run_captured(&b);
    IS_INT(b.rc, 0, "rcvbuf: asking 4 x rmem_max opens");
    char want[64];
    snprintf(want, sizeof want, "%llu were asked for", (unsigned long long)b.ask);
    if (b.capped) {
        IS_UINT(b.granted, rmem_max * 2, "rcvbuf: capped at rmem_max (getsockopt doubles it)");
        CONTAINS(out, "net.core.rmem_max", "rcvbuf: the warning names the sysctl");
        CONTAINS(out, want, "  and the bytes asked for");
    } else {
        IS_UINT(b.granted, b.ask * 2, "rcvbuf: granted in full (SO_RCVBUFFORCE as root)");
        OK(strstr(out, "rmem_max") == NULL, "  without a warning");
    }

    struct big_open nocap = {.ask = rmem_max * 4, .drop_cap = 1};
    out = run_captured(&nocap);
    IS_INT(nocap.rc, 0, "rcvbuf without CAP_NET_ADMIN: opens");
    IS_INT(nocap.capped, 1, "rcvbuf without CAP_NET_ADMIN: capped");
    IS_UINT(nocap.granted, rmem_max * 2, "  at rmem_max, which getsockopt reports doubled");
    CONTAINS(out, " warn  core.dgram: receive buffer of 'udp://127.0.0.1:",
             "  a warning names the listener");
    char sentence[256];
    snprintf(sentence, sizeof sentence,
             "is %llu bytes, %llu were asked for: datagrams may be dropped in bursts; raise the "
             "limit with 'sysctl -w net.core.rmem_max=%llu' (or run with CAP_NET_ADMIN)",
             (unsigned long long)rmem_max, (unsigned long long)nocap.ask,
             (unsigned long long)nocap.ask);
    CONTAINS(out, sentence, "  the bytes granted and asked for, and the sysctl");
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    log_configure(RMR_LOG_WARN, 0, 0);

    bad_addresses(&loop);
    udp_loop(&loop);
    udp_batches(&loop);
    udp_v6_and_names(&loop);
    unix_sockets(&loop);
    frame_table();
    stream_sockets(&loop);
    own_thread(&loop);
    own_thread_close_under_load();
    own_thread_pause_nowait();
    kernel_drops(&loop);
    proc_parser();
    rcvbuf_caps();

    uv_run(&loop, UV_RUN_NOWAIT);
    IS_INT(uv_loop_close(&loop), 0, "every handle is closed: the loop closes");
    return tap_done();
}
