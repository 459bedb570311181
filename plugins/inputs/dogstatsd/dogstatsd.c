/* The dogstatsd input (Datakit's name: statsd): DogStatsD metrics, events and service checks
 * from applications, over UDP, a Unix datagram socket and a Unix stream socket, aggregated in
 * 10 s buckets as the Datadog Agent does.
 *
 * This file is the glue: options (Datadog's names and DD_* variables), transports, threads,
 * the flush timer and self-metrics. Parsing and aggregation are the hot path behind agg.h
 * (parse.c, agg.c), distributions are plugins/lib/ddsketch.
 *
 * Threads. UDP and Unix datagram listeners read on reader threads of their own
 * (RMR_DGRAM_OWN_THREAD); the Unix stream listener delivers its frames on the loop thread
 * (the host frames them there). Every callback takes st->mu around dsd_agg_packet(), so one
 * aggregator serves every transport. The flush timer (loop thread) takes st->mu around
 * dsd_agg_detach() (closed buckets moved out of the contexts: pointer moves), builds and emits
 * their records without it (dsd_agg_build()), then takes it again around dsd_agg_finish()
 * (expiry) and to read the aggregator's counters; counters and log lines
 * are given to the host from the loop thread only, since reader threads may use nothing but
 * batches, clocks and rmr_emit(). Emitting under st->mu is safe because the host never waits
 * on the loop for a reader to leave its callback (back-pressure pauses the listeners without
 * waiting), and stop() closes the listeners, joining the readers, before it takes st->mu.
 * Malformed input seen by a reader is counted under st->mu with a sample (the refused message,
 * its first 64 bytes escaped) and logged by the next flush, at most once per reason every
 * DSD_BAD_LOG_EVERY_MS.
 *
 * Memory: each datagram listener holds batch x buffer_size bytes of receive area (batch is 64,
 * fewer for a large buffer_size: at most DSD_AREA_BYTES in all); the stream listener holds
 * buffer_size + 4 bytes per open connection; the aggregator is bounded by max_contexts. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "agg.h"
#include "parse.h"

#define DSD_BUCKET_S     10u
#define DSD_BATCH        64u
#define DSD_AREA_BYTES   (4u << 20) /* receive area of one datagram listener, at most */
#define DSD_BUFFER_MIN   256.0
#define DSD_BUFFER_MAX   1048576.0
#define DSD_RCVBUF_MAX   1073741824.0
#define DSD_EXPIRY_MIN_S 10.0
#define DSD_EXPIRY_MAX_S 2592000.0 /* 30 days */
#define DSD_CONTEXTS_MAX 10000000.0
/* A flush's build steps (see build_step()): 5 ms apart, 100 at the most. */
#define DSD_BUILD_STEP_MS   5
#define DSD_BUILD_MAX_STEPS 100
/* A build step ends once it has its hundredth of the contexts and either a batch of records or
 * this long since it began: a datagram reader sharing the core waits about this long, or as
 * long as a hundredth of the contexts takes to build when that is longer (over 10^5
 * contexts); docs/ARCHITECTURE.md says why. */
#define DSD_BUILD_STEP_NS 250000
/* samples_memory: 16 bytes a sample with its weight, so 64 KiB is 4,096 samples a bucket. */
#define DSD_SAMPLES_MEMORY_MIN 65536.0
#define DSD_SAMPLES_MEMORY_MAX 1073741824.0
#define DSD_FLUSH_MIN_MS       100.0
#define DSD_FLUSH_MAX_MS       10000.0
#define DSD_MAX_AGGREGATES     6u
#define DSD_MAX_PERCENTILES    16u
#define DSD_UNIX_PATH_MAX      107u /* sun_path less its terminator */
#define DSD_SAMPLE_BYTES       64u  /* packet bytes quoted in a malformed-input warning */
#define DSD_BAD_LOG_EVERY_MS   10000
#define DSD_ADDRESS_BYTES      160u

/* Reasons of parse_errors: the parser's, plus datagrams cut at buffer_size. */
#define DSD_BAD_TRUNCATED DSD_E_COUNT
#define DSD_BAD_REASONS   (DSD_E_COUNT + 1)

struct dsd_cfg {
    int32_t use_dogstatsd;
    int32_t non_local_traffic;
    int64_t port;
    const char *address;
    const char *socket;
    const char *stream_socket;
    uint64_t buffer_size;
    uint64_t so_rcvbuf;
    int64_t expiry_seconds;
    const char *histogram_aggregates;
    const char *histogram_percentiles;
    int32_t counts_as_count;
    int32_t origin_detection;
    int64_t max_contexts;
    int64_t flush_interval_ms;
    uint64_t samples_memory;
    struct rmr_taglist dogstatsd_tags;
};

