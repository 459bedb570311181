/* The dataway output: records as Datakit's v1 line protocol POSTed to a Guance dataway, one
 * request per category (/v1/write/metric, object, logging, tracing, keyevent), the way Datakit
 * uploads them (PROTOCOLS.md 7). Like every output it only builds payloads; the core's courier
 * sends, retries 5xx and network errors, splits a 413 at a line boundary and halts on 401/403.
 *
 * Tokens never enter a payload. The url option is a secret (its query carries the token), so
 * each endpoint names its query as "{secret:url#I?}" (the query of the I-th URL) and a separate
 * token as "{secret:token#I}"; the courier fills both in when it sends. Only the scheme, host
 * and path of a URL are ever logged. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "ddsketch/ddsketch.h"
#include "lineproto/lineproto.h"
#include "numfmt/numfmt.h"

#define DW_MAX_URLS       16
#define DW_MAX_TAGS       256
#define DW_MAX_FIELDS     1024
#define DW_VERSION        "1.0.0"
#define DW_DEFAULT_SOURCE "default"

enum dw_compression { DW_COMPRESS_NONE = 0, DW_COMPRESS_GZIP = 1 };

/* The categories this output writes, in the order payloads are built. */
enum dw_category { DW_METRIC = 0, DW_OBJECT, DW_LOGGING, DW_TRACING, DW_KEYEVENT, DW_NCAT };

static const char *const category_path[DW_NCAT] = {
    [DW_METRIC] = "metric",   [DW_OBJECT] = "object",     [DW_LOGGING] = "logging",
    [DW_TRACING] = "tracing", [DW_KEYEVENT] = "keyevent",
};

struct dw_cfg {
    struct rmr_strlist url;
    const char *token;
    int32_t compression; /* enum dw_compression */
    uint64_t max_raw_body_bytes;
};

struct dw_state {
    uint32_t nurls;
    char *base[DW_MAX_URLS];              /* scheme://host[:port][/path], no trailing '/' */
    char *endpoint[DW_MAX_URLS][DW_NCAT]; /* with the placeholders */
    uint32_t compression;                 /* enum rmr_compression */
    size_t max_body_bytes;
};

static const struct rmr_option dw_options[] = {
    RMR_OPT_FULL("url", RMR_OPT_LIST, RMR_OPT_REQUIRED | RMR_OPT_SECRET | RMR_OPT_ENABLES, NULL,
                 "ENV_DATAWAY", 0, 0, struct dw_cfg, url,
                 "dataway URLs, comma-separated (each gets everything): "
                 "https://openway.guance.com?token=tkn_..."),
    RMR_OPT_STR("token", NULL, RMR_OPT_SECRET, struct dw_cfg, token,
                "workspace token(s) added as ?token= when the url has none; one per url, "
                "comma-separated, or one for all"),
    RMR_OPT_CHOICE("compression", "gzip", 0, "none|gzip", struct dw_cfg, compression,
                   "compress request bodies (Content-Encoding)"),
    RMR_OPT_FULL("max_raw_body_size", RMR_OPT_SIZE, 0, "1MiB", NULL, 102400, 10485760.0,
                 struct dw_cfg, max_raw_body_bytes,
                 "a request body holds at most this many bytes before compression"),
    RMR_OPT_END,
};

static const char *const dw_schemas[] = {RMR_SCHEMA_GUANCE, NULL};

/* ---- lifecycle ------------------------------------------------------------------------- */

static void state_free(struct dw_state *st)
{
    if (st == NULL)
        return;
    for (uint32_t i = 0; i < st->nurls; i++) {
        free(st->base[i]);
        for (int c = 0; c < DW_NCAT; c++)
            free(st->endpoint[i][c]);
    }
    free(st);
}

/* Non-empty comma-separated items, counted as the core's "{secret:NAME#I}" numbers them. */
static size_t count_items(const char *s)
{
    size_t n = 0;
    int in_item = 0;
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == ',')
            in_item = 0;
        else if (*s != ' ' && *s != '\t' && !in_item) {
            in_item = 1;
            n++;
        }
    }
    return n;
}

/* Splits url i into its base (logged) and whether it has a query (a secret, never copied). */
static int parse_url(rmr_instance_t *ins, uint32_t i, const char *url, struct dw_state *st,
                     int *has_query)
{
    size_t skip = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (skip == 0 || url[skip] == '\0' || url[skip] == '/' || url[skip] == '?') {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'url': item %" PRIu32 " is not an http:// or https:// URL", i + 1);
        return RMR_ECONFIG;
    }
    if (strstr(url, "{secret:") != NULL || strpbrk(url, " \t\r\n#") != NULL) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'url': item %" PRIu32 " holds a space, '#' or '{secret:'", i + 1);
        return RMR_ECONFIG;
    }
    const char *q = strchr(url, '?');
    size_t blen = q != NULL ? (size_t)(q - url) : strlen(url);
    while (blen > skip && url[blen - 1] == '/')
        blen--;
    st->base[i] = strndup(url, blen);
    if (st->base[i] == NULL)
        return RMR_ENOMEM;
    *has_query = q != NULL && q[1] != '\0';
    return 0;
}

