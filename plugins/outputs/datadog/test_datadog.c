/* The datadog output against the fake host: golden v2 and v1 series for every metric type,
 * events and check runs, tag escaping, hosts (record, agent, Fargate), compression, the
 * payload bounds at their exact edges (points, raw bytes, compressed bytes), drops, classify,
 * the key validation at start, the key kept out of logs and bodies, and sketches decoded back
 * by protoc --decode_raw. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0  INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define KEY "0123456789abcdef0123456789abcdef"

/* A header's value in a payload's extra headers ("Name: value\r\n" lines), or NULL. Owned. */
static char *header(const struct rmr_fakehost_payload *p, const char *name)
{
    const char *h = p->spec.headers;
    size_t n = strlen(name);
    for (; h != NULL && *h != '\0'; h = strchr(h, '\n') != NULL ? strchr(h, '\n') + 1 : "") {
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, strcspn(v, "\r\n"));
        }
    }
    return NULL;
}

/* The body as sent, undone as its Content-Encoding says; NUL-ended, length in *len. Owned. */
static char *body_len(const struct rmr_fakehost_payload *p, size_t *len)
{
    char *enc = header(p, "Content-Encoding");
    size_t cap = 64u << 20;
    char *out = malloc(cap + 1);
    size_t n = 0;
    if (enc == NULL) {
        memcpy(out, p->body, p->len);
        n = p->len;
    } else if (strcmp(enc, "zstd1") == 0) {
        size_t r = ZSTD_decompress(out, cap, p->body, p->len);
        n = ZSTD_isError(r) ? 0 : r;
    } else {
        z_stream z;
        memset(&z, 0, sizeof z);
        inflateInit2(&z, strcmp(enc, "gzip") == 0 ? 15 + 16 : 15);
        z.next_in = (unsigned char *)p->body;
        z.avail_in = (uInt)p->len;
        z.next_out = (unsigned char *)out;
        z.avail_out = (uInt)cap;
        int zr = inflate(&z, Z_FINISH);
        n = zr == Z_STREAM_END ? cap - z.avail_out : 0;
        inflateEnd(&z);
    }
    out[n] = '\0';
    if (len != NULL)
        *len = n;
    free(enc);
    return out;
}

static char *body(const struct rmr_fakehost_payload *p)
{
    return body_len(p, NULL);
}

static size_t count_str(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = strstr(hay, needle); s != NULL; s = strstr(s + 1, needle))
        n++;
    return n;
}

static void add_metric(rmr_batch_t *b, uint32_t type, const char *name, double v,
                       const struct rmr_tag *tags, uint32_t ntags, const char *host,
                       const char *unit)
{
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = type,
        .name = rmr_str_c(name),
        .value = v,
        .time_ns = T0 + 500000000,
        .interval_ms = 10000,
        .unit = rmr_str_c(unit),
        .host = rmr_str_c(host),
        .tags = tags,
        .ntags = ntags,
    };
    rmr_metric_add(b, &m);
}

/* Adds a distribution of one sample of 1 (key 1338, Datadog's for 1) at T0. */
static void add_unit_sketch(rmr_batch_t *b, const char *name, const struct rmr_tag *tags,
                            uint32_t ntags)
{
    int32_t keys[] = {1338};
    uint32_t counts[] = {1};
    struct rmr_sketch sk = {.struct_size = sizeof sk,
                            .nbins = 1,
                            .count = 1,
                            .min = 1,
                            .max = 1,
                            .sum = 1,
                            .keys = keys,
                            .counts = counts};
    struct rmr_metric m = {.struct_size = sizeof m,
                           .type = RMR_METRIC_DISTRIBUTION,
                           .name = rmr_str_c(name),
                           .time_ns = T0,
                           .tags = tags,
                           .ntags = ntags,
                           .sketch = &sk};
    rmr_metric_add(b, &m);
}

/* Tags with every character JSON must escape, UTF-8, invalid UTF-8 and a bare tag. */
static const struct rmr_tag odd_tags[] = {
    {{"bare", 4, 0}, {NULL, 0, 0}},           {{"ctl", 3, 0}, {"a\x01\tb\n", 5, 0}},
    {{"q\"k", 3, 0}, {"back\\slash", 10, 0}}, {{"utf", 3, 0}, {"caf\xc3\xa9 \xe2\x9c\x93", 9, 0}},
    {{"zbad", 4, 0}, {"x\xff", 2, 0}},
};
static const char odd_json[] =
    "[\"bare\",\"ctl:a\\u0001\\tb\\n\",\"q\\\"k:back\\\\slash\",\"utf:caf\xc3\xa9 \xe2\x9c\x93\","
    "\"zbad:x\\ufffd\"]";

static const struct rmr_tag env_tags[] = {{{"env", 3, 0}, {"prod", 4, 0}}};

static void add_every_type(rmr_batch_t *b)
{
    add_metric(b, RMR_METRIC_GAUGE, "ecs.fargate.cpu.percent", 0.87, env_tags, 1, NULL, "%");
    add_metric(b, RMR_METRIC_COUNT, "app.jobs", 42, env_tags, 1, "h-own", NULL);
    struct rmr_metric r = {
        .struct_size = sizeof r,
        .type = RMR_METRIC_RATE,
        .name = RMR_STR("ecs.fargate.net.bytes_rcvd"),
        .value = 1911.33,
        .time_ns = T0,
        .interval_ms = 9600, /* rounds to 10 s */
        .unit = RMR_STR("By/s"),
    };
    rmr_metric_add(b, &r);
    add_metric(b, RMR_METRIC_GAUGE, "odd\"name\\", -1.5e-7, odd_tags, 5, NULL, "{page}/s");
    struct rmr_field fields[] = {
        {RMR_STR("used"), {.type = RMR_VAL_INT, .v.i = 3}},
        {RMR_STR("note"), {.type = RMR_VAL_STR, .str_len = 1, .v.str = "x"}},
        {RMR_STR("free"), {.type = RMR_VAL_DOUBLE, .v.d = 0.25}},
        {RMR_STR("nan"), {.type = RMR_VAL_DOUBLE, .v.d = NAN}},
    };
    struct rmr_metric mf = {
        .struct_size = sizeof mf,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("disk"),
        .time_ns = T0,
        .unit = RMR_STR("weird unit"),
        .fields = fields,
        .nfields = 4,
    };
    rmr_metric_add(b, &mf);
}