static const struct rmr_option dsd_options[] = {
    RMR_OPT_FULL("use_dogstatsd", RMR_OPT_BOOL, 0, "true", "DD_USE_DOGSTATSD", 0, 0, struct dsd_cfg,
                 use_dogstatsd,
                 "false: the input listens on nothing (Datadog's switch; true also turns the "
                 "input on)"),
    RMR_OPT_FULL("port", RMR_OPT_INT, RMR_OPT_ENABLES, "8125", "DD_DOGSTATSD_PORT", 0, 65535,
                 struct dsd_cfg, port, "UDP port; 0: no UDP listener"),
    RMR_OPT_FULL("non_local_traffic", RMR_OPT_BOOL, 0, "false", "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", 0,
                 0, struct dsd_cfg, non_local_traffic,
                 "listen on every interface (0.0.0.0) instead of 127.0.0.1 (true also turns "
                 "the input on)"),
    RMR_OPT_FULL("address", RMR_OPT_STRING, 0, NULL, NULL, 0, 0, struct dsd_cfg, address,
                 "UDP address HOST:PORT ([::]:8125 for IPv6), instead of port and "
                 "non_local_traffic"),
    RMR_OPT_FULL("socket", RMR_OPT_STRING, RMR_OPT_ENABLES, NULL, "DD_DOGSTATSD_SOCKET", 0, 0,
                 struct dsd_cfg, socket,
                 "path of a Unix datagram socket to listen on (/var/run/datadog/dsd.socket)"),
    RMR_OPT_FULL("stream_socket", RMR_OPT_STRING, RMR_OPT_ENABLES, NULL,
                 "DD_DOGSTATSD_STREAM_SOCKET", 0, 0, struct dsd_cfg, stream_socket,
                 "path of a Unix stream socket to listen on; each message is prefixed by its "
                 "length, 4 bytes little-endian"),
    RMR_OPT_FULL("buffer_size", RMR_OPT_SIZE, 0, "8192", "DD_DOGSTATSD_BUFFER_SIZE", DSD_BUFFER_MIN,
                 DSD_BUFFER_MAX, struct dsd_cfg, buffer_size,
                 "largest datagram or stream message read whole; a longer datagram loses its "
                 "last message"),
    RMR_OPT_FULL("so_rcvbuf", RMR_OPT_SIZE, 0, "4MiB", "DD_DOGSTATSD_SO_RCVBUF", 0, DSD_RCVBUF_MAX,
                 struct dsd_cfg, so_rcvbuf,
                 "socket receive buffer asked of the kernel (capped by net.core.rmem_max); 0: "
                 "the kernel's default"),
    RMR_OPT_FULL("expiry_seconds", RMR_OPT_INT, 0, "300", "DD_DOGSTATSD_EXPIRY_SECONDS",
                 DSD_EXPIRY_MIN_S, DSD_EXPIRY_MAX_S, struct dsd_cfg, expiry_seconds,
                 "a context (name, tags, host) idle this long is forgotten"),
    RMR_OPT_FULL("histogram_aggregates", RMR_OPT_STRING, 0, "max median avg count",
                 "DD_HISTOGRAM_AGGREGATES", 0, 0, struct dsd_cfg, histogram_aggregates,
                 "series of each histogram and timer: any of max, median, avg, count, min, "
                 "sum (spaces or commas)"),
    RMR_OPT_FULL("histogram_percentiles", RMR_OPT_STRING, 0, "0.95", "DD_HISTOGRAM_PERCENTILES", 0,
                 0, struct dsd_cfg, histogram_percentiles,
                 "percentiles of each histogram and timer, between 0 and 1 (0.95 gives "
                 ".95percentile); at most 16"),
    RMR_OPT_FULL("counts_as_count", RMR_OPT_BOOL, 0, "false", NULL, 0, 0, struct dsd_cfg,
                 counts_as_count,
                 "emit counters as COUNT (the sum per bucket) instead of Datadog's RATE "
                 "(sum / 10 s)"),
    RMR_OPT_FULL("origin_detection", RMR_OPT_BOOL, 0, "true",
                 "DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", 0, 0, struct dsd_cfg, origin_detection,
                 "add the tags of the container a message names with |c: (from the tagger)"),
    RMR_OPT_FULL("max_contexts", RMR_OPT_INT, 0, "100000", NULL, 1, DSD_CONTEXTS_MAX,
                 struct dsd_cfg, max_contexts,
                 "live contexts at most; samples of new contexts beyond it are dropped and "
                 "counted"),
    RMR_OPT_FULL("flush_interval", RMR_OPT_DURATION, 0, "1s", NULL, DSD_FLUSH_MIN_MS,
                 DSD_FLUSH_MAX_MS, struct dsd_cfg, flush_interval_ms,
                 "how often closed buckets, events and service checks are emitted"),
    RMR_OPT_FULL("samples_memory", RMR_OPT_SIZE, 0, "1MiB", NULL, DSD_SAMPLES_MEMORY_MIN,
                 DSD_SAMPLES_MEMORY_MAX, struct dsd_cfg, samples_memory,
                 "histogram samples and set members the open bucket holds in all; beyond it "
                 "percentiles are estimated from a uniform sample (counted in samples_capped)"),
    RMR_OPT_FULL("dogstatsd_tags", RMR_OPT_TAGS, 0, NULL, "DD_DOGSTATSD_TAGS", 0, 0, struct dsd_cfg,
                 dogstatsd_tags,
                 "tags added to every metric, event and service check received (at most 64)"),
    RMR_OPT_END,
};

