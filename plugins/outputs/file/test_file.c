/* The file output against the fake host: exact lines per record kind, escaping of hostile
 * strings, drops, options, compression and payload splitting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

/* The body of payload i as a NUL-terminated string; owned by the caller. */
static char *body(const struct rmr_fakehost *fh, uint32_t i)
{
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
    if (p == NULL)
        return NULL;
    char *s = malloc(p->len + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, p->body, p->len);
    s[p->len] = '\0';
    return s;
}

/* Encodes one batch on ins and returns payload 0's text (payloads cleared first). */
static char *encode_one(struct rmr_fakehost *fh, rmr_instance_t *ins, rmr_batch_t *b)
{
    rmr_fakehost_clear_payloads(fh);
    const rmr_batch_t *bs[] = {b};
    int rc = rmr_fakehost_encode(fh, ins, bs, 1);
    if (rc != 0)
        printf("# encode failed: %s\n", rmr_strerror(rc));
    return body(fh, 0);
}

static void test_descriptor(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "file", "descriptor: name");
    IS_INT(d->kind, RMR_KIND_OUTPUT, "descriptor: an output");
    IS_UINT(d->accepts, RMR_REC_ALL, "descriptor: accepts every kind");
    OK(d->schemas != NULL && strcmp(d->schemas[0], "datadog") == 0 &&
           strcmp(d->schemas[1], "guance") == 0 && strcmp(d->schemas[2], "elastic") == 0 &&
           d->schemas[3] == NULL,
       "descriptor: accepts the datadog, guance and elastic schemas");
}

