/* Unit tests for core/record: the arena, interning, tag sets, every record kind, ABI sizes,
 * global tag merging, sealing, bounds and reference counting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record/batch.h"
#include "tap.h"

/* batch_new only stores the table pointer in the handle; no test calls through it. */
static const struct rmr_host_api host = {.struct_size = sizeof host, .abi_major = 1};

static struct rmr_tag tag(const char *k, const char *v)
{
    struct rmr_tag t = {RMR_STR(k), RMR_STR(v)};
    return t;
}

/* Renders a tag set as "k:v,k2:v2,bare" so a whole set is compared in one check. */
static const char *render_tags(char *buf, size_t size, const struct rmr_tag *tags, uint32_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && off < size; i++) {
        int w = snprintf(buf + off, size - off, "%s%.*s%s%.*s", i > 0 ? "," : "",
                         (int)tags[i].key.len, tags[i].key.ptr, tags[i].value.len > 0 ? ":" : "",
                         (int)tags[i].value.len, tags[i].value.ptr);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}

#define IS_TAGS(tags, n, want, name)                                                               \
    do {                                                                                           \
        char tb_[512];                                                                             \
        IS_STR(render_tags(tb_, sizeof tb_, (tags), (n)), (want), (name));                         \
    } while (0)

static struct rmr_metric gauge(const char *name, double value)
{
    struct rmr_metric m = {.struct_size = sizeof m, .type = RMR_METRIC_GAUGE};
    m.name = RMR_STR(name);
    m.value = value;
    return m;
}

/* ---- arena -------------------------------------------------------------------------------- */

static void test_arena(void)
{
    struct arena a;
    arena_init(&a, 0);
    IS_UINT(a.total_bytes, 0, "arena: nothing allocated before the first request");
    char *p1 = arena_alloc(&a, 1);
    char *p2 = arena_alloc(&a, 3);
    char *p3 = arena_alloc(&a, 0);
    OK(p1 != NULL && p2 != NULL && p3 != NULL, "arena: small allocations succeed");
    OK(((uintptr_t)p1 | (uintptr_t)p2 | (uintptr_t)p3) % 8 == 0, "arena: 8-byte alignment");
    OK(p1 != p2 && p2 != p3, "arena: distinct pointers, also for 0 bytes");
    OK(a.total_bytes <= 2048, "arena: the first chunk is about 1 KiB");
    size_t small_total = a.total_bytes;

    /* A request larger than the chunk cap gets an exact chunk, and the head keeps serving. */
    char *big = arena_alloc(&a, 200000);
    OK(big != NULL, "arena: large allocation");
    memset(big, 0xab, 200000);
    OK(a.total_bytes >= small_total + 200000 && a.total_bytes < small_total + 200000 + 256,
       "arena: large request gets an exact chunk");
    char *p4 = arena_alloc(&a, 8);
    OK(p4 == p3 + 8, "arena: after a large chunk the head chunk is still used");

    char *s = arena_strndup(&a, "hello world", 5);
    IS_STR(s, "hello", "arena_strndup copies len bytes and terminates");
    char *e = arena_strndup(&a, NULL, 0);
    IS_STR(e, "", "arena_strndup of NULL, 0 is the empty string");

    OK(arena_alloc(&a, SIZE_MAX) == NULL, "arena: SIZE_MAX refused");
    OK(arena_alloc(&a, SIZE_MAX - 3) == NULL, "arena: rounding overflow refused");
    OK(arena_strndup(&a, "x", SIZE_MAX) == NULL, "arena_strndup: length overflow refused");
    OK(a.used_bytes <= a.total_bytes, "arena: used within total");
    arena_release(&a);
    IS_UINT(a.total_bytes, 0, "arena_release: total back to 0");
    OK(a.head == NULL, "arena_release: no chunks");

    /* Geometric growth: many small allocations take few chunks. */
    arena_init(&a, 0);
    for (int i = 0; i < 10000; i++)
        arena_alloc(&a, 64);
    /* Doubling up to 64 KiB: at most one partly used chunk and a little header overhead. */
    OK(a.total_bytes >= 640000 && a.total_bytes < 640000 + 65536 + 4096,
       "arena: geometric growth wastes less than one chunk");
    arena_release(&a);

    /* A limit bounds the chunk bytes; near it a smaller chunk is used rather than failing. */
    arena_init(&a, 3000);
    size_t got = 0;
    while (arena_alloc(&a, 100) != NULL)
        got += 104;
    OK(a.total_bytes <= 3000, "arena limit: total chunk bytes within the limit");
    OK(got >= 2700, "arena limit: most of the limit is usable");
    OK(arena_alloc(&a, 5000) == NULL, "arena limit: a request above the limit fails");
    arena_release(&a);
}

/* ---- kinds round trip ------------------------------------------------------------------ */