/* Malformed input of one reason since it was last logged. */
struct bad_sample {
    uint64_t count;
    char text[4 * DSD_SAMPLE_BYTES + 4]; /* escaped, "..." when cut; "" until the first */
};

struct dsd_state {
    rmr_instance_t *ins;
    const struct dsd_cfg *cfg;

    /* Parsed options. */
    const char *aggregates[DSD_MAX_AGGREGATES + 1];
    char aggregates_buf[64];
    double percentiles[DSD_MAX_PERCENTILES];
    uint32_t npercentiles;
    uint32_t max_datagram;
    uint32_t batch;
    char udp_address[DSD_ADDRESS_BYTES];
    char unix_address[DSD_ADDRESS_BYTES];
    char stream_address[DSD_ADDRESS_BYTES];

    /* Under mu: the aggregator and what readers noticed for the loop to log. */
    pthread_mutex_t mu;
    struct dsd_agg *agg;
    struct bad_sample bad[DSD_BAD_REASONS];
    uint64_t truncated;

    /* Loop thread only. */
    rmr_dgram_sock_t *udp;
    rmr_dgram_sock_t *unix_dgram;
    rmr_dgram_sock_t *stream;
    rmr_timer_t *timer;
    rmr_timer_t *step_timer;       /* while a flush builds its records step by step */
    int64_t build_now_ns;          /* that flush's time */
    int64_t build_mono_ns;         /* and when it began */
    struct dsd_agg_stats reported; /* what the counters already hold */
    uint64_t truncated_reported;
    int64_t bad_logged_ms[DSD_BAD_REASONS]; /* monotonic; 0: never */
    int running;
};

/* ---- options ----------------------------------------------------------------------------- */

static int is_sep(char c)
{
    return c == ' ' || c == ',' || c == '\t';
}

/* The next word of a list separated by spaces or commas: *at moves past it. 0 at the end. */
static int next_word(const char **at, const char **word, size_t *len)
{
    const char *p = *at;
    while (*p != '\0' && is_sep(*p))
        p++;
    if (*p == '\0')
        return 0;
    const char *start = p;
    while (*p != '\0' && !is_sep(*p))
        p++;
    *word = start;
    *len = (size_t)(p - start);
    *at = p;
    return 1;
}

static int parse_aggregates(struct dsd_state *st, const char *text)
{
    static const char *const known[] = {"max", "median", "avg", "count", "min", "sum"};
    uint32_t n = 0;
    size_t used = 0;
    const char *at = text != NULL ? text : "", *w;
    size_t len;
    while (next_word(&at, &w, &len)) {
        const char *name = NULL;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k]) == len && memcmp(known[k], w, len) == 0)
                name = known[k];
        if (name == NULL) {
            rmr_log(st->ins, RMR_LOG_ERROR,
                    "invalid 'histogram_aggregates': '%.*s' is not one of max, median, avg, "
                    "count, min, sum",
                    (int)(len > 32 ? 32 : len), w);
            return RMR_ECONFIG;
        }
        int dup = 0;
        for (uint32_t k = 0; k < n; k++)
            dup |= strcmp(st->aggregates[k], name) == 0;
        if (dup)
            continue;
        /* The names are static strings; the buffer is kept only to show what was parsed. */
        used += (size_t)snprintf(st->aggregates_buf + used, sizeof st->aggregates_buf - used,
                                 "%s%s", n > 0 ? " " : "", name);
        st->aggregates[n++] = name;
    }
    st->aggregates[n] = NULL;
    return 0;
}

static int parse_percentiles(struct dsd_state *st, const char *text)
{
    const char *at = text != NULL ? text : "", *w;
    size_t len;
    st->npercentiles = 0;
    while (next_word(&at, &w, &len)) {
        char word[32];
        double p = NAN;
        if (len < sizeof word) {
            memcpy(word, w, len);
            word[len] = '\0';
            char *end = NULL;
            errno = 0;
            p = strtod(word, &end);
            if (errno != 0 || end != word + len)
                p = NAN;
        }
        if (!(p > 0 && p < 1)) {
            rmr_log(st->ins, RMR_LOG_ERROR,
                    "invalid 'histogram_percentiles': '%.*s' is not a number between 0 and 1 "
                    "(0.95 for the 95th percentile)",
                    (int)(len > 32 ? 32 : len), w);
            return RMR_ECONFIG;
        }
        if (st->npercentiles == DSD_MAX_PERCENTILES) {
            rmr_log(st->ins, RMR_LOG_ERROR, "invalid 'histogram_percentiles': more than %u",
                    DSD_MAX_PERCENTILES);
            return RMR_ECONFIG;
        }
        st->percentiles[st->npercentiles++] = p;
    }
    return 0;
}

