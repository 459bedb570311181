/* remora SDK testing: the fake host (see fakehost.h).
 *
 * Everything runs on the test's thread. Batches are the core's own (core/record/batch.h) and
 * config structs are filled by the core's own schema code (core/config/config.h), so a plugin
 * tested here sees the same record views and option parsing as under the agent; JSON quoting
 * and compression come from core/util/buf.h, which the agent's host table uses too. What is
 * fake: clocks, timers (fired only by rmr_fakehost_advance), the pipeline (emitted batches are
 * sealed and kept) and delivery (committed payloads are kept). The network services of ABI
 * 1.1 follow core/host_net.c and the agent's HTTP server (routing, 404/405/503, the headers an
 * answer keeps, Retry-After) and client (method defaults, E2BIG, timeouts, cancellation at
 * stop), with the test in place of the sockets.
 */
#include "fakehost.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "loader.h"
#include "record/batch.h"
#include "tagger/tagger.h"
#include "util/buf.h"
#include "util/httptext.h"
#include "util/payload.h"

/* 2026-01-01T00:00:00Z, and a monotonic clock that does not start at zero so that plugins
 * cannot mistake 0 for "never". */
#define FH_WALL_START_NS INT64_C(1767225600000000000)
#define FH_MONO_START_NS INT64_C(1000000000)
#define NS_PER_MS        INT64_C(1000000)

/* The descriptor size of ABI 1.0: everything up to and including classify. */

/* Same bound as the agent's payloads, so an encoder that only passes here because memory is
 * unbounded cannot slip through. */

struct fh_counter {
    char *name;
    char *reason;      /* NULL when none */
    char *record_kind; /* encoder drops: "metric", ...; else NULL */
    uint64_t value;
    int gauge; /* ABI 1.4: set by rmr_gauge_set() */
};

struct rmr_instance {
    struct rmr_handle h; /* must stay first */
    struct rmr_fakehost *fh;
    struct rmr_plugin desc; /* the checked copy, like the loader keeps */
    char *name;             /* "input.dk", "output.file", "input.dk.2" */
    struct cfg_store *store;
    void *config;
    void *state;
    int started;       /* start() succeeded: its routes take requests */
    int stopping;      /* stop() was called */
    int stop_finished; /* stop() returned 0, or rmr_stop_done() was called */
    int net_released;  /* routes, fetches, listeners let go (net_release) */
    struct fh_counter *counters;
    uint32_t ncounters;
    uint32_t counters_cap;
    struct tagset published; /* ABI 1.2: task-wide tags it published */
    char *halt_reason;       /* ABI 1.3: set by rmr_output_halt() */
    struct rmr_instance *next;
};

struct rmr_timer {
    struct rmr_handle h; /* must stay first */
    struct rmr_instance *ins;
    rmr_timer_cb cb;
    void *arg;
    int64_t due_ns;     /* on the fake monotonic clock */
    uint64_t period_ms; /* 0: once */
    uint64_t seq;       /* arming order, to fire timers due at the same time in FIFO order */
    int armed;          /* 0 once a one-shot timer fired: the plugin still owns the handle */
    struct rmr_timer *next;
};

struct rmr_encoder {
    struct rmr_handle h; /* must stay first */
    struct rmr_fakehost *fh;
    struct rmr_instance *ins;
};

struct fh_payload {
    struct rmr_fakehost_payload pub;
    char *endpoint;
    char *content_type;
    char *headers;
    unsigned char *body;
};

struct fh_stat {
    struct rmr_stat s; /* strings below are owned copies */
};

/* A growable array of pointers; items are freed by the owner. */
struct ptrvec {
    void **items;
    uint32_t count;
    uint32_t cap;
};

/* ---- network services: state (ABI 1.1) ------------------------------------------------------ */

#define FH_ADDR_LEN      96                /* "[ffff:...:ffff]:65535" and then some */
#define FH_REMOTE        "127.0.0.1:54321" /* every fake request's client */
#define FH_FIRST_PORT    40000u            /* what port 0 gets, counting up, as a kernel would */
#define FETCH_TIMEOUT_MS 10000             /* the agent's default for a fetch */
#define FETCH_MAX_BYTES  ((size_t)16 << 20)
#define DGRAM_DEF_MAX    65535u
#define DGRAM_MAX        (16u << 20)
#define DGRAM_DEF_BATCH  32u
#define DGRAM_MAX_BATCH  1024u
#define DGRAM_MAX_AREA   ((uint64_t)256 << 20)
/* Fetch answers delivered at one moment. A plugin that fetches again from every fetch
 * callback would otherwise keep rmr_fakehost_advance() busy forever at one instant. */
#define SETTLE_MAX 10000u

struct fh_route {
    struct fh_route *next;
    char *method; /* NULL: any */
    char *path;
    size_t path_len;
    uint32_t flags;
    rmr_route_cb cb;
    void *arg;
    struct rmr_instance *ins;
};

/* An HTTP listener: the shared one (embedded in the fake host) or an instance's own. */
struct rmr_listener {
    struct rmr_listener *next;
    struct rmr_instance *owner; /* NULL: the shared listener */
    char address[FH_ADDR_LEN];  /* canonical, as the agent's httpd_address(): "127.0.0.1:8126" */
    struct fh_route *routes;    /* in registration order: the first wins a tie, as in httpd */
};

/* A repeated request header joined with ", ", made on first lookup. */
struct fh_join {
    struct fh_join *next;
    char *name;
    char *value;
};

struct fh_answer;

struct rmr_http_req {
    struct rmr_handle h;       /* must stay first */
    struct rmr_http_req *next; /* the fake host's held requests */
    struct rmr_instance *ins;
    struct fh_answer *ans; /* NULL once the test freed the answer: the client has gone */
    char *method;
    char *path;
    char *query;
    struct rmr_http_header *headers;
    uint32_t nheaders;
    int head;
    char *body; /* NUL-ended */
    size_t body_len;
    struct fh_join *joins;
};

struct fh_answer {
    struct rmr_fakehost_http_answer pub; /* must stay first */
    struct fh_answer *next;
    struct rmr_http_req *req; /* while a plugin holds the request, else NULL */
    struct rmr_http_header *headers;
    char *content_type;
    char *body;
};

struct fh_fetch {
    struct rmr_fakehost_fetch pub; /* must stay first */
    rmr_fetch_cb cb;
    void *arg;
    char *method;
    char *url;
    struct rmr_http_header *headers;
    void *body;
    int64_t deadline_ns;  /* on the fake monotonic clock: RMR_ETIMEDOUT then */
    uint64_t asked_point; /* the delivery point the answer was last looked for at */
    int times_out;        /* the answer is RMR_ETIMEDOUT: nothing but the deadline ends it */
};

/* A canned fetch answer (rmr_fakehost_fetch_serve*). */
struct fh_served {
    struct fh_served *next;
    char *method; /* NULL: any */
    char *url;
    int32_t status;
    int32_t error;
    char *body;
    size_t len;
};

struct rmr_dgram_sock {
    struct rmr_handle h; /* must stay first */
    struct rmr_dgram_sock *next;
    struct rmr_instance *ins;
    uint64_t id;                /* notices a listener that its own callback closed */
    struct rmr_dgram_spec spec; /* as given; spec.address points at given */
    char *given;
    char *address; /* "udp://127.0.0.1:8125" or "unix:///run/x.sock", as rmr_dgram_address() */
    rmr_dgram_cb cb;
    void *arg;
};

struct rmr_fakehost {
    int64_t wall_ns;
    char hostname[256];
    int64_t mono_ns;
    struct rmr_instance *instances;
    uint32_t ninstances_made; /* names the second instance of a plugin "input.x.2" */
    struct rmr_timer *timers; /* every timer handle alive, armed or not, unordered */
    uint64_t timer_seq;
    char **schemas; /* NULL-terminated copies */
    int full;
    struct ptrvec emitted;  /* struct rmr_batch * */
    struct ptrvec payloads; /* struct fh_payload * */
    struct ptrvec logs;     /* char * */
    struct ptrvec stats;    /* struct fh_stat * */
    struct rmr_process_stats ps;
    /* Network services. */
    struct rmr_listener shared; /* the shared HTTP listener, when shared_on */
    int shared_on;
    struct rmr_listener *listeners; /* instances' own HTTP listeners */
    uint32_t next_port;             /* the next fake port for an address with port 0 */
    struct rmr_http_req *held;      /* requests handed to plugins, not answered yet */
    struct fh_answer *answers;      /* every answer the test has not freed */
    struct ptrvec fetches;          /* struct fh_fetch *, in the order made */
    uint32_t fetch_first;           /* fetches before this index are done */
    uint64_t fetch_point;           /* counts delivery points */
    struct fh_served *served;
    rmr_fakehost_fetch_fn responder;
    void *responder_arg;
    struct rmr_dgram_sock *dgrams;
    uint64_t dgram_seq;
    /* ABI 1.2. */
    struct tagger *tagger;        /* made on first use */
    struct tagset published_tags; /* the union of instances' published tags */
};

static const struct rmr_host_api fake_api;
static void net_release(struct rmr_fakehost *fh, struct rmr_instance *ins);

/* ---- small helpers -------------------------------------------------------------------- */