static const char want_v2[] =
    "{\"series\":["
    "{\"metric\":\"ecs.fargate.cpu.percent\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
    "\"value\":0.87}],\"resources\":[{\"name\":\"fakehost\",\"type\":\"host\"}],"
    "\"tags\":[\"env:prod\"],\"unit\":\"percent\"},"
    "{\"metric\":\"app.jobs\",\"type\":1,\"interval\":10,\"points\":[{\"timestamp\":1767225600,"
    "\"value\":42}],\"resources\":[{\"name\":\"h-own\",\"type\":\"host\"}],"
    "\"tags\":[\"env:prod\"]},"
    "{\"metric\":\"ecs.fargate.net.bytes_rcvd\",\"type\":2,\"interval\":10,\"points\":[{"
    "\"timestamp\":1767225600,\"value\":1911.33}],\"resources\":[{\"name\":\"fakehost\","
    "\"type\":\"host\"}],\"tags\":[],\"unit\":\"byte\"},"
    "{\"metric\":\"odd\\\"name\\\\\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
    "\"value\":-1.5e-07}],\"resources\":[{\"name\":\"fakehost\",\"type\":\"host\"}],"
    "\"tags\":%s,\"unit\":\"page\"},"
    "{\"metric\":\"disk.used\",\"type\":3,\"points\":[{\"timestamp\":1767225600,\"value\":3}],"
    "\"resources\":[{\"name\":\"fakehost\",\"type\":\"host\"}],\"tags\":[]},"
    "{\"metric\":\"disk.free\",\"type\":3,\"points\":[{\"timestamp\":1767225600,\"value\":0.25}],"
    "\"resources\":[{\"name\":\"fakehost\",\"type\":\"host\"}],\"tags\":[]}"
    "]}";

static const char want_v1[] =
    "{\"series\":["
    "{\"metric\":\"ecs.fargate.cpu.percent\",\"points\":[[1767225600,0.87]],\"type\":\"gauge\","
    "\"host\":\"fakehost\",\"tags\":[\"env:prod\"]},"
    "{\"metric\":\"app.jobs\",\"points\":[[1767225600,42]],\"type\":\"count\",\"interval\":10,"
    "\"host\":\"h-own\",\"tags\":[\"env:prod\"]},"
    "{\"metric\":\"ecs.fargate.net.bytes_rcvd\",\"points\":[[1767225600,1911.33]],"
    "\"type\":\"rate\",\"interval\":10,\"host\":\"fakehost\",\"tags\":[]},"
    "{\"metric\":\"odd\\\"name\\\\\",\"points\":[[1767225600,-1.5e-07]],\"type\":\"gauge\","
    "\"host\":\"fakehost\",\"tags\":%s},"
    "{\"metric\":\"disk.used\",\"points\":[[1767225600,3]],\"type\":\"gauge\","
    "\"host\":\"fakehost\",\"tags\":[]},"
    "{\"metric\":\"disk.free\",\"points\":[[1767225600,0.25]],\"type\":\"gauge\","
    "\"host\":\"fakehost\",\"tags\":[]}"
    "]}";

static int key_nowhere(struct rmr_fakehost *fh)
{
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        if (strstr(rmr_fakehost_log(fh, i), KEY) != NULL)
            return 0;
    for (uint32_t i = 0; i < rmr_fakehost_payload_count(fh); i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        char *t = body(p);
        int bad = strstr(t, KEY) != NULL || strstr(p->spec.endpoint, KEY) != NULL ||
                  (p->spec.headers != NULL && strstr(p->spec.headers, KEY) != NULL) ||
                  memmem(p->body, p->len, KEY, strlen(KEY)) != NULL;
        free(t);
        if (bad)
            return 0;
    }
    return 1;
}

static void test_series_golden(int v1)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins =
        plugin_make(fh,
                    v1 ? "api_key = " KEY "\ncompression = none\napi_version = v1\n"
                         "url = http://127.0.0.1:8428/datadog/\n"
                       : "api_key = " KEY "\ncompression = none\n",
                    NULL);
    OK(ins != NULL, v1 ? "v1: created" : "v2: created");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_every_type(b);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 1, "one series payload");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    if (p != NULL) {
        IS_STR(p->spec.endpoint,
               v1 ? "http://127.0.0.1:8428/datadog/api/v1/series"
                  : "https://api.datadoghq.com/api/v2/series",
               v1 ? "v1: the url option's base, trailing '/' dropped" : "v2: api.<site>");
        IS_STR(p->spec.content_type, "application/json", "content type");
        IS_STR(p->spec.headers, "DD-API-KEY: {secret:api_key}\r\n",
               "the key only as a placeholder; no Content-Encoding with none");
        IS_UINT(p->spec.compression, RMR_COMPRESS_NONE, "the host compresses nothing");
        IS_UINT(p->nrecords, 5, "five records (the multi-field one counted once)");
        char want[4096];
        snprintf(want, sizeof want, v1 ? want_v1 : want_v2, odd_json);
        char *t = body(p);
        IS_STR(t, want,
               v1 ? "v1 golden: gauge, count, rate, escaping, hosts, multi-field"
                  : "v2 golden: types, intervals, units, escaping, hosts, multi-field");
        free(t);
    }
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", NULL), 0,
            "a NaN field among others is left out, not counted as a drop");
    OK(key_nowhere(fh), "the key is in no log, endpoint, header or body");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

