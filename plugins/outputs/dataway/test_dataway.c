/* The dataway output against the fake host: one payload per (dataway, category) with the token
 * only as a placeholder, golden line-protocol bodies for every record kind, Datakit's statsd
 * names, guance passthrough, X-Points, the 1 MiB split, drops, classify and bad options. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fakehost.h"
#include "lineproto/lineproto.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

/* The body, gunzipped when compressed; NUL-ended, owned by the caller. */
static char *body(const struct rmr_fakehost_payload *p)
{
    if (p->spec.compression == RMR_COMPRESS_NONE) {
        char *s = malloc(p->len + 1);
        memcpy(s, p->body, p->len);
        s[p->len] = '\0';
        return s;
    }
    size_t cap = 4 << 20;
    unsigned char *out = malloc(cap + 1);
    z_stream z = {0};
    inflateInit2(&z, 15 + 16);
    z.next_in = (unsigned char *)p->body;
    z.avail_in = (uInt)p->len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = inflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    inflateEnd(&z);
    out[zr == Z_STREAM_END ? len : 0] = '\0';
    return (char *)out;
}

static int str_eq(struct rmr_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The X-Points value in a payload's headers, -1 when absent. */
static long x_points(const struct rmr_fakehost_payload *p)
{
    const char *h = p->spec.headers != NULL ? strstr(p->spec.headers, "X-Points: ") : NULL;
    return h != NULL ? strtol(h + 10, NULL, 10) : -1;
}

static void add_metric(rmr_batch_t *b, uint32_t type, const char *name, double v,
                       const struct rmr_tag *tags, uint32_t ntags)
{
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = type,
        .name = rmr_str_c(name),
        .value = v,
        .time_ns = T0,
        .interval_ms = 10000,
        .tags = tags,
        .ntags = ntags,
    };
    rmr_metric_add(b, &m);
}

static const struct rmr_tag env_tags[] = {{{"env", 3, 0}, {"prod", 4, 0}}};

static void add_every_kind(rmr_batch_t *b)
{
    add_metric(b, RMR_METRIC_GAUGE, "page.views", 3.5, env_tags, 1);
    struct rmr_field attrs[] = {
        {RMR_STR("http.path"), {.type = RMR_VAL_STR, .str_len = 1, .v.str = "/"}},
        {RMR_STR("date"), {.type = RMR_VAL_INT, .v.i = 1}}};
    struct rmr_log l = {
        .struct_size = sizeof l,
        .attrs = attrs,
        .nattrs = 2,
        .time_ns = T0,
        .message = RMR_STR("GET / 200"),
        .source = RMR_STR("nginx"),
        .service = RMR_STR("web"),
        .trace_id_lo = 42,
        .span_id = 7,
        .tags = env_tags,
        .ntags = 1,
    };
    rmr_log_add(b, &l);
    struct rmr_tag meta[] = {{RMR_STR("env"), RMR_STR("prod")},
                             {RMR_STR("http.method"), RMR_STR("GET")},
                             {RMR_STR("http.status_code"), RMR_STR("200")},
                             {RMR_STR("other"), RMR_STR("x")}};
    struct rmr_field metrics[] = {
        {RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_DOUBLE, .v.d = 1}}};
    struct rmr_span s = {
        .struct_size = sizeof s,
        .trace_id_lo = 1001,
        .span_id = 1002,
        .parent_id = 0,
        .name = RMR_STR("http.request"),
        .service = RMR_STR("web-api"),
        .resource = RMR_STR("GET /users/:id"),
        .type = RMR_STR("web"),
        .start_ns = 1700000000123456789,
        .duration_ns = 12500000,
        .meta = meta,
        .nmeta = 4,
        .metrics = metrics,
        .nmetrics = 1,
    };
    rmr_span_add(b, &s);
    struct rmr_event e = {
        .struct_size = sizeof e,
        .time_ns = T0,
        .title = RMR_STR("deploy"),
        .text = RMR_STR("v2 is out"),
        .alert_type = RMR_STR("success"),
        .tags = env_tags,
        .ntags = 1,
    };
    rmr_event_add(b, &e);
    struct rmr_check c = {
        .struct_size = sizeof c,
        .status = RMR_CHECK_CRITICAL,
        .time_ns = T0,
        .name = RMR_STR("db.up"),
        .message = RMR_STR("down"),
    };
    rmr_check_add(b, &c);
    struct rmr_tag otags[] = {{RMR_STR("class"), RMR_STR("x")},
                              {RMR_STR("state"), RMR_STR("RUNNING")}};
    struct rmr_field ofields[] = {{RMR_STR("age"), {.type = RMR_VAL_INT, .v.i = 390}}};
    struct rmr_object o = {
        .struct_size = sizeof o,
        .time_ns = T0,
        .cls = RMR_STR("docker_containers"),
        .name = RMR_STR("c1"),
        .tags = otags,
        .ntags = 2,
        .nfields = 1,
        .fields = ofields,
    };
    rmr_object_add(b, &o);
}