static int dw_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct dw_cfg *cfg = config;
    if (cfg->url.count == 0 || cfg->url.count > DW_MAX_URLS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'url': expected 1 to %d URLs, got %" PRIu32,
                DW_MAX_URLS, cfg->url.count);
        return RMR_ECONFIG;
    }
    size_t ntokens = count_items(cfg->token);
    if (ntokens > 1 && ntokens != cfg->url.count) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'token': %zu tokens for %" PRIu32 " URLs; give one, or one per url",
                ntokens, cfg->url.count);
        return RMR_ECONFIG;
    }
    struct dw_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < cfg->url.count; i++) {
        int has_query = 0;
        st->nurls = i + 1;
        if ((rc = parse_url(ins, i, cfg->url.items[i], st, &has_query)) < 0)
            goto fail;
        for (int c = 0; c < DW_NCAT; c++) {
            char query[160] = "";
            if (has_query)
                snprintf(query, sizeof query, "?{secret:url#%" PRIu32 "?}", i);
            if (ntokens > 0)
                snprintf(query + strlen(query), sizeof query - strlen(query),
                         "%ctoken={secret:token#%zu}", has_query ? '&' : '?',
                         ntokens > 1 ? (size_t)i : (size_t)0);
            size_t len = strlen(st->base[i]) + strlen("/v1/write/") + strlen(category_path[c]) +
                         strlen(query) + 1;
            if ((st->endpoint[i][c] = malloc(len)) == NULL) {
                rc = RMR_ENOMEM;
                goto fail;
            }
            snprintf(st->endpoint[i][c], len, "%s/v1/write/%s%s", st->base[i], category_path[c],
                     query);
        }
    }
    st->compression = cfg->compression == DW_COMPRESS_GZIP ? RMR_COMPRESS_GZIP : RMR_COMPRESS_NONE;
    st->max_body_bytes = (size_t)cfg->max_raw_body_bytes;
    *state = st;
    return 0;
fail:
    state_free(st);
    return rc;
}

static int dw_start(rmr_instance_t *ins, void *state)
{
    const struct dw_state *st = state;
    for (uint32_t i = 0; i < st->nurls; i++)
        rmr_log(ins, RMR_LOG_INFO, "writing line protocol to %s/v1/write/<category>", st->base[i]);
    return 0;
}

static void dw_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    state_free(state);
}

/* Datakit drops 4xx; a bad or revoked token (401/403) is instead a halt: the data stays queued
 * until the key is fixed, which is what a task definition with a wrong token needs. */
static int dw_classify(void *state, const struct rmr_response *resp)
{
    (void)state;
    if (resp->status >= 200 && resp->status < 300)
        return RMR_VERDICT_OK;
    if (resp->status == 401 || resp->status == 403)
        return RMR_VERDICT_HALT;
    if (resp->status == 413)
        return RMR_VERDICT_SPLIT;
    if (resp->status == 408 || resp->status == 429)
        return RMR_VERDICT_RETRY;
    if (resp->status >= 400 && resp->status < 500)
        return RMR_VERDICT_REJECT;
    return RMR_VERDICT_RETRY; /* 5xx, network errors, anything else */
}

/* ---- encode: one record to one line ------------------------------------------------------ */

/* Scratch for one point: tags and fields are assembled here, strings in text. */
struct point {
    struct rmr_tag tags[DW_MAX_TAGS];
    struct rmr_field fields[DW_MAX_FIELDS];
    uint32_t ntags, nfields;
    char text[8192]; /* ids rendered as strings, keys rewritten, statsd names */
    size_t text_len;
};