static void test_metric_roundtrip(void)
{
    struct rmr_batch *b = batch_new(&host, RMR_SCHEMA_DATADOG, 0);
    OK(b != NULL, "batch_new");
    IS_STR(batch_schema(b), "datadog", "schema copied");
    OK(b->h.host == &host, "handle reaches the host table");
    OK(b->origin == NULL, "origin NULL until the core sets it");

    struct rmr_tag tags[] = {tag("env", "prod"), tag("az", "b")};
    struct rmr_field fields[] = {
        {RMR_STR("free"), {.type = RMR_VAL_INT, .v.i = -42}},
        {RMR_STR("total"), {.type = RMR_VAL_UINT, .v.u = UINT64_MAX}},
        {RMR_STR("ratio"), {.type = RMR_VAL_DOUBLE, .v.d = 0.25}},
        {RMR_STR("ok"), {.type = RMR_VAL_BOOL, .v.i = 1}},
        {RMR_STR("state"), {.type = RMR_VAL_STR, .str_len = 7, .v.str = "running"}},
        {RMR_STR("none"), {.type = RMR_VAL_NONE}},
    };
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_RATE,
        .name = RMR_STR("system.cpu.user"),
        .value = 12.5,
        .time_ns = 1767225600000000001,
        .interval_ms = 10000,
        .unit = RMR_STR("%"),
        .host = RMR_STR("web-1"),
        .tags = tags,
        .ntags = 2,
        .nfields = 6,
        .fields = fields,
    };
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "metric: add");

    int32_t keys[] = {-5, 0, 1338, 1400};
    uint32_t counts[] = {1, 2, 3, 4};
    struct rmr_sketch sk = {.struct_size = sizeof sk,
                            .nbins = 4,
                            .count = 10,
                            .min = -1.5,
                            .max = 99.0,
                            .sum = 250.25,
                            .keys = keys,
                            .counts = counts};
    struct rmr_metric d = {.struct_size = sizeof d,
                           .type = RMR_METRIC_DISTRIBUTION,
                           .name = RMR_STR("request.latency"),
                           .sketch = &sk};
    IS_INT(batch_add(b, RMR_REC_METRIC, &d), 0, "distribution: add");
    /* The plugin may reuse its bins at once. */
    keys[0] = 777;
    counts[0] = 777;
    sk.count = -1;

    IS_UINT(batch_count(b), 2, "count 2");
    IS_UINT(batch_kind(b, 0), RMR_REC_METRIC, "batch_kind metric");
    IS_UINT(batch_kind(b, 2), 0, "batch_kind out of range is 0");

    struct rmr_metric v = {.struct_size = sizeof v};
    IS_INT(batch_get(b, 0, RMR_REC_METRIC, &v), 0, "metric: get");
    IS_UINT(v.struct_size, sizeof v, "metric: view struct_size");
    IS_UINT(v.type, RMR_METRIC_RATE, "metric: type");
    IS_STRN(v.name.ptr, v.name.len, "system.cpu.user", "metric: name");
    OK(v.name.ptr != m.name.ptr, "metric: name is the batch's copy");
    IS_DBL(v.value, 12.5, 0, "metric: value");
    IS_INT(v.time_ns, 1767225600000000001, "metric: time_ns");
    IS_INT(v.interval_ms, 10000, "metric: interval_ms");
    IS_STRN(v.unit.ptr, v.unit.len, "%", "metric: unit");
    IS_STRN(v.host.ptr, v.host.len, "web-1", "metric: host");
    IS_UINT(v.ntags, 2, "metric: ntags");
    IS_TAGS(v.tags, v.ntags, "az:b,env:prod", "metric: tags sorted");
    OK(v.tags != tags, "metric: tags are the batch's copy");
    IS_UINT(v.nfields, 6, "metric: nfields");
    OK(v.fields != NULL && v.fields != fields, "metric: fields are the batch's copy");
    IS_STRN(v.fields[0].key.ptr, v.fields[0].key.len, "free", "field 0 key");
    IS_INT(v.fields[0].value.v.i, -42, "field 0 int");
    IS_UINT(v.fields[1].value.v.u, UINT64_MAX, "field 1 uint");
    IS_DBL(v.fields[2].value.v.d, 0.25, 0, "field 2 double");
    IS_UINT(v.fields[3].value.type, RMR_VAL_BOOL, "field 3 type bool");
    IS_INT(v.fields[3].value.v.i, 1, "field 3 bool");
    IS_UINT(v.fields[4].value.type, RMR_VAL_STR, "field 4 type str");
    IS_STRN(v.fields[4].value.v.str, v.fields[4].value.str_len, "running", "field 4 str");
    OK(v.fields[4].value.v.str != fields[4].value.v.str, "field 4 str copied");
    IS_UINT(v.fields[5].value.type, RMR_VAL_NONE, "field 5 none");
    OK(v.sketch == NULL, "metric: no sketch on a rate");

    struct rmr_metric dv = {.struct_size = sizeof dv};
    IS_INT(batch_get(b, 1, RMR_REC_METRIC, &dv), 0, "distribution: get");
    IS_UINT(dv.type, RMR_METRIC_DISTRIBUTION, "distribution: type");
    OK(dv.sketch != NULL && dv.sketch != &sk, "distribution: sketch copied");
    if (dv.sketch != NULL) {
        const struct rmr_sketch *s = dv.sketch;
        IS_UINT(s->struct_size, sizeof *s, "sketch: struct_size");
        IS_UINT(s->nbins, 4, "sketch: nbins");
        IS_INT(s->count, 10, "sketch: count");
        IS_DBL(s->min, -1.5, 0, "sketch: min");
        IS_DBL(s->max, 99.0, 0, "sketch: max");
        IS_DBL(s->sum, 250.25, 0, "sketch: sum");
        IS_INT(s->keys[0], -5, "sketch: keys copied");
        IS_INT(s->keys[3], 1400, "sketch: last key");
        IS_UINT(s->counts[0], 1, "sketch: counts copied");
        IS_UINT(s->counts[3], 4, "sketch: last count");
    }
    OK(dv.tags == NULL && dv.ntags == 0, "distribution: no tags");
    OK(dv.fields == NULL && dv.nfields == 0, "distribution: no fields");
    IS_UINT(dv.unit.len, 0, "distribution: empty unit");
    IS_STR(dv.unit.ptr, "", "distribution: empty unit is a NUL-terminated empty string");

    IS_INT(batch_get(b, 2, RMR_REC_METRIC, &v), RMR_ENOENT, "get: index out of range");
    struct rmr_log lv = {.struct_size = sizeof lv};
    IS_INT(batch_get(b, 0, RMR_REC_LOG, &lv), RMR_EINVAL, "get: other kind");
    IS_INT(batch_get(b, 0, 0, &v), RMR_EINVAL, "get: unknown kind");
    batch_unref(b);
}