static void test_every_kind(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "url = http://127.0.0.1:9/dw/?token=tkn_secret\n", NULL);
    OK(ins != NULL, "created with a url that carries the token");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_every_kind(b);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 5, "one payload per category");
    static const char *const want_ep[] = {
        "http://127.0.0.1:9/dw/v1/write/metric?{secret:url#0?}",
        "http://127.0.0.1:9/dw/v1/write/object?{secret:url#0?}",
        "http://127.0.0.1:9/dw/v1/write/logging?{secret:url#0?}",
        "http://127.0.0.1:9/dw/v1/write/tracing?{secret:url#0?}",
        "http://127.0.0.1:9/dw/v1/write/keyevent?{secret:url#0?}",
    };
    static const char *const want_body[] = {
        "page_views,env=prod,metric_type=gauge value=3.5 1767225600000000000\n",
        "docker_containers,name=c1,state=RUNNING age=390i 1767225600000000000\n",
        "nginx,env=prod,service=web message=\"GET / 200\",status=\"info\",trace_id=\"42\","
        "span_id=\"7\",http_path=\"/\" 1767225600000000000\n",
        "ddtrace,env=prod,http_method=GET,http_status_class=2xx,http_status_code=200,"
        "operation=http.request,sampling_rate=sampler_keep,service=web-api,source=ddtrace,"
        "source_type=web,span_type=entry,status=ok trace_id=\"1001\",span_id=\"1002\","
        "parent_id=\"0\",resource=\"GET /users/:id\",start=1700000000123456i,"
        "duration=12500i,message=\"{\\\"service\\\":\\\"web-api\\\",\\\"name\\\":"
        "\\\"http.request\\\",\\\"resource\\\":\\\"GET /users/:id\\\",\\\"trace_id\\\":0,"
        "\\\"span_id\\\":0,\\\"parent_id\\\":0,\\\"start\\\":1700000000123456789,"
        "\\\"duration\\\":12500000,\\\"error\\\":0,\\\"meta\\\":{\\\"other\\\":\\\"x\\\"},"
        "\\\"metrics\\\":{\\\"_sampling_priority_v1\\\":1},\\\"type\\\":\\\"web\\\"}\" "
        "1700000000123456789\n",
        "dogstatsd,df_source=dogstatsd,env=prod,priority=normal title=\"deploy\","
        "message=\"v2 is out\",status=\"ok\" 1767225600000000000\n"
        "service_check,check=db.up,df_source=dogstatsd title=\"db.up\",message=\"down\","
        "status=\"critical\" 1767225600000000000\n",
    };
    for (uint32_t i = 0; i < 5 && i < rmr_fakehost_payload_count(fh); i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        char *t = body(p);
        IS_STR(p->spec.endpoint, want_ep[i], "endpoint: category path, token as a placeholder");
        IS_STR(t, want_body[i], "golden body");
        IS_STR(p->spec.content_type, "application/line-protocol", "content type");
        IS_UINT(p->spec.compression, RMR_COMPRESS_GZIP, "gzip by default");
        IS_UINT(p->spec.flags, RMR_PAYLOAD_LINES, "payloads are line-splittable (413)");
        IS_INT(x_points(p), (int64_t)count_lines(t), "X-Points equals the line count");
        IS_INT((int64_t)strlen(p->spec.headers), (int64_t)strcspn(p->spec.headers, "\r") + 2,
               "X-Points is the only extra header");
        OK(strstr(p->spec.endpoint, "tkn_secret") == NULL && strstr(t, "tkn_secret") == NULL &&
               strstr(p->spec.headers, "tkn_secret") == NULL,
           "the token is nowhere in the payload");
        free(t);
    }
    IS_UINT(rmr_fakehost_payload(fh, 4)->nrecords, 2, "events and checks share keyevent");
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        OK(strstr(rmr_fakehost_log(fh, i), "tkn_secret") == NULL, "no token in the logs");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_statsd_names(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "url = https://dw.example\ncompression = none\n", NULL);
    OK(ins != NULL, "created without compression");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_metric(b, RMR_METRIC_RATE, "my-app.req", 0.5, NULL, 0);
    add_metric(b, RMR_METRIC_COUNT, "jobs.done", 4, NULL, 0);
    add_metric(b, RMR_METRIC_GAUGE, "lat.95percentile", 12, NULL, 0);
    int32_t keys[] = {1338 + 0, 1338 + 44}; /* ~1 and ~2 */
    uint32_t counts[] = {3, 1};
    struct rmr_sketch sk = {.struct_size = sizeof sk,
                            .nbins = 2,
                            .count = 4,
                            .min = 1,
                            .max = 2,
                            .sum = 5,
                            .keys = keys,
                            .counts = counts};
    struct rmr_metric d = {.struct_size = sizeof d,
                           .type = RMR_METRIC_DISTRIBUTION,
                           .name = RMR_STR("resp.size"),
                           .time_ns = T0,
                           .sketch = &sk};
    rmr_metric_add(b, &d);
    struct rmr_metric nan = {.struct_size = sizeof nan,
                             .type = RMR_METRIC_GAUGE,
                             .name = RMR_STR("bad"),
                             .value = NAN,
                             .time_ns = T0};
    rmr_metric_add(b, &nan);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 1, "one metric payload");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    IS_STR(p->spec.endpoint, "https://dw.example/v1/write/metric", "no query, no token");
    char *t = body(p);
    CONTAINS(t, "my__app_req,metric_type=counter value=5 1767225600000000000\n",
             "a rate becomes Datakit's counter: '-' -> '__', '.' -> '_', value * interval");
    CONTAINS(t, "jobs_done,metric_type=counter value=4 ", "a count is a counter");
    CONTAINS(t, "lat_95percentile,metric_type=gauge value=12 ",
             "a histogram series keeps its suffix in the name");
    CONTAINS(t, "resp_size,metric_type=distribution count=4i,min=1,max=2,sum=5,avg=1.25,p50=",
             "a distribution: count/min/max/sum/avg and quantiles");
    CONTAINS(t, ",p95=", "p95");
    CONTAINS(t, ",p99=", "p99");
    OK(strstr(t, "bad") == NULL, "the NaN gauge is not written");
    IS_UINT(p->nrecords, 4, "four records in the payload");
    IS_INT(x_points(p), 4, "X-Points 4");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "non_finite"), 1,
            "NaN counted as non_finite");
    free(t);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_guance_passthrough(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh,
                                      "url = http://a:1?token=tkn_a, http://b:2/x\n"
                                      "token = tkn_t1, tkn_t2\ncompression = none\n",
                                      NULL);
    OK(ins != NULL, "created with two dataways and two tokens");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, "guance");
    struct rmr_tag tags[] = {{RMR_STR("container_id"), RMR_STR("c 1")},
                             {RMR_STR("container_runtime"), RMR_STR("ecsfargate")}};
    struct rmr_field fields[] = {
        {RMR_STR("cpu_usage"), {.type = RMR_VAL_DOUBLE, .v.d = 0.869}},
        {RMR_STR("mem_usage"), {.type = RMR_VAL_INT, .v.i = 156966912}},
        {RMR_STR("note"), {.type = RMR_VAL_STR, .str_len = 1, .v.str = "x"}},
    };
    struct rmr_metric m = {.struct_size = sizeof m,
                           .type = RMR_METRIC_GAUGE,
                           .name = RMR_STR("docker_containers"),
                           .time_ns = T0,
                           .tags = tags,
                           .ntags = 2,
                           .fields = fields,
                           .nfields = 3};
    rmr_metric_add(b, &m);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 2, "one payload per dataway");
    const struct rmr_fakehost_payload *p0 = rmr_fakehost_payload(fh, 0);
    const struct rmr_fakehost_payload *p1 = rmr_fakehost_payload(fh, 1);
    IS_STR(p0->spec.endpoint, "http://a:1/v1/write/metric?{secret:url#0?}&token={secret:token#0}",
           "first dataway: its query and its token");
    IS_STR(p1->spec.endpoint, "http://b:2/x/v1/write/metric?token={secret:token#1}",
           "second dataway: its token");
    char *t0 = body(p0), *t1 = body(p1);
    IS_STR(t0,
           "docker_containers,container_id=c\\ 1,container_runtime=ecsfargate cpu_usage=0.869,"
           "mem_usage=156966912i 1767225600000000000\n",
           "guance metric as it comes, string field dropped, escaping by lineproto");
    IS_STR(t1, t0, "each dataway gets everything");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", NULL), 0, "nothing dropped");
    free(t0);
    free(t1);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_split(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "url = http://a:1\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    char pad[200];
    memset(pad, 'v', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    uint32_t n = 12000;
    for (uint32_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "m.%u", i);
        struct rmr_tag tags[] = {{RMR_STR("pad"), RMR_STR(pad)}};
        add_metric(b, RMR_METRIC_GAUGE, name, i, tags, 1);
    }
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode of ~2.6 MB succeeds");
    uint32_t np = rmr_fakehost_payload_count(fh), records = 0;
    size_t lines = 0;
    int small = 1, points = 1;
    for (uint32_t i = 0; i < np; i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        char *t = body(p);
        small &= strlen(t) <= (1u << 20);
        points &= x_points(p) == (long)count_lines(t) && p->nrecords == count_lines(t);
        lines += count_lines(t);
        records += p->nrecords;
        free(t);
    }
    OK(np >= 3, "split into several payloads");
    OK(small, "each body is at most 1 MiB before compression");
    OK(points, "X-Points and nrecords match each body's lines");
    IS_UINT(records, n, "every record is in some payload");
    IS_UINT(lines, n, "one line per record");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_classify_and_options(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "dataway", "descriptor: name");
    IS_UINT(d->accepts, RMR_REC_ALL, "descriptor: every kind");
    IS_STR(d->schemas[0], "guance", "descriptor: accepts guance");
    OK(d->schemas[1] == NULL, "and nothing else");
    static const struct {
        int status, verdict;
    } cases[] = {{200, RMR_VERDICT_OK},    {204, RMR_VERDICT_OK},    {400, RMR_VERDICT_REJECT},
                 {401, RMR_VERDICT_HALT},  {403, RMR_VERDICT_HALT},  {404, RMR_VERDICT_REJECT},
                 {413, RMR_VERDICT_SPLIT}, {429, RMR_VERDICT_RETRY}, {500, RMR_VERDICT_RETRY},
                 {503, RMR_VERDICT_RETRY}, {0, RMR_VERDICT_RETRY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rmr_response r = {
            .struct_size = sizeof r, .status = cases[i].status, .retry_after_ms = -1};
        char name[48];
        snprintf(name, sizeof name, "classify %d", cases[i].status);
        IS_INT(d->classify(NULL, &r), cases[i].verdict, name);
    }
    struct rmr_fakehost *fh = rmr_fakehost_new();
    int rc = 0;
    plugin_make(fh, "", &rc);
    IS_INT(rc, RMR_ECONFIG, "url is required");
    plugin_make(fh, "url = ftp://x/\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a non-http url is refused");
    plugin_make(fh, "url = http://x/{secret:token}\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a url cannot smuggle a placeholder");
    plugin_make(fh, "url = http://a, http://b, http://c\ntoken = t1, t2\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "two tokens for three urls is refused");
    plugin_make(fh, "url = http://a\ncompression = zstd\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "zstd is not a dataway compression");
    int leaked = 0;
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        leaked |= strstr(rmr_fakehost_log(fh, i), "t2") != NULL;
    OK(!leaked, "errors never echo a token");
    rmr_fakehost_free(fh);
}

/* ---- spans ---------------------------------------------------------------------------------- */

#define TS INT64_C(1700000000123456789)

static void add_span(rmr_batch_t *b, uint64_t trace, uint64_t id, uint64_t parent,
                     const char *service, const char *name, const char *resource, const char *type,
                     int64_t start, int32_t error, const struct rmr_tag *meta, uint32_t nmeta,
                     const struct rmr_field *metrics, uint32_t nmetrics)
{
    struct rmr_span s = {
        .struct_size = sizeof s,
        .error = error,
        .trace_id_lo = trace,
        .span_id = id,
        .parent_id = parent,
        .name = rmr_str_c(name),
        .service = rmr_str_c(service),
        .resource = rmr_str_c(resource),
        .type = rmr_str_c(type),
        .start_ns = start,
        .duration_ns = 5000000,
        .meta = meta,
        .nmeta = nmeta,
        .metrics = metrics,
        .nmetrics = nmetrics,
    };
    rmr_span_add(b, &s);
}

/* Encodes the batches with an uncompressed dataway; the tracing body, or NULL. */
static char *encode_spans(struct rmr_fakehost *fh, rmr_instance_t **ins,
                          const rmr_batch_t *const *bs, uint32_t n)
{
    *ins = plugin_make(fh, "url = http://a:1\ncompression = none\n", NULL);
    if (*ins == NULL || rmr_fakehost_encode(fh, *ins, bs, n) != 0 ||
        rmr_fakehost_payload_count(fh) != 1)
        return NULL;
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    if (strcmp(p->spec.endpoint, "http://a:1/v1/write/tracing") != 0)
        return NULL;
    return body(p);
}

static const char *const want_trace =
    /* batch order: the span of the first batch first. A leaf of the same service; db.type present:
       db_host from peer.hostname */
    "ddtrace,db_host=db1,db_name=users,db_system=postgresql,operation=postgres.query,"
    "service=web-api,source=ddtrace,source_type=db,span_type=exit,status=ok trace_id=\"77\","
    "span_id=\"3\",parent_id=\"2\",resource=\"SELECT \\\"name\\\" FROM users WHERE id < $1\","
    "start=1700000000125456i,duration=5000i,message=\"{\\\"service\\\":\\\"web-api\\\","
    "\\\"name\\\":\\\"postgres.query\\\",\\\"resource\\\":\\\"SELECT \\\\\\\"name\\\\\\\" FROM "
    "users\\\\nWHERE id \\\\u003c $1\\\",\\\"trace_id\\\":0,\\\"span_id\\\":0,\\\"parent_id\\\":0,"
    "\\\"start\\\":1700000000125456789,\\\"duration\\\":5000000,\\\"error\\\":0,\\\"meta\\\":"
    "{\\\"peer.hostname\\\":\\\"db1\\\"},\\\"type\\\":\\\"sql\\\"}\" 1700000000125456789\n"
    /* the root: its parent is not in the trace */
    "ddtrace,env=prod,http_route=/users/:id,http_status_class=4xx,http_status_code=404,"
    "operation=http.request,sampling_rate=user_keep,service=web-api,source=ddtrace,"
    "source_type=web,span_type=entry,status=ok trace_id=\"77\",span_id=\"1\",parent_id=\"0\","
    "resource=\"GET /users/:id\",start=1700000000123456i,duration=5000i,message=\"{"
    "\\\"service\\\":\\\"web-api\\\",\\\"name\\\":\\\"http.request\\\",\\\"resource\\\":"
    "\\\"GET /users/:id\\\",\\\"trace_id\\\":0,\\\"span_id\\\":0,\\\"parent_id\\\":0,"
    "\\\"start\\\":1700000000123456789,\\\"duration\\\":5000000,\\\"error\\\":0,\\\"metrics\\\":"
    "{\\\"_dd.top_level\\\":1,\\\"_sampling_priority_v1\\\":2},\\\"type\\\":\\\"web\\\"}\" "
    "1700000000123456789\n"
    /* same service as its parent, and a parent itself */
    "ddtrace,error_message=boom,operation=handler,service=web-api,source=ddtrace,"
    "source_type=custom,span_type=local,status=error trace_id=\"77\",span_id=\"2\","
    "parent_id=\"1\",resource=\"Users.get\",start=1700000000124456i,duration=5000i,"
    "message=\"{\\\"service\\\":\\\"web-api\\\",\\\"name\\\":\\\"handler\\\",\\\"resource\\\":"
    "\\\"Users.get\\\",\\\"trace_id\\\":0,\\\"span_id\\\":0,\\\"parent_id\\\":0,\\\"start\\\":"
    "1700000000124456789,\\\"duration\\\":5000000,\\\"error\\\":1,\\\"type\\\":\\\"custom\\\"}\" "
    "1700000000124456789\n"
    /* another service under the leaf's parent: entry; peer.hostname without db.type: no
     * db_host */
    "ddtrace,operation=grpc.server,service=billing,source=ddtrace,source_type=custom,"
    "span_type=entry,status=ok trace_id=\"77\",span_id=\"4\",parent_id=\"2\","
    "resource=\"Bill\",start=1700000000126456i,duration=5000i,message=\"{\\\"service\\\":"
    "\\\"billing\\\",\\\"name\\\":\\\"grpc.server\\\",\\\"resource\\\":\\\"Bill\\\","
    "\\\"trace_id\\\":0,\\\"span_id\\\":0,\\\"parent_id\\\":0,\\\"start\\\":1700000000126456789,"
    "\\\"duration\\\":5000000,\\\"error\\\":0,\\\"meta\\\":{\\\"peer.hostname\\\":\\\"h\\\"},"
    "\\\"type\\\":\\\"rpc\\\"}\" 1700000000126456789\n";

static void test_span_trace(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_batch_t *b1 = rmr_fakehost_batch_new(fh, NULL), *b2 = rmr_fakehost_batch_new(fh, NULL);
    struct rmr_tag m1[] = {{RMR_STR("env"), RMR_STR("prod")},
                           {RMR_STR("http.status_code"), RMR_STR("404")},
                           {RMR_STR("http.route"), RMR_STR("/users/:id")}};
    struct rmr_field f1[] = {{RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_DOUBLE, .v.d = 2}},
                             {RMR_STR("_dd.top_level"), {.type = RMR_VAL_DOUBLE, .v.d = 1}}};
    struct rmr_tag m2[] = {{RMR_STR("error.message"), RMR_STR("boom")}};
    struct rmr_tag m3[] = {{RMR_STR("db.type"), RMR_STR("postgresql")},
                           {RMR_STR("peer.hostname"), RMR_STR("db1")},
                           {RMR_STR("db.instance"), RMR_STR("users")}};
    struct rmr_tag m4[] = {{RMR_STR("peer.hostname"), RMR_STR("h")}};
    /* the child first, the parents in a later batch: the whole encode is one trace view */
    add_span(b1, 77, 3, 2, "web-api", "postgres.query", "SELECT \"name\" FROM users\nWHERE id < $1",
             "sql", TS + 2000000, 0, m3, 3, NULL, 0);
    add_span(b2, 77, 1, 0, "web-api", "http.request", "GET /users/:id", "web", TS, 0, m1, 3, f1, 2);
    add_span(b2, 77, 2, 1, "web-api", "handler", "Users.get", "custom", TS + 1000000, 1, m2, 1,
             NULL, 0);
    add_span(b2, 77, 4, 2, "billing", "grpc.server", "Bill", "rpc", TS + 3000000, 0, m4, 1, NULL,
             0);
    const rmr_batch_t *bs[] = {b1, b2};
    rmr_instance_t *ins = NULL;
    char *t = encode_spans(fh, &ins, bs, 2);
    OK(t != NULL, "one tracing payload");
    IS_STR(t, want_trace, "entry, local, exit and a cross-service entry, exact lines");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", NULL), 0, "nothing dropped");

    /* the message parses back: read the field out of the line */
    struct lp_parsed *pp = calloc(1, sizeof *pp);
    struct lp_buf scratch;
    lp_buf_init(&scratch);
    char err[128] = "";
    struct rmr_str msg = {0};
    if (t != NULL && lp_parse_line(t, strcspn(t, "\n"), pp, &scratch, err, sizeof err) == 0)
        for (uint32_t i = 0; i < pp->nfields; i++)
            if (str_eq(pp->fields[i].key, "message") && pp->fields[i].type == LP_STRING)
                msg = pp->fields[i].v.s;
    OK(msg.len > 2 && msg.ptr[0] == '{' && msg.ptr[msg.len - 1] == '}', "message is a JSON object");
    char *m = strndup(msg.ptr != NULL ? msg.ptr : "", msg.len);
    CONTAINS(m, "\"resource\":\"SELECT \\\"name\\\" FROM users\\nWHERE id \\u003c $1\"",
             "message holds the resource JSON-escaped as Go writes it");
    CONTAINS(m, "\"meta\":{\"peer.hostname\":\"db1\"}", "mapped meta keys leave the message");
    free(m);
    lp_buf_release(&scratch);
    free(pp);
    free(t);
    rmr_batch_free(b1);
    rmr_batch_free(b2);
    rmr_fakehost_free(fh);
}

static void test_span_rejected_trace(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_batch_t *b1 = rmr_fakehost_batch_new(fh, NULL), *b2 = rmr_fakehost_batch_new(fh, NULL);
    struct rmr_field reject[] = {
        {RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_INT, .v.i = -1}}};
    struct rmr_field keep[] = {
        {RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_DOUBLE, .v.d = 1}}};
    add_span(b1, 88, 1, 0, "web", "root", "r", "web", TS, 0, NULL, 0, NULL, 0);
    add_span(b1, 99, 5, 0, "web", "kept", "k", "web", TS, 0, NULL, 0, keep, 1);
    add_span(b2, 88, 2, 1, "web", "child", "c", "web", TS, 0, NULL, 0, reject, 1);
    const rmr_batch_t *bs[] = {b1, b2};
    rmr_instance_t *ins = NULL;
    char *t = encode_spans(fh, &ins, bs, 2);
    IS_STR(t,
           "ddtrace,operation=kept,sampling_rate=sampler_keep,service=web,source=ddtrace,"
           "source_type=web,span_type=entry,status=ok trace_id=\"99\",span_id=\"5\","
           "parent_id=\"0\",resource=\"k\",start=1700000000123456i,duration=5000i,"
           "message=\"{\\\"service\\\":\\\"web\\\",\\\"name\\\":\\\"kept\\\",\\\"resource\\\":"
           "\\\"k\\\",\\\"trace_id\\\":0,\\\"span_id\\\":0,\\\"parent_id\\\":0,\\\"start\\\":"
           "1700000000123456789,\\\"duration\\\":5000000,\\\"error\\\":0,\\\"metrics\\\":"
           "{\\\"_sampling_priority_v1\\\":1},\\\"type\\\":\\\"web\\\"}\" 1700000000123456789\n",
           "a child's reject priority drops its whole trace, even across batches");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "sampled_out"), 2,
            "counted once per span of the trace");
    free(t);
    rmr_batch_free(b1);
    rmr_batch_free(b2);
    rmr_fakehost_free(fh);
}