/* A socket option's path: "unix://" (or "unixstream://") before it is tolerated. Returns the
 * path, or NULL when unset. */
static const char *socket_path(const char *value, const char *scheme)
{
    if (value == NULL || value[0] == '\0')
        return NULL;
    size_t n = strlen(scheme);
    return strncmp(value, scheme, n) == 0 ? value + n : value;
}

static int check_path(struct dsd_state *st, const char *key, const char *path)
{
    if (path == NULL)
        return 0;
    size_t len = strlen(path);
    if (len == 0 || strstr(path, "://") != NULL) {
        rmr_log(st->ins, RMR_LOG_ERROR, "invalid '%s' '%s': expected a file path", key, path);
        return RMR_ECONFIG;
    }
    if (len > DSD_UNIX_PATH_MAX) {
        rmr_log(st->ins, RMR_LOG_ERROR,
                "invalid '%s': the path is %zu bytes, longer than the %u a Unix socket allows", key,
                len, DSD_UNIX_PATH_MAX);
        return RMR_ECONFIG;
    }
    return 0;
}

/* Where the UDP listener binds, or "" for none. */
static int udp_address(struct dsd_state *st, const struct dsd_cfg *cfg)
{
    char *out = st->udp_address;
    const char *a = cfg->address;
    if (a != NULL && a[0] != '\0') {
        const char *hostport = strncmp(a, "udp://", 6) == 0 ? a + 6 : a;
        if (strstr(hostport, "://") != NULL || strchr(hostport, ':') == NULL ||
            strlen(hostport) + 7 > DSD_ADDRESS_BYTES) {
            rmr_log(st->ins, RMR_LOG_ERROR,
                    "invalid 'address' '%s': expected HOST:PORT (127.0.0.1:8125, "
                    "0.0.0.0:8125, [::]:8125); Unix sockets go in 'socket' and "
                    "'stream_socket'",
                    a);
            return RMR_ECONFIG;
        }
        snprintf(out, DSD_ADDRESS_BYTES, "udp://%s", hostport);
        return 0;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        rmr_log(st->ins, RMR_LOG_ERROR, "invalid 'port': %lld is outside 0..65535",
                (long long)cfg->port);
        return RMR_ECONFIG;
    }
    out[0] = '\0';
    if (cfg->port > 0)
        snprintf(out, DSD_ADDRESS_BYTES, "udp://%s:%lld",
                 cfg->non_local_traffic ? "0.0.0.0" : "127.0.0.1", (long long)cfg->port);
    return 0;
}

static int out_of_range(struct dsd_state *st, const char *key, double v, double lo, double hi)
{
    if (v >= lo && v <= hi)
        return 0;
    rmr_log(st->ins, RMR_LOG_ERROR, "invalid '%s': %.0f is outside %.0f..%.0f", key, v, lo, hi);
    return RMR_ECONFIG;
}

/* The schema's ranges already hold these; checking again keeps create() safe on its own. */
static int check_ranges(struct dsd_state *st, const struct dsd_cfg *cfg)
{
    if (out_of_range(st, "buffer_size", (double)cfg->buffer_size, DSD_BUFFER_MIN, DSD_BUFFER_MAX) !=
            0 ||
        out_of_range(st, "so_rcvbuf", (double)cfg->so_rcvbuf, 0, DSD_RCVBUF_MAX) != 0 ||
        out_of_range(st, "expiry_seconds", (double)cfg->expiry_seconds, DSD_EXPIRY_MIN_S,
                     DSD_EXPIRY_MAX_S) != 0 ||
        out_of_range(st, "max_contexts", (double)cfg->max_contexts, 1, DSD_CONTEXTS_MAX) != 0 ||
        out_of_range(st, "samples_memory", (double)cfg->samples_memory, DSD_SAMPLES_MEMORY_MIN,
                     DSD_SAMPLES_MEMORY_MAX) != 0)
        return RMR_ECONFIG;
    if (cfg->flush_interval_ms < DSD_FLUSH_MIN_MS || cfg->flush_interval_ms > DSD_FLUSH_MAX_MS) {
        rmr_log(st->ins, RMR_LOG_ERROR, "invalid 'flush_interval': %lld ms is outside 100ms..10s",
                (long long)cfg->flush_interval_ms);
        return RMR_ECONFIG;
    }
    return 0;
}