/* v1 series take deflate or gzip only (the public API's MetricContentEncoding for v1). */
static void test_v1_zstd_is_deflate(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\napi_version = v1\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_every_type(b);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "v1 with the default compression");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    IS_STR(p != NULL ? p->spec.endpoint : NULL, "https://api.datadoghq.com/api/v1/series",
           "  v1 series");
    char *enc = p != NULL ? header(p, "Content-Encoding") : NULL;
    IS_STR(enc, "deflate", "  go deflate, not zstd");
    free(enc);
    OK(p != NULL && p->len > 2 && p->body[0] == 0x78, "  a zlib stream");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_site_and_compression(void)
{
    static const struct {
        const char *conf, *encoding;
    } cases[] = {
        {"api_key = " KEY "\nsite = datadoghq.eu\n", "zstd1"},
        {"api_key = " KEY "\nsite = datadoghq.eu\ncompression = gzip\n", "gzip"},
        {"api_key = " KEY "\nsite = datadoghq.eu\ncompression = deflate\n", "deflate"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct rmr_fakehost *fh = rmr_fakehost_new();
        rmr_instance_t *ins = plugin_make(fh, cases[c].conf, NULL);
        rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
        add_every_type(b);
        struct rmr_check chk = {.struct_size = sizeof chk, .time_ns = T0, .name = RMR_STR("c")};
        rmr_check_add(b, &chk); /* a second payload, to /api/v1/check_run */
        const rmr_batch_t *bs[] = {b};
        IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, cases[c].encoding);
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
        if (p == NULL) {
            OK(0, "a payload");
            rmr_batch_free(b);
            rmr_fakehost_free(fh);
            continue;
        }
        IS_STR(p->spec.endpoint, "https://api.datadoghq.eu/api/v2/series", "site datadoghq.eu");
        char *enc = header(p, "Content-Encoding");
        IS_STR(enc, cases[c].encoding, "Content-Encoding names the compression");
        free(enc);
        IS_UINT(p->spec.compression, RMR_COMPRESS_NONE, "compressed by the plugin, not the host");
        if (strcmp(cases[c].encoding, "deflate") == 0)
            OK(p->len > 2 && p->body[0] == 0x78 && ((p->body[0] << 8) | p->body[1]) % 31 == 0,
               "deflate is a zlib stream (RFC 1950 header)");
        if (strcmp(cases[c].encoding, "gzip") == 0)
            OK(p->len > 2 && p->body[0] == 0x1f && p->body[1] == 0x8b, "gzip magic");
        if (strcmp(cases[c].encoding, "zstd1") == 0)
            OK(p->len > 4 && p->body[0] == 0x28 && p->body[1] == 0xb5 && p->body[2] == 0x2f &&
                   p->body[3] == 0xfd,
               "zstd magic");
        char want[4096];
        snprintf(want, sizeof want, want_v2, odd_json);
        char *t = body(p);
        IS_STR(t, want, "decompressed: the golden v2 body");
        free(t);
        /* zstd is documented for v2 series only: a check_run payload goes deflate then. */
        const struct rmr_fakehost_payload *cp = rmr_fakehost_payload(fh, 1);
        IS_STR(cp != NULL ? cp->spec.endpoint : NULL, "https://api.datadoghq.eu/api/v1/check_run",
               "  and a check_run payload");
        enc = cp != NULL ? header(cp, "Content-Encoding") : NULL;
        IS_STR(enc, strcmp(cases[c].encoding, "zstd1") == 0 ? "deflate" : cases[c].encoding,
               "  whose Content-Encoding is deflate for zstd, else the same");
        free(enc);
        rmr_batch_free(b);
        rmr_fakehost_free(fh);
    }
}

/* The single series a config and a record make, as text; owned. */
static char *one_series(const char *conf, const char *host, int fargate_env)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_set_hostname(fh, "agent-host");
    if (fargate_env == 1)
        setenv("ECS_FARGATE", "true", 1);
    if (fargate_env == 2)
        setenv("AWS_EXECUTION_ENV", "AWS_ECS_FARGATE", 1);
    rmr_instance_t *ins = plugin_make(fh, conf, NULL);
    unsetenv("ECS_FARGATE");
    unsetenv("AWS_EXECUTION_ENV");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, "datadog");
    add_metric(b, RMR_METRIC_GAUGE, "m", 1, NULL, 0, host, NULL);
    const rmr_batch_t *bs[] = {b};
    char *t = NULL;
    if (ins != NULL && rmr_fakehost_encode(fh, ins, bs, 1) == 0 &&
        rmr_fakehost_payload_count(fh) == 1)
        t = body(rmr_fakehost_payload(fh, 0));
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
    return t;
}

static void test_hosts(void)
{
    const char *v2 = "api_key = " KEY "\ncompression = none\n";
    const char *v1 = "api_key = " KEY "\ncompression = none\napi_version = v1\n";
    static const char *const want[] = {
        "{\"series\":[{\"metric\":\"m\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
        "\"value\":1}],\"resources\":[{\"name\":\"agent-host\",\"type\":\"host\"}],"
        "\"tags\":[]}]}",
        "{\"series\":[{\"metric\":\"m\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
        "\"value\":1}],\"resources\":[{\"name\":\"rec-host\",\"type\":\"host\"}],"
        "\"tags\":[]}]}",
        "{\"series\":[{\"metric\":\"m\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
        "\"value\":1}],\"tags\":[]}]}",
        "{\"series\":[{\"metric\":\"m\",\"points\":[[1767225600,1]],\"type\":\"gauge\","
        "\"host\":\"agent-host\",\"tags\":[]}]}",
        "{\"series\":[{\"metric\":\"m\",\"points\":[[1767225600,1]],\"type\":\"gauge\","
        "\"tags\":[]}]}",
    };
    char *t;
    IS_STR(t = one_series(v2, NULL, 0), want[0], "the agent's hostname (a datadog-schema batch)");
    free(t);
    IS_STR(t = one_series(v2, "rec-host", 0), want[1], "the record's host wins");
    free(t);
    IS_STR(t = one_series(v2, "rec-host", 1), want[1], "the record's host wins on Fargate too");
    free(t);
    IS_STR(t = one_series(v2, NULL, 1), want[2], "ECS_FARGATE=true: no host, no resources");
    free(t);
    IS_STR(t = one_series(v2, NULL, 2), want[2], "AWS_EXECUTION_ENV=AWS_ECS_FARGATE: no host");
    free(t);
    IS_STR(t = one_series(v1, NULL, 0), want[3], "v1: the agent's hostname as host");
    free(t);
    IS_STR(t = one_series(v1, NULL, 1), want[4], "v1 on Fargate: no host key");
    free(t);
}

