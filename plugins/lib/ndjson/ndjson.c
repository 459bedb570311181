/* plugins/lib/ndjson: every record kind as one JSON object per line, the format of the file
 * and http outputs (documented in plugins/outputs/file/README.md and kept stable, field order
 * included, because people grep and parse it). Thread: encode(); no state. */
#include "ndjson/ndjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../numfmt/numfmt.h"

/* ---- a line writer with a sticky error ------------------------------------------------- */

/* The first failed write is kept and later writes are skipped, so a line is written as one
 * readable sequence and checked once. */
struct w {
    rmr_payload_t *p;
    int rc;
};

static void put(struct w *w, const char *s, size_t len)
{
    if (w->rc == 0)
        w->rc = rmr_payload_write(w->p, s, len);
}

static void puts_(struct w *w, const char *s)
{
    put(w, s, strlen(s));
}

static void jstr(struct w *w, const char *s, size_t len)
{
    if (w->rc == 0)
        w->rc = rmr_payload_json_str(w->p, s, len);
}

static void jrstr(struct w *w, struct rmr_str s)
{
    jstr(w, s.ptr, s.len);
}

/* ,"key":"value" (key is a literal from this file, needing no escapes). */
static void kv_str(struct w *w, const char *key, struct rmr_str s)
{
    put(w, ",\"", 2);
    puts_(w, key);
    put(w, "\":", 2);
    jrstr(w, s);
}

static void kv_str_opt(struct w *w, const char *key, struct rmr_str s)
{
    if (s.len > 0)
        kv_str(w, key, s);
}

static void kv_raw(struct w *w, const char *key, const char *raw)
{
    put(w, ",\"", 2);
    puts_(w, key);
    put(w, "\":", 2);
    puts_(w, raw);
}

static void kv_i64(struct w *w, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    kv_raw(w, key, buf);
}

/* A JSON number, or null for NaN and infinities, which JSON cannot express. */
static void num(struct w *w, double d)
{
    char buf[40];
    if (!isfinite(d)) {
        put(w, "null", 4);
        return;
    }
    numfmt_double(buf, sizeof buf, d);
    puts_(w, buf);
}

/* RFC 3339 in UTC with nanoseconds: 2026-01-01T00:00:00.000000000Z. Built from gmtime_r's
 * fields rather than strftime so no locale can change it. */
static void fmt_time(char *buf, size_t len, int64_t ns)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000000000Z");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static void kv_time(struct w *w, const char *key, int64_t ns)
{
    char buf[48];
    fmt_time(buf, sizeof buf, ns);
    put(w, ",\"", 2);
    puts_(w, key);
    put(w, "\":\"", 3);
    puts_(w, buf);
    put(w, "\"", 1);
}

static void kv_hex64(struct w *w, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "\"%016" PRIx64 "\"", v);
    kv_raw(w, key, buf);
}

static void kv_hex128(struct w *w, const char *key, uint64_t hi, uint64_t lo)
{
    char buf[40];
    snprintf(buf, sizeof buf, "\"%016" PRIx64 "%016" PRIx64 "\"", hi, lo);
    kv_raw(w, key, buf);
}

static void value(struct w *w, const struct rmr_value *v)
{
    char buf[32];
    switch ((enum rmr_value_type)v->type) {
    case RMR_VAL_NONE: put(w, "null", 4); return;
    case RMR_VAL_STR: jstr(w, v->v.str, v->str_len); return;
    case RMR_VAL_INT:
        snprintf(buf, sizeof buf, "%" PRId64, v->v.i);
        puts_(w, buf);
        return;
    case RMR_VAL_UINT:
        snprintf(buf, sizeof buf, "%" PRIu64, v->v.u);
        puts_(w, buf);
        return;
    case RMR_VAL_DOUBLE: num(w, v->v.d); return;
    case RMR_VAL_BOOL: puts_(w, v->v.i ? "true" : "false"); return;
    }
    /* A value type newer than this plugin. */
    put(w, "null", 4);
}

/* ,"key":{"k":value,...} */
static void kv_fields(struct w *w, const char *key, const struct rmr_field *f, uint32_t n)
{
    put(w, ",\"", 2);
    puts_(w, key);
    put(w, "\":{", 3);
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0)
            put(w, ",", 1);
        jrstr(w, f[i].key);
        put(w, ":", 1);
        value(w, &f[i].value);
    }
    put(w, "}", 1);
}