static int ptrvec_push(struct ptrvec *v, void *item)
{
    if (v->count == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 8;
        void **items = realloc(v->items, cap * sizeof *items);
        if (items == NULL)
            return RMR_ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->count++] = item;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static const char *level_name(uint32_t level)
{
    switch ((enum rmr_log_level)level) {
    case RMR_LOG_ERROR: return "ERROR";
    case RMR_LOG_WARN: return "WARN";
    case RMR_LOG_INFO: return "INFO";
    case RMR_LOG_DEBUG: return "DEBUG";
    }
    return "DEBUG";
}

__attribute__((format(printf, 3, 4))) static void fail_msg(char *err, size_t errlen,
                                                           const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Keeps a log line "LEVEL message"; a line that cannot be kept for lack of memory is lost,
 * as the agent's logger would lose it. */
__attribute__((format(printf, 3, 0))) static void keep_log(struct rmr_fakehost *fh, uint32_t level,
                                                           const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    const char *lv = level_name(level);
    size_t lvlen = strlen(lv);
    char *line = malloc(lvlen + 1 + (size_t)n + 1);
    if (line == NULL)
        return;
    memcpy(line, lv, lvlen);
    line[lvlen] = ' ';
    vsnprintf(line + lvlen + 1, (size_t)n + 1, fmt, ap);
    if (ptrvec_push(&fh->logs, line) < 0)
        free(line);
}

/* ---- counters ------------------------------------------------------------------------- */

static void count(struct rmr_instance *ins, const char *name, const char *reason,
                  const char *record_kind, uint64_t delta)
{
    for (uint32_t i = 0; i < ins->ncounters; i++) {
        struct fh_counter *c = &ins->counters[i];
        if (strcmp(c->name, name) == 0 && same(c->reason, reason) &&
            same(c->record_kind, record_kind)) {
            c->value += delta;
            return;
        }
    }
    if (ins->ncounters == ins->counters_cap) {
        uint32_t cap = ins->counters_cap ? ins->counters_cap * 2 : 8;
        struct fh_counter *items = realloc(ins->counters, cap * sizeof *items);
        if (items == NULL)
            return;
        ins->counters = items;
        ins->counters_cap = cap;
    }
    struct fh_counter *c = &ins->counters[ins->ncounters];
    c->name = strdup(name);
    c->reason = dup_or_null(reason);
    c->record_kind = dup_or_null(record_kind);
    c->value = delta;
    c->gauge = 0;
    if (c->name == NULL || (reason != NULL && c->reason == NULL) ||
        (record_kind != NULL && c->record_kind == NULL)) {
        free(c->name);
        free(c->reason);
        free(c->record_kind);
        return;
    }
    ins->ncounters++;
}

/* ---- host table: instances ------------------------------------------------------------ */

__attribute__((format(printf, 3, 0))) static void h_logv(rmr_instance_t *ins, uint32_t level,
                                                         const char *fmt, va_list ap)
{
    keep_log(ins->fh, level, fmt, ap);
}

static const char *h_instance_name(rmr_instance_t *ins)
{
    return ins->name;
}

static int64_t h_now_ns(rmr_instance_t *ins)
{
    return ins->fh->wall_ns;
}

static int64_t h_mono_ns(rmr_instance_t *ins)
{
    return ins->fh->mono_ns;
}

static int h_timer_start(rmr_instance_t *ins, uint64_t first_ms, uint64_t period_ms,
                         rmr_timer_cb cb, void *arg, rmr_timer_t **out)
{
    if (cb == NULL || out == NULL)
        return RMR_EINVAL;
    if (ins->stop_finished)
        return RMR_ESTOPPED;
    /* Keep due times representable: a test never advances by centuries. */
    if (first_ms > (uint64_t)INT64_MAX / 4 / (uint64_t)NS_PER_MS ||
        period_ms > (uint64_t)INT64_MAX / 4 / (uint64_t)NS_PER_MS)
        return RMR_ERANGE;
    struct rmr_fakehost *fh = ins->fh;
    struct rmr_timer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return RMR_ENOMEM;
    t->h.host = &fake_api;
    t->ins = ins;
    t->cb = cb;
    t->arg = arg;
    t->due_ns = fh->mono_ns + (int64_t)first_ms * NS_PER_MS;
    t->period_ms = period_ms;
    t->seq = fh->timer_seq++;
    t->armed = 1;
    t->next = fh->timers;
    fh->timers = t;
    *out = t;
    return 0;
}

static void h_timer_stop(rmr_timer_t *timer)
{
    struct rmr_fakehost *fh = timer->ins->fh;
    for (struct rmr_timer **pp = &fh->timers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == timer) {
            *pp = timer->next;
            free(timer);
            return;
        }
    }
}

static rmr_batch_t *h_batch_new(rmr_instance_t *ins, const char *schema)
{
    return batch_new(&fake_api, schema, 0);
}

static void h_batch_free(rmr_batch_t *b)
{
    batch_unref(b);
}

static int h_batch_add(rmr_batch_t *b, uint32_t kind, const void *rec)
{
    if (rec == NULL)
        return RMR_EINVAL;
    return batch_add(b, kind, rec);
}

static const char *h_hostname(rmr_instance_t *ins)
{
    return ins->fh->hostname;
}

static int h_emit(rmr_instance_t *ins, rmr_batch_t *b)
{
    struct rmr_fakehost *fh = ins->fh;
    if (b == NULL)
        return RMR_EINVAL;
    uint32_t n = batch_count(b);
    if (n == 0) {
        batch_unref(b);
        return 0;
    }
    if (ins->desc.kind != RMR_KIND_INPUT || ins->stop_finished) {
        count(ins, "records_dropped", "stopped", NULL, n);
        batch_unref(b);
        return RMR_ESTOPPED;
    }
    if (fh->full) {
        count(ins, "records_dropped", "queue_full", NULL, n);
        batch_unref(b);
        return RMR_EFULL;
    }
    /* As the agent does: records without a timestamp get the emit time, and schema-less
     * records the task-wide tags instances published. */
    batch_stamp_time(b, fh->wall_ns);
    if (b->schema == NULL && fh->published_tags.ntags > 0 &&
        batch_merge_tags(b, fh->published_tags.tags, fh->published_tags.ntags) < 0) {
        count(ins, "records_dropped", "no_memory", NULL, n);
        batch_unref(b);
        return RMR_ENOMEM;
    }
    batch_seal(b);
    if (ptrvec_push(&fh->emitted, b) < 0) {
        count(ins, "records_dropped", "no_memory", NULL, n);
        batch_unref(b);
        return RMR_ENOMEM;
    }
    count(ins, "records_in", NULL, NULL, n);
    return 0;
}

static int h_schema_wanted(rmr_instance_t *ins, const char *schema)
{
    if (schema == NULL || ins->fh->schemas == NULL)
        return 0;
    for (char **s = ins->fh->schemas; *s != NULL; s++)
        if (strcmp(*s, schema) == 0)
            return 1;
    return 0;
}

/* ---- host table: reading batches --------------------------------------------------------- */

static uint32_t h_batch_count(const rmr_batch_t *b)
{
    return batch_count(b);
}

static const char *h_batch_schema(const rmr_batch_t *b)
{
    return batch_schema(b);
}

static uint32_t h_record_kind(const rmr_batch_t *b, uint32_t i)
{
    return batch_kind(b, i);
}

static int h_record_get(const rmr_batch_t *b, uint32_t i, uint32_t kind, void *view)
{
    if (view == NULL)
        return RMR_EINVAL;
    return batch_get(b, i, kind, view);
}

/* ---- host table: payloads ---------------------------------------------------------------- */

/* The payload itself is core/util/payload.c, the agent's own; only where a committed payload
 * goes differs: the fake host keeps it for the test to read. */
static rmr_payload_t *h_payload_new(rmr_encoder_t *enc, const struct rmr_payload_spec *spec)
{
    return payload_open(&fake_api, enc, spec);
}

static int h_payload_commit(rmr_payload_t *p, uint32_t nrecords)
{
    struct rmr_fakehost *fh = p->enc->fh;
    struct fh_payload *out = calloc(1, sizeof *out);
    if (out == NULL) {
        payload_discard(p);
        return RMR_ENOMEM;
    }
    out->pub.spec = p->spec;
    out->headers = payload_take_headers(p);
    /* "{lines}" is replaced as the agent's courier does when it sends. */
    if ((p->spec.flags & RMR_PAYLOAD_LINES) && out->headers != NULL &&
        strstr(out->headers, "{lines}") != NULL) {
        char *counted = headers_with_lines(out->headers, payload_lines(p));
        free(out->headers);
        out->headers = counted;
        if (counted == NULL) {
            payload_discard(p);
            free(out);
            return RMR_ENOMEM;
        }
    }
    size_t len = 0;
    int rc = payload_seal(p, &out->endpoint, &out->content_type, &out->body, &len);
    if (rc == 0) {
        out->pub.spec.endpoint = out->endpoint;
        out->pub.spec.content_type = out->content_type;
        out->pub.spec.headers = out->headers;
        out->pub.body = out->body;
        out->pub.len = len;
        out->pub.nrecords = nrecords;
        rc = ptrvec_push(&fh->payloads, out);
    }
    if (rc < 0) {
        free(out->body);
        free(out->endpoint);
        free(out->content_type);
        free(out->headers);
        free(out);
    }
    return rc;
}

static void h_encoder_drop(rmr_encoder_t *enc, uint32_t record_kind, const char *reason, uint64_t n)
{
    count(enc->ins, "records_dropped", reason != NULL ? reason : "unspecified",
          record_kind_name(record_kind), n);
}

/* ---- host table: self-monitoring, work, lifecycle ------------------------------------------ */

static void h_counter_add(rmr_instance_t *ins, const char *name, const char *reason, uint64_t delta)
{
    if (name != NULL)
        count(ins, name, reason, NULL, delta);
}

/* ABI 1.4: a gauge is a counter entry whose value is replaced. */
static void h_gauge_set(rmr_instance_t *ins, const char *name, const char *reason, uint64_t value)
{
    if (name == NULL)
        return;
    count(ins, name, reason, NULL, 0);
    for (uint32_t i = 0; i < ins->ncounters; i++) {
        struct fh_counter *c = &ins->counters[i];
        if (strcmp(c->name, name) == 0 && same(c->reason, reason) && c->record_kind == NULL) {
            c->value = value;
            c->gauge = 1;
        }
    }
}

/* Reports the stats registered with rmr_fakehost_add_stat() only (not the instances' own
 * counters), so a self-monitoring test sees exactly what it set up. */
static int h_stats_foreach(rmr_instance_t *ins, rmr_stats_cb cb, void *arg)
{
    if (cb == NULL)
        return RMR_EINVAL;
    struct rmr_fakehost *fh = ins->fh;
    for (uint32_t i = 0; i < fh->stats.count; i++) {
        const struct fh_stat *st = fh->stats.items[i];
        cb(arg, &st->s);
    }
    return 0;
}

static int h_process_stats(rmr_instance_t *ins, struct rmr_process_stats *out)
{
    if (out == NULL || out->struct_size < sizeof(uint32_t))
        return RMR_EINVAL;
    uint32_t size = out->struct_size;
    struct rmr_process_stats ps = ins->fh->ps;
    ps.struct_size = size;
    memcpy(out, &ps, size < sizeof ps ? size : sizeof ps);
    return 0;
}

static int h_work(rmr_instance_t *ins, rmr_work_cb fn, rmr_work_done_cb done, void *arg)
{
    if (fn == NULL)
        return RMR_EINVAL;
    fn(arg);
    if (done != NULL)
        done(ins, arg, 0);
    return 0;
}

/* As in the agent, a stop that finishes releases the instance's network services. */
static void h_stop_done(rmr_instance_t *ins)
{
    ins->stop_finished = 1;
    if (ins->stopping)
        net_release(ins->fh, ins);
}

/* ---- network services: helpers ------------------------------------------------------------- */

/* Keeps a line of the fake host's own about a plugin's misuse, already "LEVEL message". */
static void fake_log(struct rmr_fakehost *fh, const char *line)
{
    char *copy = strdup(line);
    if (copy != NULL && ptrvec_push(&fh->logs, copy) < 0)
        free(copy);
}

static void headers_free(struct rmr_http_header *h, uint32_t n)
{
    if (h == NULL)
        return;
    for (uint32_t i = 0; i < n; i++) {
        free((char *)h[i].name);
        free((char *)h[i].value);
    }
    free(h);
}

/* Copies n headers; *out is NULL when n is 0. */
static int headers_copy(const struct rmr_http_header *in, uint32_t n, struct rmr_http_header **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    struct rmr_http_header *h = calloc(n, sizeof *h);
    if (h == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        h[i].name = strdup(in[i].name);
        h[i].value = strdup(in[i].value);
        if (h[i].name == NULL || h[i].value == NULL) {
            headers_free(h, i + 1);
            return RMR_ENOMEM;
        }
    }
    *out = h;
    return 0;
}

static const char *header_find(const struct rmr_http_header *h, uint32_t n, const char *name)
{
    if (name == NULL)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

static void *memdup0(const void *p, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL)
        return NULL;
    if (len > 0)
        memcpy(c, p, len);
    c[len] = '\0';
    return c;
}

/* Parses "HOST:PORT" as the agent's listeners do: HOST an IPv4 address, an IPv6 address in
 * brackets or localhost (no name is looked up). For HTTP also a bare port (127.0.0.1) and an
 * empty or "*" host (0.0.0.0). Writes the canonical host into host (brackets for IPv6). */
static int inet_parse(const char *hostport, int http, char host[FH_ADDR_LEN], uint32_t *port)
{
    char h[INET6_ADDRSTRLEN + 1];
    const char *p;
    size_t hlen;
    int v6 = 0;
    if (hostport == NULL || hostport[0] == '\0')
        return RMR_EINVAL;
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (end == NULL || end[1] != ':')
            return RMR_EINVAL;
        hlen = (size_t)(end - hostport - 1);
        if (hlen >= sizeof h)
            return RMR_EINVAL;
        memcpy(h, hostport + 1, hlen);
        p = end + 2;
        v6 = 1;
    } else {
        const char *colon = strrchr(hostport, ':');
        if (colon == NULL) {
            if (!http)
                return RMR_EINVAL;
            hlen = 0;
            p = hostport;
            memcpy(h, "127.0.0.1", sizeof "127.0.0.1");
        } else {
            hlen = (size_t)(colon - hostport);
            if (memchr(hostport, ':', hlen) != NULL || hlen >= sizeof h)
                return RMR_EINVAL; /* IPv6 needs brackets */
            memcpy(h, hostport, hlen);
            p = colon + 1;
            h[hlen] = '\0';
            if (hlen == 0 || strcmp(h, "*") == 0) {
                if (!http)
                    return RMR_EINVAL;
                memcpy(h, "0.0.0.0", sizeof "0.0.0.0");
            }
        }
    }
    if (v6)
        h[hlen] = '\0';
    uint32_t pnum = 0;
    size_t ndigits = 0;
    for (; *p != '\0'; p++, ndigits++) {
        if (*p < '0' || *p > '9' || ndigits >= 5)
            return RMR_EINVAL;
        pnum = pnum * 10 + (uint32_t)(*p - '0');
    }
    if (ndigits == 0 || pnum > 65535)
        return RMR_EINVAL;
    char canon[INET6_ADDRSTRLEN];
    if (v6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, h, &a6) != 1 ||
            inet_ntop(AF_INET6, &a6, canon, sizeof canon) == NULL)
            return RMR_EINVAL;
        snprintf(host, FH_ADDR_LEN, "[%s]", canon);
    } else {
        struct in_addr a4;
        const char *ip = strcasecmp(h, "localhost") == 0 ? "127.0.0.1" : h;
        if (inet_pton(AF_INET, ip, &a4) != 1 ||
            inet_ntop(AF_INET, &a4, canon, sizeof canon) == NULL)
            return RMR_EINVAL;
        snprintf(host, FH_ADDR_LEN, "%s", canon);
    }
    *port = pnum;
    return 0;
}

