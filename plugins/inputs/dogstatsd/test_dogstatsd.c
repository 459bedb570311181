/* The dogstatsd input's glue against the fake host, with the real parser and aggregator:
 * the descriptor and its variables, config errors, the listeners it opens for each transport,
 * packets over UDP, a Unix datagram socket and a Unix stream socket into one aggregator,
 * buckets closed by the flush timer and the open one flushed by stop(), the "host:" override,
 * self-metrics as counter deltas, malformed input (counted by reason, logged once per reason
 * per 10 s with the message escaped), and datagrams cut at buffer_size.
 *
 * The fake wall clock starts at 2026-01-01T00:00:00Z, a bucket boundary: what is sent before
 * advancing lies in the bucket [T0, T0 + 10 s). The aggregation rules themselves (Datadog's
 * arithmetic, tags, sketches) are the hot path's tests (test_hotpath.c); here only enough of
 * them to see the glue hand every packet over and emit what comes back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0_NS       1767225600000000000LL /* 2026-01-01T00:00:00Z */
#define UDP_DEFAULT "udp://127.0.0.1:8125"
#define SOCK        "/run/test/dsd.socket"
#define STREAM      "/run/test/dsd.stream"

/* ---- helpers ------------------------------------------------------------------------------ */

static rmr_instance_t *make(struct rmr_fakehost *fh, const char *conf, char *err, size_t errlen)
{
    rmr_instance_t *ins = NULL;
    char local[256];
    if (err == NULL) {
        err = local;
        errlen = sizeof local;
    }
    int rc = rmr_fakehost_create(fh, rmr_plugin_describe(), conf, &ins, err, errlen);
    if (rc != 0 && err == local)
        printf("# create failed: %s (%s)\n", rmr_strerror(rc), err);
    return rc == 0 ? ins : NULL;
}

static rmr_instance_t *start(struct rmr_fakehost *fh, const char *conf)
{
    rmr_instance_t *ins = make(fh, conf, NULL, 0);
    if (ins != NULL && rmr_fakehost_start(fh, ins) != 0) {
        printf("# start failed\n");
        return NULL;
    }
    return ins;
}

static int send_to(struct rmr_fakehost *fh, const char *address, const char *text)
{
    struct rmr_dgram d = {text, (uint32_t)strlen(text), 0};
    int rc = rmr_fakehost_dgram_send(fh, address, &d, 1);
    if (rc != 0)
        printf("# send to %s: %s\n", address ? address : "(only)", rmr_strerror(rc));
    return rc;
}

static int str_eq(struct rmr_str s, const char *c)
{
    return strlen(c) == s.len && (s.len == 0 || memcmp(s.ptr, c, s.len) == 0);
}

static int has_tag(const struct rmr_tag *tags, uint32_t n, const char *key, const char *value)
{
    for (uint32_t i = 0; i < n; i++)
        if (str_eq(tags[i].key, key) && str_eq(tags[i].value, value))
            return 1;
    return 0;
}

/* How many metric records named name were emitted; *out is the last one. */
static int find_metric(struct rmr_fakehost *fh, const char *name, struct rmr_metric *out)
{
    int found = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++) {
            struct rmr_metric m;
            memset(&m, 0, sizeof m);
            m.struct_size = sizeof m;
            if (rmr_record_kind(batch, i) != RMR_REC_METRIC || rmr_metric_get(batch, i, &m) != 0 ||
                !str_eq(m.name, name))
                continue;
            found++;
            *out = m;
        }
    }
    return found;
}

static double metric_value(struct rmr_fakehost *fh, const char *name)
{
    struct rmr_metric m;
    return find_metric(fh, name, &m) == 1 ? m.value : NAN;
}

static uint32_t count_kind(struct rmr_fakehost *fh, uint32_t kind)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++)
            n += rmr_record_kind(batch, i) == kind;
    }
    return n;
}

/* The newest log line containing needle, or NULL. */
static const char *log_with(struct rmr_fakehost *fh, const char *needle)
{
    for (uint32_t i = rmr_fakehost_log_count(fh); i > 0; i--) {
        const char *l = rmr_fakehost_log(fh, i - 1);
        if (strstr(l, needle) != NULL)
            return l;
    }
    return NULL;
}