static int check_config(struct dsd_state *st, const struct dsd_cfg *cfg)
{
    int rc;
    if (cfg->dogstatsd_tags.count > DSD_MAX_EXTRA_TAGS) {
        rmr_log(st->ins, RMR_LOG_ERROR, "invalid 'dogstatsd_tags': %u tags, at most %u",
                cfg->dogstatsd_tags.count, DSD_MAX_EXTRA_TAGS);
        return RMR_EINVAL;
    }
    if ((rc = check_ranges(st, cfg)) != 0 || (rc = udp_address(st, cfg)) != 0 ||
        (rc = parse_aggregates(st, cfg->histogram_aggregates)) != 0 ||
        (rc = parse_percentiles(st, cfg->histogram_percentiles)) != 0)
        return rc;
    const char *dgram_path = socket_path(cfg->socket, "unix://");
    const char *stream_path = socket_path(cfg->stream_socket, "unixstream://");
    if ((rc = check_path(st, "socket", dgram_path)) != 0 ||
        (rc = check_path(st, "stream_socket", stream_path)) != 0)
        return rc;
    if (dgram_path != NULL && stream_path != NULL && strcmp(dgram_path, stream_path) == 0) {
        rmr_log(st->ins, RMR_LOG_ERROR,
                "invalid 'stream_socket': '%s' is also 'socket'; one path serves one transport",
                stream_path);
        return RMR_ECONFIG;
    }
    st->unix_address[0] = '\0';
    st->stream_address[0] = '\0';
    if (dgram_path != NULL)
        snprintf(st->unix_address, sizeof st->unix_address, "unix://%s", dgram_path);
    if (stream_path != NULL)
        snprintf(st->stream_address, sizeof st->stream_address, "unixstream://%s", stream_path);
    st->max_datagram = (uint32_t)cfg->buffer_size;
    /* Fewer datagrams per read for a large buffer_size, so the area stays within bounds. */
    st->batch = DSD_AREA_BYTES / st->max_datagram;
    if (st->batch > DSD_BATCH)
        st->batch = DSD_BATCH;
    if (st->batch < 1)
        st->batch = 1;
    return 0;
}

/* ---- receiving (reader threads, and the loop for the stream) ------------------------------- */

/* Writes src as printable ASCII: \n \r \t \\ \' and \xNN for the rest. out holds 4 x len
 * + 1 bytes. */
static void escape(char *out, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\n' || c == '\r' || c == '\t' || c == '\\' || c == '\'') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* The first message of a packet that the parser refuses for reason, split as the
 * aggregator splits ("\n", a "\r" before it dropped, empty lines skipped). Found: 1 with the
 * message in *msg, *len. A reason only the aggregator gives (a tag set beyond its bounds)
 * finds none. This re-parse runs only for packets that had errors. */
static int find_bad(const char *data, size_t len, enum dsd_error reason, const char **msg,
                    size_t *msg_len)
{
    size_t at = 0;
    while (at < len) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - data) : len;
        size_t n = end - at;
        if (n > 0 && data[at + n - 1] == '\r')
            n--;
        struct dsd_msg m;
        if (n > 0 && dsd_parse(data + at, n, &m) == reason) {
            *msg = data + at;
            *msg_len = n;
            return 1;
        }
        at = end + 1;
    }
    return 0;
}

/* Counts malformed input for the loop to log, keeping the first sample of each reason: the
 * refused message (the aggregator's last refusal, else the first line the parser refuses for
 * that reason), else the packet's first bytes. Under mu, right after the packet. */
static void note_bad(struct dsd_state *st, uint32_t reason, uint64_t n, const char *data,
                     size_t len)
{
    struct bad_sample *b = &st->bad[reason];
    b->count += n;
    if (b->text[0] != '\0')
        return;
    const char *msg;
    size_t msg_len;
    if (reason != DSD_BAD_TRUNCATED) {
        if (dsd_agg_last_error(st->agg, &msg, &msg_len) == (enum dsd_error)reason ||
            find_bad(data, len, (enum dsd_error)reason, &msg, &msg_len)) {
            data = msg;
            len = msg_len;
        }
    }
    escape(b->text, data, len < DSD_SAMPLE_BYTES ? len : DSD_SAMPLE_BYTES);
    if (len > DSD_SAMPLE_BYTES)
        memcpy(b->text + strlen(b->text), "...", 4);
}