static void test_span_long_meta(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    char url[1100];
    memset(url, 'a', sizeof url - 1);
    memcpy(url, "http://x/", 9);
    url[sizeof url - 1] = '\0';
    struct rmr_tag meta[] = {{RMR_STR("http.url"), rmr_str_c(url)},
                             {RMR_STR("http.method"), RMR_STR("GET")},
                             {RMR_STR("http.status_code"), RMR_STR("abc")}};
    add_span(b, 5, 6, 0, "web", "req", "r", "web", TS, 0, meta, 3, NULL, 0);
    const rmr_batch_t *bs[] = {b};
    rmr_instance_t *ins = NULL;
    char *t = encode_spans(fh, &ins, bs, 1);
    char want[4096];
    snprintf(want, sizeof want,
             "ddtrace,http_method=GET,http_status_code=abc,operation=req,service=web,"
             "source=ddtrace,source_type=web,span_type=entry,status=ok http_url=\"%s\","
             "trace_id=\"5\",span_id=\"6\",parent_id=\"0\",resource=\"r\","
             "start=1700000000123456i,duration=5000i,message=\"{\\\"service\\\":\\\"web\\\","
             "\\\"name\\\":\\\"req\\\",\\\"resource\\\":\\\"r\\\",\\\"trace_id\\\":0,"
             "\\\"span_id\\\":0,\\\"parent_id\\\":0,\\\"start\\\":1700000000123456789,"
             "\\\"duration\\\":5000000,\\\"error\\\":0,\\\"type\\\":\\\"web\\\"}\" "
             "1700000000123456789\n",
             url);
    IS_STR(t, want,
           "a meta value over 1024 bytes is a field, not a tag; no class for a bad status");
    free(t);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_every_kind();
    test_statsd_names();
    test_guance_passthrough();
    test_split();
    test_classify_and_options();
    test_span_trace();
    test_span_rejected_trace();
    test_span_long_meta();
    return tap_done();
}
