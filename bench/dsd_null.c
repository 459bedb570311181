/* dsd_null: the floor for bench/dogstatsd.py. A receiver that does nothing but count: one UDP
 * socket on loopback with the kernel's default receive buffer (or --rcvbuf), one thread
 * blocked in recvmmsg() taking up to 64 datagrams a call, counting datagrams and the metrics in
 * them (lines; a blocking call, like remora's reader thread), and writing the counts to --out every
 * 100 ms as JSON
 * {"datagrams":N,"metrics":M}. No parsing, no aggregation, no allocation. What it loses at a
 * given rate is what the machine loses (scheduling of the receiving core, the socket buffer),
 * not what a DogStatsD server's work costs.
 *
 *   build/bench/dsd_null --port 8125 --out /tmp/counts.json [--rcvbuf BYTES] */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLOT  8192

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void write_counts(const char *out, unsigned long long dgrams, unsigned long long metrics)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "{\"datagrams\":%llu,\"metrics\":%llu}\n", dgrams, metrics);
    fclose(f);
    rename(tmp, out);
}

int main(int argc, char **argv)
{
    int port = 0, rcvbuf = 0;
    const char *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--rcvbuf") == 0)
            rcvbuf = atoi(argv[i + 1]);
    }
    if (port <= 0 || port > 65535 || out == NULL) {
        fprintf(stderr, "usage: dsd_null --port PORT --out FILE [--rcvbuf BYTES]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf)) ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("dsd_null");
        return 1;
    }
    /* recvmmsg blocks for the first datagram at most 100 ms, so the counts stay fresh. */
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    static char area[BATCH][SLOT];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){area[i], SLOT};
        msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
    }
    unsigned long long dgrams = 0, metrics = 0;
    struct timespec last = {0, 0};
    write_counts(out, 0, 0);
    while (!stop) {
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        for (int i = 0; i < n; i++) {
            const char *d = area[i];
            unsigned int len = msgs[i].msg_len, lines = len > 0;
            for (unsigned int k = 0; k + 1 < len; k++)
                lines += d[k] == '\n';
            dgrams++;
            metrics += lines;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            perror("dsd_null: recvmmsg");
            return 1;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) > 100000000L) {
            write_counts(out, dgrams, metrics);
            last = now;
        }
    }
    write_counts(out, dgrams, metrics);
    return 0;
}