static int str_eq(struct rmr_str a, struct rmr_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ,"key":{"k":"v","k2":["a","b"]}. Tag sets in views are sorted by key then value and free
 * of duplicate pairs, so the values of one key are adjacent: a key with several values
 * becomes an array, in that sorted order. */
static void kv_tags(struct w *w, const char *key, const struct rmr_tag *t, uint32_t n)
{
    put(w, ",\"", 2);
    puts_(w, key);
    put(w, "\":{", 3);
    uint32_t i = 0;
    while (i < n) {
        uint32_t j = i + 1;
        while (j < n && str_eq(t[j].key, t[i].key))
            j++;
        if (i > 0)
            put(w, ",", 1);
        jrstr(w, t[i].key);
        put(w, ":", 1);
        if (j - i == 1) {
            jrstr(w, t[i].value);
        } else {
            put(w, "[", 1);
            for (uint32_t k = i; k < j; k++) {
                if (k > i)
                    put(w, ",", 1);
                jrstr(w, t[k].value);
            }
            put(w, "]", 1);
        }
        i = j;
    }
    put(w, "}", 1);
}

static void head(struct w *w, const char *kind, const char *schema)
{
    put(w, "{\"kind\":\"", 9);
    puts_(w, kind);
    put(w, "\"", 1);
    if (schema != NULL)
        kv_str(w, "schema", rmr_str_c(schema));
}

/* ---- one line per kind -------------------------------------------------------------------- */

static const char *metric_type_name(uint32_t type)
{
    switch ((enum rmr_metric_type)type) {
    case RMR_METRIC_GAUGE: return "gauge";
    case RMR_METRIC_COUNT: return "count";
    case RMR_METRIC_RATE: return "rate";
    case RMR_METRIC_DISTRIBUTION: return "distribution";
    }
    return "unknown";
}

static void sketch(struct w *w, const struct rmr_sketch *s)
{
    put(w, ",\"sketch\":{\"count\":", 19);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, s->count);
    puts_(w, buf);
    put(w, ",\"min\":", 7);
    num(w, s->min);
    put(w, ",\"max\":", 7);
    num(w, s->max);
    put(w, ",\"sum\":", 7);
    num(w, s->sum);
    put(w, ",\"bins\":[", 9);
    for (uint32_t i = 0; i < s->nbins; i++) {
        snprintf(buf, sizeof buf, "%s[%" PRId32 ",%" PRIu32 "]", i ? "," : "", s->keys[i],
                 s->counts[i]);
        puts_(w, buf);
    }
    put(w, "]}", 2);
}

/* Returns 1 when the metric was written, 0 when it was dropped (counted). */
static int metric_line(struct w *w, rmr_encoder_t *enc, const rmr_batch_t *b, uint32_t i,
                       const char *schema)
{
    struct rmr_metric m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    if ((w->rc = rmr_metric_get(b, i, &m)) < 0)
        return 0;
    /* A multi-field point or a distribution carries no single value. */
    int has_value = m.nfields == 0 && m.type != RMR_METRIC_DISTRIBUTION;
    if (has_value && !isfinite(m.value)) {
        rmr_encoder_drop(enc, RMR_REC_METRIC, "non_finite", 1);
        return 0;
    }
    head(w, "metric", schema);
    kv_str(w, "name", m.name);
    kv_str(w, "type", rmr_str_c(metric_type_name(m.type)));
    if (has_value) {
        put(w, ",\"value\":", 9);
        num(w, m.value);
    }
    if (m.type == RMR_METRIC_COUNT || m.type == RMR_METRIC_RATE)
        kv_i64(w, "interval_ms", m.interval_ms);
    kv_str_opt(w, "unit", m.unit);
    kv_str_opt(w, "host", m.host);
    if (m.nfields > 0)
        kv_fields(w, "fields", m.fields, m.nfields);
    if (m.type == RMR_METRIC_DISTRIBUTION && m.sketch != NULL)
        sketch(w, m.sketch);
    kv_time(w, "time", m.time_ns);
    kv_tags(w, "tags", m.tags, m.ntags);
    put(w, "}\n", 2);
    return 1;
}

static int log_line(struct w *w, const rmr_batch_t *b, uint32_t i, const char *schema)
{
    struct rmr_log l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    if ((w->rc = rmr_log_get(b, i, &l)) < 0)
        return 0;
    head(w, "log", schema);
    kv_str(w, "message", l.message);
    kv_str_opt(w, "status", l.status);
    kv_str_opt(w, "source", l.source);
    kv_str_opt(w, "service", l.service);
    kv_str_opt(w, "host", l.host);
    if (l.trace_id_hi != 0 || l.trace_id_lo != 0)
        kv_hex128(w, "trace_id", l.trace_id_hi, l.trace_id_lo);
    if (l.span_id != 0)
        kv_hex64(w, "span_id", l.span_id);
    if (l.nattrs > 0)
        kv_fields(w, "attrs", l.attrs, l.nattrs);
    kv_time(w, "time", l.time_ns);
    kv_tags(w, "tags", l.tags, l.ntags);
    put(w, "}\n", 2);
    return 1;
}