static void test_other_kinds(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    OK(batch_schema(b) == NULL, "no schema");
    struct rmr_tag tags[] = {tag("service", "api")};
    struct rmr_field attrs[] = {
        {RMR_STR("http.status"), {.type = RMR_VAL_INT, .v.i = 503}},
        {RMR_STR("user"), {.type = RMR_VAL_STR, .str_len = 3, .v.str = "bob"}}};

    struct rmr_log l = {.struct_size = sizeof l,
                        .time_ns = 11,
                        .message = RMR_STR("boom"),
                        .status = RMR_STR("error"),
                        .source = RMR_STR("nginx"),
                        .service = RMR_STR("web"),
                        .host = RMR_STR("h1"),
                        .trace_id_hi = 1,
                        .trace_id_lo = 2,
                        .span_id = 3,
                        .tags = tags,
                        .ntags = 1,
                        .nattrs = 2,
                        .attrs = attrs};
    IS_INT(batch_add(b, RMR_REC_LOG, &l), 0, "log: add");

    struct rmr_tag meta[] = {tag("http.method", "GET"), tag("env", "dev")};
    struct rmr_field metrics[] = {
        {RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_DOUBLE, .v.d = 2}}};
    struct rmr_span s = {.struct_size = sizeof s,
                         .error = -1,
                         .trace_id_hi = 10,
                         .trace_id_lo = 20,
                         .span_id = 30,
                         .parent_id = 40,
                         .name = RMR_STR("http.request"),
                         .service = RMR_STR("api"),
                         .resource = RMR_STR("GET /"),
                         .type = RMR_STR("web"),
                         .start_ns = 50,
                         .duration_ns = 60,
                         .meta = meta,
                         .nmeta = 2,
                         .nmetrics = 1,
                         .metrics = metrics};
    IS_INT(batch_add(b, RMR_REC_SPAN, &s), 0, "span: add");

    struct rmr_event e = {.struct_size = sizeof e,
                          .priority = RMR_EVENT_LOW,
                          .time_ns = 70,
                          .title = RMR_STR("deploy"),
                          .text = RMR_STR("v2 rolled out"),
                          .host = RMR_STR("h2"),
                          .aggregation_key = RMR_STR("agg"),
                          .source_type = RMR_STR("jenkins"),
                          .alert_type = RMR_STR("success"),
                          .tags = tags,
                          .ntags = 1};
    IS_INT(batch_add(b, RMR_REC_EVENT, &e), 0, "event: add");

    struct rmr_check c = {.struct_size = sizeof c,
                          .status = RMR_CHECK_CRITICAL,
                          .time_ns = 80,
                          .name = RMR_STR("db.up"),
                          .host = RMR_STR("h3"),
                          .message = RMR_STR("refused"),
                          .tags = tags,
                          .ntags = 1};
    IS_INT(batch_add(b, RMR_REC_CHECK, &c), 0, "check: add");

    struct rmr_field ofields[] = {{RMR_STR("cpu"), {.type = RMR_VAL_DOUBLE, .v.d = 0.5}}};
    struct rmr_object o = {.struct_size = sizeof o,
                           .time_ns = 90,
                           .cls = RMR_STR("docker_containers"),
                           .name = RMR_STR("c1"),
                           .tags = tags,
                           .ntags = 1,
                           .nfields = 1,
                           .fields = ofields};
    IS_INT(batch_add(b, RMR_REC_OBJECT, &o), 0, "object: add");
    IS_UINT(batch_count(b), 5, "five records");

    struct rmr_log lv = {.struct_size = sizeof lv};
    IS_INT(batch_get(b, 0, RMR_REC_LOG, &lv), 0, "log: get");
    IS_INT(lv.time_ns, 11, "log: time_ns");
    IS_STRN(lv.message.ptr, lv.message.len, "boom", "log: message");
    IS_STRN(lv.status.ptr, lv.status.len, "error", "log: status");
    IS_STRN(lv.source.ptr, lv.source.len, "nginx", "log: source");
    IS_STRN(lv.service.ptr, lv.service.len, "web", "log: service");
    IS_STRN(lv.host.ptr, lv.host.len, "h1", "log: host");
    IS_UINT(lv.trace_id_hi, 1, "log: trace_id_hi");
    IS_UINT(lv.trace_id_lo, 2, "log: trace_id_lo");
    IS_UINT(lv.span_id, 3, "log: span_id");
    IS_TAGS(lv.tags, lv.ntags, "service:api", "log: tags");
    IS_UINT(lv.nattrs, 2, "log: nattrs");
    IS_STRN(lv.attrs[0].key.ptr, lv.attrs[0].key.len, "http.status", "log: attr 0 key");
    IS_INT(lv.attrs[0].value.v.i, 503, "log: attr 0 value");
    IS_STRN(lv.attrs[1].value.v.str, lv.attrs[1].value.str_len, "bob", "log: attr 1 value");
    OK(lv.attrs != attrs, "log: attrs copied");

    struct rmr_span sv = {.struct_size = sizeof sv};
    IS_INT(batch_get(b, 1, RMR_REC_SPAN, &sv), 0, "span: get");
    IS_INT(sv.error, -1, "span: error");
    IS_UINT(sv.trace_id_hi, 10, "span: trace_id_hi");
    IS_UINT(sv.trace_id_lo, 20, "span: trace_id_lo");
    IS_UINT(sv.span_id, 30, "span: span_id");
    IS_UINT(sv.parent_id, 40, "span: parent_id");
    IS_STRN(sv.name.ptr, sv.name.len, "http.request", "span: name");
    IS_STRN(sv.service.ptr, sv.service.len, "api", "span: service");
    IS_STRN(sv.resource.ptr, sv.resource.len, "GET /", "span: resource");
    IS_STRN(sv.type.ptr, sv.type.len, "web", "span: type");
    IS_INT(sv.start_ns, 50, "span: start_ns");
    IS_INT(sv.duration_ns, 60, "span: duration_ns");
    IS_TAGS(sv.meta, sv.nmeta, "env:dev,http.method:GET", "span: meta sorted");
    IS_UINT(sv.nmetrics, 1, "span: nmetrics");
    IS_STRN(sv.metrics[0].key.ptr, sv.metrics[0].key.len, "_sampling_priority_v1",
            "span: metric key");
    IS_DBL(sv.metrics[0].value.v.d, 2, 0, "span: metric value");
    OK(sv.metrics != metrics && sv.meta != meta, "span: arrays copied");

    struct rmr_event ev = {.struct_size = sizeof ev};
    IS_INT(batch_get(b, 2, RMR_REC_EVENT, &ev), 0, "event: get");
    IS_UINT(ev.priority, RMR_EVENT_LOW, "event: priority");
    IS_INT(ev.time_ns, 70, "event: time_ns");
    IS_STRN(ev.title.ptr, ev.title.len, "deploy", "event: title");
    IS_STRN(ev.text.ptr, ev.text.len, "v2 rolled out", "event: text");
    IS_STRN(ev.host.ptr, ev.host.len, "h2", "event: host");
    IS_STRN(ev.aggregation_key.ptr, ev.aggregation_key.len, "agg", "event: aggregation_key");
    IS_STRN(ev.source_type.ptr, ev.source_type.len, "jenkins", "event: source_type");
    IS_STRN(ev.alert_type.ptr, ev.alert_type.len, "success", "event: alert_type");
    IS_TAGS(ev.tags, ev.ntags, "service:api", "event: tags");

    struct rmr_check cv = {.struct_size = sizeof cv};
    IS_INT(batch_get(b, 3, RMR_REC_CHECK, &cv), 0, "check: get");
    IS_UINT(cv.status, RMR_CHECK_CRITICAL, "check: status");
    IS_INT(cv.time_ns, 80, "check: time_ns");
    IS_STRN(cv.name.ptr, cv.name.len, "db.up", "check: name");
    IS_STRN(cv.host.ptr, cv.host.len, "h3", "check: host");
    IS_STRN(cv.message.ptr, cv.message.len, "refused", "check: message");
    IS_TAGS(cv.tags, cv.ntags, "service:api", "check: tags");

    struct rmr_object ov = {.struct_size = sizeof ov};
    IS_INT(batch_get(b, 4, RMR_REC_OBJECT, &ov), 0, "object: get");
    IS_INT(ov.time_ns, 90, "object: time_ns");
    IS_STRN(ov.cls.ptr, ov.cls.len, "docker_containers", "object: cls");
    IS_STRN(ov.name.ptr, ov.name.len, "c1", "object: name");
    IS_TAGS(ov.tags, ov.ntags, "service:api", "object: tags");
    IS_UINT(ov.nfields, 1, "object: nfields");
    IS_STRN(ov.fields[0].key.ptr, ov.fields[0].key.len, "cpu", "object: field key");
    IS_DBL(ov.fields[0].value.v.d, 0.5, 0, "object: field value");

    /* One tag set across kinds: one array. */
    OK(lv.tags == ev.tags && ev.tags == cv.tags && cv.tags == ov.tags,
       "equal tag sets share one array across kinds");
    /* "api" is a tag value, a span service: one copy. */
    OK(sv.service.ptr == lv.tags[0].value.ptr, "strings interned across members and kinds");
    batch_unref(b);
}

