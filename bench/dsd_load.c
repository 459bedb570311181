/* dsd_load: a DogStatsD load generator for loopback benchmarks. It builds a ring of datagrams
 * up front (DogStatsD lines over NAMES x TAG_SETS contexts, each name with one metric type
 * drawn from the mix, values varying), then sends the ring round and round with sendmmsg() at a
 * paced rate in metrics per second (a token bucket: a batch leaves when it is due; the sender
 * sleeps with clock_nanosleep and spins the last stretch), until the count or the duration
 * bound is reached. It prints one JSON line of what it sent, and nothing else on stdout.
 *
 *   build/bench/dsd_load --target udp://127.0.0.1:8125                      # packed, 1.2M/s, 10 s
 *   build/bench/dsd_load --target udp://127.0.0.1:8125 --rate 2400000 --cpu 0
 *   build/bench/dsd_load --target udp://127.0.0.1:8125 --per-packet 1 --rate 150000
 *   build/bench/dsd_load --target udp://127.0.0.1:8125 --names 100 --tag-sets 5 \
 *       --mix c=1,g=1,h=1,ms=1,s=1,d=1 --count 1000000 --rate 0
 *
 * --per-packet 0 (the default) packs as many lines as fit in --max-bytes (1432: datadog-go's
 * OptimalUDPPayloadSize), about 24; --per-packet N puts at most N lines in a datagram. --rate 0
 * sends as fast as it can. Only loopback targets are accepted (127.0.0.0/8, [::1]). --plain sends
 * plain statsd for servers without DogStatsD extensions (collectd): no "|#" tags (the tag set is
 * folded into the name, so the contexts stay NAMES x TAG_SETS), "h" and "d" sent as "ms".
 * Counters always send 1 (a client's Increment), so a server's counter sums count them.
 *
 * On loopback the kernel's receive path (softirq, copy into the receiver's socket buffer) runs
 * in the sending thread, so the sender's CPU includes it; pin the sender (--cpu) away from the
 * receiver. A datagram the kernel refuses at send (ENOBUFS, EAGAIN) is counted in send_errors
 * and not in datagrams: the receiver's socket drops are the receiver's to count.
 *
 * A sender that falls behind (its core also runs the loopback softirq, or ksoftirqd; a VM's
 * timer wakes late) catches up by sending its due batches back to back, up to --catchup-ms
 * (1) of lateness; beyond that the schedule moves on (forgiven_ms, and a lower metrics_per_s),
 * so a stall of the sender does not become a burst that overflows the receiver's buffer: the
 * kernel's default buffer (212992 bytes) holds 256 one-metric datagrams or 92 packed ones,
 * 1.7 ms at 150k datagrams/s. late_batches counts batches that left over 1 ms late. */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

enum { T_COUNT, T_GAUGE, T_HIST, T_TIMING, T_SET, T_DIST, T_N };
static const char *const type_code[T_N] = {"c", "g", "h", "ms", "s", "d"};
static const char *const type_json[T_N] = {"count",  "gauge", "histogram",
                                           "timing", "set",   "distribution"};

struct opts {
    const char *target;
    uint32_t per_packet; /* 0: pack up to max_bytes */
    uint32_t max_bytes;
    uint32_t names;
    uint32_t tag_sets;
    double mix[T_N];
    double rate; /* metrics per second; 0: flat out */
    uint64_t count;
    double duration;
    int cpu;
    uint32_t batch;
    int sndbuf;
    uint64_t seed;
    double catchup_ms;
    int plain; /* plain statsd: no tags (the tag set goes into the name), h and d sent as ms */
};

struct ring {
    char *buf;
    size_t buf_len;
    uint32_t *off; /* datagram i: buf[off[i], off[i + 1]) */
    uint16_t *metrics;
    uint16_t (*types)[T_N];
    uint32_t n;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: dsd_load --target udp://127.0.0.1:PORT [--per-packet N (0: pack)] "
            "[--max-bytes B] [--names N] [--tag-sets M] [--mix c=W,g=W,h=W,ms=W,s=W,d=W] "
            "[--rate METRICS_PER_S (0: flat out)] [--count METRICS] [--duration S] [--cpu N] "
            "[--batch DATAGRAMS] [--catchup-ms MS] [--sndbuf BYTES] [--seed N] [--plain]\n");
    exit(2);
}

static int parse_mix(const char *s, double *mix)
{
    for (int t = 0; t < T_N; t++)
        mix[t] = 0;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            return -1;
        *eq = 0;
        int t = 0;
        while (t < T_N && strcmp(type_code[t], tok) != 0)
            t++;
        char *end;
        double w = strtod(eq + 1, &end);
        if (t == T_N || *end != 0 || w < 0)
            return -1;
        mix[t] = w;
    }
    double sum = 0;
    for (int t = 0; t < T_N; t++)
        sum += mix[t];
    return sum > 0 ? 0 : -1;
}