/* A span has no separate time or tags: start is its time and meta holds its tags. */
static int span_line(struct w *w, const rmr_batch_t *b, uint32_t i, const char *schema)
{
    struct rmr_span s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if ((w->rc = rmr_span_get(b, i, &s)) < 0)
        return 0;
    head(w, "span", schema);
    kv_hex128(w, "trace_id", s.trace_id_hi, s.trace_id_lo);
    kv_hex64(w, "span_id", s.span_id);
    kv_hex64(w, "parent_id", s.parent_id);
    kv_str(w, "name", s.name);
    kv_str_opt(w, "service", s.service);
    kv_str_opt(w, "resource", s.resource);
    kv_str_opt(w, "type", s.type);
    kv_time(w, "start", s.start_ns);
    kv_i64(w, "duration_ns", s.duration_ns);
    kv_i64(w, "error", s.error);
    kv_tags(w, "meta", s.meta, s.nmeta);
    kv_fields(w, "metrics", s.metrics, s.nmetrics);
    put(w, "}\n", 2);
    return 1;
}

static int event_line(struct w *w, const rmr_batch_t *b, uint32_t i, const char *schema)
{
    struct rmr_event e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    if ((w->rc = rmr_event_get(b, i, &e)) < 0)
        return 0;
    head(w, "event", schema);
    kv_str(w, "title", e.title);
    kv_str(w, "text", e.text);
    kv_raw(w, "priority", e.priority == RMR_EVENT_LOW ? "\"low\"" : "\"normal\"");
    kv_str_opt(w, "alert_type", e.alert_type);
    kv_str_opt(w, "aggregation_key", e.aggregation_key);
    kv_str_opt(w, "source_type", e.source_type);
    kv_str_opt(w, "host", e.host);
    kv_time(w, "time", e.time_ns);
    kv_tags(w, "tags", e.tags, e.ntags);
    put(w, "}\n", 2);
    return 1;
}

static const char *check_status_text(uint32_t status)
{
    switch ((enum rmr_check_status)status) {
    case RMR_CHECK_OK: return "ok";
    case RMR_CHECK_WARNING: return "warning";
    case RMR_CHECK_CRITICAL: return "critical";
    case RMR_CHECK_UNKNOWN: return "unknown";
    }
    return "unknown";
}

static int check_line(struct w *w, const rmr_batch_t *b, uint32_t i, const char *schema)
{
    struct rmr_check c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    if ((w->rc = rmr_check_get(b, i, &c)) < 0)
        return 0;
    head(w, "check", schema);
    kv_str(w, "name", c.name);
    kv_i64(w, "status", c.status);
    kv_str(w, "status_text", rmr_str_c(check_status_text(c.status)));
    kv_str_opt(w, "message", c.message);
    kv_str_opt(w, "host", c.host);
    kv_time(w, "time", c.time_ns);
    kv_tags(w, "tags", c.tags, c.ntags);
    put(w, "}\n", 2);
    return 1;
}

static int object_line(struct w *w, const rmr_batch_t *b, uint32_t i, const char *schema)
{
    struct rmr_object o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    if ((w->rc = rmr_object_get(b, i, &o)) < 0)
        return 0;
    head(w, "object", schema);
    kv_str(w, "class", o.cls);
    kv_str(w, "name", o.name);
    kv_fields(w, "fields", o.fields, o.nfields);
    kv_time(w, "time", o.time_ns);
    kv_tags(w, "tags", o.tags, o.ntags);
    put(w, "}\n", 2);
    return 1;
}

/* ---- the record dispatcher ------------------------------------------------------------- */

int ndjson_record(rmr_payload_t *p, rmr_encoder_t *enc, const rmr_batch_t *b, uint32_t i)
{
    struct w w = {p, 0};
    const char *schema = rmr_batch_schema(b);
    uint32_t kind = rmr_record_kind(b, i);
    int wrote = 0;
    if (kind < RMR_REC_METRIC || kind > RMR_REC_KIND_MAX) {
        /* A kind newer than this plugin. */
        rmr_encoder_drop(enc, kind, "unsupported_kind", 1);
        return 0;
    }
    switch ((enum rmr_record_kind)kind) {
    case RMR_REC_METRIC: wrote = metric_line(&w, enc, b, i, schema); break;
    case RMR_REC_LOG: wrote = log_line(&w, b, i, schema); break;
    case RMR_REC_SPAN: wrote = span_line(&w, b, i, schema); break;
    case RMR_REC_EVENT: wrote = event_line(&w, b, i, schema); break;
    case RMR_REC_CHECK: wrote = check_line(&w, b, i, schema); break;
    case RMR_REC_OBJECT: wrote = object_line(&w, b, i, schema); break;
    }
    return w.rc < 0 ? w.rc : wrote;
}