static uint32_t logs_with(struct rmr_fakehost *fh, const char *needle)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        n += strstr(rmr_fakehost_log(fh, i), needle) != NULL;
    return n;
}

static const char *last_log(struct rmr_fakehost *fh)
{
    uint32_t n = rmr_fakehost_log_count(fh);
    return n > 0 ? rmr_fakehost_log(fh, n - 1) : "";
}

/* ---- tests -------------------------------------------------------------------------------- */

static const struct rmr_option *option(const struct rmr_plugin *d, const char *name)
{
    for (const struct rmr_option *o = d->options; o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

static void test_descriptor(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "dogstatsd", "descriptor: named dogstatsd");
    IS_STR(d->aliases, "statsd", "descriptor: alias statsd (Datakit's input name)");
    IS_STR(d->enable_env, "DD_USE_DOGSTATSD,DD_DOGSTATSD_NON_LOCAL_TRAFFIC",
           "descriptor: DD_USE_DOGSTATSD or DD_DOGSTATSD_NON_LOCAL_TRAFFIC true turns it on");
    static const struct {
        const char *name, *env;
        int enables;
    } want[] = {
        {"use_dogstatsd", "DD_USE_DOGSTATSD", 0},
        {"port", "DD_DOGSTATSD_PORT", 1},
        {"non_local_traffic", "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", 0},
        {"address", NULL, 0},
        {"socket", "DD_DOGSTATSD_SOCKET", 1},
        {"stream_socket", "DD_DOGSTATSD_STREAM_SOCKET", 1},
        {"buffer_size", "DD_DOGSTATSD_BUFFER_SIZE", 0},
        {"so_rcvbuf", "DD_DOGSTATSD_SO_RCVBUF", 0},
        {"expiry_seconds", "DD_DOGSTATSD_EXPIRY_SECONDS", 0},
        {"histogram_aggregates", "DD_HISTOGRAM_AGGREGATES", 0},
        {"histogram_percentiles", "DD_HISTOGRAM_PERCENTILES", 0},
        {"counts_as_count", NULL, 0},
        {"origin_detection", "DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", 0},
        {"max_contexts", NULL, 0},
        {"flush_interval", NULL, 0},
        {"samples_memory", NULL, 0},
    };
    int all = 1;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct rmr_option *o = option(d, want[i].name);
        int ok = o != NULL &&
                 ((o->env == NULL && want[i].env == NULL) ||
                  (o->env != NULL && want[i].env != NULL && strcmp(o->env, want[i].env) == 0)) &&
                 !!(o->flags & RMR_OPT_ENABLES) == want[i].enables;
        if (!ok) {
            printf("# option %s: %s\n", want[i].name, o ? (o->env ? o->env : "(no env)") : "?");
            all = 0;
        }
    }
    OK(all, "descriptor: every option with Datadog's variable; port and the sockets enable");
}