static void on_packets(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct dsd_state *st = arg;
    int64_t now_ns = rmr_now_ns(ins);
    pthread_mutex_lock(&st->mu);
    struct dsd_agg_stats before, after;
    dsd_agg_stats(st->agg, &before);
    for (uint32_t i = 0; i < count; i++) {
        const char *data = msgs[i].data;
        size_t len = msgs[i].len;
        if (msgs[i].flags & RMR_DGRAM_TRUNCATED) {
            /* The datagram was cut at buffer_size: its last message is partial and could
             * parse as a wrong value, so only the whole lines before it are used. */
            note_bad(st, DSD_BAD_TRUNCATED, 1, data, len);
            st->truncated++;
            while (len > 0 && data[len - 1] != '\n')
                len--;
            if (len == 0)
                continue;
        }
        uint64_t errors = dsd_agg_error_count(st->agg);
        dsd_agg_packet(st->agg, data, len, now_ns);
        if (dsd_agg_error_count(st->agg) == errors)
            continue; /* the common case: no per-reason walk, no stats copy */
        dsd_agg_stats(st->agg, &after);
        for (uint32_t e = 1; e < DSD_E_COUNT; e++)
            if (after.errors[e] != before.errors[e])
                note_bad(st, e, after.errors[e] - before.errors[e], data, len);
        before = after;
    }
    pthread_mutex_unlock(&st->mu);
}

/* ---- flushing and self-metrics (loop thread) ------------------------------------------------ */

static void add_delta(rmr_instance_t *ins, const char *name, const char *reason, uint64_t now,
                      uint64_t *was)
{
    if (now > *was)
        rmr_counter_add(ins, name, reason, now - *was);
    *was = now;
}

/* Counters from the aggregator's stats: deltas since the last report. */
static void report(struct dsd_state *st, const struct dsd_agg_stats *s, uint64_t truncated)
{
    rmr_instance_t *ins = st->ins;
    struct dsd_agg_stats *r = &st->reported;
    add_delta(ins, "packets", NULL, s->packets, &r->packets);
    for (uint32_t t = 0; t < DSD_MTYPE_COUNT; t++)
        add_delta(ins, "metrics", dsd_mtype_name((enum dsd_mtype)t), s->metrics[t], &r->metrics[t]);
    add_delta(ins, "metrics_timestamped", NULL, s->timestamped, &r->timestamped);
    add_delta(ins, "metrics_dropped", "timestamp_unsupported", s->timestamped_unsupported,
              &r->timestamped_unsupported);
    add_delta(ins, "metrics_dropped", "non_finite", s->values_nonfinite, &r->values_nonfinite);
    add_delta(ins, "samples_capped", NULL, s->samples_capped, &r->samples_capped);
    add_delta(ins, "batch_add_errors", NULL, s->records_dropped, &r->records_dropped);
    add_delta(ins, "events", NULL, s->events, &r->events);
    add_delta(ins, "service_checks", NULL, s->service_checks, &r->service_checks);
    for (uint32_t e = 1; e < DSD_E_COUNT; e++)
        add_delta(ins, "parse_errors", dsd_error_name((enum dsd_error)e), s->errors[e],
                  &r->errors[e]);
    add_delta(ins, "parse_errors", "truncated", truncated, &st->truncated_reported);
    if (RMR_HOST_HAS(ins, gauge_set))
        rmr_gauge_set(ins, "contexts_live", NULL, s->contexts_live);
    /* Contexts made = growth of live + expired ones. */
    uint64_t made_now = s->contexts_live + s->contexts_expired;
    uint64_t made_was = r->contexts_live + r->contexts_expired;
    if (made_now > made_was)
        rmr_counter_add(ins, "contexts_created", NULL, made_now - made_was);
    r->contexts_live = s->contexts_live;
    add_delta(ins, "contexts_expired", NULL, s->contexts_expired, &r->contexts_expired);
    add_delta(ins, "contexts_dropped", NULL, s->contexts_dropped, &r->contexts_dropped);
}

static const char *bad_reason_name(uint32_t reason)
{
    return reason == DSD_BAD_TRUNCATED ? "truncated" : dsd_error_name((enum dsd_error)reason);
}

/* 1 when reason r may be logged now: never logged, or not for DSD_BAD_LOG_EVERY_MS. */
static int bad_due(const struct dsd_state *st, uint32_t r, int64_t now_ms)
{
    return st->bad_logged_ms[r] == 0 || now_ms - st->bad_logged_ms[r] >= DSD_BAD_LOG_EVERY_MS;
}

/* Logs the malformed input taken from the readers: one line per reason. */
static void log_bad(struct dsd_state *st, const struct bad_sample *bad, int64_t now_ms)
{
    for (uint32_t r = 1; r < DSD_BAD_REASONS; r++) {
        if (bad[r].count == 0)
            continue;
        st->bad_logged_ms[r] = now_ms;
        if (r == DSD_BAD_TRUNCATED)
            rmr_log(st->ins, RMR_LOG_WARN,
                    "%llu datagrams were longer than buffer_size (%u bytes) and lost their "
                    "last message; raise buffer_size (DD_DOGSTATSD_BUFFER_SIZE) to the "
                    "client's payload size; the first began '%s'",
                    (unsigned long long)bad[r].count, st->max_datagram, bad[r].text);
        else
            rmr_log(st->ins, RMR_LOG_WARN, "dropped %llu malformed messages (%s); the first: '%s'",
                    (unsigned long long)bad[r].count, bad_reason_name(r), bad[r].text);
    }
}