/* On Fargate events, check runs and sketches carry no host either. */
static void test_fargate_other_kinds(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_set_hostname(fh, "agent-host");
    setenv("ECS_FARGATE", "TRUE", 1);
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\ncompression = none\n", NULL);
    unsetenv("ECS_FARGATE");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, "datadog");
    struct rmr_event e = {
        .struct_size = sizeof e, .time_ns = T0, .title = RMR_STR("t"), .text = RMR_STR("x")};
    rmr_event_add(b, &e);
    struct rmr_check c = {.struct_size = sizeof c,
                          .status = 7, /* out of range: UNKNOWN */
                          .time_ns = T0,
                          .name = RMR_STR("fargate_check")};
    rmr_check_add(b, &c);
    add_unit_sketch(b, "d", NULL, 0);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 3, "a sketch, an event and a check run");
    if (rmr_fakehost_payload_count(fh) == 3) {
        /* Events go as they come; sketches and check runs after the records are read. */
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 1);
        /* SketchPayload{1: Sketch{1: "d", 7: Dogsketch}}: no field 2 (host) after the name. */
        OK(p->len > 7 && memcmp(p->body, "\x0a", 1) == 0 && p->body[2] == 0x0a && p->body[3] == 1 &&
               p->body[4] == 'd' && p->body[5] == 0x3a &&
               memmem(p->body, p->len, "agent-host", 10) == NULL,
           "Fargate: the sketch has no host field");
        char *t = body(rmr_fakehost_payload(fh, 0));
        IS_STR(t,
               "{\"title\":\"t\",\"text\":\"x\",\"date_happened\":1767225600,"
               "\"priority\":\"normal\"}",
               "Fargate: the event has no host");
        free(t);
        t = body(rmr_fakehost_payload(fh, 2));
        IS_STR(t,
               "[{\"check\":\"fargate_check\",\"host_name\":\"\",\"timestamp\":1767225600,"
               "\"status\":3,\"message\":\"\",\"tags\":[]}]",
               "Fargate: check run host_name \"\"; a status beyond 3 is UNKNOWN");
        free(t);
    }
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_drops(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\ncompression = none\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_metric(b, RMR_METRIC_GAUGE, "nan", NAN, NULL, 0, NULL, NULL);
    add_metric(b, RMR_METRIC_COUNT, "inf", INFINITY, NULL, 0, NULL, NULL);
    add_metric(b, RMR_METRIC_RATE, "ninf", -INFINITY, NULL, 0, NULL, NULL);
    add_metric(b, RMR_METRIC_GAUGE, "fine", 2, NULL, 0, NULL, NULL);
    struct rmr_field nanf[] = {{RMR_STR("a"), {.type = RMR_VAL_DOUBLE, .v.d = NAN}}};
    struct rmr_metric mf = {.struct_size = sizeof mf,
                            .type = RMR_METRIC_GAUGE,
                            .name = RMR_STR("allnan"),
                            .time_ns = T0,
                            .fields = nanf,
                            .nfields = 1};
    rmr_metric_add(b, &mf);
    struct rmr_sketch empty = {.struct_size = sizeof empty};
    struct rmr_metric d = {.struct_size = sizeof d,
                           .type = RMR_METRIC_DISTRIBUTION,
                           .name = RMR_STR("d"),
                           .time_ns = T0,
                           .sketch = &empty};
    rmr_metric_add(b, &d);
    struct rmr_log l = {.struct_size = sizeof l, .time_ns = T0, .message = RMR_STR("x")};
    rmr_log_add(b, &l);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "non_finite"), 4,
            "NaN, +Inf, -Inf and an all-NaN multi-field record counted as non_finite");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "empty_sketch"), 1,
            "an empty sketch counted");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "unsupported_kind"), 1,
            "a log is not this output's");
    IS_UINT(rmr_fakehost_payload_count(fh), 1, "one series payload");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    char *t = p != NULL ? body(p) : NULL;
    IS_STR(t,
           "{\"series\":[{\"metric\":\"fine\",\"type\":3,\"points\":[{\"timestamp\":1767225600,"
           "\"value\":2}],\"resources\":[{\"name\":\"fakehost\",\"type\":\"host\"}],"
           "\"tags\":[]}]}",
           "only the finite gauge is sent");
    IS_UINT(p != NULL ? p->nrecords : 0, 1, "one record");
    free(t);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_events_and_checks(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\ncompression = none\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    struct rmr_event e1 = {
        .struct_size = sizeof e1,
        .priority = RMR_EVENT_LOW,
        .time_ns = T0 + 999999999,
        .title = RMR_STR("deploy \"v2\""),
        .text = RMR_STR("line1\nline2"),
        .host = RMR_STR("web-1"),
        .aggregation_key = RMR_STR("agg"),
        .source_type = RMR_STR("jenkins"),
        .alert_type = RMR_STR("success"),
        .tags = env_tags,
        .ntags = 1,
    };
    struct rmr_event e2 = {
        .struct_size = sizeof e2, .time_ns = T0, .title = RMR_STR("t"), .text = RMR_STR("")};
    rmr_event_add(b, &e1);
    rmr_event_add(b, &e2);
    struct rmr_check c1 = {.struct_size = sizeof c1,
                           .status = RMR_CHECK_CRITICAL,
                           .time_ns = T0,
                           .name = RMR_STR("fargate_check"),
                           .message = RMR_STR("GET /task: timed out")};
    struct rmr_check c2 = {.struct_size = sizeof c2,
                           .status = RMR_CHECK_OK,
                           .time_ns = T0,
                           .name = RMR_STR("db.up"),
                           .host = RMR_STR("db-1"),
                           .tags = odd_tags,
                           .ntags = 5};
    rmr_check_add(b, &c1);
    rmr_check_add(b, &c2);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 3, "two events (one per request) and one check_run");
    if (rmr_fakehost_payload_count(fh) == 3) {
        const struct rmr_fakehost_payload *p0 = rmr_fakehost_payload(fh, 0);
        const struct rmr_fakehost_payload *p1 = rmr_fakehost_payload(fh, 1);
        const struct rmr_fakehost_payload *p2 = rmr_fakehost_payload(fh, 2);
        IS_STR(p0->spec.endpoint, "https://api.datadoghq.com/api/v1/events", "events endpoint");
        IS_STR(p0->spec.headers, "DD-API-KEY: {secret:api_key}\r\n", "events carry the key");
        char *t = body(p0);
        IS_STR(t,
               "{\"title\":\"deploy \\\"v2\\\"\",\"text\":\"line1\\nline2\","
               "\"date_happened\":1767225600,\"priority\":\"low\",\"host\":\"web-1\","
               "\"tags\":[\"env:prod\"],\"alert_type\":\"success\",\"aggregation_key\":\"agg\","
               "\"source_type_name\":\"jenkins\"}",
               "event golden: every field");
        free(t);
        t = body(p1);
        IS_STR(t,
               "{\"title\":\"t\",\"text\":\"\",\"date_happened\":1767225600,"
               "\"priority\":\"normal\",\"host\":\"fakehost\"}",
               "event golden: empty optional fields left out, the agent's host");
        free(t);
        IS_UINT(p0->nrecords + p1->nrecords, 2, "one record each");
        IS_STR(p2->spec.endpoint, "https://api.datadoghq.com/api/v1/check_run",
               "check_run endpoint");
        IS_STR(p2->spec.content_type, "application/json", "check_run is JSON");
        char want[1024];
        snprintf(
            want, sizeof want,
            "[{\"check\":\"fargate_check\",\"host_name\":\"fakehost\",\"timestamp\":1767225600,"
            "\"status\":2,\"message\":\"GET /task: timed out\",\"tags\":[]},"
            "{\"check\":\"db.up\",\"host_name\":\"db-1\",\"timestamp\":1767225600,"
            "\"status\":0,\"message\":\"\",\"tags\":%s}]",
            odd_json);
        t = body(p2);
        IS_STR(t, want, "check_run golden: an array, escaped tags");
        free(t);
        IS_UINT(p2->nrecords, 2, "two checks in one payload");
    }
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