static void test_config_errors(void)
{
    static const struct {
        const char *conf;
        const char *log; /* in the plugin's error line, or in err for the schema's */
    } cases[] = {
        {"histogram_aggregates = max p99",
         "invalid 'histogram_aggregates': 'p99' is not one of max, median, avg, count, min, sum"},
        {"histogram_percentiles = 0.5 95", "invalid 'histogram_percentiles': '95' is not a number "
                                           "between 0 and 1"},
        {"histogram_percentiles = 0", "'0' is not a number between 0 and 1"},
        {"histogram_percentiles = 1", "'1' is not a number between 0 and 1"},
        {"histogram_percentiles = 0.5x", "'0.5x' is not a number"},
        {"histogram_percentiles = nan", "'nan' is not a number"},
        {"histogram_percentiles = 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.91 0.92 0.93 0.94 0.95 "
         "0.96 0.97 0.98",
         "invalid 'histogram_percentiles': more than 16"},
        {"address = unix:///run/x.sock", "invalid 'address' 'unix:///run/x.sock': expected "
                                         "HOST:PORT"},
        {"address = 127.0.0.1", "invalid 'address' '127.0.0.1': expected HOST:PORT"},
        {"socket = tcp://x", "invalid 'socket' 'tcp://x': expected a file path"},
        {"stream_socket = /run/" /* 107 bytes is the most */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaa",
         "invalid 'stream_socket': the path is 108 bytes, longer than the 107 a Unix socket "
         "allows"},
        {"socket = /run/x.sock\nstream_socket = unixstream:///run/x.sock",
         "invalid 'stream_socket': '/run/x.sock' is also 'socket'"},
        {"port = 70000", "port"},
        {"buffer_size = 100", "buffer_size"},
        {"buffer_size = 2MiB", "buffer_size"},
        {"expiry_seconds = 5", "expiry_seconds"},
        {"flush_interval = 50ms", "flush_interval"},
        {"max_contexts = 0", "max_contexts"},
        {"so_rcvbuf = 2GiB", "so_rcvbuf"},
        {"samples_memory = 1KiB", "samples_memory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rmr_fakehost *fh = rmr_fakehost_new();
        char err[512] = "";
        rmr_instance_t *ins = make(fh, cases[i].conf, err, sizeof err);
        char name[160];
        snprintf(name, sizeof name, "config: refused: %.60s", cases[i].conf);
        for (char *c = name; *c != '\0'; c++)
            if (*c == '\n')
                *c = ';';
        OK(ins == NULL, name);
        const char *where = strstr(err, cases[i].log) != NULL ? err : last_log(fh);
        CONTAINS(where, cases[i].log, "  with a clear reason");
        rmr_fakehost_free(fh);
    }

    /* Lists take spaces or commas, repeat nothing, and "unix://" before a path is fine. */
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "histogram_aggregates = max, max min\n"
                                    "histogram_percentiles = 0.5,0.99\n"
                                    "socket = unix://" SOCK "\nport = 0\n");
    OK(ins != NULL, "config: lists with commas and spaces, a socket given as unix://PATH");
    IS_INT(rmr_fakehost_dgram_count(fh), 1, "  one listener: the socket (port 0: no UDP)");
    OK(rmr_fakehost_dgram_spec(fh, "unix://" SOCK) != NULL, "  at unix://" SOCK);
    send_to(fh, NULL, "h:1|h\nh:3|h");
    rmr_fakehost_advance(fh, 11000);
    OK(!isnan(metric_value(fh, "h.max")) && !isnan(metric_value(fh, "h.min")) &&
           isnan(metric_value(fh, "h.avg")),
       "  the histogram has max and min only");
    IS_DBL(metric_value(fh, "h.50percentile"), 1, 0, "  .50percentile");
    IS_DBL(metric_value(fh, "h.99percentile"), 3, 0, "  .99percentile");
    rmr_fakehost_free(fh);
}

static void test_listeners(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    OK(ins != NULL, "listeners: defaults start");
    IS_INT(rmr_fakehost_dgram_count(fh), 1, "listeners: one by default");
    const struct rmr_dgram_spec *s = rmr_fakehost_dgram_spec(fh, UDP_DEFAULT);
    OK(s != NULL, "listeners: UDP on 127.0.0.1:8125 (local traffic only)");
    if (s != NULL) {
        IS_UINT(s->flags, RMR_DGRAM_OWN_THREAD, "  read on a reader thread");
        IS_UINT(s->batch, 64, "  64 datagrams per read");
        IS_UINT(s->max_datagram, 8192, "  of at most buffer_size, 8192 bytes");
        IS_UINT(s->rcvbuf_bytes, 4u << 20, "  asking a 4 MiB receive buffer");
    }
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "non_local_traffic = true\nsocket = " SOCK "\nstream_socket = " STREAM
                    "\nbuffer_size = 1MiB\nso_rcvbuf = 0\n");
    IS_INT(rmr_fakehost_dgram_count(fh), 3, "listeners: UDP, Unix datagram and Unix stream");
    s = rmr_fakehost_dgram_spec(fh, "udp://0.0.0.0:8125");
    OK(s != NULL, "listeners: non_local_traffic binds 0.0.0.0");
    if (s != NULL) {
        IS_UINT(s->batch, 4, "  a 1 MiB buffer_size reads 4 at a time (4 MiB of area)");
        IS_UINT(s->max_datagram, 1u << 20, "  of 1 MiB each");
        IS_UINT(s->rcvbuf_bytes, 0, "  so_rcvbuf 0: the kernel's default");
    }
    s = rmr_fakehost_dgram_spec(fh, "unix://" SOCK);
    OK(s != NULL && s->flags == RMR_DGRAM_OWN_THREAD, "listeners: the Unix datagram socket");
    s = rmr_fakehost_dgram_spec(fh, "unixstream://" STREAM);
    OK(s != NULL && s->rcvbuf_bytes == 0 && s->max_datagram == 1u << 20,
       "listeners: the Unix stream socket, frames up to buffer_size, default buffer");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "listeners: stop returns 0");
    IS_INT(rmr_fakehost_dgram_count(fh), 0, "  having closed every listener");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "address = [::1]:9125\nport = 1\n");
    OK(rmr_fakehost_dgram_spec(fh, "udp://[::1]:9125") != NULL && rmr_fakehost_dgram_count(fh) == 1,
       "listeners: address overrides port");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "port = 0");
    OK(ins != NULL && rmr_fakehost_dgram_count(fh) == 0, "listeners: port 0 alone: none...");
    CONTAINS(last_log(fh), "WARN nothing to listen on: port is 0", "  and a warning");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "use_dogstatsd = false\nsocket = " SOCK);
    OK(ins != NULL && rmr_fakehost_dgram_count(fh) == 0,
       "listeners: use_dogstatsd = false (DD_USE_DOGSTATSD) listens on nothing");
    CONTAINS(last_log(fh), "DD_USE_DOGSTATSD) is false", "  and says so");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "  stop is fine");
    rmr_fakehost_free(fh);
}