/* ---- copying, interning, tags ----------------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    memcpy(p, s, n);
    return p;
}

static void test_copies(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    char *name = dup_str("disk.used");
    char *k = dup_str("device");
    char *val = dup_str("sda1");
    char *fk = dup_str("inodes");
    char *fv = dup_str("lots");
    struct rmr_tag *tags = malloc(sizeof *tags);
    struct rmr_field *fields = malloc(sizeof *fields);
    tags[0] = (struct rmr_tag){RMR_STR(k), RMR_STR(val)};
    fields[0] = (struct rmr_field){RMR_STR(fk), {.type = RMR_VAL_STR, .str_len = 4, .v.str = fv}};
    struct rmr_metric m = gauge(name, 1);
    m.tags = tags;
    m.ntags = 1;
    m.fields = fields;
    m.nfields = 1;
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "copies: add");
    /* The plugin reuses, then frees, every buffer: under ASan a kept pointer would fault. */
    memset(name, 'X', strlen(name));
    memset(k, 'X', strlen(k));
    memset(val, 'X', strlen(val));
    memset(fv, 'X', strlen(fv));
    memset(tags, 0, sizeof *tags);
    free(name);
    free(k);
    free(val);
    free(fk);
    free(fv);
    free(tags);
    free(fields);

    struct rmr_metric v = {.struct_size = sizeof v};
    IS_INT(batch_get(b, 0, RMR_REC_METRIC, &v), 0, "copies: get");
    IS_STRN(v.name.ptr, v.name.len, "disk.used", "copies: name intact");
    IS_STR(v.name.ptr, "disk.used", "copies: name NUL-terminated");
    IS_TAGS(v.tags, v.ntags, "device:sda1", "copies: tags intact");
    IS_STRN(v.fields[0].key.ptr, v.fields[0].key.len, "inodes", "copies: field key intact");
    IS_STRN(v.fields[0].value.v.str, v.fields[0].value.str_len, "lots",
            "copies: field value intact");
    batch_unref(b);
}

static void test_interning(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    char n1[] = "http.requests";
    char n2[] = "http.requests";
    struct rmr_tag t1[] = {tag("a", "1"), tag("b", "2")};
    char ka[] = "b", va[] = "2";
    struct rmr_tag t2[] = {{RMR_STR(ka), RMR_STR(va)}, tag("a", "1"), tag("a", "1")};
    struct rmr_metric m1 = gauge(n1, 1), m2 = gauge(n2, 2), m3 = gauge("other", 3);
    m1.tags = t1;
    m1.ntags = 2;
    m2.tags = t2;
    m2.ntags = 3;
    m3.tags = t1;
    m3.ntags = 1;
    OK(batch_add(b, RMR_REC_METRIC, &m1) == 0 && batch_add(b, RMR_REC_METRIC, &m2) == 0 &&
           batch_add(b, RMR_REC_METRIC, &m3) == 0,
       "interning: three adds");
    struct rmr_metric v1 = {.struct_size = sizeof v1}, v2 = v1, v3 = v1;
    batch_get(b, 0, RMR_REC_METRIC, &v1);
    batch_get(b, 1, RMR_REC_METRIC, &v2);
    batch_get(b, 2, RMR_REC_METRIC, &v3);
    OK(v1.name.ptr == v2.name.ptr, "interning: equal names share one pointer");
    OK(v1.name.ptr != v3.name.ptr, "interning: different names do not");
    OK(v1.tags == v2.tags, "interning: equal tag sets (other order, duplicates) share an array");
    IS_UINT(v2.ntags, 2, "interning: duplicate removed");
    OK(v3.tags != v1.tags, "interning: a different set has its own array");
    OK(v3.tags[0].key.ptr == v1.tags[0].key.ptr, "interning: tag keys shared between sets");
    batch_unref(b);
}

static void test_tag_order(void)
{
    /* "b:2,a:1,a:1,a:0,c" */
    struct rmr_tag in[] = {tag("b", "2"), tag("a", "1"), tag("a", "1"), tag("a", "0"),
                           tag("c", NULL)};
    struct rmr_tag t[5];
    memcpy(t, in, sizeof in);
    uint32_t n = tags_sort_unique(t, 5);
    IS_UINT(n, 4, "tags_sort_unique: one duplicate removed");
    IS_TAGS(t, n, "a:0,a:1,b:2,c", "tags_sort_unique: sorted by key then value");
    IS_UINT(tags_sort_unique(t, 0), 0, "tags_sort_unique: empty");
    IS_UINT(tags_sort_unique(NULL, 0), 0, "tags_sort_unique: NULL, 0");

    /* Shorter first on a common prefix; bytes compare unsigned; a bare tag precedes valued. */
    struct rmr_tag p[] = {tag("ab", ""), tag("a", "x"), tag("\xc3\xa9t\xc3\xa9", "1"),
                          tag("a", ""),  tag("Z", "1"), tag("a", "x")};
    n = tags_sort_unique(p, 6);
    IS_UINT(n, 5, "prefix order: duplicate removed");
    IS_TAGS(p, n, "Z:1,a,a:x,ab,\xc3\xa9t\xc3\xa9:1",
            "prefix order: shorter first, bytes unsigned");

    /* Through the batch, with the input's text in embedded-NUL keys kept by length. */
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    struct rmr_metric m = gauge("m", 1);
    m.tags = in;
    m.ntags = 5;
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "tag order: add");
    struct rmr_metric v = {.struct_size = sizeof v};
    batch_get(b, 0, RMR_REC_METRIC, &v);
    IS_UINT(v.ntags, 4, "tag order: ntags after dedupe");
    IS_TAGS(v.tags, v.ntags, "a:0,a:1,b:2,c", "tag order: a:0,a:1,b:2,c");
    IS_UINT(v.tags[3].value.len, 0, "bare tag: empty value");
    OK(v.tags[3].value.ptr != NULL && v.tags[3].value.ptr[0] == '\0',
       "bare tag: value is a NUL-terminated empty string");
    IS_STRN(in[0].key.ptr, in[0].key.len, "b", "the caller's array is not reordered");
    batch_unref(b);
}