/* ---- bounds --------------------------------------------------------------------------------- */

static void test_points_bound(void)
{
    static const uint32_t counts[] = {10000, 10001};
    for (int c = 0; c < 2; c++) {
        struct rmr_fakehost *fh = rmr_fakehost_new();
        rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\n", NULL);
        rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
        for (uint32_t i = 0; i < counts[c]; i++) {
            char name[32];
            snprintf(name, sizeof name, "m.%u", i);
            add_metric(b, RMR_METRIC_GAUGE, name, i, env_tags, 1, NULL, NULL);
        }
        const rmr_batch_t *bs[] = {b};
        IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
        IS_UINT(rmr_fakehost_payload_count(fh), c == 0 ? 1 : 2,
                c == 0 ? "10,000 points: one payload" : "10,001 points: two payloads");
        size_t total = 0, first = 0;
        for (uint32_t i = 0; i < rmr_fakehost_payload_count(fh); i++) {
            char *t = body(rmr_fakehost_payload(fh, i));
            size_t n = count_str(t, "\"points\":");
            IS_UINT(rmr_fakehost_payload(fh, i)->nrecords, n, "nrecords = series in the body");
            if (i == 0)
                first = n;
            total += n;
            free(t);
        }
        IS_UINT(first, 10000, "the first payload holds exactly 10,000 points");
        IS_UINT(total, counts[c], "every point sent once");
        rmr_batch_free(b);
        rmr_fakehost_free(fh);
    }
}

/* Series "p.<i>" each with one tag "p:<pad>" of pad[i] 'a's (compresses to nothing). */
static void add_padded(rmr_batch_t *b, const size_t *pad, size_t n, int distribution)
{
    size_t max = 0;
    for (size_t i = 0; i < n; i++)
        max = pad[i] > max ? pad[i] : max;
    char *s = malloc(max + 1);
    memset(s, 'a', max);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "p.%zu", i);
        struct rmr_tag t = {RMR_STR("p"), rmr_str_n(s, pad[i])};
        if (distribution)
            add_unit_sketch(b, name, &t, 1);
        else
            add_metric(b, RMR_METRIC_GAUGE, name, 1, &t, 1, NULL, NULL);
    }
    free(s);
}

/* Encodes the padded records; the decompressed sizes of the payloads in sizes[]. */
static uint32_t encode_padded(const char *conf, const size_t *pad, size_t n, int distribution,
                              size_t *sizes, uint32_t max)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, conf, NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_padded(b, pad, n, distribution);
    const rmr_batch_t *bs[] = {b};
    uint32_t np = 0;
    if (rmr_fakehost_encode(fh, ins, bs, 1) == 0) {
        np = rmr_fakehost_payload_count(fh);
        for (uint32_t i = 0; i < np && i < max; i++)
            free(body_len(rmr_fakehost_payload(fh, i), &sizes[i]));
    }
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
    return np;
}

/* The raw-byte bound at its edge: bodies of exactly the bound go out whole, one byte more
 * splits. The size of one piece is learnt from a one-record encode (the test knows the
 * envelope: 13 bytes of {"series":[ ]} for series, none for sketches). */
static void test_raw_bound(const char *what, const char *conf, size_t bound, size_t envelope,
                           size_t sep, int distribution)
{
    /* Learnt with a pad as long as the real ones, so protobuf length prefixes match. */
    size_t pad1 = 1000000, sizes[8] = {0};
    encode_padded(conf, &pad1, 1, distribution, sizes, 8);
    size_t piece0 = sizes[0] - envelope - pad1; /* a piece's size without its pad */
    /* Four pieces of 1,000,000 bytes and a fifth filling the bound exactly. */
    size_t pad[5];
    for (int i = 0; i < 4; i++)
        pad[i] = 1000000 - piece0;
    pad[4] = bound - envelope - 4 * sep - 4 * 1000000 - piece0;
    uint32_t np = encode_padded(conf, pad, 5, distribution, sizes, 8);
    char name[160];
    snprintf(name, sizeof name, "%s: a body of exactly %zu bytes goes whole", what, bound);
    OK(np == 1 && sizes[0] == bound, name);
    if (np != 1 || sizes[0] != bound)
        printf("#   %u payloads, first %zu bytes\n", np, sizes[0]);
    pad[4]++;
    np = encode_padded(conf, pad, 5, distribution, sizes, 8);
    snprintf(name, sizeof name, "%s: one byte more splits into two, none over the bound", what);
    OK(np == 2 && sizes[0] <= bound && sizes[1] <= bound &&
           sizes[0] + sizes[1] == bound + 1 + envelope - sep,
       name);
    if (np != 2)
        printf("#   %u payloads\n", np);
}

/* n series whose one tag is len bytes of random 2-byte UTF-8 characters (U+0080..U+07FF):
 * about 11 bits of entropy in 16, more than any of the wire bounds' ratios lets through. */
static void add_random(rmr_batch_t *b, uint32_t n, size_t len, unsigned seed)
{
    char *s = malloc(len);
    srand(seed);
    for (uint32_t i = 0; i < n; i++) {
        for (size_t k = 0; k + 1 < len; k += 2) {
            s[k] = (char)(0xc2 + rand() % 30);
            s[k + 1] = (char)(0x80 + (rand() & 63));
        }
        char name[32];
        snprintf(name, sizeof name, "rnd.%u", i);
        struct rmr_tag t = {RMR_STR("r"), rmr_str_n(s, len & ~(size_t)1)};
        add_metric(b, RMR_METRIC_GAUGE, name, i, &t, 1, NULL, NULL);
    }
    free(s);
}