static void test_transports_and_buckets(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins =
        start(fh, "socket = " SOCK "\nstream_socket = " STREAM "\nflush_interval = 1s\n");
    /* The same counter context over each transport: one aggregator. */
    send_to(fh, UDP_DEFAULT, "page.views:1|c|#env:prod\npage.views:2|c|#env:prod|@0.5");
    send_to(fh, "unix://" SOCK, "page.views:3|c|#env:prod\nlatency:5|ms|#env:prod");
    send_to(fh, "unixstream://" STREAM, "page.views:4|c|#env:prod\nlatency:15|ms|#env:prod");
    send_to(fh, UDP_DEFAULT,
            "temp:20|g\ntemp:21|g\nusers:a|s\nusers:b|s\nusers:a|s\n"
            "sizes:1|d\nsizes:2|d\nsizes:4|d");
    send_to(fh, UDP_DEFAULT, "_e{6,4}:deploy|done|#env:prod\n_sc|db.up|1|m:slow");

    rmr_fakehost_advance(fh, 1000);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 0, "buckets: the open bucket is not emitted");
    IS_UINT(count_kind(fh, RMR_REC_EVENT), 1, "buckets: events go at the next flush (1 s)");
    IS_UINT(count_kind(fh, RMR_REC_CHECK), 1, "  and service checks");

    rmr_fakehost_advance(fh, 9000); /* T0 + 10 s: the bucket has closed */
    struct rmr_metric m;
    IS_INT(find_metric(fh, "page.views", &m), 1, "buckets: closed, the bucket is emitted once");
    IS_DBL(m.value, (1 + 2 / 0.5 + 3 + 4) / 10.0, 1e-12,
           "  the counter from three transports, sample rate applied, per second");
    IS_INT(m.type, RMR_METRIC_RATE, "  as a RATE");
    IS_INT(m.interval_ms, 10000, "  over 10 s");
    IS_INT(m.time_ns, T0_NS, "  stamped with the bucket's start");
    OK(has_tag(m.tags, m.ntags, "env", "prod"), "  with its tags");
    IS_DBL(metric_value(fh, "latency.max"), 15, 0, "buckets: timers from datagram and stream");
    IS_DBL(metric_value(fh, "latency.count"), 0.2, 1e-12, "  .count is a rate: 2 / 10 s");
    IS_DBL(metric_value(fh, "temp"), 21, 0, "buckets: a gauge's last value");
    IS_DBL(metric_value(fh, "users"), 2, 0, "buckets: a set's distinct members");
    OK(find_metric(fh, "sizes", &m) == 1 && m.type == RMR_METRIC_DISTRIBUTION && m.sketch != NULL &&
           m.sketch->count == 3 && m.sketch->min == 1 && m.sketch->max == 4 && m.sketch->sum == 7,
       "buckets: a distribution's sketch (count, min, max, sum)");

    /* The next bucket: the counter is zero-filled as the Agent does, the gauge is not. */
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    IS_DBL(metric_value(fh, "page.views"), 0, 0, "buckets: an idle counter reports 0 next");
    OK(isnan(metric_value(fh, "temp")), "  an idle gauge nothing");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "buckets: stop returns 0");
    rmr_fakehost_free(fh);
}