/* udp://127.x.x.x:PORT or udp://[::1]:PORT; anything else is refused. */
static int open_target(const char *target, int sndbuf)
{
    if (strncmp(target, "udp://", 6) != 0)
        return -1;
    const char *h = target + 6;
    char host[64];
    const char *colon;
    if (*h == '[') {
        const char *rb = strchr(h, ']');
        if (rb == NULL || rb[1] != ':' || (size_t)(rb - h - 1) >= sizeof host)
            return -1;
        memcpy(host, h + 1, (size_t)(rb - h - 1));
        host[rb - h - 1] = 0;
        colon = rb + 1;
    } else {
        colon = strrchr(h, ':');
        if (colon == NULL || (size_t)(colon - h) >= sizeof host)
            return -1;
        memcpy(host, h, (size_t)(colon - h));
        host[colon - h] = 0;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != 0 || port <= 0 || port > 65535)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
            return -1;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        sl = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return -1;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
    } else {
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One DogStatsD line for context ctx, as datadog-go formats it. */
static int format_line(char *out, size_t cap, uint32_t name, uint32_t tag_set, int type, int plain,
                       uint64_t *seed)
{
    uint64_t r = rnd(seed);
    char value[48];
    switch (type) {
    case T_COUNT: snprintf(value, sizeof value, "1"); break; /* Increment(), as most apps */
    case T_GAUGE:
        snprintf(value, sizeof value, "%u.%02u", (unsigned)(r % 10000), (unsigned)(r >> 32) % 100);
        break;
    case T_TIMING:
        snprintf(value, sizeof value, "%u.%06u", (unsigned)(r % 500),
                 (unsigned)((r >> 32) % 1000000));
        break;
    case T_HIST:
    case T_DIST:
        snprintf(value, sizeof value, "%u.%u", (unsigned)(r % 2000), (unsigned)(r >> 40) % 10);
        break;
    case T_SET: snprintf(value, sizeof value, "user%u", (unsigned)(r % 200)); break;
    default: value[0] = 0; break;
    }
    /* Names like an application's (a few namespaces), tags like a service's: the tag-set index
     * varies the last tag, so every (name, tag set) pair is its own context. */
    static const char *const ns[] = {"web.request", "db.query", "cache", "queue.jobs", "rpc"};
    if (plain)
        return snprintf(out, cap, "app.%s.m%04u.p%03u:%s|%s\n", ns[name % 5], name, tag_set, value,
                        type_code[type]);
    return snprintf(out, cap, "app.%s.m%04u:%s|%s|#env:prod,service:api,pod:p%03u\n", ns[name % 5],
                    name, value, type_code[type], tag_set);
}

static int build_ring(const struct opts *o, struct ring *rg)
{
    uint64_t contexts = (uint64_t)o->names * o->tag_sets;
    /* Three passes over the contexts (each in its own shuffled order), at least 64k lines. */
    uint64_t lines = contexts * 3;
    if (lines < 65536)
        lines = (65536 + contexts - 1) / contexts * contexts;
    int *name_type = malloc(sizeof(int) * o->names);
    uint32_t *perm = malloc(sizeof(uint32_t) * contexts);
    size_t cap = (size_t)lines * 128 + 4096;
    rg->buf = malloc(cap);
    rg->off = malloc(sizeof(uint32_t) * (lines + 1));
    rg->metrics = malloc(sizeof(uint16_t) * lines);
    rg->types = malloc(sizeof(*rg->types) * lines);
    if (name_type == NULL || perm == NULL || rg->buf == NULL || rg->off == NULL ||
        rg->metrics == NULL || rg->types == NULL)
        return -1;
    /* Each name has one type; the mix is the share of names of each type, spread evenly. */
    double sum = 0, cum[T_N];
    for (int t = 0; t < T_N; t++)
        sum += o->mix[t], cum[t] = sum;
    for (uint32_t i = 0; i < o->names; i++) {
        /* Van der Corput order, so any prefix of the names has about the mix. */
        uint32_t x = i, rev = 0;
        for (int b = 0; b < 32; b++)
            rev = (rev << 1) | (x & 1), x >>= 1;
        double u = (double)rev / 4294967296.0 * sum;
        int t = 0;
        while (t < T_N - 1 && (u >= cum[t] || o->mix[t] == 0))
            t++;
        if (o->plain && (t == T_HIST || t == T_DIST))
            t = T_TIMING;
        name_type[i] = t;
    }
    for (uint64_t c = 0; c < contexts; c++)
        perm[c] = (uint32_t)c;
    uint64_t seed = o->seed ? o->seed : 0x9e3779b97f4a7c15ull;
    size_t len = 0;
    uint32_t n = 0, in_dgram = 0;
    rg->off[0] = 0;
    memset(rg->types, 0, sizeof(*rg->types) * lines);
    memset(rg->metrics, 0, sizeof(uint16_t) * lines);
    for (uint64_t k = 0; k < lines; k++) {
        if (k % contexts == 0) {
            for (uint64_t c = contexts - 1; c > 0; c--) {
                uint64_t j = rnd(&seed) % (c + 1);
                uint32_t tmp = perm[c];
                perm[c] = perm[j], perm[j] = tmp;
            }
        }
        uint32_t ctx = perm[k % contexts];
        uint32_t name = ctx % o->names, ts = ctx / o->names;
        char line[256];
        int l = format_line(line, sizeof line, name, ts, name_type[name], o->plain, &seed);
        int full = in_dgram > 0 && ((o->per_packet > 0 && in_dgram >= o->per_packet) ||
                                    len - rg->off[n] + (size_t)l > o->max_bytes);
        if (full) {
            n++;
            rg->off[n] = (uint32_t)len;
            in_dgram = 0;
        }
        memcpy(rg->buf + len, line, (size_t)l);
        len += (size_t)l;
        in_dgram++;
        rg->metrics[n]++;
        rg->types[n][name_type[name]]++;
    }
    n++;
    rg->off[n] = (uint32_t)len;
    rg->n = n;
    rg->buf_len = len;
    free(name_type);
    free(perm);
    return 0;
}

static void sleep_until(uint64_t t)
{
    /* Sleep to within 60 us of t, then spin: nanosleep alone overshoots by tens of us. */
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t)
            return;
        if (t - now > 60000) {
            uint64_t w = t - 50000;
            struct timespec ts = {(time_t)(w / 1000000000u), (long)(w % 1000000000u)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
}

int main(int argc, char **argv)
{
    struct opts o = {.max_bytes = 1432,
                     .names = 1000,
                     .tag_sets = 10,
                     .mix = {45, 35, 8, 7, 2, 3},
                     .rate = 1200000,
                     .duration = 10,
                     .cpu = -1,
                     .batch = 64,
                     .catchup_ms = 1};
    const char *mix_text = "c=45,g=35,h=8,ms=7,s=2,d=3";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--plain") == 0) {
            o.plain = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(a, "--target") == 0)
            o.target = v;
        else if (strcmp(a, "--per-packet") == 0)
            o.per_packet = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-bytes") == 0)
            o.max_bytes = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--names") == 0)
            o.names = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--tag-sets") == 0)
            o.tag_sets = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--mix") == 0) {
            if (parse_mix(v, o.mix) != 0)
                usage();
            mix_text = v;
        } else if (strcmp(a, "--rate") == 0)
            o.rate = strtod(v, NULL);
        else if (strcmp(a, "--count") == 0)
            o.count = strtoull(v, NULL, 10);
        else if (strcmp(a, "--duration") == 0)
            o.duration = strtod(v, NULL);
        else if (strcmp(a, "--cpu") == 0)
            o.cpu = atoi(v);
        else if (strcmp(a, "--batch") == 0)
            o.batch = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--sndbuf") == 0)
            o.sndbuf = atoi(v);
        else if (strcmp(a, "--catchup-ms") == 0)
            o.catchup_ms = strtod(v, NULL);
        else if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (o.target == NULL || o.names == 0 || o.tag_sets == 0 || o.batch == 0 || o.batch > 1024 ||
        o.max_bytes < 64 || o.max_bytes > 65000 || o.rate < 0 || !(o.duration > 0) ||
        o.duration > 3600 || (uint64_t)o.names * o.tag_sets > 1000000 || o.per_packet > 65535)
        usage();
    errno = 0;
    int fd = open_target(o.target, o.sndbuf);
    if (fd < 0) {
        fprintf(stderr, "dsd_load: %s: %s\n", o.target,
                errno ? strerror(errno)
                      : "not udp://127.x.x.x:PORT or udp://[::1]:PORT (loopback only)");
        return 2;
    }
    if (o.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            fprintf(stderr, "dsd_load: cannot pin to CPU %d: %s\n", o.cpu, strerror(errno));
            return 2;
        }
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct ring rg;
    if (build_ring(&o, &rg) != 0) {
        fprintf(stderr, "dsd_load: out of memory\n");
        return 2;
    }

    struct iovec *iov = calloc(o.batch, sizeof *iov);
    struct mmsghdr *hdr = calloc(o.batch, sizeof *hdr);
    if (iov == NULL || hdr == NULL)
        return 2;
    for (uint32_t i = 0; i < o.batch; i++) {
        hdr[i].msg_hdr.msg_iov = &iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t datagrams = 0, metrics = 0, bytes = 0, send_errors = 0, short_sends = 0;
    uint64_t by_type[T_N] = {0};
    uint64_t late_max_ns = 0, late_batches = 0, forgiven_ns = 0;
    uint64_t catchup_ns = (uint64_t)(o.catchup_ms * 1e6);
    uint32_t next = 0; /* the ring's next datagram */
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(o.duration * 1e9);
    int last_errno = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end || (o.count > 0 && metrics >= o.count))
            break;
        /* Fill a batch within the count bound; paced: send it once its last metric is due. */
        uint32_t k = 0;
        uint64_t m = 0;
        uint32_t at = next;
        while (k < o.batch) {
            uint32_t mm = rg.metrics[at];
            if (o.count > 0 && metrics + m + mm > o.count)
                break;
            /* At low rates a batch holds at most 2 ms of the schedule (and one datagram). */
            if (k > 0 && o.rate > 0 && (double)(m + mm) > o.rate * 0.002)
                break;
            iov[k].iov_base = rg.buf + rg.off[at];
            iov[k].iov_len = rg.off[at + 1] - rg.off[at];
            m += mm;
            k++;
            at = at + 1 == rg.n ? 0 : at + 1;
        }
        if (k == 0)
            break;
        if (o.rate > 0) {
            uint64_t due = start + forgiven_ns + (uint64_t)((double)(metrics + m) * 1e9 / o.rate);
            if (due > end)
                break;
            if (due > now) {
                sleep_until(due);
            } else {
                uint64_t late = now - due;
                late_max_ns = late > late_max_ns ? late : late_max_ns;
                late_batches += late > 1000000;
                /* Behind by more than --catchup-ms: the schedule moves on rather than burst. */
                if (late > catchup_ns)
                    forgiven_ns += late - catchup_ns;
            }
        }
        uint32_t done = 0;
        while (done < k) {
            int got = sendmmsg(fd, hdr + done, k - done, 0);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                /* ENOBUFS/EAGAIN/ECONNREFUSED (nobody listening): the head datagram is lost. */
                last_errno = errno;
                send_errors++;
                done++;
                continue;
            }
            if ((uint32_t)got < k - done)
                short_sends++;
            for (int j = 0; j < got; j++) {
                uint32_t d = next + done + (uint32_t)j;
                d %= rg.n;
                datagrams++;
                metrics += rg.metrics[d];
                bytes += rg.off[d + 1] - rg.off[d];
                for (int t = 0; t < T_N; t++)
                    by_type[t] += rg.types[d][t];
            }
            done += (uint32_t)got;
        }
        next = at;
    }
    uint64_t stop = now_ns();
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    close(fd);
    double elapsed = (double)(stop - start) / 1e9;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"target\":\"%s\",\"per_packet\":%u,\"max_bytes\":%u,\"names\":%u,\"tag_sets\":%u,"
           "\"contexts\":%" PRIu64 ",\"plain\":%s,\"mix\":\"%s\",\"rate_target\":%.0f,\"batch\":%u,"
           "\"ring_datagrams\":%u,\"datagrams\":%" PRIu64 ",\"metrics\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"metrics_per_datagram\":%.2f,",
           o.target, o.per_packet, o.max_bytes, o.names, o.tag_sets, (uint64_t)o.names * o.tag_sets,
           o.plain ? "true" : "false", mix_text, o.rate, o.batch, rg.n, datagrams, metrics, bytes,
           datagrams ? (double)metrics / (double)datagrams : 0.0);
    printf("\"by_type\":{");
    for (int t = 0; t < T_N; t++)
        printf("%s\"%s\":%" PRIu64, t ? "," : "", type_json[t], by_type[t]);
    printf("},\"elapsed_s\":%.4f,\"metrics_per_s\":%.0f,\"datagrams_per_s\":%.0f,"
           "\"send_errors\":%" PRIu64 ",\"last_errno\":%d,\"short_sends\":%" PRIu64
           ",\"late_batches\":%" PRIu64 ",\"late_max_us\":%.0f,\"forgiven_ms\":%.1f,"
           "\"sender_cpu_s\":%.3f,\"cpu\":%d}\n",
           elapsed, elapsed > 0 ? (double)metrics / elapsed : 0,
           elapsed > 0 ? (double)datagrams / elapsed : 0, send_errors, last_errno, short_sends,
           late_batches, (double)late_max_ns / 1e3, (double)forgiven_ns / 1e6, cpu, o.cpu);
    return 0;
}