static void test_wire_bound(const char *conf, uint32_t n, size_t raw_bound, size_t bound,
                            const char *what)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, conf, NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_random(b, n, 2000, 7);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    uint32_t np = rmr_fakehost_payload_count(fh);
    size_t raw = 0, biggest = 0, smallest = SIZE_MAX, series = 0, records = 0;
    for (uint32_t i = 0; i < np; i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        size_t len = 0;
        char *t = body_len(p, &len);
        series += count_str(t, "\"metric\":\"rnd.");
        records += p->nrecords;
        raw += len;
        free(t);
        biggest = p->len > biggest ? p->len : biggest;
        if (i + 1 < np)
            smallest = p->len < smallest ? p->len : smallest;
    }
    char name[160];
    snprintf(name, sizeof name, "%s: %u payloads, none over %zu bytes as sent", what, np, bound);
    OK(np >= 2 && biggest <= bound, name);
    if (biggest > bound)
        printf("#   biggest %zu\n", biggest);
    snprintf(name, sizeof name,
             "%s: %zu bytes in all, under the raw bound: split by the wire bound", what, raw);
    OK(raw < raw_bound, name);
    OK(np < 2 || smallest > bound * 3 / 4, "payloads but the last are more than 3/4 full");
    IS_UINT(series, n, "every series sent once");
    IS_UINT(records, n, "nrecords add up");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", NULL), 0, "nothing dropped");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_too_large(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_metric(b, RMR_METRIC_GAUGE, "small.1", 1, NULL, 0, NULL, NULL);
    add_random(b, 1, 800000, 3); /* ~600 kB compressed: over 512,000 alone */
    char *big = malloc(6000000);
    memset(big, 'a', 6000000);
    struct rmr_tag t = {RMR_STR("big"), rmr_str_n(big, 6000000)};
    add_metric(b, RMR_METRIC_GAUGE, "huge", 1, &t, 1, NULL, NULL); /* over 5 MiB raw */
    add_metric(b, RMR_METRIC_GAUGE, "small.2", 2, NULL, 0, NULL, NULL);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "too_large"), 2,
            "a series over the compressed bound and one over the raw bound: too_large");
    size_t series = 0;
    for (uint32_t i = 0; i < rmr_fakehost_payload_count(fh); i++) {
        char *s = body(rmr_fakehost_payload(fh, i));
        series += count_str(s, "\"metric\":\"small.");
        OK(rmr_fakehost_payload(fh, i)->len <= 512000, "within the wire bound");
        free(s);
    }
    IS_UINT(series, 2, "the records around them are sent");
    free(big);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

/* ---- sketches -------------------------------------------------------------------------------- */

/* Reads protoc --decode_raw output: "N: value" lines and "N {" / "}" nesting, as
 * "path=value" lines ("1.7.2=65850"), into out. Returns 0, or -1 when protoc failed. */
static int decode_raw(const unsigned char *data, size_t len, char *out, size_t cap)
{
    char path[] = "/tmp/remora-dd-sketch-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len;
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "protoc --decode_raw < %s 2>&1", path);
    FILE *f = ok ? popen(cmd, "r") : NULL;
    if (f == NULL) {
        unlink(path);
        return -1;
    }
    char line[65536], stack[16][16];
    int depth = 0;
    size_t used = 0;
    out[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = line;
        while (*s == ' ')
            s++;
        s[strcspn(s, "\n")] = '\0';
        if (strcmp(s, "}") == 0) {
            depth--;
            continue;
        }
        size_t n = strlen(s);
        if (n > 2 && strcmp(s + n - 2, " {") == 0 && depth < 16) {
            snprintf(stack[depth++], sizeof stack[0], "%.*s", (int)(n - 2), s);
            continue;
        }
        char *colon = strstr(s, ": ");
        if (colon == NULL)
            continue;
        *colon = '\0';
        for (int i = 0; i < depth; i++)
            used += (size_t)snprintf(out + used, cap - used, "%s.", stack[i]);
        used += (size_t)snprintf(out + used, cap - used, "%s=%s\n", s, colon + 2);
        if (used >= cap)
            break;
    }
    int rc = pclose(f);
    unlink(path);
    return rc == 0 ? 0 : -1;
}

/* The value of path in decoded text (the first, or the nth when repeated), or NULL. Owned. */
static char *field(const char *decoded, const char *path, int nth)
{
    size_t n = strlen(path);
    for (const char *s = decoded; s != NULL && *s != '\0';) {
        const char *e = strchr(s, '\n');
        if (strncmp(s, path, n) == 0 && s[n] == '=' && nth-- == 0)
            return strndup(s + n + 1, (size_t)((e != NULL ? e : s + strlen(s)) - s - n - 1));
        s = e != NULL ? e + 1 : NULL;
    }
    return NULL;
}

/* A fixed64 as protoc prints it (0x3ff0000000000000) to the double it holds. */
static double fixed64_double(const char *v)
{
    uint64_t u = v != NULL ? strtoull(v, NULL, 16) : 0;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* A quoted string as protoc prints it (C escapes, octal for other bytes) to its bytes. */
static size_t unescape(const char *v, unsigned char *out, size_t cap)
{
    size_t n = 0;
    if (v == NULL || *v != '"')
        return 0;
    for (v++; *v != '\0' && *v != '"' && n < cap; v++) {
        if (*v != '\\') {
            out[n++] = (unsigned char)*v;
            continue;
        }
        v++;
        if (*v >= '0' && *v <= '7') {
            unsigned c = 0;
            for (int i = 0; i < 3 && *v >= '0' && *v <= '7'; i++, v++)
                c = c * 8 + (unsigned)(*v - '0');
            v--;
            out[n++] = (unsigned char)c;
            continue;
        }
        switch (*v) {
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        default: out[n++] = (unsigned char)*v; break; /* \" \' \\ */
        }
    }
    return n;
}

/* Varints from bytes; zigzag-decoded when zz. Returns how many. */
static size_t varints(const unsigned char *b, size_t n, int zz, int64_t *out, size_t cap)
{
    size_t k = 0;
    uint64_t v = 0;
    int shift = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        v |= (uint64_t)(b[i] & 0x7f) << shift;
        shift += 7;
        if (b[i] & 0x80)
            continue;
        out[k++] = zz ? (int64_t)((v >> 1) ^ (~(v & 1) + 1)) : (int64_t)v;
        v = 0;
        shift = 0;
    }
    return k;
}