static void test_stop_flushes(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    rmr_fakehost_advance(fh, 2000);
    send_to(fh, NULL, "queue.depth:7|g|#q:a\njobs:1|c");
    rmr_fakehost_advance(fh, 3000);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 0, "stop: nothing emitted while the bucket is open");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "stop: returns 0 at once");
    struct rmr_metric m;
    OK(find_metric(fh, "queue.depth", &m) == 1 && m.value == 7 && m.time_ns == T0_NS,
       "stop: the open bucket is emitted (the gauge, at the bucket's start)");
    IS_DBL(metric_value(fh, "jobs"), 0.1, 1e-12, "stop: and the counter");
    IS_UINT(rmr_fakehost_counter(fh, ins, "packets", NULL), 1, "stop: counters are reported");
    IS_INT(rmr_fakehost_dgram_count(fh), 0, "stop: the listener is closed");
    rmr_fakehost_free(fh);
}

static void test_host_override(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    send_to(fh, NULL, "cpu:1|g|#host:web-1,role:api\ncpu:2|g|#role:api");
    rmr_fakehost_stop(fh, ins);
    int found = 0, with_host = 0, without = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++) {
            struct rmr_metric m = {.struct_size = sizeof m};
            if (rmr_metric_get(batch, i, &m) != 0 || !str_eq(m.name, "cpu"))
                continue;
            found++;
            if (str_eq(m.host, "web-1") && m.value == 1 &&
                !has_tag(m.tags, m.ntags, "host", "web-1"))
                with_host++;
            if (m.host.len == 0 && m.value == 2)
                without++;
        }
    }
    IS_INT(found, 2, "host: a host: tag makes another context");
    OK(with_host == 1, "host: its record's host is the tag's value, and the tag is gone");
    OK(without == 1, "host: the other keeps the agent's host");
    rmr_fakehost_free(fh);
}

/* Counts tags of key:value (value NULL: any) in tags[0..n). */
static uint32_t tag_count(const struct rmr_tag *tags, uint32_t n, const char *key,
                          const char *value)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        c += str_eq(tags[i].key, key) && (value == NULL || str_eq(tags[i].value, value));
    return c;
}

/* dogstatsd_tags (DD_DOGSTATSD_TAGS) join every metric, event and service check, as the Agent
 * appends them: a tag the record has already is not repeated, another value of its key is
 * added beside it. */