static void test_every_kind(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    OK(ins != NULL, "every kind: created with defaults");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);

    struct rmr_tag gtags[] = {
        {RMR_STR("role"), RMR_STR("web")},
        {RMR_STR("env"), RMR_STR("prod")},
        {RMR_STR("role"), RMR_STR("db")},
        {RMR_STR("canary"), RMR_STR("")},
    };
    struct rmr_metric gauge = {
        .struct_size = sizeof gauge,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("cpu.usage"),
        .value = 0.5,
        .time_ns = T0,
        .unit = RMR_STR("%"),
        .host = RMR_STR("h1"),
        .tags = gtags,
        .ntags = 4,
    };
    struct rmr_metric count = {
        .struct_size = sizeof count,
        .type = RMR_METRIC_COUNT,
        .name = RMR_STR("requests"),
        .value = 3,
        .time_ns = T0 + INT64_C(1500000000),
        .interval_ms = 10000,
    };
    struct rmr_metric rate = {
        .struct_size = sizeof rate,
        .type = RMR_METRIC_RATE,
        .name = RMR_STR("rps"),
        .value = 1.0 / 3,
        .time_ns = T0 + 123456789,
        .interval_ms = 1000,
    };
    int32_t keys[] = {1338, 1400};
    uint32_t counts[] = {1, 2};
    struct rmr_sketch sk = {
        .struct_size = sizeof sk,
        .nbins = 2,
        .count = 3,
        .min = 1,
        .max = 3,
        .sum = 6,
        .keys = keys,
        .counts = counts,
    };
    struct rmr_metric dist = {
        .struct_size = sizeof dist,
        .type = RMR_METRIC_DISTRIBUTION,
        .name = RMR_STR("lat"),
        .time_ns = T0,
        .sketch = &sk,
    };
    struct rmr_tag ltags[] = {{RMR_STR("env"), RMR_STR("prod")}};
    struct rmr_field lattrs[] = {
        {RMR_STR("user"), {.type = RMR_VAL_STR, .str_len = 3, .v.str = "bob"}},
        {RMR_STR("n"), {.type = RMR_VAL_INT, .v.i = 7}},
    };
    struct rmr_log log = {
        .struct_size = sizeof log,
        .time_ns = T0,
        .message = RMR_STR("hello"),
        .status = RMR_STR("info"),
        .source = RMR_STR("app"),
        .service = RMR_STR("web"),
        .host = RMR_STR("h1"),
        .trace_id_lo = 0x1234,
        .span_id = 0xabc,
        .tags = ltags,
        .ntags = 1,
        .nattrs = 2,
        .attrs = lattrs,
    };
    struct rmr_tag meta[] = {{RMR_STR("http.method"), RMR_STR("GET")}};
    struct rmr_field smetrics[] = {
        {RMR_STR("_sampling_priority_v1"), {.type = RMR_VAL_DOUBLE, .v.d = 1}},
    };
    struct rmr_span span = {
        .struct_size = sizeof span,
        .error = 1,
        .trace_id_hi = 1,
        .trace_id_lo = 2,
        .span_id = 3,
        .parent_id = 0,
        .name = RMR_STR("http.request"),
        .service = RMR_STR("web"),
        .resource = RMR_STR("GET /"),
        .type = RMR_STR("web"),
        .start_ns = T0,
        .duration_ns = 1500000,
        .meta = meta,
        .nmeta = 1,
        .nmetrics = 1,
        .metrics = smetrics,
    };
    struct rmr_event ev = {
        .struct_size = sizeof ev,
        .priority = RMR_EVENT_LOW,
        .time_ns = T0,
        .title = RMR_STR("deploy"),
        .text = RMR_STR("v2 rolled out"),
        .host = RMR_STR("h1"),
        .aggregation_key = RMR_STR("dep"),
        .source_type = RMR_STR("ci"),
        .alert_type = RMR_STR("info"),
    };
    struct rmr_check chk = {
        .struct_size = sizeof chk,
        .status = RMR_CHECK_CRITICAL,
        .time_ns = T0,
        .name = RMR_STR("app.up"),
        .host = RMR_STR("h1"),
        .message = RMR_STR("down"),
    };
    struct rmr_tag otags[] = {{RMR_STR("container_id"), RMR_STR("abc")}};
    struct rmr_field ofields[] = {
        {RMR_STR("cpu_usage"), {.type = RMR_VAL_DOUBLE, .v.d = 12.25}},
        {RMR_STR("running"), {.type = RMR_VAL_BOOL, .v.i = 1}},
        {RMR_STR("restarts"), {.type = RMR_VAL_UINT, .v.u = UINT64_MAX}},
        {RMR_STR("image"), {.type = RMR_VAL_STR, .str_len = 5, .v.str = "nginx"}},
        {RMR_STR("delta"), {.type = RMR_VAL_INT, .v.i = -5}},
        {RMR_STR("paused"), {.type = RMR_VAL_BOOL, .v.i = 0}},
    };
    struct rmr_object obj = {
        .struct_size = sizeof obj,
        .time_ns = T0,
        .cls = RMR_STR("docker_containers"),
        .name = RMR_STR("c1"),
        .tags = otags,
        .ntags = 1,
        .nfields = 6,
        .fields = ofields,
    };

    IS_INT(rmr_metric_add(b, &gauge), 0, "every kind: add gauge");
    IS_INT(rmr_metric_add(b, &count), 0, "every kind: add count");
    IS_INT(rmr_metric_add(b, &rate), 0, "every kind: add rate");
    IS_INT(rmr_metric_add(b, &dist), 0, "every kind: add distribution");
    IS_INT(rmr_log_add(b, &log), 0, "every kind: add log");
    IS_INT(rmr_span_add(b, &span), 0, "every kind: add span");
    IS_INT(rmr_event_add(b, &ev), 0, "every kind: add event");
    IS_INT(rmr_check_add(b, &chk), 0, "every kind: add check");
    IS_INT(rmr_object_add(b, &obj), 0, "every kind: add object");

    char *text = encode_one(fh, ins, b);
    IS_INT(rmr_fakehost_payload_count(fh), 1, "every kind: one payload for one batch");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    if (p != NULL) {
        IS_STR(p->spec.endpoint, "file:-", "every kind: default endpoint is standard output");
        IS_STR(p->spec.content_type, "application/x-ndjson", "every kind: content type");
        IS_INT(p->spec.compression, RMR_COMPRESS_NONE, "every kind: uncompressed");
        IS_INT(p->nrecords, 9, "every kind: nine records");
    }
    const char *want =
        "{\"kind\":\"metric\",\"name\":\"cpu.usage\",\"type\":\"gauge\",\"value\":0.5,"
        "\"unit\":\"%\",\"host\":\"h1\",\"time\":\"2026-01-01T00:00:00.000000000Z\","
        "\"tags\":{\"canary\":\"\",\"env\":\"prod\",\"role\":[\"db\",\"web\"]}}\n"
        "{\"kind\":\"metric\",\"name\":\"requests\",\"type\":\"count\",\"value\":3,"
        "\"interval_ms\":10000,\"time\":\"2026-01-01T00:00:01.500000000Z\",\"tags\":{}}\n"
        "{\"kind\":\"metric\",\"name\":\"rps\",\"type\":\"rate\",\"value\":0.3333333333333333,"
        "\"interval_ms\":1000,\"time\":\"2026-01-01T00:00:00.123456789Z\",\"tags\":{}}\n"
        "{\"kind\":\"metric\",\"name\":\"lat\",\"type\":\"distribution\",\"sketch\":{\"count\":3,"
        "\"min\":1,\"max\":3,\"sum\":6,\"bins\":[[1338,1],[1400,2]]},"
        "\"time\":\"2026-01-01T00:00:00.000000000Z\",\"tags\":{}}\n"
        "{\"kind\":\"log\",\"message\":\"hello\",\"status\":\"info\",\"source\":\"app\","
        "\"service\":\"web\",\"host\":\"h1\",\"trace_id\":\"00000000000000000000000000001234\","
        "\"span_id\":\"0000000000000abc\",\"attrs\":{\"user\":\"bob\",\"n\":7},"
        "\"time\":\"2026-01-01T00:00:00.000000000Z\",\"tags\":{\"env\":\"prod\"}}\n"
        "{\"kind\":\"span\",\"trace_id\":\"00000000000000010000000000000002\","
        "\"span_id\":\"0000000000000003\",\"parent_id\":\"0000000000000000\","
        "\"name\":\"http.request\",\"service\":\"web\",\"resource\":\"GET /\",\"type\":\"web\","
        "\"start\":\"2026-01-01T00:00:00.000000000Z\",\"duration_ns\":1500000,\"error\":1,"
        "\"meta\":{\"http.method\":\"GET\"},\"metrics\":{\"_sampling_priority_v1\":1}}\n"
        "{\"kind\":\"event\",\"title\":\"deploy\",\"text\":\"v2 rolled out\",\"priority\":\"low\","
        "\"alert_type\":\"info\",\"aggregation_key\":\"dep\",\"source_type\":\"ci\","
        "\"host\":\"h1\",\"time\":\"2026-01-01T00:00:00.000000000Z\",\"tags\":{}}\n"
        "{\"kind\":\"check\",\"name\":\"app.up\",\"status\":2,\"status_text\":\"critical\","
        "\"message\":\"down\",\"host\":\"h1\",\"time\":\"2026-01-01T00:00:00.000000000Z\","
        "\"tags\":{}}\n"
        "{\"kind\":\"object\",\"class\":\"docker_containers\",\"name\":\"c1\","
        "\"fields\":{\"cpu_usage\":12.25,\"running\":true,\"restarts\":18446744073709551615,"
        "\"image\":\"nginx\",\"delta\":-5,\"paused\":false},"
        "\"time\":\"2026-01-01T00:00:00.000000000Z\",\"tags\":{\"container_id\":\"abc\"}}\n";
    IS_STR(text, want, "every kind: exact lines");
    free(text);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_schema_and_fields(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "path = -\ncompression = none\n", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, "guance");
    struct rmr_field f[] = {
        {RMR_STR("cpu_usage"), {.type = RMR_VAL_DOUBLE, .v.d = 0.1}},
        {RMR_STR("mem"), {.type = RMR_VAL_INT, .v.i = 1024}},
        {RMR_STR("big"), {.type = RMR_VAL_DOUBLE, .v.d = 1e21}},
        {RMR_STR("tiny"), {.type = RMR_VAL_DOUBLE, .v.d = 1.5e-7}},
        {RMR_STR("inf"), {.type = RMR_VAL_DOUBLE, .v.d = INFINITY}},
        {RMR_STR("long"), {.type = RMR_VAL_DOUBLE, .v.d = 123456789012345678.0}},
        {RMR_STR("sum"), {.type = RMR_VAL_DOUBLE, .v.d = 0.1 + 0.2}},
    };
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("docker_containers"),
        .time_ns = -1,
        .nfields = 7,
        .fields = f,
    };
    IS_INT(rmr_metric_add(b, &m), 0, "schema: add multi-field point");
    char *text = encode_one(fh, ins, b);
    IS_STR(text,
           "{\"kind\":\"metric\",\"schema\":\"guance\",\"name\":\"docker_containers\","
           "\"type\":\"gauge\",\"fields\":{\"cpu_usage\":0.1,\"mem\":1024,\"big\":1e+21,"
           "\"tiny\":1.5e-07,\"inf\":null,\"long\":1.2345678901234568e+17,"
           "\"sum\":0.30000000000000004},"
           "\"time\":\"1969-12-31T23:59:59.999999999Z\",\"tags\":{}}\n",
           "schema: label, typed fields, shortest round-trip doubles, time before the epoch");
    free(text);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_hostile_strings(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, NULL, NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    static const char msg[] = "q\"b\\n\nc\x01\x1f\t\r\b\f"
                              "\0"
                              "\xff"
                              "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                              "\xed\xa0\x80"
                              "\xc0\xaf"
                              "z\xc3";
    struct rmr_tag tags[] = {{RMR_STR("a\"b"), RMR_STR("line1\nline2")}};
    struct rmr_log l = {
        .struct_size = sizeof l,
        .time_ns = T0,
        .message = rmr_str_n(msg, sizeof msg - 1),
        .tags = tags,
        .ntags = 1,
    };
    IS_INT(rmr_log_add(b, &l), 0, "hostile: add log");
    char *text = encode_one(fh, ins, b);
    IS_STR(text,
           "{\"kind\":\"log\",\"message\":\"q\\\"b\\\\n\\nc\\u0001\\u001f\\t\\r\\b\\f\\u0000"
           "\\ufffd\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\ufffd\\ufffd\\ufffd\\ufffd\\ufffdz"
           "\\ufffd\",\"time\":\"2026-01-01T00:00:00.000000000Z\","
           "\"tags\":{\"a\\\"b\":\"line1\\nline2\"}}\n",
           "hostile: quotes, backslashes, controls, NUL, invalid UTF-8 escaped; valid UTF-8 kept");
    OK(text != NULL && strchr(text, '\n') == text + strlen(text) - 1,
       "hostile: exactly one newline, at the end of the line");
    free(text);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_non_finite(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    struct rmr_metric nan_m = {.struct_size = sizeof nan_m,
                               .type = RMR_METRIC_GAUGE,
                               .name = RMR_STR("bad.nan"),
                               .value = NAN,
                               .time_ns = T0};
    struct rmr_metric inf_m = {.struct_size = sizeof inf_m,
                               .type = RMR_METRIC_COUNT,
                               .name = RMR_STR("bad.inf"),
                               .value = -INFINITY,
                               .time_ns = T0};
    struct rmr_metric ok_m = {.struct_size = sizeof ok_m,
                              .type = RMR_METRIC_GAUGE,
                              .name = RMR_STR("good"),
                              .value = -2.5,
                              .time_ns = T0};
    rmr_metric_add(b, &nan_m);
    rmr_metric_add(b, &ok_m);
    rmr_metric_add(b, &inf_m);
    char *text = encode_one(fh, ins, b);
    IS_STR(text,
           "{\"kind\":\"metric\",\"name\":\"good\",\"type\":\"gauge\",\"value\":-2.5,"
           "\"time\":\"2026-01-01T00:00:00.000000000Z\",\"tags\":{}}\n",
           "non-finite: only the finite metric is written");
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    IS_INT(p != NULL ? p->nrecords : 0, 1, "non-finite: the payload carries one record");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "non_finite"), 2,
            "non-finite: NaN and -Inf counted as records_dropped{reason=non_finite}");
    free(text);
    rmr_batch_free(b);

    /* A batch that is dropped entirely produces no empty payload. */
    b = rmr_fakehost_batch_new(fh, NULL);
    rmr_metric_add(b, &nan_m);
    rmr_fakehost_clear_payloads(fh);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "non-finite: encode of all-bad batch is ok");
    IS_INT(rmr_fakehost_payload_count(fh), 0, "non-finite: no empty payload");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "non_finite"), 3,
            "non-finite: counted again");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static rmr_batch_t *small_batch(struct rmr_fakehost *fh)
{
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    for (int i = 0; i < 50; i++) {
        struct rmr_log l = {.struct_size = sizeof l,
                            .time_ns = T0 + i,
                            .message = RMR_STR("the same words again and again"),
                            .status = RMR_STR("info")};
        rmr_log_add(b, &l);
    }
    return b;
}