static void test_sketch_protoc(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    /* The first key's zigzag value ends in binary 111 (a wire type protobuf does not have),
     * and so does the first count, so protoc shows the packed fields as bytes, never as a
     * message it guessed. */
    int32_t keys[] = {-1340, -5, 0, 5, 1338, 1382, 2000};
    uint32_t counts[] = {7, 1, 2, 3, 300, 65536, 1};
    int64_t total = 0;
    for (int i = 0; i < 7; i++)
        total += counts[i];
    struct rmr_sketch sk = {.struct_size = sizeof sk,
                            .nbins = 7,
                            .count = total,
                            .min = -2.5,
                            .max = 1e6,
                            .sum = 12345.678,
                            .keys = keys,
                            .counts = counts};
    struct rmr_tag tags[] = {{RMR_STR("env"), RMR_STR("prod")}, {RMR_STR("solo"), {NULL, 0, 0}}};
    struct rmr_metric m = {.struct_size = sizeof m,
                           .type = RMR_METRIC_DISTRIBUTION,
                           .name = RMR_STR("dist.latency"),
                           .time_ns = T0 + 7,
                           .host = RMR_STR("dd-host"),
                           .tags = tags,
                           .ntags = 2,
                           .sketch = &sk};
    rmr_metric_add(b, &m);
    add_metric(b, RMR_METRIC_GAUGE, "g", 1, NULL, 0, NULL, NULL);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 2, "a series payload and a sketch payload");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 1);
    if (p == NULL) {
        rmr_batch_free(b);
        rmr_fakehost_free(fh);
        return;
    }
    IS_STR(p->spec.endpoint, "https://api.datadoghq.com/api/beta/sketches", "sketches endpoint");
    IS_STR(p->spec.content_type, "application/x-protobuf", "protobuf content type");
    char *enc = header(p, "Content-Encoding");
    IS_STR(enc, "deflate", "deflate by default (zstd goes to v2 series only)");
    free(enc);
    IS_UINT(p->nrecords, 1, "one record");
    size_t len = 0;
    char *raw = body_len(p, &len);
    int have = system("protoc --version >/dev/null 2>&1") == 0;
    const char *req = getenv("REMORA_REQUIRE_PROTOC");
    if (!have) {
        if (req != NULL && strcmp(req, "1") == 0)
            OK(0, "protoc is required (REMORA_REQUIRE_PROTOC=1) but not installed");
        else
            OK(1, "sketch decoded by protoc --decode_raw # SKIP protoc not installed");
        free(raw);
        rmr_batch_free(b);
        rmr_fakehost_free(fh);
        return;
    }
    char *dec = malloc(1 << 20);
    if (dec == NULL)
        abort();
    int rc = decode_raw((const unsigned char *)raw, len, dec, 1 << 20);
    IS_INT(rc, 0, "protoc --decode_raw reads the SketchPayload");
    printf("# decoded:\n");
    for (char *s = dec; *s != '\0';) {
        char *e = strchr(s, '\n');
        printf("#   %.*s\n", (int)(e != NULL ? e - s : (long)strlen(s)), s);
        s = e != NULL ? e + 1 : s + strlen(s);
    }
    char *v;
    IS_STR(v = field(dec, "1.1", 0), "\"dist.latency\"", "Sketch.metric (1.1)");
    free(v);
    IS_STR(v = field(dec, "1.2", 0), "\"dd-host\"", "Sketch.host (1.2)");
    free(v);
    IS_STR(v = field(dec, "1.4", 0), "\"env:prod\"", "Sketch.tags (1.4) first");
    free(v);
    IS_STR(v = field(dec, "1.4", 1), "\"solo\"", "Sketch.tags (1.4) a bare tag");
    free(v);
    OK((v = field(dec, "1.3", 0)) == NULL, "no legacy distributions (1.3)");
    free(v);
    IS_STR(v = field(dec, "1.7.1", 0), "1767225600", "Dogsketch.ts (1.7.1) in seconds");
    free(v);
    IS_STR(v = field(dec, "1.7.2", 0), "65850", "Dogsketch.cnt (1.7.2) = the sketch's count");
    free(v);
    IS_DBL(fixed64_double(v = field(dec, "1.7.3", 0)), -2.5, 0, "Dogsketch.min (1.7.3)");
    free(v);
    IS_DBL(fixed64_double(v = field(dec, "1.7.4", 0)), 1e6, 0, "Dogsketch.max (1.7.4)");
    free(v);
    IS_DBL(fixed64_double(v = field(dec, "1.7.5", 0)), 12345.678 / 65850, 0,
           "Dogsketch.avg (1.7.5) = sum / count");
    free(v);
    IS_DBL(fixed64_double(v = field(dec, "1.7.6", 0)), 12345.678, 0, "Dogsketch.sum (1.7.6)");
    free(v);
    unsigned char bytes[256];
    int64_t got[32];
    v = field(dec, "1.7.7", 0);
    size_t nk = varints(bytes, unescape(v, bytes, sizeof bytes), 1, got, 32);
    free(v);
    int same = nk == 7;
    for (size_t i = 0; same && i < 7; i++)
        same = got[i] == keys[i];
    OK(same, "Dogsketch.k (1.7.7): packed sint32 keys, zigzag, equal to the sketch's");
    v = field(dec, "1.7.8", 0);
    size_t nn = varints(bytes, unescape(v, bytes, sizeof bytes), 0, got, 32);
    free(v);
    same = nn == 7;
    int64_t sum = 0;
    for (size_t i = 0; same && i < 7; i++) {
        same = got[i] == counts[i];
        sum += got[i];
    }
    OK(same, "Dogsketch.n (1.7.8): packed uint32 counts equal to the sketch's");
    IS_INT(sum, total, "the counts add up to cnt");
    OK((v = field(dec, "2", 0)) == NULL &&
           count_str(dec, "\n1.1=") + (strncmp(dec, "1.1=", 4) == 0) == 1,
       "one Sketch, no metadata");
    free(v);
    free(dec);
    free(raw);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