static int tag_cmp(const void *a, const void *b)
{
    const struct rmr_tag *x = a, *y = b;
    uint32_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = n > 0 ? memcmp(x->key.ptr, y->key.ptr, n) : 0;
    if (c != 0)
        return c;
    return (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static int str_is(struct rmr_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* Adds a tag unless one with that key is present (the record's own tag wins) or it is empty. */
static void tag_add(struct point *pt, const char *key, struct rmr_str value)
{
    if (value.len == 0 || pt->ntags >= DW_MAX_TAGS)
        return;
    for (uint32_t i = 0; i < pt->ntags; i++)
        if (str_is(pt->tags[i].key, key))
            return;
    pt->tags[pt->ntags++] = (struct rmr_tag){rmr_str_c(key), value};
}

/* Copies tags, leaving out keys a category forbids (NULL-terminated list). */
static void tags_copy(struct point *pt, const struct rmr_tag *tags, uint32_t n,
                      const char *const *forbid)
{
    for (uint32_t i = 0; i < n && pt->ntags < DW_MAX_TAGS; i++) {
        int bad = 0;
        for (const char *const *f = forbid; f != NULL && *f != NULL; f++)
            bad |= str_is(tags[i].key, *f);
        if (!bad)
            pt->tags[pt->ntags++] = tags[i];
    }
}

static void field_add(struct point *pt, const char *key, struct rmr_value v)
{
    if (pt->nfields < DW_MAX_FIELDS)
        pt->fields[pt->nfields++] = (struct rmr_field){rmr_str_c(key), v};
}

static void field_f(struct point *pt, const char *key, double d)
{
    field_add(pt, key, (struct rmr_value){.type = RMR_VAL_DOUBLE, .v.d = d});
}

static void field_i(struct point *pt, const char *key, int64_t i)
{
    field_add(pt, key, (struct rmr_value){.type = RMR_VAL_INT, .v.i = i});
}

static void field_s(struct point *pt, const char *key, struct rmr_str s)
{
    field_add(pt, key, (struct rmr_value){.type = RMR_VAL_STR, .str_len = s.len, .v.str = s.ptr});
}

/* Renders into the point's text buffer; the result lives as long as the point. */
static struct rmr_str text_printf(struct point *pt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct rmr_str text_printf(struct point *pt, const char *fmt, ...)
{
    va_list ap;
    char *at = pt->text + pt->text_len;
    size_t room = sizeof pt->text - pt->text_len;
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        return rmr_str_n(NULL, 0);
    pt->text_len += (size_t)n + 1;
    return rmr_str_n(at, (size_t)n);
}

static void fields_copy(struct point *pt, const struct rmr_field *f, uint32_t n,
                        const char *const *forbid)
{
    for (uint32_t i = 0; i < n && pt->nfields < DW_MAX_FIELDS; i++) {
        int bad = 0;
        for (const char *const *k = forbid; k != NULL && *k != NULL; k++)
            bad |= str_is(f[i].key, *k);
        if (!bad)
            pt->fields[pt->nfields++] = f[i];
    }
}

/* DogStatsD names as Datakit's statsd input spells measurements: '.' -> '_', '-' -> '__'. */
static struct rmr_str statsd_name(struct point *pt, struct rmr_str name)
{
    char *at = pt->text + pt->text_len;
    size_t room = sizeof pt->text - pt->text_len, n = 0;
    for (uint32_t i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        if (n + 3 > room)
            return name; /* too long for the scratch: keep it as it is */
        if (c == '.') {
            at[n++] = '_';
        } else if (c == '-') {
            at[n++] = '_';
            at[n++] = '_';
        } else {
            at[n++] = c;
        }
    }
    at[n] = '\0';
    pt->text_len += n + 1;
    return rmr_str_n(at, n);
}

/* Datakit replaces '.' with '_' in the keys of every category but metric (PROTOCOLS.md 7.3). A
 * key that does not fit in the scratch is left as it is. */
static struct rmr_str undot(struct point *pt, struct rmr_str key)
{
    if (key.len == 0 || memchr(key.ptr, '.', key.len) == NULL ||
        key.len + 1 > sizeof pt->text - pt->text_len)
        return key;
    char *at = pt->text + pt->text_len;
    for (uint32_t i = 0; i < key.len; i++)
        at[i] = key.ptr[i] == '.' ? '_' : key.ptr[i];
    at[key.len] = '\0';
    pt->text_len += key.len + 1;
    return rmr_str_n(at, key.len);
}

static void undot_keys(struct point *pt)
{
    for (uint32_t i = 0; i < pt->ntags; i++)
        pt->tags[i].key = undot(pt, pt->tags[i].key);
    for (uint32_t i = 0; i < pt->nfields; i++)
        pt->fields[i].key = undot(pt, pt->fields[i].key);
}

static const char *metric_type_name(uint32_t type)
{
    switch ((enum rmr_metric_type)type) {
    case RMR_METRIC_GAUGE: return "gauge";
    case RMR_METRIC_COUNT: return "counter";
    case RMR_METRIC_RATE: return "counter";
    case RMR_METRIC_DISTRIBUTION: return "distribution";
    }
    return "gauge";
}

static void point_metric(struct point *pt, const struct rmr_metric *m, int guance,
                         struct rmr_str *measurement)
{
    tags_copy(pt, m->tags, m->ntags, NULL);
    if (guance || m->nfields > 0) {
        /* A multi-field point (docker_containers) or a guance record: as it comes. */
        *measurement = m->name;
        fields_copy(pt, m->fields, m->nfields, NULL);
        if (m->nfields == 0)
            field_f(pt, "value", m->value);
        tag_add(pt, "host", m->host);
        return;
    }
    *measurement = statsd_name(pt, m->name);
    tag_add(pt, "metric_type", rmr_str_c(metric_type_name(m->type)));
    tag_add(pt, "host", m->host);
    switch ((enum rmr_metric_type)m->type) {
    case RMR_METRIC_GAUGE:
    case RMR_METRIC_COUNT: field_f(pt, "value", m->value); break;
    case RMR_METRIC_RATE:
        /* Datadog flushes counters as a per-second rate; Datakit's statsd counters are the
         * count over the interval. */
        field_f(pt, "value",
                m->interval_ms > 0 ? m->value * (double)m->interval_ms / 1000.0 : m->value);
        break;
    case RMR_METRIC_DISTRIBUTION:
        if (m->sketch == NULL || m->sketch->count <= 0)
            break;
        field_i(pt, "count", m->sketch->count);
        field_f(pt, "min", m->sketch->min);
        field_f(pt, "max", m->sketch->max);
        field_f(pt, "sum", m->sketch->sum);
        field_f(pt, "avg", m->sketch->sum / (double)m->sketch->count);
        field_f(pt, "p50", ddsketch_view_quantile(m->sketch, 0.50));
        field_f(pt, "p95", ddsketch_view_quantile(m->sketch, 0.95));
        field_f(pt, "p99", ddsketch_view_quantile(m->sketch, 0.99));
        break;
    }
}

static const char *const object_forbidden[] = {"class", "date", "name", NULL};

static void point_object(struct point *pt, const struct rmr_object *o, struct rmr_str *measurement)
{
    *measurement = o->cls;
    tag_add(pt, "name", o->name.len > 0 ? o->name : rmr_str_c("default"));
    tags_copy(pt, o->tags, o->ntags, object_forbidden);
    fields_copy(pt, o->fields, o->nfields, object_forbidden);
}

static const char *const logging_forbidden[] = {"source", "date", NULL};

static void point_log(struct point *pt, const struct rmr_log *l, struct rmr_str *measurement)
{
    *measurement = l->source.len > 0 ? l->source : rmr_str_c(DW_DEFAULT_SOURCE);
    tags_copy(pt, l->tags, l->ntags, logging_forbidden);
    tag_add(pt, "service", l->service.len > 0 ? l->service : *measurement);
    tag_add(pt, "host", l->host);
    field_s(pt, "message", l->message);
    field_s(pt, "status", l->status.len > 0 ? l->status : rmr_str_c("info"));
    if (l->trace_id_lo != 0 || l->trace_id_hi != 0) {
        field_s(pt, "trace_id",
                l->trace_id_hi != 0
                    ? text_printf(pt, "%016" PRIx64 "%016" PRIx64, l->trace_id_hi, l->trace_id_lo)
                    : text_printf(pt, "%" PRIu64, l->trace_id_lo));
        field_s(pt, "span_id", text_printf(pt, "%" PRIu64, l->span_id));
    }
    fields_copy(pt, l->attrs, l->nattrs, logging_forbidden);
}

/* ddtrace meta keys Datakit turns into tags (PROTOCOLS.md 5.8). */
static const struct {
    const char *meta, *tag;
} span_meta_tags[] = {
    {"http.url", "http_url"},
    {"http.hostname", "http_hostname"},
    {"http.route", "http_route"},
    {"http.status_code", "http_status_code"},
    {"http.method", "http_method"},
    {"http.client_ip", "http_client_ip"},
    {"sampling.priority", "sampling_priority"},
    {"span.kind", "span_kind"},
    {"error", "error"},
    {"runtime.name", "runtime_name"},
    {"dd.version", "dd_version"},
    {"dd.env", "dd_env"},
    {"error.message", "error_message"},
    {"error.msg", "error_message"},
    {"error.stack", "error_stack"},
    {"error.type", "error_type"},
    {"system.pid", "pid"},
    {"project", "project"},
    {"version", "version"},
    {"env", "env"},
    {"host", "host"},
    {"pod_name", "pod_name"},
    {"pod_namespace", "pod_namespace"},
    {"_dd.base_service", "base_service"},
    {"db.type", "db_system"},
    {"db.instance", "db_name"},
    {"db.operation", "db_operation"},
    {"out.host", "out_host"},
    {"runtime-id", "runtime_id"},
};

/* Span types as Datakit's source_type names them. */
static const struct {
    const char *type, *source_type;
} span_source_types[] = {
    {"web", "web"},
    {"http", "web"},
    {"db", "db"},
    {"sql", "db"},
    {"cassandra", "db"},
    {"mongodb", "db"},
    {"elasticsearch", "db"},
    {"cache", "cache"},
    {"redis", "cache"},
    {"memcached", "cache"},
    {"queue", "message_queue"},
    {"worker", "message_queue"},
    {"template", "framework"},
    {"custom", "custom"},
};

static const char *sampling_rate_name(double p)
{
    if (p >= 2)
        return "user_keep";
    if (p >= 1)
        return "sampler_keep";
    return NULL;
}

/* A span metric as a number; 0 when it is not numeric. */
static int metric_number(const struct rmr_field *f, double *out)
{
    switch ((enum rmr_value_type)f->value.type) {
    case RMR_VAL_DOUBLE: *out = f->value.v.d; return 1;
    case RMR_VAL_INT: *out = (double)f->value.v.i; return 1;
    case RMR_VAL_UINT: *out = (double)f->value.v.u; return 1;
    case RMR_VAL_NONE:
    case RMR_VAL_STR:
    case RMR_VAL_BOOL: break;
    }
    return 0;
}

/* A priority Datakit drops the whole trace for (PROTOCOLS.md 5.8). */
static int span_rejected(const struct rmr_span *s)
{
    double p;
    for (uint32_t i = 0; i < s->nmetrics; i++)
        if (str_is(s->metrics[i].key, "_sampling_priority_v1") &&
            metric_number(&s->metrics[i], &p) && (p == 0 || p == -1 || p == -3))
            return 1;
    return 0;
}

/* ---- spans: the traces of one encode ---------------------------------------------------- */

/* Every span of the batches being encoded, sorted by (trace, span id): what span_type and the
 * whole-trace drop need. Traces are keyed by the low 64 bits of the id, which every span of a
 * ddtrace trace carries (the high half rides on one span's _dd.p.tid only). */
struct span_ix {
    uint64_t trace, id, parent;
    struct rmr_str service;
    uint8_t rejected, has_child;
};

struct span_index {
    struct span_ix *v;
    size_t n;
};

static int span_ix_cmp(const void *a, const void *b)
{
    const struct span_ix *x = a, *y = b;
    if (x->trace != y->trace)
        return x->trace < y->trace ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static struct span_ix *span_find(const struct span_index *ix, uint64_t trace, uint64_t id)
{
    struct span_ix key = {.trace = trace, .id = id};
    return ix->n > 0 ? bsearch(&key, ix->v, ix->n, sizeof key, span_ix_cmp) : NULL;
}

static int span_index_build(struct span_index *ix, const rmr_batch_t *const *batches,
                            uint32_t nbatches)
{
    size_t cap = 0;
    for (uint32_t bi = 0; bi < nbatches; bi++)
        for (uint32_t i = 0, n = rmr_batch_count(batches[bi]); i < n; i++)
            cap += rmr_record_kind(batches[bi], i) == RMR_REC_SPAN;
    ix->n = 0;
    ix->v = NULL;
    if (cap == 0)
        return 0;
    if ((ix->v = calloc(cap, sizeof ix->v[0])) == NULL)
        return RMR_ENOMEM;
    for (uint32_t bi = 0; bi < nbatches; bi++)
        for (uint32_t i = 0, n = rmr_batch_count(batches[bi]); i < n; i++) {
            struct rmr_span s = {.struct_size = sizeof s};
            if (rmr_record_kind(batches[bi], i) != RMR_REC_SPAN ||
                rmr_span_get(batches[bi], i, &s) < 0 || ix->n >= cap)
                continue;
            ix->v[ix->n++] = (struct span_ix){.trace = s.trace_id_lo,
                                              .id = s.span_id,
                                              .parent = s.parent_id,
                                              .service = s.service,
                                              .rejected = (uint8_t)span_rejected(&s)};
        }
    qsort(ix->v, ix->n, sizeof ix->v[0], span_ix_cmp);
    /* One rejecting span rejects its trace; spans of a trace are adjacent. */
    for (size_t a = 0, b; a < ix->n; a = b) {
        int rej = 0;
        for (b = a; b < ix->n && ix->v[b].trace == ix->v[a].trace; b++)
            rej |= ix->v[b].rejected;
        for (size_t k = a; k < b; k++)
            ix->v[k].rejected = (uint8_t)rej;
    }
    for (size_t k = 0; k < ix->n; k++) {
        struct span_ix *p =
            ix->v[k].parent != 0 ? span_find(ix, ix->v[k].trace, ix->v[k].parent) : NULL;
        if (p != NULL)
            p->has_child = 1;
    }
    return 0;
}

/* Datakit's span_type: entry when the parent is not in the trace or belongs to another service,
 * local when the span is the parent of another, else exit. */
static const char *span_type(const struct span_index *ix, const struct rmr_span *s)
{
    const struct span_ix *p =
        s->parent_id != 0 ? span_find(ix, s->trace_id_lo, s->parent_id) : NULL;
    if (p == NULL || p->service.len != s->service.len ||
        (s->service.len > 0 && memcmp(p->service.ptr, s->service.ptr, s->service.len) != 0))
        return "entry";
    const struct span_ix *self = span_find(ix, s->trace_id_lo, s->span_id);
    return self != NULL && self->has_child ? "local" : "exit";
}

/* ---- spans: the message JSON -------------------------------------------------------------- */

/* A growable buffer; a failed allocation sets oom and later writes do nothing. */
struct gbuf {
    char *data;
    size_t len, cap;
    int oom;
};

static void gb_put(struct gbuf *g, const char *p, size_t n)
{
    if (g->oom)
        return;
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap > 0 ? g->cap : 1024;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *d = realloc(g->data, cap);
        if (d == NULL) {
            g->oom = 1;
            return;
        }
        g->data = d;
        g->cap = cap;
    }
    memcpy(g->data + g->len, p, n);
    g->len += n;
    g->data[g->len] = '\0';
}

static void gb_puts(struct gbuf *g, const char *s)
{
    gb_put(g, s, strlen(s));
}

static void gb_printf(struct gbuf *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gb_printf(struct gbuf *g, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        gb_put(g, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string as Go's encoding/json writes it (Datakit marshals the span with it): '"', '\'
 * and control characters escaped, and '<', '>', '&' as \u003c, \u003e, \u0026. */
static void json_str(struct gbuf *g, struct rmr_str s)
{
    static const char hex[] = "0123456789abcdef";
    gb_put(g, "\"", 1);
    size_t run = 0;
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc == NULL) {
            run++;
            continue;
        }
        gb_put(g, s.ptr + i - run, run);
        run = 0;
        gb_puts(g, esc);
    }
    gb_put(g, s.ptr + s.len - run, run);
    gb_put(g, "\"", 1);
}

/* The shortest form that reads back as the same double (Go writes floats the shortest way). */
static void json_double(struct gbuf *g, double d)
{
    char tmp[NUMFMT_DOUBLE_MAX];
    gb_put(g, tmp, numfmt_double(tmp, sizeof tmp, d));
}

static int str_cmp(struct rmr_str a, struct rmr_str b)
{
    uint32_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.ptr, b.ptr, n) : 0;
    return c != 0 ? c : (a.len > b.len) - (a.len < b.len);
}

static int meta_mapped(struct rmr_str key);

/* The span as Datakit's json.Marshal of the DD span writes it: the span's keys in the struct's
 * order, maps with sorted keys (Go sorts them), the meta keys turned into tags left out. The ids
 * are the record's. Non-finite metrics are left out (Go refuses them). Returns 0, or
 * RMR_ENOMEM. */
static int span_json(struct gbuf *g, const struct rmr_span *s)
{
    g->len = 0;
    g->oom = 0;
    uint32_t nkeys = s->nmeta > s->nmetrics ? s->nmeta : s->nmetrics;
    uint32_t *order = nkeys > 0 ? malloc(nkeys * sizeof *order) : NULL;
    if (nkeys > 0 && order == NULL)
        return RMR_ENOMEM;
    gb_puts(g, "{\"service\":");
    json_str(g, s->service);
    gb_puts(g, ",\"name\":");
    json_str(g, s->name);
    gb_puts(g, ",\"resource\":");
    json_str(g, s->resource);
    /* Datakit zeroes the ids in the message: they are fields of the point already. */
    gb_puts(g, ",\"trace_id\":0,\"span_id\":0,\"parent_id\":0");
    gb_printf(g, ",\"start\":%" PRId64 ",\"duration\":%" PRId64 ",\"error\":%" PRId32, s->start_ns,
              s->duration_ns, s->error);
    /* meta: insertion sort of the kept keys (spans carry a few dozen at most) */
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nmeta; i++) {
        if (meta_mapped(s->meta[i].key))
            continue;
        uint32_t j = n++;
        for (; j > 0 && str_cmp(s->meta[order[j - 1]].key, s->meta[i].key) > 0; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    if (n > 0) {
        gb_puts(g, ",\"meta\":{");
        for (uint32_t j = 0; j < n; j++) {
            if (j > 0)
                gb_put(g, ",", 1);
            json_str(g, s->meta[order[j]].key);
            gb_put(g, ":", 1);
            json_str(g, s->meta[order[j]].value);
        }
        gb_put(g, "}", 1);
    }
    n = 0;
    for (uint32_t i = 0; i < s->nmetrics; i++) {
        double d;
        if (!metric_number(&s->metrics[i], &d) || !isfinite(d))
            continue;
        uint32_t j = n++;
        for (; j > 0 && str_cmp(s->metrics[order[j - 1]].key, s->metrics[i].key) > 0; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    if (n > 0) {
        gb_puts(g, ",\"metrics\":{");
        for (uint32_t j = 0; j < n; j++) {
            double d = 0;
            metric_number(&s->metrics[order[j]], &d);
            if (j > 0)
                gb_put(g, ",", 1);
            json_str(g, s->metrics[order[j]].key);
            gb_put(g, ":", 1);
            json_double(g, d);
        }
        gb_put(g, "}", 1);
    }
    gb_puts(g, ",\"type\":");
    json_str(g, s->type);
    gb_put(g, "}", 1);
    free(order);
    return g->oom ? RMR_ENOMEM : 0;
}

/* ---- spans: the point ------------------------------------------------------------------- */

static int meta_mapped(struct rmr_str key)
{
    for (size_t i = 0; i < sizeof span_meta_tags / sizeof span_meta_tags[0]; i++)
        if (str_is(key, span_meta_tags[i].meta))
            return 1;
    return 0;
}

/* Tag, or field when longer than Datakit's 1024-byte tag values (PROTOCOLS.md 5.8, 7.3). */
static void span_tag(struct point *pt, const char *key, struct rmr_str value)
{
    if (value.len > 1024)
        field_s(pt, key, value);
    else
        tag_add(pt, key, value);
}

static struct rmr_str meta_get(const struct rmr_span *s, const char *key)
{
    for (uint32_t i = 0; i < s->nmeta; i++)
        if (str_is(s->meta[i].key, key))
            return s->meta[i].value;
    return rmr_str_n(NULL, 0);
}

/* 2xx from "200": only for a three-digit status 100..599. */
static struct rmr_str status_class(struct point *pt, struct rmr_str code)
{
    if (code.len != 3 || code.ptr[0] < '1' || code.ptr[0] > '5' || code.ptr[1] < '0' ||
        code.ptr[1] > '9' || code.ptr[2] < '0' || code.ptr[2] > '9')
        return rmr_str_n(NULL, 0);
    return text_printf(pt, "%cxx", code.ptr[0]);
}

/* The resource with newlines as spaces (Datakit), in scratch when it has any. */
static struct rmr_str span_resource(struct gbuf *scratch, struct rmr_str r)
{
    if (r.len == 0 || (memchr(r.ptr, '\n', r.len) == NULL && memchr(r.ptr, '\r', r.len) == NULL))
        return r;
    scratch->len = 0;
    scratch->oom = 0;
    gb_put(scratch, r.ptr, r.len);
    if (scratch->oom)
        return r;
    for (size_t i = 0; i < scratch->len; i++)
        if (scratch->data[i] == '\n' || scratch->data[i] == '\r')
            scratch->data[i] = ' ';
    return rmr_str_n(scratch->data, scratch->len);
}

/* The span's point; message is its JSON (span_json), resource a scratch for the resource. */
static void point_span(struct point *pt, const struct rmr_span *s, const struct span_index *ix,
                       const struct gbuf *message, struct gbuf *resource,
                       struct rmr_str *measurement)
{
    double p;
    for (uint32_t i = 0; i < s->nmetrics; i++)
        if (str_is(s->metrics[i].key, "_sampling_priority_v1") &&
            metric_number(&s->metrics[i], &p) && sampling_rate_name(p) != NULL)
            tag_add(pt, "sampling_rate", rmr_str_c(sampling_rate_name(p)));
    *measurement = rmr_str_c("ddtrace");
    tag_add(pt, "service", s->service);
    tag_add(pt, "operation", s->name);
    tag_add(pt, "source", rmr_str_c("ddtrace"));
    tag_add(pt, "span_type", rmr_str_c(span_type(ix, s)));
    const char *st = "custom";
    for (size_t i = 0; i < sizeof span_source_types / sizeof span_source_types[0]; i++)
        if (str_is(s->type, span_source_types[i].type))
            st = span_source_types[i].source_type;
    tag_add(pt, "source_type", rmr_str_c(st));
    tag_add(pt, "status", rmr_str_c(s->error != 0 ? "error" : "ok"));
    for (uint32_t m = 0; m < s->nmeta; m++)
        for (size_t i = 0; i < sizeof span_meta_tags / sizeof span_meta_tags[0]; i++)
            if (str_is(s->meta[m].key, span_meta_tags[i].meta)) {
                span_tag(pt, span_meta_tags[i].tag, s->meta[m].value);
                if (str_is(s->meta[m].key, "http.status_code"))
                    tag_add(pt, "http_status_class", status_class(pt, s->meta[m].value));
                if (str_is(s->meta[m].key, "runtime-id"))
                    span_tag(pt, "runtime-id", s->meta[m].value);
            }
    if (meta_get(s, "db.type").len > 0)
        span_tag(pt, "db_host", meta_get(s, "peer.hostname"));
    if (s->trace_id_hi != 0)
        field_s(pt, "trace_id",
                text_printf(pt, "%016" PRIx64 "%016" PRIx64, s->trace_id_hi, s->trace_id_lo));
    else
        field_s(pt, "trace_id", text_printf(pt, "%" PRIu64, s->trace_id_lo));
    field_s(pt, "span_id", text_printf(pt, "%" PRIu64, s->span_id));
    field_s(pt, "parent_id", text_printf(pt, "%" PRIu64, s->parent_id));
    field_s(pt, "resource", span_resource(resource, s->resource));
    field_i(pt, "start", s->start_ns / 1000);
    field_i(pt, "duration", s->duration_ns / 1000);
    field_s(pt, "message", rmr_str_n(message->data, message->len));
}

static struct rmr_str event_status(struct rmr_str alert_type)
{
    if (str_is(alert_type, "error"))
        return rmr_str_c("error");
    if (str_is(alert_type, "warning"))
        return rmr_str_c("warning");
    if (str_is(alert_type, "success"))
        return rmr_str_c("ok");
    return rmr_str_c("info");
}

static void point_event(struct point *pt, const struct rmr_event *e, struct rmr_str *measurement)
{
    *measurement = e->source_type.len > 0 ? e->source_type : rmr_str_c("dogstatsd");
    tags_copy(pt, e->tags, e->ntags, NULL);
    tag_add(pt, "host", e->host);
    tag_add(pt, "aggregation_key", e->aggregation_key);
    tag_add(pt, "priority", rmr_str_c(e->priority == RMR_EVENT_LOW ? "low" : "normal"));
    tag_add(pt, "df_source", rmr_str_c("dogstatsd"));
    field_s(pt, "title", e->title);
    field_s(pt, "message", e->text);
    field_s(pt, "status", event_status(e->alert_type));
}

static const char *const check_status[] = {"ok", "warning", "critical", "unknown"};

static void point_check(struct point *pt, const struct rmr_check *c, struct rmr_str *measurement)
{
    *measurement = rmr_str_c("service_check");
    tags_copy(pt, c->tags, c->ntags, NULL);
    tag_add(pt, "host", c->host);
    tag_add(pt, "check", c->name);
    tag_add(pt, "df_source", rmr_str_c("dogstatsd"));
    field_s(pt, "title", c->name);
    field_s(pt, "message", c->message);
    field_s(pt, "status", rmr_str_c(c->status < 4 ? check_status[c->status] : "unknown"));
}

static int kind_category(uint32_t kind)
{
    switch ((enum rmr_record_kind)kind) {
    case RMR_REC_METRIC: return DW_METRIC;
    case RMR_REC_OBJECT: return DW_OBJECT;
    case RMR_REC_LOG: return DW_LOGGING;
    case RMR_REC_SPAN: return DW_TRACING;
    case RMR_REC_EVENT: return DW_KEYEVENT;
    case RMR_REC_CHECK: return DW_KEYEVENT;
    }
    return -1;
}

/* ---- encode: batches to payloads ---------------------------------------------------------- */

struct out {
    rmr_encoder_t *enc;
    const struct dw_state *st;
    int cat;
    struct lp_buf body;
    uint32_t nrecords; /* records in body */
    uint32_t nlines;
    uint32_t kind;                 /* the record kind of body's records, 0 when mixed */
    struct span_index spans;       /* every span of the encode */
    struct gbuf message, resource; /* a span's message JSON and newline-free resource */
    struct point pt;
};

/* One payload per dataway, each with the same body. */
static int flush(struct out *o)
{
    if (o->nrecords == 0)
        return 0;
    /* The courier's own User-Agent (remora/<agent version>) goes with every request. */
    char headers[64];
    /* The courier writes the body's line count, also into each half of a 413 split. */
    snprintf(headers, sizeof headers, "X-Points: {lines}\r\n");
    for (uint32_t u = 0; u < o->st->nurls; u++) {
        struct rmr_payload_spec spec = {
            .struct_size = sizeof spec,
            .compression = o->st->compression,
            .endpoint = o->st->endpoint[u][o->cat],
            .content_type = "application/line-protocol",
            .record_kind = o->kind,
            .flags = RMR_PAYLOAD_LINES,
            .headers = headers,
        };
        rmr_payload_t *p = rmr_payload_new(o->enc, &spec);
        if (p == NULL)
            return RMR_ENOMEM;
        int rc = o->body.len > 0 ? rmr_payload_write(p, o->body.data, o->body.len) : 0;
        if (rc < 0) {
            rmr_payload_discard(p);
            return rc;
        }
        if ((rc = rmr_payload_commit(p, o->nrecords)) < 0)
            return rc;
    }
    lp_buf_reset(&o->body);
    o->nrecords = 0;
    o->nlines = 0;
    o->kind = 0;
    return 0;
}

/* A record left without any field is dropped and counted once, under the reason that emptied
 * it. A record that lost only some fields (a NaN among others) is written without them. */
static void count_drop(rmr_encoder_t *enc, uint32_t kind, const struct lp_drops *d)
{
    const char *why = d->non_finite > 0   ? "non_finite"
                      : d->uint_range > 0 ? "uint_range"
                                          : "no_fields";
    rmr_encoder_drop(enc, kind, why, 1);
}

/* Encodes record i of b into the body. */
static int encode_record(struct out *o, const rmr_batch_t *b, uint32_t i, uint32_t kind)
{
    struct point *pt = &o->pt;
    pt->ntags = pt->nfields = 0;
    pt->text_len = 0;
    const char *schema = rmr_batch_schema(b);
    int guance = schema != NULL && strcmp(schema, RMR_SCHEMA_GUANCE) == 0;
    struct lp_point lp = {.time_ns = 0};
    uint32_t flags = 0;
    switch ((enum rmr_record_kind)kind) {
    case RMR_REC_METRIC: {
        struct rmr_metric m = {.struct_size = sizeof m};
        if (rmr_metric_get(b, i, &m) < 0)
            return 0;
        point_metric(pt, &m, guance, &lp.measurement);
        lp.time_ns = m.time_ns;
        flags = LP_NO_STRING_FIELDS;
        break;
    }
    case RMR_REC_OBJECT: {
        struct rmr_object v = {.struct_size = sizeof v};
        if (rmr_object_get(b, i, &v) < 0)
            return 0;
        point_object(pt, &v, &lp.measurement);
        lp.time_ns = v.time_ns;
        break;
    }
    case RMR_REC_LOG: {
        struct rmr_log v = {.struct_size = sizeof v};
        if (rmr_log_get(b, i, &v) < 0)
            return 0;
        point_log(pt, &v, &lp.measurement);
        lp.time_ns = v.time_ns;
        break;
    }
    case RMR_REC_SPAN: {
        struct rmr_span v = {.struct_size = sizeof v};
        if (rmr_span_get(b, i, &v) < 0)
            return 0;
        const struct span_ix *me = span_find(&o->spans, v.trace_id_lo, v.span_id);
        if (me != NULL ? me->rejected : span_rejected(&v)) {
            rmr_encoder_drop(o->enc, kind, "sampled_out", 1);
            return 0;
        }
        int jrc = span_json(&o->message, &v);
        if (jrc < 0)
            return jrc;
        point_span(pt, &v, &o->spans, &o->message, &o->resource, &lp.measurement);
        lp.time_ns = v.start_ns;
        break;
    }
    case RMR_REC_EVENT: {
        struct rmr_event v = {.struct_size = sizeof v};
        if (rmr_event_get(b, i, &v) < 0)
            return 0;
        point_event(pt, &v, &lp.measurement);
        lp.time_ns = v.time_ns;
        break;
    }
    case RMR_REC_CHECK: {
        struct rmr_check v = {.struct_size = sizeof v};
        if (rmr_check_get(b, i, &v) < 0)
            return 0;
        point_check(pt, &v, &lp.measurement);
        lp.time_ns = v.time_ns;
        break;
    }
    }
    if (kind != RMR_REC_METRIC)
        undot_keys(pt);
    qsort(pt->tags, pt->ntags, sizeof pt->tags[0], tag_cmp);
    lp.tags = pt->tags;
    lp.ntags = pt->ntags;
    lp.fields = pt->fields;
    lp.nfields = pt->nfields;
    struct lp_drops drops = {0};
    int rc = lp_encode(&o->body, &lp, flags, &drops);
    if (rc == RMR_EINVAL) {
        rmr_encoder_drop(o->enc, kind, "no_name", 1);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (rc == 0) {
        count_drop(o->enc, kind, &drops);
        return 0;
    }
    if (o->nrecords > 0 && o->kind != kind)
        o->kind = 0;
    else if (o->nrecords == 0)
        o->kind = kind;
    o->nrecords++;
    o->nlines += (uint32_t)rc;
    return 0;
}

static int dw_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                     uint32_t nbatches)
{
    const struct dw_state *st = state;
    struct out *o = calloc(1, sizeof *o);
    if (o == NULL)
        return RMR_ENOMEM;
    o->enc = enc;
    o->st = st;
    lp_buf_init(&o->body);
    int rc = span_index_build(&o->spans, batches, nbatches);
    if (rc < 0)
        goto done;
    for (o->cat = 0; o->cat < DW_NCAT; o->cat++) {
        for (uint32_t bi = 0; bi < nbatches; bi++) {
            const rmr_batch_t *b = batches[bi];
            for (uint32_t i = 0, n = rmr_batch_count(b); i < n; i++) {
                uint32_t kind = rmr_record_kind(b, i);
                int cat = kind_category(kind);
                if (cat < 0) {
                    if (o->cat == 0)
                        rmr_encoder_drop(enc, kind, "unsupported_kind", 1);
                    continue;
                }
                if (cat != o->cat)
                    continue;
                size_t before = o->body.len;
                uint32_t lines = o->nlines;
                if ((rc = encode_record(o, b, i, kind)) < 0)
                    goto done;
                /* Over the bound: the line just written starts the next body. */
                if (o->body.len > st->max_body_bytes && before > 0 && o->nlines > lines) {
                    size_t len = o->body.len - before;
                    char *line = malloc(len);
                    if (line == NULL) {
                        rc = RMR_ENOMEM;
                        goto done;
                    }
                    memcpy(line, o->body.data + before, len);
                    o->body.len = before;
                    o->nrecords--;
                    o->nlines--;
                    rc = flush(o);
                    if (rc == 0) {
                        memcpy(o->body.data, line, len); /* capacity >= before + len */
                        o->body.len = len;
                        o->nrecords = 1;
                        o->nlines = 1;
                        o->kind = kind;
                    }
                    free(line);
                    if (rc < 0)
                        goto done;
                }
            }
        }
        if ((rc = flush(o)) < 0)
            goto done;
    }
done:
    lp_buf_release(&o->body);
    free(o->spans.v);
    free(o->message.data);
    free(o->resource.data);
    free(o);
    return rc;
}

static const struct rmr_plugin dw_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "dataway",
    .version = DW_VERSION,
    .description = "POSTs records as line protocol to a Guance dataway",
    .options = dw_options,
    .config_size = sizeof(struct dw_cfg),
    .accepts = RMR_REC_ALL,
    .schemas = dw_schemas,
    .create = dw_create,
    .start = dw_start,
    .destroy = dw_destroy,
    .encode = dw_encode,
    .classify = dw_classify,
};

RMR_PLUGIN_DEFINE(dw_plugin)