static void test_extra_tags(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "dogstatsd_tags = team:x,env:b,bare");
    send_to(fh, NULL,
            "c1:1|c|#env:a,team:x\nc1:2|c|#team:x,env:a\nh1:5|h\nc2:1|c|#team:x\nc2:2|c\n"
            "_e{2,2}:ti|te|#k:v\n_sc|chk|0|#team:x\nt1:3|g|T1700000000");
    rmr_fakehost_stop(fh, ins);
    struct rmr_metric m;
    IS_INT(find_metric(fh, "c1", &m), 1, "extra tags: one context for the counter");
    IS_DBL(m.value, 0.3, 1e-12, "  its value (3 / 10 s)");
    OK(m.ntags == 4 && tag_count(m.tags, m.ntags, "team", "x") == 1 &&
           tag_count(m.tags, m.ntags, "env", "a") == 1 &&
           tag_count(m.tags, m.ntags, "env", "b") == 1 &&
           tag_count(m.tags, m.ntags, "bare", "") == 1,
       "extra tags: the counter has env:a env:b team:x bare, team:x once");
    IS_INT(find_metric(fh, "c2", &m), 1,
           "extra tags: sent with one of them and without it, one context (as the Agent keys it)");
    OK(m.value == 0.3 && m.ntags == 3 && tag_count(m.tags, m.ntags, "team", "x") == 1,
       "  its value 0.3 and the three tags once");
    IS_INT(find_metric(fh, "h1.max", &m), 1, "extra tags: the histogram's records");
    OK(m.ntags == 3 && tag_count(m.tags, m.ntags, "bare", NULL) == 1, "  carry all three");
    IS_INT(find_metric(fh, "t1", &m), 1, "extra tags: a timestamped gauge");
    OK(m.ntags == 3 && tag_count(m.tags, m.ntags, "env", "b") == 1, "  carries them too");
    uint32_t events = 0, checks = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++) {
            struct rmr_event e = {.struct_size = sizeof e};
            struct rmr_check c = {.struct_size = sizeof c};
            if (rmr_record_kind(batch, i) == RMR_REC_EVENT && rmr_event_get(batch, i, &e) == 0)
                events += e.ntags == 4 && tag_count(e.tags, e.ntags, "k", "v") == 1 &&
                          tag_count(e.tags, e.ntags, "team", "x") == 1;
            if (rmr_record_kind(batch, i) == RMR_REC_CHECK && rmr_check_get(batch, i, &c) == 0)
                checks += c.ntags == 3 && tag_count(c.tags, c.ntags, "team", "x") == 1 &&
                          tag_count(c.tags, c.ntags, "env", "b") == 1;
        }
    }
    IS_UINT(events, 1, "extra tags: the event has its own tag and the three");
    IS_UINT(checks, 1, "extra tags: the service check's team:x is not repeated");
    rmr_fakehost_free(fh);

    char conf[1024];
    int n = snprintf(conf, sizeof conf, "dogstatsd_tags = ");
    for (int i = 0; i < 65; i++)
        n += snprintf(conf + n, sizeof conf - (size_t)n, "%st%d:v", i ? "," : "", i);
    char err[256];
    fh = rmr_fakehost_new();
    OK(make(fh, conf, err, sizeof err) == NULL, "extra tags: 65 are refused");
    rmr_fakehost_free(fh);
}

/* Sends n gauges g0..g(n-1), 100 per datagram. */
static void send_gauges(struct rmr_fakehost *fh, int n)
{
    char pkt[4096];
    for (int i = 0; i < n;) {
        int len = 0;
        for (int k = 0; k < 100 && i < n; k++, i++)
            len += snprintf(pkt + len, sizeof pkt - (size_t)len, "%sg%d:%d|g", k ? "\n" : "", i, i);
        send_to(fh, NULL, pkt);
    }
}

/* Advances the fake clock a second at a time (20 s at most) until the flush's first step has
 * emitted metrics. */
static void wait_first_step(struct rmr_fakehost *fh)
{
    for (int s = 0; s < 20 && count_kind(fh, RMR_REC_METRIC) == 0; s++)
        rmr_fakehost_advance(fh, 1000);
}

/* A flush builds and emits a batch (1,024 records, or what 250 us builds: the fake clock
 * stands still within a step) at a time, 5 ms apart, so the output encodes each step's
 * records before the next is built; events go out in the first step; a flush of over 102,400
 * contexts takes bigger steps, 100 at most; stop completes a build still in its steps. */
static void test_build_steps(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    send_to(fh, NULL, "_e{2,4}:up|text");
    send_gauges(fh, 9000);
    wait_first_step(fh);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 1024, "steps: the flush emits one batch first");
    IS_UINT(rmr_fakehost_emitted_count(fh), 2, "  in one batch, after the event's");
    IS_UINT(count_kind(fh, RMR_REC_EVENT), 1, "  the event goes out in the first step");
    rmr_fakehost_advance(fh, 4);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 1024, "  nothing more within 4 ms");
    rmr_fakehost_advance(fh, 1);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 2048, "  the next batch 5 ms later");
    rmr_fakehost_advance(fh, 35);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 9000, "  then the rest, 8 steps in all");
    IS_UINT(rmr_fakehost_emitted_count(fh), 10, "  in 9 batches (and the event's)");
    IS_DBL(metric_value(fh, "g8999"), 8999, 0, "  every value once");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_live", NULL), 9000,
            "  counters reported when the build is done");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "max_contexts = 200000");
    send_gauges(fh, 150000);
    wait_first_step(fh);
    rmr_fakehost_advance(fh, 99 * 5 - 1);
    OK(count_kind(fh, RMR_REC_METRIC) < 150000, "steps: 150,000 contexts: not all out 1 ms early");
    rmr_fakehost_advance(fh, 1);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 150000, "  all out in 100 steps (1,501 a step)");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    ins = start(fh, "");
    send_gauges(fh, 9000);
    wait_first_step(fh);
    send_gauges(fh, 10); /* into the open bucket */
    rmr_fakehost_stop(fh, ins);
    IS_UINT(count_kind(fh, RMR_REC_METRIC), 9010,
            "steps: stop completes the build, then emits the open bucket");
    struct rmr_metric m;
    IS_INT(find_metric(fh, "g5000", &m), 1, "  a record of the interrupted build, once");
    IS_INT(find_metric(fh, "g3", &m), 2, "  a gauge of both buckets, once each");
    rmr_fakehost_free(fh);
}