static void test_strings(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    /* Empty strings in the three spellings: NULL, "", and a pointer with length 0. */
    struct rmr_metric m = gauge("m", 1);
    m.unit = (struct rmr_str){NULL, 0, 0};
    m.host = (struct rmr_str){"ignored", 0, 0};
    struct rmr_tag t[] = {{{"", 0, 0}, {"x", 0, 0}}};
    m.tags = t;
    m.ntags = 1;
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "empty strings: add");
    struct rmr_metric v = {.struct_size = sizeof v};
    batch_get(b, 0, RMR_REC_METRIC, &v);
    IS_UINT(v.unit.len, 0, "empty: NULL unit has length 0");
    IS_STR(v.unit.ptr, "", "empty: NULL unit reads as \"\"");
    IS_UINT(v.host.len, 0, "empty: zero-length host");
    IS_STR(v.host.ptr, "", "empty: zero-length host does not keep the caller's pointer");
    IS_UINT(v.tags[0].key.len + v.tags[0].value.len, 0, "empty: empty tag key and value");

    /* Non-ASCII bytes and an embedded NUL: the length rules, never strlen. */
    static const char raw[] = "caf\xc3\xa9\0tail\xff";
    struct rmr_metric m2 = gauge("x", 2);
    m2.name = rmr_str_n(raw, sizeof raw - 1);
    struct rmr_field f = {rmr_str_n(raw, sizeof raw - 1),
                          {.type = RMR_VAL_STR, .str_len = 3, .v.str = "\0\0\x80"}};
    m2.fields = &f;
    m2.nfields = 1;
    IS_INT(batch_add(b, RMR_REC_METRIC, &m2), 0, "binary: add");
    struct rmr_metric v2 = {.struct_size = sizeof v2};
    batch_get(b, 1, RMR_REC_METRIC, &v2);
    IS_UINT(v2.name.len, sizeof raw - 1, "binary: length kept");
    OK(memcmp(v2.name.ptr, raw, sizeof raw - 1) == 0, "binary: bytes kept after the NUL");
    OK(v2.name.ptr[v2.name.len] == '\0', "binary: terminator stored after len bytes");
    OK(v2.fields[0].key.ptr == v2.name.ptr, "binary: interned by length, not by strlen");
    IS_UINT(v2.fields[0].value.str_len, 3, "binary: value length");
    OK(memcmp(v2.fields[0].value.v.str, "\0\0\x80", 3) == 0, "binary: value bytes kept");

    /* "ab" and "ab\0" are different strings. */
    struct rmr_metric m3 = gauge("x", 3), m4 = gauge("x", 4);
    m3.name = rmr_str_n("ab\0", 2);
    m4.name = rmr_str_n("ab\0", 3);
    batch_add(b, RMR_REC_METRIC, &m3);
    batch_add(b, RMR_REC_METRIC, &m4);
    struct rmr_metric v3 = {.struct_size = sizeof v3}, v4 = v3;
    batch_get(b, 2, RMR_REC_METRIC, &v3);
    batch_get(b, 3, RMR_REC_METRIC, &v4);
    OK(v3.name.ptr != v4.name.ptr && v3.name.len == 2 && v4.name.len == 3,
       "binary: a trailing NUL makes a different string");
    batch_unref(b);
}

/* ---- validation ------------------------------------------------------------------------- */

#define REFUSED(b, kind, rec, code, name)                                                          \
    do {                                                                                           \
        uint32_t c_ = batch_count(b);                                                              \
        size_t by_ = batch_bytes(b);                                                               \
        IS_INT(batch_add((b), (kind), (rec)), (code), name);                                       \
        IS_UINT(batch_count(b), c_, name ": count unchanged");                                     \
        IS_UINT(batch_bytes(b), by_, name ": nothing allocated");                                  \
    } while (0)

static void test_invalid(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    struct rmr_metric ok = gauge("ok", 1);
    struct rmr_tag t = tag("k", "v");
    ok.tags = &t;
    ok.ntags = 1;
    IS_INT(batch_add(b, RMR_REC_METRIC, &ok), 0, "invalid: a good record first");

    struct rmr_metric m = gauge("", 1);
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "empty metric name");
    m = gauge("x", 1);
    m.type = 0;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "metric type 0");
    m.type = 5;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "metric type 5");
    m.type = RMR_METRIC_DISTRIBUTION;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "distribution without sketch");

    int32_t keys[] = {1, 2};
    uint32_t counts[] = {1, 1};
    struct rmr_sketch sk = {.struct_size = sizeof sk, .nbins = 2, .keys = NULL, .counts = counts};
    m.sketch = &sk;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "sketch bins without keys");
    sk.keys = keys;
    sk.counts = NULL;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "sketch bins without counts");
    sk.counts = counts;
    keys[1] = 1;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "sketch keys not ascending");
    keys[1] = 2;
    sk.struct_size = 8;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "sketch struct_size too small");
    sk.struct_size = sizeof sk;
    sk.nbins = 0;
    sk.keys = NULL;
    sk.counts = NULL;
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "an empty sketch is fine");

    m = gauge("x", 1);
    m.name = (struct rmr_str){NULL, 3, 0};
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "name with length and NULL pointer");
    m = gauge("x", 1);
    m.unit = (struct rmr_str){NULL, 1, 0};
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "unit with length and NULL pointer");
    m = gauge("x", 1);
    m.ntags = 2;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "ntags without tags");
    struct rmr_tag bad[] = {tag("a", "b"), {{NULL, 2, 0}, {NULL, 0, 0}}};
    m.tags = bad;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "tag key with length and NULL pointer");
    bad[1] = (struct rmr_tag){RMR_STR("k"), {NULL, 2, 0}};
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "tag value with length and NULL pointer");
    m = gauge("x", 1);
    m.nfields = 1;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "nfields without fields");
    struct rmr_field f = {RMR_STR("k"), {.type = RMR_VAL_STR, .str_len = 4, .v.str = NULL}};
    m.fields = &f;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "string field with NULL pointer");
    f.value.type = 6;
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "unknown value type");
    f = (struct rmr_field){{NULL, 1, 0}, {.type = RMR_VAL_INT}};
    REFUSED(b, RMR_REC_METRIC, &m, RMR_EINVAL, "field key with NULL pointer");

    struct rmr_log l = {.struct_size = sizeof l, .nattrs = 1};
    REFUSED(b, RMR_REC_LOG, &l, RMR_EINVAL, "log nattrs without attrs");
    struct rmr_span s = {.struct_size = sizeof s, .nmeta = 1};
    REFUSED(b, RMR_REC_SPAN, &s, RMR_EINVAL, "span nmeta without meta");
    s.nmeta = 0;
    s.nmetrics = 1;
    REFUSED(b, RMR_REC_SPAN, &s, RMR_EINVAL, "span nmetrics without metrics");
    struct rmr_event e = {.struct_size = sizeof e, .text = {NULL, 5, 0}};
    REFUSED(b, RMR_REC_EVENT, &e, RMR_EINVAL, "event text with NULL pointer");
    struct rmr_check c = {.struct_size = sizeof c, .ntags = 1};
    REFUSED(b, RMR_REC_CHECK, &c, RMR_EINVAL, "check ntags without tags");
    struct rmr_object o = {.struct_size = sizeof o, .cls = {NULL, 1, 0}};
    REFUSED(b, RMR_REC_OBJECT, &o, RMR_EINVAL, "object cls with NULL pointer");

    m = gauge("x", 1);
    REFUSED(b, 0, &m, RMR_EINVAL, "kind 0");
    REFUSED(b, RMR_REC_KIND_MAX + 1, &m, RMR_EINVAL, "kind 7");
    IS_INT(batch_add(b, RMR_REC_METRIC, NULL), RMR_EINVAL, "NULL record");

    struct rmr_metric v = {.struct_size = sizeof v};
    IS_INT(batch_get(b, 0, RMR_REC_METRIC, &v), 0, "the first record survives refusals");
    IS_STRN(v.name.ptr, v.name.len, "ok", "the first record's name intact");
    IS_TAGS(v.tags, v.ntags, "k:v", "the first record's tags intact");
    batch_unref(b);
}

/* ---- ABI sizes -------------------------------------------------------------------------- */