static void test_path_and_compression(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *plain = plugin_make(fh, "path = /tmp/x\n", NULL);
    rmr_instance_t *gz =
        plugin_make(fh, "# gzip to a file\npath = /tmp/x.gz\ncompression = gzip\n", NULL);
    rmr_instance_t *zs =
        plugin_make(fh, "path = /tmp/x.zst ; inline comment\ncompression = zstd", NULL);
    OK(plain != NULL && gz != NULL && zs != NULL, "path: three instances coexist");
    rmr_batch_t *b = small_batch(fh);

    char *text = encode_one(fh, plain, b);
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    IS_STR(p ? p->spec.endpoint : NULL, "file:/tmp/x", "path: endpoint file:/tmp/x");

    rmr_fakehost_clear_payloads(fh);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, gz, bs, 1), 0, "gzip: encode");
    p = rmr_fakehost_payload(fh, 0);
    OK(p != NULL, "gzip: one payload");
    if (p != NULL && text != NULL) {
        IS_STR(p->spec.endpoint, "file:/tmp/x.gz", "gzip: endpoint");
        IS_INT(p->spec.compression, RMR_COMPRESS_GZIP, "gzip: the spec asks for gzip");
        OK(p->len >= 2 && p->body[0] == 0x1f && p->body[1] == 0x8b, "gzip: gzip magic");
        OK(p->len < strlen(text), "gzip: smaller than the text");
        size_t cap = strlen(text) + 64;
        unsigned char *out = malloc(cap);
        z_stream zs_;
        memset(&zs_, 0, sizeof zs_);
        int zr = inflateInit2(&zs_, 31);
        zs_.next_in = (Bytef *)(uintptr_t)p->body;
        zs_.avail_in = (uInt)p->len;
        zs_.next_out = out;
        zs_.avail_out = (uInt)cap;
        if (zr == Z_OK)
            zr = inflate(&zs_, Z_FINISH);
        IS_INT(zr, Z_STREAM_END, "gzip: inflates to the end of the stream");
        IS_STRN((const char *)out, zs_.total_out, text, "gzip: gunzips to the same text");
        inflateEnd(&zs_);
        free(out);
    }

    rmr_fakehost_clear_payloads(fh);
    IS_INT(rmr_fakehost_encode(fh, zs, bs, 1), 0, "zstd: encode");
    p = rmr_fakehost_payload(fh, 0);
    OK(p != NULL && p->spec.compression == RMR_COMPRESS_ZSTD && p->len >= 4 && p->body[0] == 0x28 &&
           p->body[1] == 0xb5 && p->body[2] == 0x2f && p->body[3] == 0xfd,
       "zstd: zstd frame magic");
    IS_STR(p ? p->spec.endpoint : NULL, "file:/tmp/x.zst", "zstd: inline comment stripped");
    free(text);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_config_errors(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    char err[256];
    rmr_instance_t *ins = NULL;
    int rc = rmr_fakehost_create(fh, rmr_plugin_describe(), "compression = brotli", &ins, err,
                                 sizeof err);
    IS_INT(rc, RMR_ECONFIG, "config: unknown compression is a config error");
    CONTAINS(err, "compression", "config: the message names the key");
    OK(ins == NULL, "config: no instance");

    rc =
        rmr_fakehost_create(fh, rmr_plugin_describe(), "compression = gzip", &ins, err, sizeof err);
    IS_INT(rc, RMR_ECONFIG, "config: compression of standard output is refused");
    CONTAINS(err, "output.file: create failed: invalid configuration: invalid 'compression'",
             "config: the plugin's reason reaches err");
    OK(rmr_fakehost_log_count(fh) > 0, "config: refusal logged");
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1), "ERROR invalid 'compression'",
             "config: log names the key");

    /* The config layer reads an empty value as "use the default". */
    rc = rmr_fakehost_create(fh, rmr_plugin_describe(), "path =", &ins, err, sizeof err);
    IS_INT(rc, 0, "config: empty path means the default");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    struct rmr_check c = {.struct_size = sizeof c, .name = RMR_STR("x"), .time_ns = T0};
    rmr_check_add(b, &c);
    const rmr_batch_t *bs[] = {b};
    rmr_fakehost_encode(fh, ins, bs, 1);
    const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, 0);
    IS_STR(p ? p->spec.endpoint : NULL, "file:-", "config: empty path is standard output");
    rmr_batch_free(b);
    ins = NULL;

    rc = rmr_fakehost_create(fh, rmr_plugin_describe(), "pth = /tmp/x", &ins, err, sizeof err);
    IS_INT(rc, RMR_ECONFIG, "config: unknown key refused");
    CONTAINS(err, "path", "config: nearest key suggested");
    rmr_fakehost_free(fh);
}