/* After the build: the aggregator's counters and expiry (under the lock), then the host gets
 * the counters and the malformed-input lines. Loop thread. */
static void finish_flush(struct dsd_state *st, int rc, int final)
{
    struct bad_sample bad[DSD_BAD_REASONS];
    struct dsd_agg_stats s;
    int64_t now_ms = rmr_mono_ns(st->ins) / 1000000;
    memset(bad, 0, sizeof bad);
    pthread_mutex_lock(&st->mu);
    dsd_agg_finish(st->agg, st->build_now_ns);
    dsd_agg_stats(st->agg, &s);
    uint64_t truncated = st->truncated;
    /* A reason logged recently keeps accumulating until it is due (or the final flush). */
    for (uint32_t r = 1; r < DSD_BAD_REASONS; r++) {
        if (st->bad[r].count == 0 || !(final || bad_due(st, r, now_ms)))
            continue;
        bad[r] = st->bad[r];
        memset(&st->bad[r], 0, sizeof st->bad[r]);
    }
    pthread_mutex_unlock(&st->mu);
    if (rc < 0 && rc != RMR_ESTOPPED)
        rmr_log(st->ins, RMR_LOG_WARN, "cannot emit aggregates: %s", rmr_strerror(rc));
    report(st, &s, truncated);
    log_bad(st, bad, now_ms);
}

static void on_build_step(rmr_instance_t *ins, void *arg);

/* One build step: builds at least a hundredth of the contexts the detach took, so the build
 * ends within DSD_BUILD_MAX_STEPS, and then goes on until it has emitted a batch of records
 * (1,024) or DSD_BUILD_STEP_NS have passed since it began; while more is left,
 * the next step runs after DSD_BUILD_STEP_MS, so the output encodes (and frees) these records
 * first and a flush of 10^4 contexts never holds all its records at once, nor the loop for the
 * whole build. Without a timer (none could be started) the build goes on at once. */
static void build_step(struct dsd_state *st)
{
    uint32_t entries = (uint32_t)(dsd_agg_detach_work(st->agg) / DSD_BUILD_MAX_STEPS + 1);
    int done = 0;
    int64_t deadline = rmr_mono_ns(st->ins) + DSD_BUILD_STEP_NS;
    int rc = dsd_agg_build_some(st->agg, entries, deadline, &done);
    while (!done && rmr_timer_start(st->ins, DSD_BUILD_STEP_MS, 0, on_build_step, st,
                                    &st->step_timer) != 0) {
        st->step_timer = NULL;
        rc = dsd_agg_build_some(st->agg, entries, INT64_MAX, &done);
    }
    if (done)
        finish_flush(st, rc, 0);
}

static void on_build_step(rmr_instance_t *ins, void *arg)
{
    (void)ins;
    struct dsd_state *st = arg;
    rmr_timer_stop(st->step_timer); /* one-shot: fired, but owned until stopped */
    st->step_timer = NULL;
    build_step(st);
}

/* Emits closed buckets (every bucket when final): detaches them under the lock, then builds
 * and emits their records without it, step by step (all at once when final), so the readers
 * never wait for the build (a stall of milliseconds drops datagrams at 10^5/s). A build still
 * in its steps delays the next detach, for a bucket's length at most: then, and on the final
 * flush, it is completed at once. Loop thread. */
static void flush(struct dsd_state *st, int final)
{
    if (st->step_timer != NULL) {
        if (!final && rmr_mono_ns(st->ins) - st->build_mono_ns < DSD_BUCKET_S * 1000000000LL)
            return;
        rmr_timer_stop(st->step_timer);
        st->step_timer = NULL;
        finish_flush(st, dsd_agg_build(st->agg), 0);
    }
    st->build_now_ns = rmr_now_ns(st->ins);
    st->build_mono_ns = rmr_mono_ns(st->ins);
    pthread_mutex_lock(&st->mu);
    dsd_agg_detach(st->agg, st->build_now_ns, final);
    pthread_mutex_unlock(&st->mu);
    if (final)
        finish_flush(st, dsd_agg_build(st->agg), 1);
    else
        build_step(st);
}