static void test_counters(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    send_to(fh, NULL, "a:1|c\na:2|c\nb:1:2:3|h\nc:1|g\nd:x|s\ne:1|d\nf:1|ms");
    send_to(fh, NULL, "_e{1,1}:t|x\n_sc|chk|0\nts:1|g|T1767225600\nbad\n:1|c");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "packets", NULL), 2, "counters: packets");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "count"), 2, "counters: metrics{count}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "histogram"), 3,
            "counters: metrics{histogram}: a multi-value line counts each value");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "timing"), 1, "counters: metrics{timing}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "set"), 1, "counters: metrics{set}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "distribution"), 1,
            "counters: metrics{distribution}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics_timestamped", NULL), 1,
            "counters: metrics_timestamped");
    IS_UINT(rmr_fakehost_counter(fh, ins, "events", NULL), 1, "counters: events");
    IS_UINT(rmr_fakehost_counter(fh, ins, "service_checks", NULL), 1, "counters: service_checks");
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "no_type"), 1,
            "counters: parse_errors{no_type}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "no_name"), 1,
            "counters: parse_errors{no_name}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_created", NULL), 6,
            "counters: contexts_created (a to f; |T bypasses aggregation)");

    /* Deltas: the next flush adds only what came since. */
    send_to(fh, NULL, "a:1|c\ng:1|g");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "packets", NULL), 3, "counters: deltas add up");
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "count"), 3, "  metrics{count}");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_created", NULL), 7, "  contexts_created");
    rmr_fakehost_free(fh);

    /* Contexts expire, and max_contexts drops samples of new ones. */
    fh = rmr_fakehost_new();
    ins = start(fh, "max_contexts = 2\nexpiry_seconds = 10");
    send_to(fh, NULL, "x:1|g\ny:1|g\nz:1|g");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_dropped", NULL), 1,
            "counters: contexts_dropped beyond max_contexts");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_live", NULL), 2,
            "counters: the contexts_live gauge holds max_contexts");
    rmr_fakehost_advance(fh, 60000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_expired", NULL), 2,
            "counters: contexts_expired after expiry_seconds");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_live", NULL), 0, "  and contexts_live is 0");
    send_to(fh, NULL, "z:1|g");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_created", NULL), 3,
            "counters: expired contexts made room for a new one");
    IS_UINT(rmr_fakehost_counter(fh, ins, "contexts_live", NULL), 1, "  contexts_live 1");
    rmr_fakehost_free(fh);

    /* samples_memory bounds a bucket's histogram samples: 64 KiB holds 4,096 of them; the
     * count stays exact beyond it, and the default (1 MiB: 65,536) keeps all 6,000. */
    for (int small = 1; small >= 0; small--) {
        fh = rmr_fakehost_new();
        ins = start(fh, small ? "samples_memory = 64KiB" : "");
        char pkt[1024];
        for (int p = 0; p < 100; p++) {
            int n = snprintf(pkt, sizeof pkt, "big");
            for (int v = 0; v < 60; v++)
                n += snprintf(pkt + n, sizeof pkt - (size_t)n, ":%d", p * 60 + v);
            snprintf(pkt + n, sizeof pkt - (size_t)n, "|h");
            send_to(fh, NULL, pkt);
        }
        rmr_fakehost_advance(fh, 11000);
        uint64_t capped = rmr_fakehost_counter(fh, ins, "samples_capped", NULL);
        if (small)
            OK(capped > 0 && capped <= 6000 - 4096,
               "counters: samples_capped beyond samples_memory (64 KiB: 4,096 samples kept)");
        else
            IS_UINT(capped, 0, "counters: nothing capped with the default samples_memory");
        IS_DBL(metric_value(fh, "big.count"), 600, 0, "  the count stays exact (6,000 / 10 s)");
        IS_DBL(metric_value(fh, "big.max"), 5999, 0, "  and the max");
        rmr_fakehost_free(fh);
    }
}