/* The canonical form of an HTTP listener address. Port 0 gets a fresh fake port from
 * *next_port (as binding to port 0 would), or stays 0 when next_port is NULL. */
static int http_address(uint32_t *next_port, const char *address, char out[FH_ADDR_LEN])
{
    char host[FH_ADDR_LEN];
    uint32_t port;
    int rc = inet_parse(address, 1, host, &port);
    if (rc < 0)
        return rc;
    if (port == 0 && next_port != NULL)
        port = (*next_port)++;
    int n = snprintf(out, FH_ADDR_LEN, "%s:%u", host, port);
    return n > 0 && n < FH_ADDR_LEN ? 0 : RMR_EINVAL;
}

/* The canonical form of a datagram address, as rmr_dgram_address() reports it: returns owned
 * text in *out. Port 0 as for http_address(); *any_port tells it was 0. */
static int dgram_address_of(uint32_t *next_port, const char *address, char **out, int *any_port)
{
    static const char udp[] = "udp://", unx[] = "unix://", unxs[] = "unixstream://";
    *out = NULL;
    *any_port = 0;
    if (address == NULL || address[0] == '\0')
        return RMR_EINVAL;
    size_t prefix = 0;
    if (strncmp(address, unx, sizeof unx - 1) == 0)
        prefix = sizeof unx - 1;
    else if (strncmp(address, unxs, sizeof unxs - 1) == 0)
        prefix = sizeof unxs - 1;
    if (prefix > 0) {
        if (address[prefix] == '\0')
            return RMR_EINVAL;
        *out = strdup(address);
        return *out != NULL ? 0 : RMR_ENOMEM;
    }
    const char *hostport = address;
    if (strncmp(address, udp, sizeof udp - 1) == 0)
        hostport = address + sizeof udp - 1;
    else if (strstr(address, "://") != NULL)
        return RMR_EINVAL;
    char host[FH_ADDR_LEN];
    uint32_t port;
    int rc = inet_parse(hostport, 0, host, &port);
    if (rc < 0)
        return rc;
    *any_port = port == 0;
    if (port == 0 && next_port != NULL)
        port = (*next_port)++;
    char buf[FH_ADDR_LEN + 16];
    snprintf(buf, sizeof buf, "udp://%s:%u", host, port);
    *out = strdup(buf);
    return *out != NULL ? 0 : RMR_ENOMEM;
}

/* ---- network services: HTTP routes --------------------------------------------------------- */

static int listener_known(const struct rmr_fakehost *fh, const struct rmr_listener *l)
{
    if (l == &fh->shared)
        return 1;
    for (const struct rmr_listener *o = fh->listeners; o != NULL; o = o->next)
        if (o == l)
            return 1;
    return 0;
}

static void route_free(struct fh_route *rt)
{
    free(rt->method);
    free(rt->path);
    free(rt);
}

static void routes_remove(struct rmr_listener *l, const struct rmr_instance *ins)
{
    struct fh_route **pp = &l->routes;
    while (*pp != NULL) {
        struct fh_route *rt = *pp;
        if (ins == NULL || rt->ins == ins) {
            *pp = rt->next;
            route_free(rt);
        } else {
            pp = &rt->next;
        }
    }
}

static int h_http_listener(rmr_instance_t *ins, const char *address, rmr_listener_t **out)
{
    struct rmr_fakehost *fh = ins->fh;
    if (out == NULL)
        return RMR_EINVAL;
    *out = NULL;
    if (address == NULL || address[0] == '\0') {
        if (!fh->shared_on)
            return RMR_ENOTSUP;
        *out = &fh->shared;
        return 0;
    }
    if (ins->net_released)
        return RMR_ESTOPPED;
    char addr[FH_ADDR_LEN];
    if (http_address(NULL, address, addr) < 0)
        return RMR_EINVAL;
    if (fh->shared_on && strcmp(fh->shared.address, addr) == 0) {
        *out = &fh->shared;
        return 0;
    }
    for (struct rmr_listener *l = fh->listeners; l != NULL; l = l->next) {
        if (strcmp(l->address, addr) == 0) {
            *out = l;
            return 0;
        }
    }
    struct rmr_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RMR_ENOMEM;
    if (http_address(&fh->next_port, address, l->address) < 0) {
        free(l);
        return RMR_EINVAL;
    }
    l->owner = ins;
    l->next = fh->listeners;
    fh->listeners = l;
    *out = l;
    return 0;
}

static int h_http_route(rmr_instance_t *ins, rmr_listener_t *listener, const char *method,
                        const char *path, uint32_t flags, rmr_route_cb cb, void *arg)
{
    struct rmr_fakehost *fh = ins->fh;
    if (listener == NULL && !fh->shared_on)
        return RMR_ENOTSUP;
    struct rmr_listener *l = listener != NULL ? listener : &fh->shared;
    if (path == NULL || path[0] != '/' || cb == NULL || !listener_known(fh, l))
        return RMR_EINVAL;
    if (ins->net_released)
        return RMR_ESTOPPED;
    struct fh_route **tail = &l->routes;
    for (; *tail != NULL; tail = &(*tail)->next)
        if (same((*tail)->method, method) && strcmp((*tail)->path, path) == 0)
            return RMR_EEXIST;
    struct fh_route *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return RMR_ENOMEM;
    rt->method = dup_or_null(method);
    rt->path = strdup(path);
    if (rt->path == NULL || (method != NULL && rt->method == NULL)) {
        route_free(rt);
        return RMR_ENOMEM;
    }
    rt->path_len = strlen(path);
    rt->flags = flags;
    rt->cb = cb;
    rt->arg = arg;
    rt->ins = ins;
    *tail = rt;
    return 0;
}

/* Case-insensitive; repeated headers joined with ", " (made once, kept with the request). */
static const char *h_http_req_header(rmr_http_req_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    uint32_t first = 0, count_same = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) != 0)
            continue;
        if (count_same++ == 0)
            first = i;
        total += strlen(req->headers[i].value) + 2;
    }
    if (count_same == 0)
        return NULL;
    if (count_same == 1)
        return req->headers[first].value;
    for (struct fh_join *j = req->joins; j != NULL; j = j->next)
        if (strcasecmp(j->name, name) == 0)
            return j->value;
    struct fh_join *j = calloc(1, sizeof *j);
    char *v = malloc(total - 1);
    char *n = strdup(name);
    if (j == NULL || v == NULL || n == NULL) {
        free(j);
        free(v);
        free(n);
        return req->headers[first].value; /* out of memory: the first one is better than none */
    }
    size_t used = 0;
    for (uint32_t i = first; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) != 0)
            continue;
        size_t len = strlen(req->headers[i].value);
        if (used > 0) {
            memcpy(v + used, ", ", 2);
            used += 2;
        }
        memcpy(v + used, req->headers[i].value, len);
        used += len;
    }
    v[used] = '\0';
    j->name = n;
    j->value = v;
    j->next = req->joins;
    req->joins = j;
    return v;
}

static int h_http_req_info(rmr_http_req_t *req, struct rmr_http_req_info *out)
{
    if (req == NULL || out == NULL ||
        out->struct_size < offsetof(struct rmr_http_req_info, reserved_) + sizeof out->reserved_)
        return RMR_EINVAL;
    size_t size = out->struct_size;
#define FITS(m) (size >= offsetof(struct rmr_http_req_info, m) + sizeof out->m)
    if (FITS(method))
        out->method = req->method;
    if (FITS(path))
        out->path = req->path;
    if (FITS(query))
        out->query = req->query;
    if (FITS(content_type))
        out->content_type = h_http_req_header(req, "content-type");
    if (FITS(body))
        out->body = req->body;
    if (FITS(body_len))
        out->body_len = req->body_len;
    if (FITS(remote))
        out->remote = FH_REMOTE;
#undef FITS
    return 0;
}