static void on_flush(rmr_instance_t *ins, void *arg)
{
    (void)ins;
    flush(arg, 0);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int dsd_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct dsd_cfg *cfg = config;
    struct dsd_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->ins = ins;
    st->cfg = cfg;
    int rc = check_config(st, cfg);
    if (rc != 0) {
        free(st);
        return rc;
    }
    struct dsd_agg_config ac;
    dsd_agg_config_default(&ac);
    ac.bucket_s = DSD_BUCKET_S;
    ac.expiry_s = (uint32_t)cfg->expiry_seconds;
    ac.max_contexts = (uint32_t)cfg->max_contexts;
    ac.state_limit_bytes = cfg->samples_memory;
    ac.counts_as_count = cfg->counts_as_count;
    ac.aggregates = st->aggregates;
    ac.percentiles = st->percentiles;
    ac.npercentiles = st->npercentiles;
    ac.origin_detection = cfg->origin_detection;
    ac.extra_tags = cfg->dogstatsd_tags.tags;
    ac.nextra_tags = cfg->dogstatsd_tags.count;
    st->agg = dsd_agg_new(ins, &ac);
    if (st->agg == NULL) {
        rmr_log(ins, RMR_LOG_ERROR, "cannot set up the aggregator: out of memory");
        free(st);
        return RMR_ENOMEM;
    }
    pthread_mutex_init(&st->mu, NULL);
    *state = st;
    return 0;
}

static int listen_on(struct dsd_state *st, const char *address, uint64_t rcvbuf,
                     rmr_dgram_sock_t **out)
{
    struct rmr_dgram_spec spec = {
        .struct_size = sizeof spec,
        .flags = RMR_DGRAM_OWN_THREAD,
        .address = address,
        .rcvbuf_bytes = rcvbuf,
        .max_datagram = st->max_datagram,
        .batch = st->batch,
    };
    /* The host has logged why when it fails. */
    return rmr_dgram_listen(st->ins, &spec, on_packets, st, out);
}

static int dsd_start(rmr_instance_t *ins, void *state)
{
    struct dsd_state *st = state;
    const struct dsd_cfg *cfg = st->cfg;
    if (!cfg->use_dogstatsd) {
        rmr_log(ins, RMR_LOG_INFO, "use_dogstatsd (DD_USE_DOGSTATSD) is false: not listening");
        return 0;
    }
    if (st->udp_address[0] == '\0' && st->unix_address[0] == '\0' &&
        st->stream_address[0] == '\0') {
        rmr_log(ins, RMR_LOG_WARN,
                "nothing to listen on: port is 0 and neither socket nor stream_socket is set; "
                "the input stays idle");
        return 0;
    }
    if (!RMR_HOST_HAS(ins, dgram_listen)) {
        rmr_log(ins, RMR_LOG_ERROR, "this agent has no datagram listeners (ABI 1.1 or newer)");
        return RMR_ENOTSUP;
    }
    int rc = 0;
    if (st->udp_address[0] != '\0' &&
        (rc = listen_on(st, st->udp_address, cfg->so_rcvbuf, &st->udp)) != 0)
        return rc;
    if (st->unix_address[0] != '\0' &&
        (rc = listen_on(st, st->unix_address, cfg->so_rcvbuf, &st->unix_dgram)) != 0)
        return rc;
    /* A stream is flow-controlled: a full buffer makes the client wait, nothing is lost, so
     * the kernel's default buffer will do. */
    if (st->stream_address[0] != '\0' &&
        (rc = listen_on(st, st->stream_address, 0, &st->stream)) != 0)
        return rc;
    st->running = 1;
    return rmr_timer_start(ins, (uint64_t)cfg->flush_interval_ms, (uint64_t)cfg->flush_interval_ms,
                           on_flush, st, &st->timer);
}

/* Closes the listeners (joining the reader threads), then emits everything still aggregated,
 * the open bucket included, and the last counters. */
static int dsd_stop(rmr_instance_t *ins, void *state)
{
    (void)ins;
    struct dsd_state *st = state;
    rmr_dgram_close(st->udp);
    rmr_dgram_close(st->unix_dgram);
    rmr_dgram_close(st->stream);
    st->udp = st->unix_dgram = st->stream = NULL;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    if (st->running)
        flush(st, 1);
    st->running = 0;
    return 0;
}

static void dsd_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    struct dsd_state *st = state;
    if (st == NULL)
        return;
    /* Listeners and timers still open (a failed start) were released by the host. */
    dsd_agg_free(st->agg);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static const struct rmr_plugin dsd_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "dogstatsd",
    .version = "1.0.0",
    .description = "DogStatsD metrics, events and service checks over UDP and Unix sockets, "
                   "aggregated in 10 s buckets as the Datadog Agent does",
    .aliases = "statsd",
    .enable_env = "DD_USE_DOGSTATSD,DD_DOGSTATSD_NON_LOCAL_TRAFFIC",
    .options = dsd_options,
    .config_size = sizeof(struct dsd_cfg),
    .create = dsd_create,
    .start = dsd_start,
    .stop = dsd_stop,
    .destroy = dsd_destroy,
};

RMR_PLUGIN_DEFINE(dsd_plugin)