/* ---- classify, options, validation ---------------------------------------------------------- */

static void test_classify(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "datadog", "descriptor: name");
    IS_UINT(d->kind, RMR_KIND_OUTPUT, "descriptor: an output");
    IS_UINT(d->accepts,
            RMR_REC_BIT(RMR_REC_METRIC) | RMR_REC_BIT(RMR_REC_EVENT) | RMR_REC_BIT(RMR_REC_CHECK),
            "descriptor: metrics, events, service checks");
    IS_STR(d->schemas[0], "datadog", "descriptor: the datadog schema");
    OK(d->schemas[1] == NULL, "and no other");
    /* Datadog's answers are the host's default table (the courier's own tests cover it; the
     * integration test sends 400, 403, 413, 429 and 500 through it). */
    OK(d->classify == NULL, "descriptor: the host's default classification");
}

static void test_options(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    int rc = 0;
    plugin_make(fh, "", &rc);
    IS_INT(rc, RMR_ECONFIG, "api_key is required");
    plugin_make(fh, "api_key = " KEY "\nurl = ftp://x\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a non-http url is refused");
    plugin_make(fh, "api_key = " KEY "\nurl = http://x/{secret:api_key}\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a url cannot smuggle a placeholder");
    plugin_make(fh, "api_key = " KEY "\nurl = http://x/?a=b\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a url with a query is refused");
    plugin_make(fh, "api_key = " KEY "\nsite = evil.com/x?\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a site that is not a domain is refused");
    plugin_make(fh, "api_key = " KEY "\napi_version = v3\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "api_version v2 or v1");
    plugin_make(fh, "api_key = " KEY "\ncompression = lz4\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "compression zstd, gzip, deflate or none");
    plugin_make(fh, "api_key = " KEY "\tx\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a key with a control character is refused");
    OK(key_nowhere(fh), "refusals never echo the key");
    rmr_fakehost_free(fh);
}

static int has_log(struct rmr_fakehost *fh, const char *prefix, const char *part)
{
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++) {
        const char *l = rmr_fakehost_log(fh, i);
        if (strncmp(l, prefix, strlen(prefix)) == 0 && strstr(l, part) != NULL)
            return 1;
    }
    return 0;
}

static void test_validate(void)
{
    static const char *const url = "http://127.0.0.1:18080/api/v1/validate";
    static const struct {
        int status, error;
        const char *level, *text;
        int halted;
    } cases[] = {
        {200, 0, "INFO", "API key is valid", 0},
        {403, 0, "ERROR", "HTTP 403", 1},
        {500, 0, "WARN", "HTTP 500", 0},
        {0, RMR_ECONNREFUSED, "WARN", "connection refused", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct rmr_fakehost *fh = rmr_fakehost_new();
        if (cases[c].error != 0)
            rmr_fakehost_fetch_serve_error(fh, "GET", url, cases[c].error);
        else
            rmr_fakehost_fetch_serve(fh, "GET", url, cases[c].status,
                                     cases[c].status == 200 ? "{\"valid\":true}"
                                                            : "{\"errors\":[\"Forbidden\"]}",
                                     cases[c].status == 200 ? 14 : 25);
        rmr_instance_t *ins =
            plugin_make(fh, "api_key = " KEY "\nurl = http://127.0.0.1:18080/\n", NULL);
        IS_INT(rmr_fakehost_start(fh, ins), 0, "start succeeds whatever the answer");
        IS_UINT(rmr_fakehost_fetch_count(fh), 1, "one validate request");
        const struct rmr_fakehost_fetch *f = rmr_fakehost_fetch(fh, 0);
        if (f != NULL) {
            IS_STR(f->method, "GET", "GET");
            IS_STR(f->url, url, "<base>/api/v1/validate");
            IS_STR(rmr_fakehost_fetch_header(f, "DD-API-KEY"), KEY, "the key in DD-API-KEY");
        }
        rmr_fakehost_advance(fh, 0);
        char name[96];
        snprintf(name, sizeof name, "validate %d: a %s line", cases[c].status, cases[c].level);
        OK(has_log(fh, cases[c].level, cases[c].text), name);
        const char *halted = rmr_fakehost_halted(fh, ins);
        if (cases[c].halted) {
            OK(halted != NULL && strstr(halted, "refused by /api/v1/validate (HTTP 403)") != NULL,
               "validate 403: the output halts with the reason");
            OK(has_log(fh, "ERROR", "/api/v1/validate"), "one ERROR line names the endpoint");
        } else {
            OK(halted == NULL, "not halted");
        }
        OK(key_nowhere(fh), "the key is in no log line");
        rmr_fakehost_free(fh);
    }
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "api_key = " KEY "\nvalidate = false\n", NULL);
    IS_INT(rmr_fakehost_start(fh, ins), 0, "start with validate = false");
    IS_UINT(rmr_fakehost_fetch_count(fh), 0, "no validate request");
    rmr_fakehost_free(fh);
}

int main(void)
{
    /* The goldens expect the agent's hostname: not on Fargate, whatever runs the test. */
    unsetenv("ECS_FARGATE");
    unsetenv("AWS_EXECUTION_ENV");
    test_series_golden(0);
    test_series_golden(1);
    test_site_and_compression();
    test_v1_zstd_is_deflate();
    test_hosts();
    test_fargate_other_kinds();
    test_drops();
    test_events_and_checks();
    test_points_bound();
    test_raw_bound("v2 series raw", "api_key = " KEY "\n", 5242880, 13, 1, 0);
    test_raw_bound("v1 series raw", "api_key = " KEY "\napi_version = v1\n", 4194304, 13, 1, 0);
    test_raw_bound("sketches raw", "api_key = " KEY "\n", 4194304, 0, 0, 1);
    test_wire_bound("api_key = " KEY "\n", 1500, 5242880, 512000, "v2 zstd");
    test_wire_bound("api_key = " KEY "\ncompression = gzip\napi_version = v1\n", 2000, 4194304,
                    2500000, "v1 gzip");
    test_wire_bound("api_key = " KEY "\ncompression = deflate\napi_version = v1\n", 2000, 4194304,
                    2500000, "v1 deflate");
    test_wire_bound("api_key = " KEY "\ncompression = none\n", 1500, 5242880, 512000,
                    "v2 uncompressed");
    test_too_large();
    test_sketch_protoc();
    test_classify();
    test_options();
    test_validate();
    return tap_done();
}