static void req_free(struct rmr_http_req *req)
{
    while (req->joins != NULL) {
        struct fh_join *j = req->joins;
        req->joins = j->next;
        free(j->name);
        free(j->value);
        free(j);
    }
    headers_free(req->headers, req->nheaders);
    free(req->method);
    free(req->path);
    free(req->query);
    free(req->body);
    free(req);
}

static void held_unlink(struct rmr_fakehost *fh, struct rmr_http_req *req)
{
    for (struct rmr_http_req **pp = &fh->held; *pp != NULL; pp = &(*pp)->next)
        if (*pp == req) {
            *pp = req->next;
            return;
        }
}

/* Fills an answer as the agent's server would write it (see build_response() in
 * core/net/server/httpd.c): the status range, the headers it drops, Retry-After for 429 and
 * 503, no body for 204, 304 and HEAD. */
static int answer_fill(struct fh_answer *a, int status, const struct rmr_http_header *headers,
                       uint32_t nheaders, const char *content_type, const void *body, size_t len,
                       int head)
{
    if (status < 200 || status > 599)
        status = 500;
    if (body == NULL)
        len = 0;
    if (headers == NULL)
        nheaders = 0;
    int no_body = status == 204 || status == 304;
    int send_body = !no_body && !head && len > 0;
    if (content_type != NULL && !http_is_field_value(content_type))
        content_type = NULL;
    int retry_after = http_answer_adds_retry_after(status, headers, nheaders);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < nheaders; i++)
        kept += (uint32_t)http_answer_header_kept(&headers[i], content_type);
    struct rmr_http_header *h = NULL;
    char *ct = NULL, *b = NULL;
    uint32_t n = 0;
    if (kept + (uint32_t)retry_after > 0 && (h = calloc(kept + 1, sizeof *h)) == NULL)
        goto nomem;
    for (uint32_t i = 0; i < nheaders; i++) {
        if (!http_answer_header_kept(&headers[i], content_type))
            continue;
        h[n].name = strdup(headers[i].name);
        h[n].value = strdup(headers[i].value);
        n++;
        if (h[n - 1].name == NULL || h[n - 1].value == NULL)
            goto nomem;
    }
    if (retry_after) {
        h[n].name = strdup("Retry-After");
        h[n].value = strdup("1");
        n++;
        if (h[n - 1].name == NULL || h[n - 1].value == NULL)
            goto nomem;
    }
    if (content_type != NULL && !no_body && (ct = strdup(content_type)) == NULL)
        goto nomem;
    if ((b = memdup0(body, send_body ? len : 0)) == NULL)
        goto nomem;
    a->headers = h;
    a->content_type = ct;
    a->body = b;
    a->pub.status = status;
    a->pub.nheaders = n;
    a->pub.headers = h;
    a->pub.content_type = ct;
    a->pub.body = b;
    a->pub.len = send_body ? len : 0;
    return 0;

nomem:
    free(b);
    free(ct);
    headers_free(h, n);
    /* As the agent's server: an answer it cannot build becomes a bodiless 503. */
    a->pub.status = 503;
    a->pub.body = "";
    return RMR_ENOMEM;
}

static int h_http_respond(rmr_http_req_t *req, int status, const struct rmr_http_header *headers,
                          uint32_t nheaders, const char *content_type, const void *body, size_t len)
{
    if (req == NULL)
        return RMR_EINVAL;
    struct rmr_fakehost *fh = req->ins->fh;
    held_unlink(fh, req);
    struct fh_answer *a = req->ans;
    int rc = RMR_ECONNRESET;
    if (a != NULL) {
        a->req = NULL;
        /* Out of memory the agent still answers (503): 0, as it returns. */
        (void)answer_fill(a, status, headers, nheaders, content_type, body, len, req->head);
        rc = 0;
    }
    req_free(req);
    return rc;
}

/* ---- network services: outbound requests --------------------------------------------------- */

static void fetch_free(struct fh_fetch *f)
{
    headers_free(f->headers, f->pub.nheaders);
    free(f->method);
    free(f->url);
    free(f->body);
    free(f);
}

static int h_http_fetch(rmr_instance_t *ins, const struct rmr_fetch_spec *spec, rmr_fetch_cb cb,
                        void *arg)
{
    struct rmr_fakehost *fh = ins->fh;
    /* The agent's checks (core/host_net.c and its HTTP client), so what fails there fails here. */
    if (spec == NULL || spec->struct_size < offsetof(struct rmr_fetch_spec, max_response_bytes) ||
        spec->url == NULL || cb == NULL || (spec->nheaders > 0 && spec->headers == NULL))
        return RMR_EINVAL;
    if (strncasecmp(spec->url, "http://", 7) != 0 && strncasecmp(spec->url, "https://", 8) != 0)
        return RMR_EINVAL;
    if (spec->method != NULL && !http_is_token(spec->method))
        return RMR_EINVAL;
    for (uint32_t i = 0; i < spec->nheaders; i++) {
        const struct rmr_http_header *h = &spec->headers[i];
        if (h->name == NULL || h->value == NULL || strpbrk(h->name, "\r\n:") != NULL ||
            strpbrk(h->value, "\r\n") != NULL)
            return RMR_EINVAL;
    }
    if (ins->net_released)
        return RMR_ESTOPPED;
    int has_body = spec->body != NULL && spec->body_len > 0;
    struct fh_fetch *f = calloc(1, sizeof *f);
    if (f == NULL)
        return RMR_ENOMEM;
    f->cb = cb;
    f->arg = arg;
    f->method = strdup(spec->method != NULL ? spec->method : has_body ? "POST" : "GET");
    f->url = strdup(spec->url);
    if (f->method == NULL || f->url == NULL ||
        headers_copy(spec->headers, spec->nheaders, &f->headers) < 0)
        goto nomem;
    f->pub.nheaders = spec->nheaders;
    if (has_body) {
        if ((f->body = malloc(spec->body_len)) == NULL)
            goto nomem;
        memcpy(f->body, spec->body, spec->body_len);
        f->pub.body = f->body;
        f->pub.body_len = spec->body_len;
    }
    f->pub.ins = ins;
    f->pub.method = f->method;
    f->pub.url = f->url;
    f->pub.headers = f->headers;
    f->pub.timeout_ms = spec->timeout_ms;
    if (spec->struct_size >= offsetof(struct rmr_fetch_spec, max_response_bytes) + sizeof(size_t))
        f->pub.max_response_bytes = spec->max_response_bytes;
    f->pub.mono_ns = fh->mono_ns;
    f->deadline_ns =
        fh->mono_ns + (int64_t)(spec->timeout_ms ? spec->timeout_ms : FETCH_TIMEOUT_MS) * NS_PER_MS;
    if (ptrvec_push(&fh->fetches, f) < 0)
        goto nomem;
    return 0;

nomem:
    fetch_free(f);
    return RMR_ENOMEM;
}

/* Runs a fetch's callback with its answer (the body copied to a buffer of exactly its length,
 * so a plugin reading past body_len trips the sanitizers). counted: the agent counts answers
 * in "http_fetches", not cancellations. */
static void fetch_finish(struct rmr_fakehost *fh, struct fh_fetch *f, int32_t status, int32_t error,
                         int64_t retry_after_ms, const char *body, size_t len, int counted)
{
    size_t max = f->pub.max_response_bytes ? f->pub.max_response_bytes : FETCH_MAX_BYTES;
    if (body == NULL)
        len = 0;
    if (error == 0 && len > max) {
        error = RMR_E2BIG;
        len = max;
    }
    char *copy = NULL;
    if (len > 0 && (copy = malloc(len)) == NULL) {
        status = 0;
        error = RMR_EIO;
        len = 0;
    }
    if (copy != NULL)
        memcpy(copy, body, len);
    if (error != 0 && error != RMR_E2BIG) {
        status = 0;
        retry_after_ms = -1;
    }
    f->pub.done = 1;
    f->pub.status = status;
    f->pub.error = error;
    if (counted) {
        char code[16];
        snprintf(code, sizeof code, "%d", (int)status);
        count(f->pub.ins, "http_fetches", status > 0 ? code : "error", NULL, 1);
    }
    struct rmr_response resp = {
        .struct_size = sizeof resp,
        .status = status,
        .error = error,
        .retry_after_ms = retry_after_ms,
        .body = copy != NULL ? copy : "",
        .body_len = len,
    };
    f->cb(f->pub.ins, f->arg, &resp);
    free(copy);
}

static const struct fh_served *served_find(const struct rmr_fakehost *fh, const char *method,
                                           const char *url)
{
    const struct fh_served *any = NULL;
    for (const struct fh_served *s = fh->served; s != NULL; s = s->next) {
        if (strcmp(s->url, url) != 0)
            continue;
        if (s->method != NULL && strcmp(s->method, method) == 0)
            return s;
        if (s->method == NULL && any == NULL)
            any = s;
    }
    return any;
}

/* Looks for the answer to f: the responder, then the served table. */
static void fetch_ask(struct rmr_fakehost *fh, struct fh_fetch *f)
{
    struct rmr_response r = {.struct_size = sizeof r, .retry_after_ms = -1};
    int rc = RMR_ENOENT;
    if (fh->responder != NULL)
        rc = fh->responder(fh->responder_arg, &f->pub, &r);
    if (rc == RMR_ENOENT) {
        const struct fh_served *s = served_find(fh, f->method, f->url);
        memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        r.retry_after_ms = -1;
        if (s == NULL) {
            rc = RMR_ECONNREFUSED;
        } else if (s->error != 0) {
            rc = s->error;
        } else {
            rc = 0;
            r.status = s->status;
            r.body = s->body;
            r.body_len = s->len;
        }
    }
    if (rc == RMR_EINPROGRESS)
        return;
    if (rc == 0 && r.error == RMR_ETIMEDOUT)
        rc = RMR_ETIMEDOUT;
    if (rc == RMR_ETIMEDOUT) {
        f->times_out = 1; /* the agent's client says so only when the time is up */
        return;
    }
    if (rc < 0)
        fetch_finish(fh, f, 0, rc, -1, NULL, 0, 1);
    else
        fetch_finish(fh, f, r.status, r.error, r.retry_after_ms, r.body, r.body_len, 1);
}

/* Skips the fetches known to be done, so a long test does not rescan them all. */
static void fetch_skip_done(struct rmr_fakehost *fh)
{
    while (fh->fetch_first < fh->fetches.count &&
           ((struct fh_fetch *)fh->fetches.items[fh->fetch_first])->pub.done)
        fh->fetch_first++;
}

/* A delivery point: answers every pending fetch that has an answer now, in fetch order, and
 * times out those whose deadline came. Fetches made by these callbacks are answered at the
 * same point; the responder is asked about a fetch at most once per point. */