static void test_sizes(void)
{
    IS_UINT(record_struct_size(RMR_REC_METRIC), sizeof(struct rmr_metric), "size metric");
    IS_UINT(record_struct_size(RMR_REC_LOG), sizeof(struct rmr_log), "size log");
    IS_UINT(record_struct_size(RMR_REC_SPAN), sizeof(struct rmr_span), "size span");
    IS_UINT(record_struct_size(RMR_REC_EVENT), sizeof(struct rmr_event), "size event");
    IS_UINT(record_struct_size(RMR_REC_CHECK), sizeof(struct rmr_check), "size check");
    IS_UINT(record_struct_size(RMR_REC_OBJECT), sizeof(struct rmr_object), "size object");
    IS_UINT(record_struct_size(0), 0, "size of kind 0");
    IS_UINT(record_struct_size(7), 0, "size of kind 7");
    /* The 1.0 minimum is the end of the last 1.0 member, which today is the whole struct. */
    IS_UINT(record_struct_min_size(RMR_REC_METRIC),
            offsetof(struct rmr_metric, sketch) + sizeof(void *), "min metric");
    IS_UINT(record_struct_min_size(RMR_REC_LOG), offsetof(struct rmr_log, attrs) + sizeof(void *),
            "min log");
    IS_UINT(record_struct_min_size(RMR_REC_SPAN),
            offsetof(struct rmr_span, metrics) + sizeof(void *), "min span");
    IS_UINT(record_struct_min_size(RMR_REC_EVENT),
            offsetof(struct rmr_event, reserved_) + sizeof(uint32_t), "min event");
    IS_UINT(record_struct_min_size(RMR_REC_CHECK),
            offsetof(struct rmr_check, reserved_) + sizeof(uint32_t), "min check");
    IS_UINT(record_struct_min_size(RMR_REC_OBJECT),
            offsetof(struct rmr_object, fields) + sizeof(void *), "min object");
    IS_UINT(record_struct_min_size(99), 0, "min of unknown kind");
    for (uint32_t k = 1; k <= RMR_REC_KIND_MAX; k++)
        OK(record_struct_min_size(k) <= record_struct_size(k), "min <= size");

    IS_STR(record_kind_name(RMR_REC_METRIC), "metric", "name metric");
    IS_STR(record_kind_name(RMR_REC_LOG), "log", "name log");
    IS_STR(record_kind_name(RMR_REC_SPAN), "span", "name span");
    IS_STR(record_kind_name(RMR_REC_EVENT), "event", "name event");
    IS_STR(record_kind_name(RMR_REC_CHECK), "check", "name check");
    IS_STR(record_kind_name(RMR_REC_OBJECT), "object", "name object");
    IS_STR(record_kind_name(0), "unknown", "name 0");
    IS_STR(record_kind_name(1000), "unknown", "name 1000");
}

/* A plugin of a newer minor: its struct is ours plus members we do not know. */
struct newer_check {
    struct rmr_check c;
    uint64_t added_in_1_1;
};

static void test_struct_versions(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    size_t min = record_struct_min_size(RMR_REC_CHECK);

    /* An older plugin's struct, exactly struct_size bytes on the heap: under ASan, reading one
     * byte past it faults, so this checks the host copies no more than struct_size. */
    struct rmr_check *old = calloc(1, min);
    struct rmr_check proto = {
        .struct_size = (uint32_t)min, .status = RMR_CHECK_WARNING, .name = RMR_STR("old.check")};
    memcpy(old, &proto, min);
    IS_INT(batch_add(b, RMR_REC_CHECK, old), 0, "struct_size at the 1.0 minimum accepted");
    free(old);

    struct newer_check nc;
    memset(&nc, 0xee, sizeof nc);
    nc.c = (struct rmr_check){
        .struct_size = sizeof nc, .status = RMR_CHECK_OK, .name = RMR_STR("new.check")};
    nc.c.reserved_ = 0;
    IS_INT(batch_add(b, RMR_REC_CHECK, &nc), 0, "a newer, larger struct accepted");

    struct rmr_check small = {.struct_size = (uint32_t)min - 4, .name = RMR_STR("x")};
    REFUSED(b, RMR_REC_CHECK, &small, RMR_EINVAL, "struct_size below the 1.0 minimum");
    small.struct_size = 0;
    REFUSED(b, RMR_REC_CHECK, &small, RMR_EINVAL, "struct_size 0");
    struct rmr_metric sm = gauge("x", 1);
    sm.struct_size = 8;
    REFUSED(b, RMR_REC_METRIC, &sm, RMR_EINVAL, "metric struct_size 8");

    /* The stored copies are of this host's size. */
    const struct rmr_check *stored = b->recs[1].data;
    IS_UINT(stored->struct_size, sizeof(struct rmr_check), "stored struct_size is the host's");
    IS_STRN(stored->name.ptr, stored->name.len, "new.check", "newer struct's known members kept");

    /* A view at the 1.0 minimum, followed by a canary the host must not touch. */
    struct {
        struct rmr_check v;
        unsigned char canary[32];
    } buf;
    memset(&buf, 0xa5, sizeof buf);
    buf.v.struct_size = (uint32_t)min;
    IS_INT(batch_get(b, 0, RMR_REC_CHECK, &buf.v), 0, "view at the minimum size");
    IS_UINT(buf.v.struct_size, min, "view keeps the caller's struct_size");
    IS_UINT(buf.v.status, RMR_CHECK_WARNING, "view at the minimum: status");
    IS_STRN(buf.v.name.ptr, buf.v.name.len, "old.check", "view at the minimum: name");
    IS_UINT(buf.v.ntags, 0, "view at the minimum: old struct's unset members are zero");
    int intact = 1;
    for (size_t i = 0; i < sizeof buf.canary; i++)
        intact &= buf.canary[i] == 0xa5;
    OK(intact, "view: nothing written past struct_size");

    /* A view too small is refused and left alone. */
    memset(&buf, 0xa5, sizeof buf);
    buf.v.struct_size = (uint32_t)min - 8;
    IS_INT(batch_get(b, 0, RMR_REC_CHECK, &buf.v), RMR_EINVAL, "view below the minimum");
    IS_UINT(buf.v.status, 0xa5a5a5a5u, "refused view untouched");

    /* A newer plugin's view: members this host does not know read as zero. */
    struct newer_check nv;
    memset(&nv, 0xee, sizeof nv);
    nv.c.struct_size = sizeof nv;
    IS_INT(batch_get(b, 1, RMR_REC_CHECK, &nv.c), 0, "view of a newer, larger struct");
    IS_UINT(nv.c.struct_size, sizeof nv, "newer view keeps its struct_size");
    IS_STRN(nv.c.name.ptr, nv.c.name.len, "new.check", "newer view: name");
    IS_UINT(nv.added_in_1_1, 0, "newer view: unknown members zeroed");
    batch_unref(b);
}

/* ---- merging global tags --------------------------------------------------------------- */

