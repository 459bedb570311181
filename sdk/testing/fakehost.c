/* remora SDK testing: the fake host (see fakehost.h).
 *
 * Everything runs on the test's thread. Batches are the core's own (core/record/batch.h) and
 * config structs are filled by the core's own schema code (core/config/config.h), so a plugin
 * tested here sees the same record views and option parsing as under the agent; JSON quoting
 * and compression come from core/util/buf.h, which the agent's host table uses too. What is
 * fake: clocks, timers (fired only by rmr_fakehost_advance), the pipeline (emitted batches are
 * sealed and kept) and delivery (committed payloads are kept).
 */
#include "fakehost.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "loader.h"
#include "record/batch.h"
#include "util/buf.h"
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
};

struct rmr_instance {
    struct rmr_handle h; /* must stay first */
    struct rmr_fakehost *fh;
    struct rmr_plugin desc; /* the checked copy, like the loader keeps */
    char *name;             /* "input.dk", "output.file", "input.dk.2" */
    struct cfg_store *store;
    void *config;
    void *state;
    int stopping;      /* stop() was called */
    int stop_finished; /* stop() returned 0, or rmr_stop_done() was called */
    struct fh_counter *counters;
    uint32_t ncounters;
    uint32_t counters_cap;
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
};

static const struct rmr_host_api fake_api;

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
    /* As the agent does: records without a timestamp get the emit time. */
    batch_stamp_time(b, fh->wall_ns);
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

static void h_stop_done(rmr_instance_t *ins)
{
    ins->stop_finished = 1;
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
    cfg_store_free(ins->store);
    free(ins->config);
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
    if (ins->desc.start == NULL)
        return 0;
    return ins->desc.start(ins, ins->state);
}

int rmr_fakehost_stop(struct rmr_fakehost *fh, rmr_instance_t *ins)
{
    ins->stopping = 1;
    int rc = ins->desc.stop != NULL ? ins->desc.stop(ins, ins->state) : 0;
    if (rc == 0)
        ins->stop_finished = 1;
    else if (rc == RMR_EINPROGRESS && ins->stop_finished)
        rc = 0; /* rmr_stop_done() already ran inside stop() */
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
    ins->desc.destroy(ins, ins->state);
    /* The host stops what destroy left running, as the agent does. */
    stop_timers_of(fh, ins);
    instance_free(ins);
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

void rmr_fakehost_advance(struct rmr_fakehost *fh, uint64_t ms)
{
    int64_t until = fh->mono_ns + (int64_t)ms * NS_PER_MS;
    struct rmr_timer *t;
    /* Timers are looked up afresh after each callback, which may start or stop timers,
     * itself included. */
    while ((t = next_due(fh, until)) != NULL) {
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