static void fetch_settle(struct rmr_fakehost *fh)
{
    uint64_t point = ++fh->fetch_point;
    for (uint32_t budget = SETTLE_MAX; budget > 0; budget--) {
        struct fh_fetch *f = NULL;
        fetch_skip_done(fh);
        for (uint32_t i = fh->fetch_first; i < fh->fetches.count; i++) {
            struct fh_fetch *c = fh->fetches.items[i];
            if (c->pub.done)
                continue;
            if (c->deadline_ns <= fh->mono_ns || (!c->times_out && c->asked_point != point)) {
                f = c;
                break;
            }
        }
        if (f == NULL)
            return;
        if (f->deadline_ns <= fh->mono_ns) {
            fetch_finish(fh, f, 0, RMR_ETIMEDOUT, -1, NULL, 0, 1);
            continue;
        }
        f->asked_point = point;
        fetch_ask(fh, f);
    }
    fake_log(fh, "ERROR fakehost: more than 10000 fetch answers at one moment; does a plugin "
                 "fetch again from every fetch callback?");
}

/* The earliest deadline of a pending fetch no later than until, if any. */
static int fetch_next_deadline(struct rmr_fakehost *fh, int64_t until, int64_t *out)
{
    int found = 0;
    fetch_skip_done(fh);
    for (uint32_t i = fh->fetch_first; i < fh->fetches.count; i++) {
        const struct fh_fetch *f = fh->fetches.items[i];
        if (f->pub.done || f->deadline_ns > until)
            continue;
        if (!found || f->deadline_ns < *out)
            *out = f->deadline_ns;
        found = 1;
    }
    return found;
}

/* ---- network services: datagrams ----------------------------------------------------------- */

static void dgram_free(struct rmr_dgram_sock *s)
{
    free(s->given);
    free(s->address);
    free(s);
}

static int h_dgram_listen(rmr_instance_t *ins, const struct rmr_dgram_spec *spec, rmr_dgram_cb cb,
                          void *arg, rmr_dgram_sock_t **out)
{
    struct rmr_fakehost *fh = ins->fh;
    if (spec == NULL || spec->address == NULL || cb == NULL || out == NULL ||
        spec->struct_size < sizeof(struct rmr_dgram_spec))
        return RMR_EINVAL;
    *out = NULL;
    /* The agent's bounds (core/net/dgram), so a spec it refuses is refused here too. */
    uint32_t batch = spec->batch ? spec->batch : DGRAM_DEF_BATCH;
    uint32_t max = spec->max_datagram ? spec->max_datagram : DGRAM_DEF_MAX;
    if (batch > DGRAM_MAX_BATCH || max > DGRAM_MAX || (uint64_t)batch * max > DGRAM_MAX_AREA)
        return RMR_EINVAL;
    if (ins->net_released)
        return RMR_ESTOPPED;
    char *probe = NULL;
    int any_port;
    int rc = dgram_address_of(NULL, spec->address, &probe, &any_port);
    if (rc < 0)
        return rc;
    int taken = 0;
    for (const struct rmr_dgram_sock *o = fh->dgrams; o != NULL && !any_port && !taken; o = o->next)
        taken = strcmp(o->address, probe) == 0;
    free(probe);
    if (taken)
        return RMR_EADDRINUSE;
    struct rmr_dgram_sock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return RMR_ENOMEM;
    s->h.host = &fake_api;
    s->ins = ins;
    s->id = ++fh->dgram_seq;
    s->cb = cb;
    s->arg = arg;
    memcpy(&s->spec, spec, sizeof s->spec);
    s->spec.struct_size = (uint32_t)sizeof s->spec;
    if ((s->given = strdup(spec->address)) == NULL ||
        (rc = dgram_address_of(&fh->next_port, spec->address, &s->address, &any_port)) < 0) {
        dgram_free(s);
        return rc < 0 ? rc : RMR_ENOMEM;
    }
    s->spec.address = s->given;
    struct rmr_dgram_sock **tail = &fh->dgrams;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = s;
    *out = s;
    return 0;
}

static int h_dgram_address(rmr_dgram_sock_t *s, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s", s->address);
    return n >= 0 && (size_t)n < len ? 0 : RMR_ENAMETOOLONG;
}