static void test_merge(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    struct rmr_tag own[] = {tag("host", "a"), tag("env", "prod")};
    struct rmr_tag svc[] = {tag("service", "x")};
    struct rmr_metric m0 = gauge("m0", 0), m1 = gauge("m1", 1), m2 = gauge("m2", 2);
    struct rmr_metric m3 = gauge("m3", 3), m5 = gauge("m5", 5);
    m0.tags = own;
    m0.ntags = 2;
    m1.tags = own;
    m1.ntags = 2;
    m3.tags = svc;
    m3.ntags = 1;
    batch_add(b, RMR_REC_METRIC, &m0);
    batch_add(b, RMR_REC_METRIC, &m1);
    batch_add(b, RMR_REC_METRIC, &m2); /* no tags */
    batch_add(b, RMR_REC_METRIC, &m3);
    struct rmr_tag meta[] = {tag("env", "dev")};
    struct rmr_span s = {.struct_size = sizeof s, .name = RMR_STR("op"), .meta = meta, .nmeta = 1};
    batch_add(b, RMR_REC_SPAN, &s);
    batch_add(b, RMR_REC_METRIC, &m5); /* no tags */
    struct rmr_log l = {.struct_size = sizeof l, .message = RMR_STR("hi")};
    batch_add(b, RMR_REC_LOG, &l);
    IS_UINT(batch_count(b), 7, "merge: seven records");

    /* Unsorted, with a duplicate: the global set is normalized like any record's. */
    struct rmr_tag glob[] = {tag("team", "x"), tag("env", "staging"), tag("region", "eu"),
                             tag("team", "x")};
    IS_INT(batch_merge_tags(b, glob, 4), 0, "merge: ok");
    IS_UINT(batch_count(b), 7, "merge: count unchanged");

    struct rmr_metric v[6];
    for (uint32_t i = 0; i < 6; i++) {
        if (i == 4)
            continue;
        v[i] = (struct rmr_metric){.struct_size = sizeof v[i]};
        batch_get(b, i, RMR_REC_METRIC, &v[i]);
    }
    IS_TAGS(v[0].tags, v[0].ntags, "env:prod,host:a,region:eu,team:x",
            "merge: the record's env wins, the rest added");
    OK(v[0].tags == v[1].tags, "merge: records sharing a set share the merged set");
    IS_TAGS(v[2].tags, v[2].ntags, "env:staging,region:eu,team:x", "merge: untagged get globals");
    OK(v[2].tags == v[5].tags, "merge: untagged records share the global set");
    IS_TAGS(v[3].tags, v[3].ntags, "env:staging,region:eu,service:x,team:x",
            "merge: sorted into the record's set");
    struct rmr_span sv = {.struct_size = sizeof sv};
    batch_get(b, 4, RMR_REC_SPAN, &sv);
    IS_TAGS(sv.meta, sv.nmeta, "env:dev,region:eu,team:x", "merge: spans get meta, theirs wins");
    struct rmr_log lv = {.struct_size = sizeof lv};
    batch_get(b, 6, RMR_REC_LOG, &lv);
    OK(lv.tags == v[2].tags, "merge: logs get the global set too");

    /* A second merge of a key every record has changes nothing but shares sets still. */
    struct rmr_tag g2[] = {tag("env", "other")};
    IS_INT(batch_merge_tags(b, g2, 1), 0, "merge again");
    struct rmr_metric w = {.struct_size = sizeof w};
    batch_get(b, 0, RMR_REC_METRIC, &w);
    OK(w.tags == v[0].tags, "merge: nothing to add keeps the same set");
    IS_INT(batch_merge_tags(b, NULL, 0), 0, "merge: no tags is a no-op");
    IS_INT(batch_merge_tags(b, NULL, 2), RMR_EINVAL, "merge: ntags without tags");

    /* A bare global tag joins unless the record has that key. */
    struct rmr_tag bare[] = {tag("canary", NULL), tag("host", NULL)};
    IS_INT(batch_merge_tags(b, bare, 2), 0, "merge bare tags");
    batch_get(b, 0, RMR_REC_METRIC, &w);
    IS_TAGS(w.tags, w.ntags, "canary,env:prod,host:a,region:eu,team:x",
            "merge: bare tag added, host kept");
    batch_unref(b);

    struct rmr_batch *e = batch_new(&host, NULL, 0);
    IS_INT(batch_merge_tags(e, glob, 4), 0, "merge into an empty batch");
    OK(e->strings == NULL && e->tagsets == NULL, "merge into an empty batch allocates nothing");
    batch_unref(e);
}

static void test_seal(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    struct rmr_metric m = gauge("x", 1);
    batch_add(b, RMR_REC_METRIC, &m);
    batch_seal(b);
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), RMR_EPERM, "sealed: add refused");
    struct rmr_tag t = tag("a", "b");
    IS_INT(batch_merge_tags(b, &t, 1), RMR_EPERM, "sealed: merge refused");
    IS_UINT(batch_count(b), 1, "sealed: count unchanged");
    struct rmr_metric v = {.struct_size = sizeof v};
    IS_INT(batch_get(b, 0, RMR_REC_METRIC, &v), 0, "sealed: still readable");
    IS_UINT(v.ntags, 0, "sealed: merge did not apply");
    batch_unref(b);
}

static void test_limit(void)
{
    size_t limit = 8192;
    struct rmr_batch *b = batch_new(&host, "guance", limit);
    struct rmr_tag t = tag("env", "prod");
    char name[32];
    int rc = 0;
    uint32_t added = 0;
    while (added < 10000) {
        snprintf(name, sizeof name, "metric.number.%u", added);
        struct rmr_metric m = gauge(name, added);
        m.tags = &t;
        m.ntags = 1;
        rc = batch_add(b, RMR_REC_METRIC, &m);
        if (rc != 0)
            break;
        added++;
    }
    IS_INT(rc, RMR_ENOMEM, "limit: add fails with RMR_ENOMEM");
    OK(added > 10 && added < 10000, "limit: some records fit");
    IS_UINT(batch_count(b), added, "limit: the failed record was not added");
    OK(b->arena.total_bytes <= limit, "limit: arena within its bound");
    OK(batch_bytes(b) <= limit + sizeof *b, "limit: tables and records count against it too");
    int good = 1;
    for (uint32_t i = 0; i < added; i++) {
        struct rmr_metric v = {.struct_size = sizeof v};
        snprintf(name, sizeof name, "metric.number.%u", i);
        good &= batch_get(b, i, RMR_REC_METRIC, &v) == 0 && v.name.len == strlen(name) &&
                memcmp(v.name.ptr, name, v.name.len) == 0 && v.value == i && v.ntags == 1 &&
                v.tags[0].value.len == 4;
    }
    OK(good, "limit: every earlier record intact");
    IS_STR(batch_schema(b), "guance", "limit: schema intact");
    /* A global tag larger than the whole bound cannot be merged: no record may change. */
    static char huge[10000];
    memset(huge, 'h', sizeof huge);
    struct rmr_tag big[] = {{RMR_STR("big"), rmr_str_n(huge, sizeof huge)}};
    IS_INT(batch_merge_tags(b, big, 1), RMR_ENOMEM, "limit: merge fails with RMR_ENOMEM");
    struct rmr_metric v = {.struct_size = sizeof v};
    batch_get(b, added - 1, RMR_REC_METRIC, &v);
    IS_TAGS(v.tags, v.ntags, "env:prod", "limit: a failed merge leaves records alone");
    batch_unref(b);

    OK(batch_new(&host, "guance", 16) == NULL, "limit: a bound below the schema fails batch_new");

    /* Distinct tiny strings cost the intern table more than the arena: the one bound holds. */
    limit = 256 * 1024;
    b = batch_new(&host, NULL, limit);
    rc = 0;
    struct rmr_tag many[64];
    char kv[64][8];
    for (uint32_t i = 0; rc == 0 && i < 1000000; i++) {
        for (uint32_t j = 0; j < 64; j++) {
            snprintf(kv[j], sizeof kv[j], "%x", i * 64 + j);
            many[j] = tag(kv[j], NULL);
        }
        struct rmr_metric m = gauge("m", 1);
        m.tags = many;
        m.ntags = 64;
        rc = batch_add(b, RMR_REC_METRIC, &m);
    }
    IS_INT(rc, RMR_ENOMEM, "limit: distinct strings run into the bound");
    OK(batch_bytes(b) <= limit + sizeof *b, "limit: intern tables within the bound");
    batch_unref(b);
}