static void test_split(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    char big[1000];
    memset(big, 'x', sizeof big);
    rmr_batch_t *b1 = rmr_fakehost_batch_new(fh, NULL);
    for (int i = 0; i < 3000; i++) {
        struct rmr_log l = {
            .struct_size = sizeof l, .time_ns = T0, .message = rmr_str_n(big, sizeof big)};
        rmr_log_add(b1, &l);
    }
    rmr_batch_t *b2 = rmr_fakehost_batch_new(fh, "datadog");
    struct rmr_check c = {.struct_size = sizeof c, .name = RMR_STR("x"), .time_ns = T0};
    rmr_check_add(b2, &c);
    const rmr_batch_t *bs[] = {b1, b2};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 2), 0, "split: encode 3001 records");
    uint32_t n = rmr_fakehost_payload_count(fh);
    uint64_t records = 0;
    size_t maxlen = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        records += p->nrecords;
        if (p->len > maxlen)
            maxlen = p->len;
    }
    OK(n >= 4, "split: ~3 MB became several payloads, the second batch its own");
    IS_UINT(records, 3001, "split: every record in exactly one payload");
    OK(maxlen < ((size_t)1 << 20) + 2048, "split: payloads stay near 1 MiB");
    const struct rmr_fakehost_payload *last = rmr_fakehost_payload(fh, n - 1);
    IS_INT(last ? last->nrecords : 0, 1, "split: each batch ends its payload");
    rmr_batch_free(b1);
    rmr_batch_free(b2);
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_descriptor();
    test_every_kind();
    test_schema_and_fields();
    test_hostile_strings();
    test_non_finite();
    test_path_and_compression();
    test_config_errors();
    test_split();
    return tap_done();
}