static void h_dgram_close(rmr_dgram_sock_t *s)
{
    struct rmr_fakehost *fh = s->ins->fh;
    for (struct rmr_dgram_sock **pp = &fh->dgrams; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    dgram_free(s);
}

/* ---- network services: an instance's end --------------------------------------------------- */

/* What the agent does when an instance's stop finishes (host_net_release_instance()): routes
 * go, unanswered fetches are cancelled (their callbacks run), datagram listeners and the
 * instance's own HTTP listeners close. Requests the instance holds stay valid. Once only. */
static void net_release(struct rmr_fakehost *fh, struct rmr_instance *ins)
{
    if (ins->net_released)
        return;
    ins->net_released = 1;
    routes_remove(&fh->shared, ins);
    for (struct rmr_listener *l = fh->listeners; l != NULL; l = l->next)
        routes_remove(l, ins);
    for (;;) {
        struct fh_fetch *f = NULL;
        fetch_skip_done(fh);
        for (uint32_t i = fh->fetch_first; i < fh->fetches.count && f == NULL; i++) {
            struct fh_fetch *c = fh->fetches.items[i];
            if (!c->pub.done && c->pub.ins == ins)
                f = c;
        }
        if (f == NULL)
            break;
        fetch_finish(fh, f, 0, RMR_ECANCELED, -1, NULL, 0, 0);
    }
    for (struct rmr_dgram_sock **pp = &fh->dgrams; *pp != NULL;) {
        struct rmr_dgram_sock *s = *pp;
        if (s->ins == ins) {
            *pp = s->next;
            dgram_free(s);
        } else {
            pp = &s->next;
        }
    }
    for (struct rmr_listener **pp = &fh->listeners; *pp != NULL;) {
        struct rmr_listener *l = *pp;
        if (l->owner == ins) {
            *pp = l->next;
            routes_remove(l, NULL);
            free(l);
        } else {
            pp = &l->next;
        }
    }
}

/* Releases the requests ins still holds after destroy(): the plugin can no longer answer
 * them. In the agent they would leak; here they are freed and the bug is logged. */
static void held_release(struct rmr_fakehost *fh, struct rmr_instance *ins)
{
    uint32_t n = 0;
    for (struct rmr_http_req **pp = &fh->held; *pp != NULL;) {
        struct rmr_http_req *req = *pp;
        if (req->ins == ins) {
            *pp = req->next;
            if (req->ans != NULL)
                req->ans->req = NULL;
            req_free(req);
            n++;
        } else {
            pp = &req->next;
        }
    }
    if (n == 0)
        return;
    char line[512];
    snprintf(line, sizeof line,
             "ERROR fakehost: '%s' was destroyed holding %u unanswered HTTP request%s", ins->name,
             n, n == 1 ? "" : "s");
    fake_log(fh, line);
}

static void answer_free(struct fh_answer *a)
{
    if (a->req != NULL)
        a->req->ans = NULL; /* the client has gone: the plugin's answer is discarded */
    headers_free(a->headers, a->pub.nheaders);
    free(a->content_type);
    free(a->body);
    free(a);
}

static void served_free(struct fh_served *s)
{
    free(s->method);
    free(s->url);
    free(s->body);
    free(s);
}

/* ---- tags (ABI 1.2) --------------------------------------------------------------------- */

/* Rebuilds the union of the instances' published tags, in creation order. */
static int published_rebuild(struct rmr_fakehost *fh)
{
    uint32_t n = 0, cap = 0;
    for (struct rmr_instance *i = fh->instances; i != NULL; i = i->next)
        cap++;
    const struct tagset **sets = malloc((cap + 1) * sizeof *sets);
    if (sets == NULL)
        return RMR_ENOMEM;
    /* fh->instances is newest first: collect, then reverse into creation order. */
    for (struct rmr_instance *i = fh->instances; i != NULL; i = i->next)
        if (i->published.ntags > 0)
            sets[n++] = &i->published;
    for (uint32_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
        const struct tagset *t = sets[a];
        sets[a] = sets[b];
        sets[b] = t;
    }
    int rc = tagset_union(&fh->published_tags, sets, n);
    free(sets);
    return rc;
}

static int h_global_tags_set(rmr_instance_t *ins, const struct rmr_tag *tags, uint32_t ntags)
{
    int rc = tagset_assign(&ins->published, tags, ntags);
    return rc < 0 ? rc : published_rebuild(ins->fh);
}

static struct tagger *fh_tagger(struct rmr_fakehost *fh)
{
    if (fh->tagger == NULL)
        fh->tagger = tagger_new();
    return fh->tagger;
}

static int h_tagger_set(rmr_instance_t *ins, const char *entity, size_t len,
                        const struct rmr_tag *tags, uint32_t ntags)
{
    struct tagger *t = fh_tagger(ins->fh);
    return t == NULL ? RMR_ENOMEM : tagger_put(t, entity, len, tags, ntags);
}

static int h_tagger_lookup(rmr_instance_t *ins, const char *entity, size_t len, rmr_tagger_cb cb,
                           void *arg)
{
    struct tagger *t = ins->fh->tagger;
    return t == NULL ? RMR_ENOENT : tagger_get(t, entity, len, cb, arg);
}

void rmr_fakehost_global_tags(const struct rmr_fakehost *fh, const struct rmr_tag **tags,
                              uint32_t *ntags)
{
    *tags = fh->published_tags.tags;
    *ntags = fh->published_tags.ntags;
}

uint32_t rmr_fakehost_tagger_count(const struct rmr_fakehost *fh)
{
    return fh->tagger != NULL ? tagger_count(fh->tagger) : 0;
}

static int h_output_halt(rmr_instance_t *ins, const char *reason)
{
    if (ins->desc.kind != RMR_KIND_OUTPUT)
        return RMR_EINVAL;
    char *copy = strdup(reason != NULL && reason[0] != '\0' ? reason : "halted");
    if (copy == NULL)
        return RMR_ENOMEM;
    free(ins->halt_reason);
    ins->halt_reason = copy;
    return 0;
}

const char *rmr_fakehost_halted(const struct rmr_fakehost *fh, const rmr_instance_t *ins)
{
    (void)fh;
    return ins->halt_reason;
}

static const struct rmr_host_api fake_api = {
    .struct_size = sizeof(struct rmr_host_api),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .logv = h_logv,
    .instance_name = h_instance_name,
    .now_ns = h_now_ns,
    .mono_ns = h_mono_ns,
    .timer_start = h_timer_start,
    .timer_stop = h_timer_stop,
    .batch_new = h_batch_new,
    .batch_free = h_batch_free,
    .batch_add = h_batch_add,
    .emit = h_emit,
    .schema_wanted = h_schema_wanted,
    .batch_count = h_batch_count,
    .batch_schema = h_batch_schema,
    .record_kind = h_record_kind,
    .record_get = h_record_get,
    .payload_new = h_payload_new,
    .payload_write = payload_write,
    .payload_json_str = payload_json_str,
    .payload_len = payload_len,
    .payload_commit = h_payload_commit,
    .payload_discard = payload_discard,
    .encoder_drop = h_encoder_drop,
    .counter_add = h_counter_add,
    .stats_foreach = h_stats_foreach,
    .process_stats = h_process_stats,
    .work = h_work,
    .stop_done = h_stop_done,
    .hostname = h_hostname,
    .http_listener = h_http_listener,
    .http_route = h_http_route,
    .http_req_info = h_http_req_info,
    .http_req_header = h_http_req_header,
    .http_respond = h_http_respond,
    .http_fetch = h_http_fetch,
    .dgram_listen = h_dgram_listen,
    .dgram_address = h_dgram_address,
    .dgram_close = h_dgram_close,
    .global_tags_set = h_global_tags_set,
    .tagger_set = h_tagger_set,
    .tagger_lookup = h_tagger_lookup,
    .output_halt = h_output_halt,
    .gauge_set = h_gauge_set,
};

/* ---- the fake host ------------------------------------------------------------------------ */

struct rmr_fakehost *rmr_fakehost_new(void)
{
    struct rmr_fakehost *fh = calloc(1, sizeof *fh);
    if (fh == NULL)
        return NULL;
    fh->wall_ns = FH_WALL_START_NS;
    snprintf(fh->hostname, sizeof fh->hostname, "fakehost");
    fh->mono_ns = FH_MONO_START_NS;
    fh->ps.struct_size = (uint32_t)sizeof fh->ps;
    memcpy(fh->shared.address, "127.0.0.1:9529", sizeof "127.0.0.1:9529");
    fh->shared_on = 1;
    fh->next_port = FH_FIRST_PORT;
    return fh;
}

static void free_schemas(struct rmr_fakehost *fh)
{
    if (fh->schemas != NULL)
        for (char **s = fh->schemas; *s != NULL; s++)
            free(*s);
    free(fh->schemas);
    fh->schemas = NULL;
}

static void free_stat(struct fh_stat *st)
{
    free((char *)st->s.instance);
    free((char *)st->s.plugin);
    free((char *)st->s.kind);
    free((char *)st->s.name);
    free((char *)st->s.reason);
    free((char *)st->s.record_kind);
    free(st);
}

void rmr_fakehost_free(struct rmr_fakehost *fh)
{
    if (fh == NULL)
        return;
    while (fh->instances != NULL)
        rmr_fakehost_destroy(fh, fh->instances);
    /* Timers outlive nothing: destroy stopped every instance's timers. */
    rmr_fakehost_clear_emitted(fh);
    free(fh->emitted.items);
    rmr_fakehost_clear_payloads(fh);
    free(fh->payloads.items);
    for (uint32_t i = 0; i < fh->logs.count; i++)
        free(fh->logs.items[i]);
    free(fh->logs.items);
    for (uint32_t i = 0; i < fh->stats.count; i++)
        free_stat(fh->stats.items[i]);
    free(fh->stats.items);
    free_schemas(fh);
    /* Destroying the instances released their routes, fetches, listeners and requests; what
     * is left belongs to the test. */
    routes_remove(&fh->shared, NULL);
    while (fh->answers != NULL) {
        struct fh_answer *a = fh->answers;
        fh->answers = a->next;
        answer_free(a);
    }
    for (uint32_t i = 0; i < fh->fetches.count; i++)
        fetch_free(fh->fetches.items[i]);
    free(fh->fetches.items);
    while (fh->served != NULL) {
        struct fh_served *sv = fh->served;
        fh->served = sv->next;
        served_free(sv);
    }
    tagset_release(&fh->published_tags);
    tagger_free(fh->tagger);
    free(fh);
}

static void stop_timers_of(struct rmr_fakehost *fh, struct rmr_instance *ins)
{
    struct rmr_timer **pp = &fh->timers;
    while (*pp != NULL) {
        struct rmr_timer *t = *pp;
        if (t->ins == ins) {
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
}

static void instance_free(struct rmr_instance *ins)
{
    if (ins == NULL)
        return;
    for (uint32_t i = 0; i < ins->ncounters; i++) {
        free(ins->counters[i].name);
        free(ins->counters[i].reason);
        free(ins->counters[i].record_kind);
    }
    free(ins->counters);
    tagset_release(&ins->published);
    cfg_store_free(ins->store);
    free(ins->config);
    free(ins->halt_reason);
    free(ins->name);
    free(ins);
}

/* The loader's own checks (core/plugin_check.c), so the fake host refuses what the agent
 * refuses, with the same sentence. */
static int check_desc(const struct rmr_plugin *desc, struct rmr_plugin *out, char *err,
                      size_t errlen)
{
    return loader_check(desc, "plugin", out, err, errlen);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Splits config text into key/value pointers into text (modified in place). Like the agent's
 * reader, ';' or '#' after whitespace starts an inline comment. */
static int parse_config_text(char *text, const char ***keys, const char ***values, uint32_t *n,
                             char *err, size_t errlen)
{
    uint32_t cap = 0, count = 0, lineno = 0;
    const char **k = NULL, **v = NULL;
    int rc = 0;
    char *line = text;
    while (line != NULL && *line != '\0') {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        lineno++;
        for (char *c = line; *c != '\0'; c++) {
            if ((*c == ';' || *c == '#') && c > line && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        }
        char *s = trim(line);
        line = nl != NULL ? nl + 1 : NULL;
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL || eq == s) {
            fail_msg(err, errlen, "config line %u: expected 'key = value', got '%s'", lineno, s);
            rc = RMR_ECONFIG;
            goto fail;
        }
        *eq = '\0';
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            const char **nk = realloc(k, cap * sizeof *nk);
            if (nk == NULL) {
                rc = RMR_ENOMEM;
                goto fail;
            }
            k = nk;
            const char **nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                rc = RMR_ENOMEM;
                goto fail;
            }
            v = nv;
        }
        k[count] = trim(s);
        v[count] = trim(eq + 1);
        count++;
    }
    *keys = k;
    *values = v;
    *n = count;
    return 0;

fail:
    free(k);
    free(v);
    return rc;
}

int rmr_fakehost_create(struct rmr_fakehost *fh, const struct rmr_plugin *desc,
                        const char *config_text, rmr_instance_t **out, char *err, size_t errlen)
{
    static const struct rmr_option no_options[] = {RMR_OPT_END};
    char *text = NULL;
    const char **keys = NULL, **values = NULL;
    uint32_t n = 0;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (fh == NULL || out == NULL)
        return RMR_EINVAL;
    *out = NULL;
    struct rmr_instance *ins = calloc(1, sizeof *ins);
    if (ins == NULL)
        return RMR_ENOMEM;
    ins->h.host = &fake_api;
    ins->fh = fh;
    if ((rc = check_desc(desc, &ins->desc, err, errlen)) < 0)
        goto fail;

    /* Names follow the agent's: the first instance unlabelled, others get a label. */
    const char *kind = ins->desc.kind == RMR_KIND_INPUT ? "input" : "output";
    size_t namelen = strlen(kind) + strlen(ins->desc.name) + 16;
    if ((ins->name = malloc(namelen)) == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    uint32_t same_plugin = 0;
    for (struct rmr_instance *o = fh->instances; o != NULL; o = o->next)
        if (strcmp(o->desc.name, ins->desc.name) == 0 && o->desc.kind == ins->desc.kind)
            same_plugin++;
    if (same_plugin == 0)
        snprintf(ins->name, namelen, "%s.%s", kind, ins->desc.name);
    else
        snprintf(ins->name, namelen, "%s.%s.%u", kind, ins->desc.name, same_plugin + 1);

    if ((text = strdup(config_text != NULL ? config_text : "")) == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    if ((rc = parse_config_text(text, &keys, &values, &n, err, errlen)) < 0)
        goto fail;
    if ((ins->store = cfg_store_new()) == NULL ||
        (ins->config = calloc(1, ins->desc.config_size ? ins->desc.config_size : 1)) == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    rc = config_fill(ins->store, ins->desc.options ? ins->desc.options : no_options, ins->config,
                     keys, values, n, err, errlen);
    if (rc < 0)
        goto fail;

    /* The instance is listed before create() so that logs and counters from create work. */
    ins->next = fh->instances;
    fh->instances = ins;
    uint32_t nlogs = fh->logs.count;
    rc = ins->desc.create(ins, ins->config, &ins->state);
    if (rc < 0) {
        fh->instances = ins->next;
        stop_timers_of(fh, ins);
        /* As the agent's teardown: what create() opened is released, requests are dropped. */
        ins->stopping = 1;
        net_release(fh, ins);
        held_release(fh, ins);
        /* The plugin's own explanation is usually its last log line: put it in err too. */
        const char *why = fh->logs.count > nlogs ? fh->logs.items[fh->logs.count - 1] : NULL;
        if (why != NULL && strchr(why, ' ') != NULL)
            fail_msg(err, errlen, "%s: create failed: %s: %s", ins->name, rmr_strerror(rc),
                     strchr(why, ' ') + 1);
        else
            fail_msg(err, errlen, "%s: create failed: %s", ins->name, rmr_strerror(rc));
        goto fail;
    }
    free(keys);
    free(values);
    free(text);
    *out = ins;
    return 0;

fail:
    free(keys);
    free(values);
    free(text);
    instance_free(ins);
    return rc;
}

int rmr_fakehost_start(struct rmr_fakehost *fh, rmr_instance_t *ins)
{
    int rc = ins->desc.start != NULL ? ins->desc.start(ins, ins->state) : 0;
    if (rc == 0)
        ins->started = 1;
    return rc;
}

int rmr_fakehost_stop(struct rmr_fakehost *fh, rmr_instance_t *ins)
{
    ins->stopping = 1;
    int rc = ins->desc.stop != NULL ? ins->desc.stop(ins, ins->state) : 0;
    if (rc == 0)
        ins->stop_finished = 1;
    else if (rc == RMR_EINPROGRESS && ins->stop_finished)
        rc = 0; /* rmr_stop_done() already ran inside stop() */
    if (rc != RMR_EINPROGRESS)
        net_release(fh, ins); /* as the agent: also when stop() failed */
    return rc;
}

int rmr_fakehost_stop_finished(struct rmr_fakehost *fh, rmr_instance_t *ins)
{
    return ins->stop_finished;
}

void rmr_fakehost_destroy(struct rmr_fakehost *fh, rmr_instance_t *ins)
{
    if (fh == NULL || ins == NULL)
        return;
    for (struct rmr_instance **pp = &fh->instances; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ins) {
            *pp = ins->next;
            break;
        }
    }
    /* Fetches are cancelled (their callbacks run) before destroy(), as in the agent. */
    net_release(fh, ins);
    ins->desc.destroy(ins, ins->state);
    /* The host stops what destroy left running, as the agent does. */
    stop_timers_of(fh, ins);
    held_release(fh, ins);
    int republish = ins->published.ntags > 0;
    instance_free(ins);
    if (republish)
        (void)published_rebuild(fh); /* on ENOMEM the old union stays: a test-only host */
}

/* The armed timer due first (earliest due time, then arming order), or NULL. */
static struct rmr_timer *next_due(struct rmr_fakehost *fh, int64_t until_ns)
{
    struct rmr_timer *best = NULL;
    for (struct rmr_timer *t = fh->timers; t != NULL; t = t->next) {
        if (!t->armed || t->due_ns > until_ns)
            continue;
        if (best == NULL || t->due_ns < best->due_ns ||
            (t->due_ns == best->due_ns && t->seq < best->seq))
            best = t;
    }
    return best;
}

/* Fetch answers are delivered at the start and after each timer callback; a fetch that times
 * out does so at its deadline, between timers. */
void rmr_fakehost_advance(struct rmr_fakehost *fh, uint64_t ms)
{
    int64_t until = fh->mono_ns + (int64_t)ms * NS_PER_MS;
    /* Timers are looked up afresh after each callback, which may start or stop timers,
     * itself included. */
    for (;;) {
        fetch_settle(fh);
        struct rmr_timer *t = next_due(fh, until);
        int64_t deadline = 0;
        int timeout_due = fetch_next_deadline(fh, until, &deadline);
        if (t == NULL && !timeout_due)
            break;
        if (timeout_due && (t == NULL || deadline < t->due_ns)) {
            if (deadline > fh->mono_ns) {
                fh->wall_ns += deadline - fh->mono_ns;
                fh->mono_ns = deadline;
            }
            continue;
        }
        int64_t step = t->due_ns - fh->mono_ns;
        if (step > 0) {
            fh->mono_ns += step;
            fh->wall_ns += step;
        }
        if (t->period_ms > 0) {
            t->due_ns += (int64_t)t->period_ms * NS_PER_MS;
            t->seq = fh->timer_seq++;
        } else {
            t->armed = 0;
        }
        t->cb(t->ins, t->arg);
    }
    int64_t step = until - fh->mono_ns;
    fh->mono_ns += step;
    fh->wall_ns += step;
}

void rmr_fakehost_set_hostname(struct rmr_fakehost *fh, const char *hostname)
{
    snprintf(fh->hostname, sizeof fh->hostname, "%s", hostname);
}

void rmr_fakehost_set_wall_ns(struct rmr_fakehost *fh, int64_t wall_ns)
{
    fh->wall_ns = wall_ns;
}

void rmr_fakehost_want_schemas(struct rmr_fakehost *fh, const char *const *schemas)
{
    free_schemas(fh);
    size_t n = 0;
    while (schemas != NULL && schemas[n] != NULL)
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (copy == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if ((copy[i] = strdup(schemas[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            return;
        }
    }
    fh->schemas = copy;
}

void rmr_fakehost_set_full(struct rmr_fakehost *fh, int full)
{
    fh->full = full != 0;
}

uint32_t rmr_fakehost_emitted_count(const struct rmr_fakehost *fh)
{
    return fh->emitted.count;
}

const rmr_batch_t *rmr_fakehost_emitted(const struct rmr_fakehost *fh, uint32_t index)
{
    return index < fh->emitted.count ? fh->emitted.items[index] : NULL;
}

void rmr_fakehost_clear_emitted(struct rmr_fakehost *fh)
{
    for (uint32_t i = 0; i < fh->emitted.count; i++)
        batch_unref(fh->emitted.items[i]);
    fh->emitted.count = 0;
}

rmr_batch_t *rmr_fakehost_batch_new(struct rmr_fakehost *fh, const char *schema)
{
    return batch_new(&fake_api, schema, 0);
}

static void payload_free(struct fh_payload *p)
{
    free(p->body);
    free(p->endpoint);
    free(p->content_type);
    free(p->headers);
    free(p);
}

int rmr_fakehost_encode(struct rmr_fakehost *fh, rmr_instance_t *ins,
                        const rmr_batch_t *const *batches, uint32_t nbatches)
{
    if (ins->desc.kind != RMR_KIND_OUTPUT || ins->desc.encode == NULL ||
        (batches == NULL && nbatches > 0))
        return RMR_EINVAL;
    struct rmr_encoder enc = {.h = {&fake_api}, .fh = fh, .ins = ins};
    uint32_t before = fh->payloads.count;
    int rc = ins->desc.encode(&enc, ins->state, batches, nbatches);
    if (rc < 0) {
        /* As in the agent, a failed encode drops these batches: nothing it committed ships. */
        while (fh->payloads.count > before)
            payload_free(fh->payloads.items[--fh->payloads.count]);
    }
    return rc;
}

uint32_t rmr_fakehost_payload_count(const struct rmr_fakehost *fh)
{
    return fh->payloads.count;
}

const struct rmr_fakehost_payload *rmr_fakehost_payload(const struct rmr_fakehost *fh,
                                                        uint32_t index)
{
    if (index >= fh->payloads.count)
        return NULL;
    const struct fh_payload *p = fh->payloads.items[index];
    return &p->pub;
}

void rmr_fakehost_clear_payloads(struct rmr_fakehost *fh)
{
    for (uint32_t i = 0; i < fh->payloads.count; i++)
        payload_free(fh->payloads.items[i]);
    fh->payloads.count = 0;
}

/* Sums over record kinds, so an encoder drop is found by its reason alone. */
uint64_t rmr_fakehost_counter(const struct rmr_fakehost *fh, rmr_instance_t *ins, const char *name,
                              const char *reason)
{
    uint64_t sum = 0;
    if (ins == NULL || name == NULL)
        return 0;
    for (uint32_t i = 0; i < ins->ncounters; i++) {
        const struct fh_counter *c = &ins->counters[i];
        if (strcmp(c->name, name) == 0 && same(c->reason, reason))
            sum += c->value;
    }
    return sum;
}

/* A stat with the same identity (instance, name, reason, record kind) as one registered
 * before replaces it, so a test changes a counter's value by adding it again. */
void rmr_fakehost_add_stat(struct rmr_fakehost *fh, const struct rmr_stat *stat)
{
    if (stat == NULL || stat->name == NULL)
        return;
    struct rmr_stat in;
    memset(&in, 0, sizeof in);
    memcpy(&in, stat, stat->struct_size < sizeof in ? stat->struct_size : sizeof in);
    in.struct_size = (uint32_t)sizeof in;
    for (uint32_t i = 0; i < fh->stats.count; i++) {
        struct fh_stat *st = fh->stats.items[i];
        if (same(st->s.instance, in.instance) && strcmp(st->s.name, in.name) == 0 &&
            same(st->s.reason, in.reason) && same(st->s.record_kind, in.record_kind)) {
            st->s.value = in.value;
            st->s.is_gauge = in.is_gauge;
            return;
        }
    }
    struct fh_stat *st = calloc(1, sizeof *st);
    if (st == NULL)
        return;
    st->s = in;
    st->s.instance = dup_or_null(in.instance);
    st->s.plugin = dup_or_null(in.plugin);
    st->s.kind = dup_or_null(in.kind);
    st->s.name = dup_or_null(in.name);
    st->s.reason = dup_or_null(in.reason);
    st->s.record_kind = dup_or_null(in.record_kind);
    if ((in.instance && !st->s.instance) || (in.plugin && !st->s.plugin) ||
        (in.kind && !st->s.kind) || !st->s.name || (in.reason && !st->s.reason) ||
        (in.record_kind && !st->s.record_kind) || ptrvec_push(&fh->stats, st) < 0)
        free_stat(st);
}

void rmr_fakehost_set_process_stats(struct rmr_fakehost *fh, const struct rmr_process_stats *ps)
{
    if (ps == NULL)
        return;
    memset(&fh->ps, 0, sizeof fh->ps);
    memcpy(&fh->ps, ps, ps->struct_size < sizeof fh->ps ? ps->struct_size : sizeof fh->ps);
    fh->ps.struct_size = (uint32_t)sizeof fh->ps;
}

uint32_t rmr_fakehost_log_count(const struct rmr_fakehost *fh)
{
    return fh->logs.count;
}

const char *rmr_fakehost_log(const struct rmr_fakehost *fh, uint32_t index)
{
    return index < fh->logs.count ? fh->logs.items[index] : NULL;
}

/* ---- network services: the test's side ------------------------------------------------------- */

int rmr_fakehost_set_http_listen(struct rmr_fakehost *fh, const char *address)
{
    if (address == NULL || strcmp(address, "off") == 0 || strcmp(address, "none") == 0) {
        fh->shared_on = 0;
        return 0;
    }
    char addr[FH_ADDR_LEN];
    if (http_address(&fh->next_port, address, addr) < 0)
        return RMR_EINVAL;
    memcpy(fh->shared.address, addr, sizeof addr);
    fh->shared_on = 1;
    return 0;
}

/* The best route for method and path, by the agent's rules (core/util/httptext), or NULL
 * with *status 404 or 405 and the methods the path has in allow. */
static const struct fh_route *route_find(const struct rmr_listener *l, const char *method,
                                         const char *path, int *status, char *allow,
                                         size_t allowlen)
{
    const struct fh_route *best = NULL;
    struct http_route_match m;
    http_route_match_init(&m, allow, allowlen);
    size_t plen = strlen(path);
    for (const struct fh_route *rt = l->routes; rt != NULL; rt = rt->next)
        if (http_route_consider(&m, rt->method, rt->path, rt->path_len, rt->flags, method, path,
                                plen))
            best = rt;
    *status = http_route_status(&m, best != NULL);
    return best;
}

static struct rmr_listener *listener_at(struct rmr_fakehost *fh, const char *address)
{
    if (address == NULL)
        return fh->shared_on ? &fh->shared : NULL;
    char addr[FH_ADDR_LEN];
    if (http_address(NULL, address, addr) < 0)
        return NULL;
    if (fh->shared_on && strcmp(fh->shared.address, addr) == 0)
        return &fh->shared;
    for (struct rmr_listener *l = fh->listeners; l != NULL; l = l->next)
        if (strcmp(l->address, addr) == 0)
            return l;
    return NULL;
}

static struct rmr_http_req *req_new(const char *method, const char *path_and_query,
                                    const struct rmr_http_header *headers, uint32_t nheaders,
                                    const void *body, size_t len)
{
    struct rmr_http_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->h.host = &fake_api;
    const char *q = strchr(path_and_query, '?');
    size_t plen = q != NULL ? (size_t)(q - path_and_query) : strlen(path_and_query);
    req->method = strdup(method);
    req->path = memdup0(path_and_query, plen);
    req->query = strdup(q != NULL ? q + 1 : "");
    req->body = memdup0(body, len);
    req->body_len = len;
    req->head = strcmp(method, "HEAD") == 0;
    if (req->method == NULL || req->path == NULL || req->query == NULL || req->body == NULL ||
        headers_copy(headers, nheaders, &req->headers) < 0) {
        req_free(req);
        return NULL;
    }
    req->nheaders = nheaders;
    return req;
}

int rmr_fakehost_http_request(struct rmr_fakehost *fh, const char *address, const char *method,
                              const char *path_and_query, const struct rmr_http_header *headers,
                              uint32_t nheaders, const void *body, size_t len,
                              struct rmr_fakehost_http_answer **out)
{
    if (out != NULL)
        *out = NULL;
    if (fh == NULL || out == NULL || !http_is_token(method) || path_and_query == NULL ||
        path_and_query[0] != '/' || (body == NULL && len > 0) || (headers == NULL && nheaders > 0))
        return RMR_EINVAL;
    for (uint32_t i = 0; i < nheaders; i++)
        if (!http_is_token(headers[i].name) || headers[i].value == NULL ||
            strpbrk(headers[i].value, "\r\n") != NULL)
            return RMR_EINVAL;
    if (address != NULL) {
        char probe[FH_ADDR_LEN];
        if (http_address(NULL, address, probe) < 0)
            return RMR_EINVAL;
    }
    struct rmr_listener *l = listener_at(fh, address);
    if (l == NULL)
        return RMR_ECONNREFUSED;
    struct fh_answer *a = calloc(1, sizeof *a);
    if (a == NULL)
        return RMR_ENOMEM;
    a->pub.body = "";
    struct rmr_http_req *req = req_new(method, path_and_query, headers, nheaders, body, len);
    if (req == NULL) {
        free(a);
        return RMR_ENOMEM;
    }
    a->next = fh->answers;
    fh->answers = a;
    *out = &a->pub;

    char allow[128];
    int status;
    const struct fh_route *rt = route_find(l, req->method, req->path, &status, allow, sizeof allow);
    if (rt == NULL) {
        if (status == 405) {
            static const char nope[] = "{\"error\":\"method not allowed\"}";
            struct rmr_http_header h = {"Allow", allow};
            (void)answer_fill(a, 405, &h, allow[0] != '\0', "application/json", nope,
                              sizeof nope - 1, req->head);
        } else {
            static const char none[] = "{\"error\":\"not found\"}";
            (void)answer_fill(a, 404, NULL, 0, "application/json", none, sizeof none - 1,
                              req->head);
        }
        req_free(req);
        return 0;
    }
    struct rmr_instance *ins = rt->ins;
    count(ins, "http_requests", NULL, NULL, 1);
    if (!ins->started || ins->stopping) {
        static const char stopping[] = "{\"error\":\"the input is stopping\"}";
        (void)answer_fill(a, 503, NULL, 0, "application/json", stopping, sizeof stopping - 1,
                          req->head);
        req_free(req);
        return 0;
    }
    req->ins = ins;
    req->ans = a;
    a->req = req;
    req->next = fh->held;
    fh->held = req;
    /* The route may go during the call (rmr_stop_done() in the handler): copy what it says. */
    rmr_route_cb cb = rt->cb;
    void *arg = rt->arg;
    cb(ins, arg, req);
    return a->pub.status != 0 ? 0 : RMR_EINPROGRESS;
}

const char *rmr_fakehost_http_answer_header(const struct rmr_fakehost_http_answer *answer,
                                            const char *name)
{
    if (answer == NULL)
        return NULL;
    return header_find(answer->headers, answer->nheaders, name);
}

void rmr_fakehost_http_answer_free(struct rmr_fakehost *fh, struct rmr_fakehost_http_answer *answer)
{
    if (fh == NULL || answer == NULL)
        return;
    for (struct fh_answer **pp = &fh->answers; *pp != NULL; pp = &(*pp)->next) {
        if (&(*pp)->pub == answer) {
            struct fh_answer *a = *pp;
            *pp = a->next;
            answer_free(a);
            return;
        }
    }
}

uint32_t rmr_fakehost_http_pending(const struct rmr_fakehost *fh)
{
    uint32_t n = 0;
    for (const struct rmr_http_req *r = fh->held; r != NULL; r = r->next)
        n++;
    return n;
}

uint32_t rmr_fakehost_fetch_count(const struct rmr_fakehost *fh)
{
    return fh->fetches.count;
}

const struct rmr_fakehost_fetch *rmr_fakehost_fetch(const struct rmr_fakehost *fh, uint32_t index)
{
    if (index >= fh->fetches.count)
        return NULL;
    const struct fh_fetch *f = fh->fetches.items[index];
    return &f->pub;
}

const char *rmr_fakehost_fetch_header(const struct rmr_fakehost_fetch *fetch, const char *name)
{
    if (fetch == NULL)
        return NULL;
    return header_find(fetch->headers, fetch->nheaders, name);
}

uint32_t rmr_fakehost_fetch_pending(const struct rmr_fakehost *fh)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < fh->fetches.count; i++)
        n += !((const struct fh_fetch *)fh->fetches.items[i])->pub.done;
    return n;
}

void rmr_fakehost_clear_fetches(struct rmr_fakehost *fh)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < fh->fetches.count; i++) {
        struct fh_fetch *f = fh->fetches.items[i];
        if (f->pub.done)
            fetch_free(f);
        else
            fh->fetches.items[k++] = f;
    }
    fh->fetches.count = k;
    fh->fetch_first = 0;
}

/* Adds or replaces the canned answer for method and url; takes ownership of body (malloc'd,
 * or NULL), also on failure. */
static int serve(struct rmr_fakehost *fh, const char *method, const char *url, int status,
                 int error, char *body, size_t len)
{
    struct fh_served *s = calloc(1, sizeof *s);
    if (s == NULL) {
        free(body);
        return RMR_ENOMEM;
    }
    s->body = body;
    s->len = body != NULL ? len : 0;
    s->status = status;
    s->error = error;
    s->url = strdup(url);
    s->method = dup_or_null(method);
    if (s->url == NULL || (method != NULL && s->method == NULL)) {
        served_free(s);
        return RMR_ENOMEM;
    }
    for (struct fh_served **pp = &fh->served; *pp != NULL; pp = &(*pp)->next) {
        if (same((*pp)->method, method) && strcmp((*pp)->url, url) == 0) {
            struct fh_served *old = *pp;
            s->next = old->next;
            *pp = s;
            served_free(old);
            return 0;
        }
    }
    s->next = fh->served;
    fh->served = s;
    return 0;
}

int rmr_fakehost_fetch_serve(struct rmr_fakehost *fh, const char *method, const char *url,
                             int status, const void *body, size_t len)
{
    if (fh == NULL || url == NULL || (body == NULL && len > 0) || status < 100 || status > 999)
        return RMR_EINVAL;
    char *copy = NULL;
    if (len > 0 && (copy = malloc(len)) == NULL)
        return RMR_ENOMEM;
    if (copy != NULL)
        memcpy(copy, body, len);
    return serve(fh, method, url, status, 0, copy, len);
}

int rmr_fakehost_fetch_serve_file(struct rmr_fakehost *fh, const char *method, const char *url,
                                  int status, const char *path)
{
    if (fh == NULL || url == NULL || path == NULL || status < 100 || status > 999)
        return RMR_EINVAL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return RMR_ENOENT;
    char *data = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *d = realloc(data, cap);
            if (d == NULL) {
                rc = RMR_ENOMEM;
                break;
            }
            data = d;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                rc = RMR_EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(data);
        return rc;
    }
    return serve(fh, method, url, status, 0, data, len);
}

int rmr_fakehost_fetch_serve_error(struct rmr_fakehost *fh, const char *method, const char *url,
                                   int error)
{
    if (fh == NULL || url == NULL || error >= 0)
        return RMR_EINVAL;
    return serve(fh, method, url, 0, error, NULL, 0);
}

void rmr_fakehost_set_fetch_responder(struct rmr_fakehost *fh, rmr_fakehost_fetch_fn fn, void *arg)
{
    fh->responder = fn;
    fh->responder_arg = fn != NULL ? arg : NULL;
}

/* The open listener at address (NULL: the only one), or NULL with *rc set. */
static struct rmr_dgram_sock *dgram_at(const struct rmr_fakehost *fh, const char *address, int *rc)
{
    if (address == NULL) {
        if (fh->dgrams == NULL) {
            *rc = RMR_ENOENT;
            return NULL;
        }
        if (fh->dgrams->next != NULL) {
            *rc = RMR_EINVAL;
            return NULL;
        }
        return fh->dgrams;
    }
    char *canon = NULL;
    int any_port;
    (void)dgram_address_of(NULL, address, &canon, &any_port);
    struct rmr_dgram_sock *found = NULL;
    for (struct rmr_dgram_sock *s = fh->dgrams; s != NULL && found == NULL; s = s->next)
        if (strcmp(s->given, address) == 0 || strcmp(s->address, address) == 0 ||
            (canon != NULL && strcmp(s->address, canon) == 0))
            found = s;
    free(canon);
    if (found == NULL)
        *rc = RMR_ENOENT;
    return found;
}

static int dgram_open_id(const struct rmr_fakehost *fh, uint64_t id)
{
    for (const struct rmr_dgram_sock *s = fh->dgrams; s != NULL; s = s->next)
        if (s->id == id)
            return 1;
    return 0;
}

int rmr_fakehost_dgram_send(struct rmr_fakehost *fh, const char *address,
                            const struct rmr_dgram *msgs, uint32_t count_msgs)
{
    if (fh == NULL || (msgs == NULL && count_msgs > 0))
        return RMR_EINVAL;
    for (uint32_t i = 0; i < count_msgs; i++)
        if (msgs[i].data == NULL && msgs[i].len > 0)
            return RMR_EINVAL;
    int rc = 0;
    struct rmr_dgram_sock *s = dgram_at(fh, address, &rc);
    if (s == NULL)
        return rc;
    uint32_t batch = s->spec.batch ? s->spec.batch : DGRAM_DEF_BATCH;
    uint32_t max = s->spec.max_datagram ? s->spec.max_datagram : DGRAM_DEF_MAX;
    struct rmr_dgram *arr =
        calloc(batch < count_msgs ? batch : (count_msgs ? count_msgs : 1), sizeof *arr);
    if (arr == NULL)
        return RMR_ENOMEM;
    uint64_t id = s->id;
    for (uint32_t done = 0; done < count_msgs && dgram_open_id(fh, id);) {
        uint32_t n = count_msgs - done < batch ? count_msgs - done : batch;
        uint32_t made = 0;
        for (; made < n; made++) {
            const struct rmr_dgram *m = &msgs[done + made];
            uint32_t len = m->len < max ? m->len : max;
            char *copy = malloc(len ? len : 1);
            if (copy == NULL)
                break;
            if (len > 0)
                memcpy(copy, m->data, len);
            arr[made].data = copy;
            arr[made].len = len;
            arr[made].flags = m->len > max ? RMR_DGRAM_TRUNCATED : 0;
        }
        if (made == n)
            s->cb(s->ins, s->arg, arr, n);
        else
            rc = RMR_ENOMEM;
        for (uint32_t i = 0; i < made; i++)
            free((char *)arr[i].data);
        if (rc < 0)
            break;
        done += n;
    }
    free(arr);
    return rc;
}

const struct rmr_dgram_spec *rmr_fakehost_dgram_spec(const struct rmr_fakehost *fh,
                                                     const char *address)
{
    int rc;
    const struct rmr_dgram_sock *s = dgram_at(fh, address, &rc);
    return s != NULL ? &s->spec : NULL;
}

uint32_t rmr_fakehost_dgram_count(const struct rmr_fakehost *fh)
{
    uint32_t n = 0;
    for (const struct rmr_dgram_sock *s = fh->dgrams; s != NULL; s = s->next)
        n++;
    return n;
}