static void test_refcount(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    IS_INT(b->refcount, 1, "refcount: 1 after new");
    batch_ref(b);
    batch_ref(b);
    IS_INT(b->refcount, 3, "refcount: 3 after two refs");
    batch_unref(b);
    batch_unref(b);
    IS_INT(b->refcount, 1, "refcount: back to 1");
    struct rmr_metric m = gauge("still.here", 1);
    IS_INT(batch_add(b, RMR_REC_METRIC, &m), 0, "refcount: alive at 1");
    batch_unref(b); /* frees; ASan reports a leak or a double free otherwise */
    batch_unref(NULL);
    OK(1, "refcount: unref NULL is a no-op");
}

static void test_empty(void)
{
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    IS_UINT(batch_bytes(b), sizeof *b, "empty batch: only the struct");
    OK(b->strings == NULL && b->tagsets == NULL && b->recs == NULL && b->arena.head == NULL,
       "empty batch: no tables, records or chunks");
    IS_UINT(batch_count(b), 0, "empty batch: count 0");
    batch_unref(b);
    b = batch_new(&host, RMR_SCHEMA_ELASTIC, 0);
    OK(batch_bytes(b) <= sizeof *b + 1024 + 64, "empty labelled batch: one small chunk");
    batch_unref(b);
}

static int ptr_cmp(const void *x, const void *y)
{
    uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
    return (a > b) - (a < b);
}

/* Distinct name pointers (what 0) or tag array pointers (what 1) among a batch's metrics. */
static size_t distinct(const struct rmr_batch *b, int what)
{
    uint32_t n = batch_count(b);
    uintptr_t *p = malloc((size_t)n * sizeof *p);
    for (uint32_t i = 0; i < n; i++) {
        struct rmr_metric v = {.struct_size = sizeof v};
        batch_get(b, i, RMR_REC_METRIC, &v);
        p[i] = what == 0 ? (uintptr_t)v.name.ptr : (uintptr_t)v.tags;
    }
    qsort(p, n, sizeof *p, ptr_cmp);
    size_t d = n > 0;
    for (uint32_t i = 1; i < n; i++)
        d += p[i] != p[i - 1];
    free(p);
    return d;
}

static void test_large(void)
{
    enum { NREC = 100000, NNAMES = 1000, NSETS = 100 };
    struct rmr_batch *b = batch_new(&host, NULL, 0);
    char name[64], val[32];
    int rc = 0;
    for (uint32_t i = 0; i < NREC && rc == 0; i++) {
        snprintf(name, sizeof name, "app.subsystem.metric_name_%u", i % NNAMES);
        snprintf(val, sizeof val, "value-%u", i % NSETS);
        struct rmr_tag t[] = {tag("service", "checkout"), tag("env", "production"),
                              tag("shard", val), tag("region", "eu-west-1")};
        struct rmr_metric m = gauge(name, i);
        m.type = RMR_METRIC_COUNT;
        m.interval_ms = 10000;
        m.tags = t;
        m.ntags = 4;
        rc = batch_add(b, RMR_REC_METRIC, &m);
    }
    IS_INT(rc, 0, "large: 100000 adds");
    IS_UINT(batch_count(b), NREC, "large: count");
    IS_UINT(distinct(b, 0), NNAMES, "large: 1000 distinct name pointers");
    IS_UINT(distinct(b, 1), NSETS, "large: 100 distinct tag arrays");

    struct rmr_metric v = {.struct_size = sizeof v}, w = v;
    batch_get(b, 12345, RMR_REC_METRIC, &v);
    IS_STRN(v.name.ptr, v.name.len, "app.subsystem.metric_name_345", "large: a record's name");
    IS_DBL(v.value, 12345, 0, "large: a record's value");
    IS_TAGS(v.tags, v.ntags, "env:production,region:eu-west-1,service:checkout,shard:value-45",
            "large: a record's tags");
    batch_get(b, 45, RMR_REC_METRIC, &w);
    OK(v.tags == w.tags, "large: same set, same array");

    /* Per record: its struct and a slot of the doubling record array; shared: names, sets,
     * tables. A per-record copy of the name and tags (~150 bytes) would exceed this. */
    size_t bound = (size_t)NREC * (sizeof(struct rmr_metric) + 2 * sizeof(struct batch_rec)) +
                   ((size_t)1 << 20);
    size_t bytes = batch_bytes(b);
    printf("# large batch: %zu bytes, bound %zu, record struct %zu bytes\n", bytes, bound,
           sizeof(struct rmr_metric));
    OK(bytes <= bound, "large: batch_bytes within the computed bound");
    OK(bytes < (size_t)16 << 20, "large: batch_bytes below 16 MiB");
    OK(bytes >= (size_t)NREC * sizeof(struct rmr_metric), "large: batch_bytes counts records");

    struct rmr_tag g[] = {tag("dc", "fra"), tag("env", "ignored")};
    IS_INT(batch_merge_tags(b, g, 2), 0, "large: merge");
    IS_UINT(distinct(b, 1), NSETS, "large: still 100 distinct tag arrays after merge");
    batch_get(b, 12345, RMR_REC_METRIC, &v);
    IS_TAGS(v.tags, v.ntags,
            "dc:fra,env:production,region:eu-west-1,service:checkout,shard:value-45",
            "large: merged tags");
    batch_unref(b);
}

int main(void)
{
    test_arena();
    test_metric_roundtrip();
    test_other_kinds();
    test_copies();
    test_interning();
    test_tag_order();
    test_strings();
    test_invalid();
    test_sizes();
    test_struct_versions();
    test_merge();
    test_seal();
    test_limit();
    test_refcount();
    test_empty();
    test_large();
    return tap_done();
}