static void test_malformed(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "");
    /* Good, bad, good in one packet: the good ones are kept. */
    send_to(fh, NULL, "ok.a:1|g\nbad.one:1\nok.b:2|g\r\n\x01weird:1|q\nok.c:3|g");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "no_type"), 1,
            "malformed: counted by reason (no_type)");
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "bad_type"), 1, "  and bad_type");
    CONTAINS(log_with(fh, "(no_type)"),
             "WARN dropped 1 malformed messages (no_type); the first: 'bad.one:1'",
             "malformed: one warning per reason, naming the message");
    CONTAINS(log_with(fh, "(bad_type)"), "the first: '\\x01weird:1|q'",
             "malformed: control bytes are escaped");

    /* Within 10 s no new line; then one with what accumulated. */
    for (int i = 0; i < 3; i++) {
        send_to(fh, NULL, "again:1");
        rmr_fakehost_advance(fh, 1000);
    }
    IS_UINT(logs_with(fh, "(no_type)"), 1, "malformed: no second line within 10 s");
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "no_type"), 4,
            "  though every one is counted");
    rmr_fakehost_advance(fh, 7000);
    IS_UINT(logs_with(fh, "(no_type)"), 2, "malformed: after 10 s, one more line");
    CONTAINS(log_with(fh, "(no_type)"),
             "dropped 3 malformed messages (no_type); the first: "
             "'again:1'",
             "  with the count since the last");

    /* A long message is quoted to 64 bytes (bad_type was last logged over 10 s ago). */
    char longmsg[200];
    memset(longmsg, 'n', 150);
    snprintf(longmsg + 150, sizeof longmsg - 150, ":1|zz");
    send_to(fh, NULL, longmsg);
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(logs_with(fh, "(bad_type)"), 2, "malformed: bad_type logged again");
    CONTAINS(log_with(fh, "(bad_type)"),
             "the first: 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...'",
             "malformed: a long message is cut at 64 bytes");
    rmr_fakehost_stop(fh, ins);
    OK(metric_value(fh, "ok.a") == 1 && metric_value(fh, "ok.b") == 2 &&
           metric_value(fh, "ok.c") == 3,
       "malformed: the good messages around the bad ones are aggregated");
    rmr_fakehost_free(fh);
}

static void test_truncated(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = start(fh, "buffer_size = 256");
    char packet[400];
    size_t n = 0;
    for (int i = 0; n < 300; i++)
        n += (size_t)snprintf(packet + n, sizeof packet - n, "m%02d:%d|c\n", i, 1000 + i);
    /* The 256th byte falls inside a message: it would read as a wrong value. */
    struct rmr_dgram d = {packet, (uint32_t)n, 0};
    rmr_fakehost_dgram_send(fh, NULL, &d, 1);
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "parse_errors", "truncated"), 1,
            "truncated: a datagram cut at buffer_size is counted");
    CONTAINS(log_with(fh, "buffer_size"), "1 datagrams were longer than buffer_size (256 bytes)",
             "truncated: with a warning naming the option");
    rmr_fakehost_stop(fh, ins);
    /* Each message is 11 bytes with its newline ("m00:1000|c\n"): 256 bytes hold 23. */
    uint32_t whole = 256 / 11;
    IS_UINT(rmr_fakehost_counter(fh, ins, "metrics", "count"), whole,
            "truncated: the whole messages before the cut are used");
    char name[8];
    snprintf(name, sizeof name, "m%02u", whole);
    OK(isnan(metric_value(fh, name)), "truncated: the cut one is not");
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_descriptor();
    test_config_errors();
    test_listeners();
    test_transports_and_buckets();
    test_stop_flushes();
    test_host_override();
    test_extra_tags();
    test_build_steps();
    test_counters();
    test_malformed();
    test_truncated();
    return tap_done();
}
